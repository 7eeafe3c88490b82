"""Sampling a running stack's Python processes with py-spy, and reading what it sampled.

py-spy reads each process's stacks from outside (``ptrace``), so the services carry no profiling
code and run at their usual speed (``--nonblocking``: they are not paused to be read). What it
writes per process is the collapsed-stack format (one line per distinct stack with its sample
count), which speedscope.app and flamegraph.pl open as they are; :func:`read` tallies it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

__all__ = ["Tally", "read", "sampled"]

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_STOP_S = 30.0


def _py_spy() -> str:
    """The py-spy beside this interpreter (the dev dependencies put it there), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed: run `make install`")
    return found


@contextlib.asynccontextmanager
async def sampled(
    pids: Mapping[str, int], folder: Path, *, rate: int = 100
) -> AsyncIterator[dict[str, Path]]:
    """Samples each process ``rate`` times a second while the block runs; yields the files
    the samples go to, by process name (``<name>.txt`` in ``folder``), written when it ends.

    Raises:
        RuntimeError: py-spy is missing, or could not read a process (it needs ``ptrace``:
            root, or ``kernel.yama.ptrace_scope`` 0, or a container with ``SYS_PTRACE``).
    """
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    binary = _py_spy()
    files = {name: folder / f"{name}.txt" for name in pids}
    samplers: dict[str, asyncio.subprocess.Process] = {}
    try:
        for name, pid in pids.items():
            samplers[name] = await asyncio.create_subprocess_exec(
                binary, "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking",
                "--format", "raw", "--output", str(files[name]),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
        await asyncio.sleep(1.0)  # attached (a sampler that cannot read its process has ended)
        for name, sampler in samplers.items():
            if sampler.returncode is not None:
                said = await sampler.stderr.read() if sampler.stderr else b""
                reason = said.decode(errors="replace").strip()[-500:]
                raise RuntimeError(f"py-spy could not sample {name}: {reason}")
        yield files
    finally:
        for sampler in samplers.values():  # py-spy writes its file when interrupted
            if sampler.returncode is None:
                sampler.send_signal(signal.SIGINT)
        for sampler in samplers.values():
            try:
                async with asyncio.timeout(_STOP_S):
                    await sampler.wait()
            except TimeoutError:
                sampler.kill()


@dataclass
class Tally:
    """One process's samples: by function, what it ran itself (``own``) and what ran under it
    (``total``, Troika's own functions only: the event loop's frames are under everything), and
    by package what it ran itself."""

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
