"""Sampling where a running stack's Python processes spend their CPU time, and reading it.

Each service is started with :mod:`troika_testkit.cpu_sampler` armed (:func:`environment`);
:func:`sampled` starts the samplers while a block runs and collects what they charged. What each
process writes is the collapsed-stack format (one line per distinct stack with the microseconds
of CPU charged to it), which speedscope.app and flamegraph.pl open as they are; :func:`read`
tallies it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from troika_testkit.cpu_sampler import ENV, RATE_ENV, SITE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from pathlib import Path

__all__ = ["Tally", "environment", "read", "sampled"]

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_STOP_S = 30.0


def environment(folder: Path, *, rate: int = 100) -> dict[str, str]:
    """What a process's environment needs for its sampler to be armed, writing to ``folder``
    ``rate`` times per second of CPU."""
    path = os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, ENV: str(folder.absolute()), RATE_ENV: str(rate)}


@contextlib.asynccontextmanager
async def sampled(pids: Mapping[str, int], folder: Path) -> AsyncIterator[dict[str, Path]]:
    """Samples each process (started with :func:`environment` for ``folder``) while the block
    runs; yields the files the samples go to, by process name (``<name>.txt`` in ``folder``),
    written when it ends.

    Raises:
        RuntimeError: A process wrote no samples (it was not started armed, or has ended).
    """
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    files = {name: folder / f"{name}.txt" for name in pids}
    for pid in pids.values():
        os.kill(pid, signal.SIGUSR2)  # starts its sampler
    try:
        yield files
    finally:
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR2)  # stops it: it writes <pid>.txt
        deadline = time.monotonic() + _STOP_S
        for name, pid in pids.items():
            written = folder / f"{pid}.txt"
            while not written.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} (pid {pid}) wrote no samples to {folder}")
                await asyncio.sleep(0.05)
            written.replace(files[name])


@dataclass
class Tally:
    """One process's samples, weighed by the CPU time charged to them (microseconds): by
    function, what it ran itself (``own``) and what ran under it (``total``, Troika's own
    functions only: the event loop's frames are under everything), and by package what it ran
    itself."""

    samples: int = 0
    own: collections.Counter[str] = field(default_factory=collections.Counter)
    total: collections.Counter[str] = field(default_factory=collections.Counter)
    packages: collections.Counter[str] = field(default_factory=collections.Counter)


def read(path: Path) -> Tally:
    """Tallies a collapsed-stack file (``frame;frame;… count`` per line, the root first; a
    frame is ``function (package/module.py:line)``)."""
    tally = Tally()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_frame(frame) for frame in stack.split(";")]
        tally.samples += samples
        function, file = frames[-1]
        tally.own[f"{function} ({file})"] += samples
        tally.packages[_package(file)] += samples
        ours = {f"{f} ({where})" for f, where in frames if where.startswith("troika")}
        for name in ours:
            tally.total[name] += samples
    return tally


def _frame(frame: str) -> tuple[str, str]:
    """A frame's function and file, its line number dropped (a function's lines are one)."""
    found = _FRAME.match(frame)
    if found is None:
        return frame, ""
    return found["function"], found["file"]


def _package(file: str) -> str:
    """The top-level package a file belongs to (a module of its own: its name)."""
    if not file:
        return "(native)"
    top = file.split("/", 1)[0]
    return top.removesuffix(".py")
