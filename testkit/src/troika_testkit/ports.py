"""Free TCP ports for the tests' servers, never raced for.

Binding port 0 and closing it again (what a server that cannot pick its own port needs) hands
out a port from the kernel's ephemeral range, where another test running beside this one may
be handed the very same port a moment later: its gateway then answers this test's readiness
check. Here each pytest-xdist worker takes ports from its own block below the ephemeral range
(which the kernel never hands out by itself), one after another, each checked free by binding
it, so no two tests share one and a port just let go is not handed out again soon.
"""

from __future__ import annotations

import os
import socket
import threading

__all__ = ["free_port"]

_BASE = 20_000
_BLOCK = 1_500  # ports per worker: 8 workers fit below 32768, the usual ephemeral start
_lock = threading.Lock()
_taken = [0]


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
                return port
    raise RuntimeError(f"no free port in {start}-{start + _BLOCK - 1}")
