"""The processes of a sandbox run: feeding the jail its orders, keeping its output (cut to a
limit), and making sure nothing of the run is left: the jail's group, its uid's processes."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from troika_executor.sandbox_errors import ProcessesLeft

if TYPE_CHECKING:
    from collections.abc import Iterable

log = structlog.get_logger("troika.executor.sandbox")

__all__ = ["Capture", "drain", "kill_uid", "send", "settle", "signal_name", "stop", "sweep",
           "was_ready"]  # fmt: skip

_REAP_GRACE_S = 2.0  # for the jail to follow its killed child before its group is killed too
_DRAIN_GRACE_S = 2.0  # for the output pipes to close once the processes are dead
_SWEEP_S = 5.0  # for the processes of a run's uid to die once killed


async def send(process: asyncio.subprocess.Process, orders: bytes) -> None:
    stdin = process.stdin
    if stdin is None:  # pragma: no cover - the process was started with a pipe
        raise RuntimeError("the jail has no stdin")
    try:
        stdin.write(orders)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the jail died before reading; its stderr says why
    finally:
        stdin.close()


async def drain(stream: asyncio.StreamReader | None, capture: Capture) -> None:
    if stream is None:  # pragma: no cover - the process was started with pipes
        return
    while chunk := await stream.read(65_536):
        capture.feed(chunk)


async def settle(readers: Iterable[asyncio.Future[None]]) -> None:
    pending = [reader for reader in readers if not reader.done()]
    if pending:
        _, late = await asyncio.wait(pending, timeout=_DRAIN_GRACE_S)
        for reader in late:
            reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


async def stop(process: asyncio.subprocess.Process, uid: int | None) -> None:
    """Kills whatever is left of the run and reaps the jail."""
    if process.returncode is None:
        # In "namespaces" isolation the jail's child is pid 1 of the namespace: killing it kills
        # every process there, and the jail reaps it and dies of the same signal.
        children = _children(process.pid)
        for child in children:
            _kill(child)
        try:
            if children:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), _REAP_GRACE_S)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
    if uid is not None:
        await asyncio.to_thread(sweep, uid)


def was_ready(ready: int) -> bool:
    """Whether the jail said the code was confined and about to start."""
    try:
        os.set_blocking(ready, False)
        return os.read(ready, 1) == b"1"
    except BlockingIOError:
        return False
    finally:
        os.close(ready)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _processes() -> Iterable[tuple[int, str]]:
    """Each process's pid and ``/proc/<pid>/status`` text."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "status").read_text()
            except OSError:
                continue  # it ended meanwhile


def _status_field(status: str, name: str) -> list[str]:
    for line in status.splitlines():
        if line.startswith(f"{name}:"):
            return line.split()[1:]
    return []


def _children(parent: int) -> list[int]:
    return [pid for pid, status in _processes() if _status_field(status, "PPid") == [str(parent)]]


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def kill_uid(uid: int) -> int:
    """Sends SIGKILL to each live process of ``uid``; how many there were."""
    found = 0
    for pid, status in _processes():
        uids = _status_field(status, "Uid")
        state = _status_field(status, "State")[:1]
        if str(uid) in uids[:2] and state not in (["Z"], ["X"]):
            _kill(pid)
            found += 1
    return found


def sweep(uid: int) -> None:
    """Kills the processes of ``uid`` until none is left (a killed process takes a moment).

    Raises:
        ProcessesLeft: Some outlived ``_SWEEP_S`` of it: the run must not go on as if they had not.
    """
    deadline = time.monotonic() + _SWEEP_S
    while left := kill_uid(uid):
        if time.monotonic() > deadline:
            log.error("sandbox.processes_left", uid=uid, processes=left)
            raise ProcessesLeft(uid, left)
        time.sleep(0.01)


class Capture:
    """Keeps the first ``limit`` characters of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: list[str] = []
        self._size = 0
        self._dropped = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text: str | None = None

    def feed(self, data: bytes, *, final: bool = False) -> None:
        text = self._decoder.decode(data, final)
        room = self._limit - self._size
        if room > 0:
            kept = text[:room]
            self._kept.append(kept)
            self._size += len(kept)
            text = text[room:]
        self._dropped += len(text)

    def text(self) -> str:
        if self._text is None:
            self.feed(b"", final=True)
            self._text = "".join(self._kept)
            if self._dropped:
                self._text += f"\n[truncated: {self._dropped} more characters]"
        return self._text
