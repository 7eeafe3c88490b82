"""A sampler of where a Python process spends its CPU time, run inside the process.

A sampler that reads a process from outside (py-spy) counts a thread as at work whenever the
kernel has it runnable, so on a machine whose cores are shared by more processes than it has,
the time a thread waits for a core is charged to wherever it was when it lost it: mostly the
system calls that wake another process. Measured on the two-core development machine under the
benchmark's load, a write of a NATS message cost the worker 32 µs of CPU and 400 µs of waiting
for a core, so such a profile showed the writes as a sixth of the worker's time, a tenth of what
they cost.

This one counts CPU time only. A timer on the process's CPU clock (``ITIMER_PROF``) interrupts it
``rate`` times per second of CPU it uses; at each tick the CPU time each thread used since the
last tick (its own clock) is charged, in microseconds, to the stack it is in now. A thread that
waits uses no CPU and is charged nothing. Where the running code is in a greenlet (SQLAlchemy's
asyncio layer runs each database call in one), its stack is joined to the stack that started it.

Armed by the environment, so a stack's services are profiled without code of their own: with
this module's folder ``site`` on ``PYTHONPATH`` and :data:`ENV` naming a folder, each Python
process starts with the sampler armed; ``SIGUSR2`` starts it, and ``SIGUSR2`` again stops it and
writes the stacks to ``<folder>/<pid>.txt`` in the collapsed format (``frame;frame;… count``, the
root first, each frame ``function (package/module.py:line)``), which speedscope.app and
flamegraph.pl open, and :func:`troika_testkit.sampling.read` tallies.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import CodeType, FrameType

__all__ = ["ENV", "RATE_ENV", "SITE", "CpuSampler", "arm_from_environment"]

ENV = "CPU_SAMPLES"
"""The folder an armed process writes its samples to (not ``TROIKA_``-prefixed: each agent is
given only the Troika settings it reads)."""
RATE_ENV = "CPU_SAMPLES_RATE"
"""Ticks per second of CPU time (default 100)."""
SITE = Path(__file__).with_name("cpu_site")
"""The folder to put on ``PYTHONPATH``: its ``sitecustomize`` arms the sampler."""


class CpuSampler:
    """Charges each thread's CPU time to the stack it is running.

    Args:
        rate: Ticks per second of the process's CPU time.
    """

    def __init__(self, rate: int = 100) -> None:
        self.interval_s = 1 / rate
        self.stacks: collections.Counter[str] = collections.Counter()
        self._used: dict[int, int] = {}  # thread id → its CPU clock at the last tick, in ns
        self._labels: dict[CodeType, str] = {}
        self.running = False

    def start(self) -> None:
        """Starts charging (the stacks gathered so far are kept). On the main thread only."""
        self._used = dict(_clocks(sys._current_frames()))  # noqa: SLF001
        signal.signal(signal.SIGPROF, self._tick)
        signal.setitimer(signal.ITIMER_PROF, self.interval_s, self.interval_s)
        self.running = True

    def stop(self) -> None:
        """Stops charging."""
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_IGN)
        self.running = False

    def collapsed(self) -> str:
        """The stacks gathered, one line each with the microseconds charged to it."""
        return "".join(f"{stack} {us}\n" for stack, us in self.stacks.items() if us > 0)

    def _tick(self, _signum: int, frame: FrameType | None) -> None:
        # Nothing here may take a lock (threading.enumerate does): the handler runs on the main
        # thread between two of its instructions, perhaps while it holds that very lock.
        current = sys._current_frames()  # noqa: SLF001 - the documented way to read other threads
        main = threading.main_thread().ident
        for ident, used in _clocks(current):
            spent = used - self._used.get(ident, used)
            self._used[ident] = used
            if spent <= 0:
                continue
            top = frame if ident == main else current.get(ident)
            if top is not None:
                self.stacks[self._stack(top, joined=ident == main)] += spent // 1000

    def _stack(self, frame: FrameType, *, joined: bool) -> str:
        # joined: then the greenlets under the running one, each from the frame it switched in
        frames: list[str] = []
        for top in [frame, *_greenlet_parents()] if joined else [frame]:
            seen: FrameType | None = top
            while seen is not None:
                frames.append(self._label(seen))
                seen = seen.f_back
        frames.reverse()
        return ";".join(frames)

    def _label(self, frame: FrameType) -> str:
        code = frame.f_code
        label = self._labels.get(code)
        if label is None:
            label = self._labels[code] = f"{code.co_qualname} ({_module_path(code.co_filename)}"
        return f"{label}:{frame.f_lineno})"


def _clocks(threads: Mapping[int, object]) -> list[tuple[int, int]]:
    """Each of ``threads``' id and CPU time used, in nanoseconds."""
    found = []
    for ident in threads:
        with contextlib.suppress(OSError):  # it ended meanwhile
            found.append((ident, time.clock_gettime_ns(time.pthread_getcpuclockid(ident))))
    return found


def _greenlet_parents() -> list[FrameType]:
    """The frames at which the greenlets under the running one handed over, nearest first."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return []
    frames = []
    parent = greenlet.getcurrent().parent
    while parent is not None:
        if parent.gr_frame is not None:
            frames.append(parent.gr_frame)
        parent = parent.parent
    return frames


def _module_path(filename: str) -> str:
    """A file as a module path (``troika_gateway/worker.py``), as py-spy names it."""
    for marker in ("/site-packages/", "/src/"):
        if marker in filename:
            return filename.rsplit(marker, 1)[1]
    if filename.startswith("<"):
        return filename
    parts = filename.split("/")
    return "/".join(parts[-2:]) if "python3" in filename else parts[-1]


def arm_from_environment() -> CpuSampler | None:
    """Arms a sampler when :data:`ENV` names a folder: ``SIGUSR2`` starts it, and again
    stops it and writes ``<folder>/<pid>.txt``."""
    folder = os.environ.get(ENV)
    if not folder:
        return None
    sampler = CpuSampler(int(os.environ.get(RATE_ENV, "100")))

    def toggle(_signum: int, _frame: FrameType | None) -> None:
        if not sampler.running:
            sampler.start()
            return
        sampler.stop()
        target = Path(folder) / f"{os.getpid()}.txt"
        partial = target.with_suffix(".partial")
        partial.write_text(sampler.collapsed())
        partial.replace(target)  # whole, for whoever waits for it to appear

    signal.signal(signal.SIGUSR2, toggle)
    return sampler
