"""A small process supervisor: children with prefixed, coloured output, restarted when they crash.

Children run in their own session, so a Ctrl+C in the terminal reaches only the supervisor, which
then stops them. On Linux each child is also asked to receive SIGTERM if the supervisor
itself dies, so no process is ever left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Child", "ChildSpec", "GaveUp", "Supervisor", "die_with_parent"]

_COLORS = ("36", "35", "33", "32", "34", "96", "95", "93", "92", "94")
_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` that has Linux send ``signum`` to the child when its parent dies."""

    def arrange() -> None:  # pragma: no cover - runs in the forked child
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)

    return arrange


@dataclass(frozen=True)
class ChildSpec:
    """What to run.

    Attributes:
        name: The label on its log lines.
        argv: The command.
        env: Its environment (complete, not merged).
        restart: Restart it when it exits on its own.
    """

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    restart: bool = True


class GaveUp(Exception):
    """A child kept crashing and is no longer restarted.

    Attributes:
        name: The child.
        returncode: Its last exit status.
        last_lines: Its last lines of output.
    """

    def __init__(self, name: str, returncode: int, last_lines: list[str]) -> None:
        super().__init__(f"{name} keeps exiting (last status {returncode})")
        self.name = name
        self.returncode = returncode
        self.last_lines = last_lines


class Child:
    """One supervised process and its restarts."""

    def __init__(self, spec: ChildSpec, color: str, out: IO[str], *, width: int) -> None:
        self.spec = spec
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.tail: deque[str] = deque(maxlen=40)
        self._color = color
        self._out = out
        self._width = width

    @property
    def pid(self) -> int | None:
        """The current process id, while running."""
        if self.process is None or self.process.returncode is not None:
            return None
        return self.process.pid

    def _label(self) -> str:
        label = f"{self.spec.name:<{self._width}} |"
        return f"\x1b[{self._color}m{label}\x1b[0m" if self._color else label

    def say(self, line: str) -> None:
        """Writes one line under this child's label."""
        self._out.write(f"{self._label()} {line}\n")
        self._out.flush()

    async def start(self) -> None:
        """Starts the process and the task that copies its output."""
        self.process = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            env=self.spec.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # only calls prctl: safe between fork and exec
        )

    async def pump(self) -> int:
        """Copies output until the process exits; returns its exit status."""
        assert self.process is not None  # noqa: S101 - started first
        assert self.process.stdout is not None  # noqa: S101 - piped
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.tail.append(line)
            self.say(line)
        return await self.process.wait()

    async def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            self.say(f"did not stop within {grace:.0f}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


class Supervisor:
    """Runs children, restarting those that crash, until stopped.

    Args:
        out: Where prefixed output goes.
        color: Colour the labels.
        max_restarts: Crashes within ``restart_window_s`` before giving up on a child.
        restart_window_s: See ``max_restarts``.
        grace_s: How long a child has to stop after SIGTERM.
    """

    def __init__(
        self,
        out: IO[str] = sys.stdout,
        *,
        color: bool = False,
        max_restarts: int = 5,
        restart_window_s: float = 60.0,
        grace_s: float = 15.0,
    ) -> None:
        self.out = out
        self.color = color
        self.max_restarts = max_restarts
        self.restart_window_s = restart_window_s
        self.grace_s = grace_s
        self.children: list[Child] = []
        self.failed: asyncio.Future[GaveUp] = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._width = 10

    async def start(self, specs: list[ChildSpec]) -> None:
        """Starts children in order."""
        self._width = max([self._width, *(len(spec.name) for spec in specs)])
        for spec in specs:
            color = _COLORS[len(self.children) % len(_COLORS)] if self.color else ""
            child = Child(spec, color, self.out, width=self._width)
            self.children.append(child)
            await child.start()
            self._tasks.append(asyncio.create_task(self._watch(child)))

    async def _watch(self, child: Child) -> None:
        crashes: deque[float] = deque()
        while True:
            status = await child.pump()
            if self._stopping.is_set():
                return
            child.say(f"exited with status {status}")
            now = time.monotonic()
            crashes.append(now)
            while crashes and now - crashes[0] > self.restart_window_s:
                crashes.popleft()
            if not child.spec.restart or len(crashes) > self.max_restarts:
                if not self.failed.done():
                    self.failed.set_result(GaveUp(child.spec.name, status, list(child.tail)))
                return
            delay = min(0.5 * 2 ** (len(crashes) - 1), 10.0)
            child.say(f"restarting in {delay:.1f}s")
            await asyncio.sleep(delay)
            if self._stopping.is_set():
                return
            child.restarts += 1
            await child.start()

    async def stop(self) -> None:
        """Stops every child (SIGTERM, then SIGKILL after the grace) and waits for their output."""
        self._stopping.set()
        await asyncio.gather(*(child.stop(self.grace_s) for child in self.children))
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
