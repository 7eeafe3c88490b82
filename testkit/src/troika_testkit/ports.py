"""Free TCP ports for the tests' servers, never raced for.

Binding port 0 and closing it again (what a server that cannot pick its own port needs) hands
out a port from the kernel's ephemeral range, where another test running beside this one may
be handed the very same port a moment later: its gateway then answers this test's readiness
check. Here each pytest-xdist worker takes ports from its own block below the ephemeral range
(which the kernel never hands out by itself), one after another, each checked free by binding
it, so no two tests share one and a port just let go is not handed out again soon. Two test runs
on one machine (a developer's ``make test`` beside CI) take the same blocks: each port is also
claimed with a file in the system's temporary folder, which the other run respects (for an hour
at most, should the run that claimed it have crashed) and its own run removes when it ends.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["free_port"]

_BASE = 20_000
_BLOCK = 1_500  # ports per worker: 8 workers fit below 32768, the usual ephemeral start
_CLAIM_S = 3600.0  # a claim older than this was left by a run that ended
_CLAIMS = Path(tempfile.gettempdir()) / "troika-test-ports"
_lock = threading.Lock()
_taken = [0]
_mine: list[Path] = []


@atexit.register
def _release() -> None:
    """Gives this process's claims back when it ends."""
    for claim in _mine:
        with contextlib.suppress(OSError):
            claim.unlink()


def _claim(port: int) -> bool:
    """Claims a port for this run; ``False`` when another run holds it."""
    _CLAIMS.mkdir(mode=0o700, exist_ok=True)
    claim = _CLAIMS / str(port)
    try:
        descriptor = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            if time.time() - claim.stat().st_mtime < _CLAIM_S:
                return False
        except FileNotFoundError:
            pass
        claim.touch()  # a stale claim, left by a run that crashed: taken over
        _mine.append(claim)
        return True
    os.close(descriptor)
    _mine.append(claim)
    return True


def _block() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    return _BASE + (int(worker) % 8 if worker.isdigit() else 0) * _BLOCK


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free now and no other test of this run is given.

    Raises:
        RuntimeError: Every port of this worker's block is in use.
    """
    start = _block()
    with _lock:
        for _ in range(_BLOCK):
            port = start + _taken[0] % _BLOCK
            _taken[0] += 1
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
            if _claim(port):
                return port
    raise RuntimeError(f"no free port in {start}-{start + _BLOCK - 1}")
