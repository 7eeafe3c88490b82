"""Running Troika's services as real processes in tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import IO, TYPE_CHECKING

from troika_testkit.pace import scaled

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence
    from pathlib import Path

__all__ = ["ServiceProcess", "gateway_ready", "stop_all", "wait_for"]


async def wait_for(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    """Polls ``condition`` until it is true.

    ``timeout`` is what a quiet machine needs: it is multiplied by the machine's slowness
    (:mod:`troika_testkit.pace`).

    Raises:
        TimeoutError: Naming ``what``, if that many seconds pass first.
    """
    limit = scaled(timeout)
    deadline = time.monotonic() + limit
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {limit:.1f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def gateway_ready(url: str) -> None:
    """Waits until the gateway at ``url`` says it is ready (its database, NATS and Redis
    answer).

    Raises:
        TimeoutError: It did not, within a minute on a quiet machine.
    """
    import httpx  # noqa: PLC0415 - only the tests that start a gateway need it

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{url}/ready")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_for(ready, timeout=60, what="the gateway")


def stop_all(processes: Iterable[ServiceProcess], timeout: float = 10.0) -> None:
    """Stops processes together: each is asked to stop first, then all are waited for, so their
    clean stops overlap; any still running after ``timeout`` seconds (on a quiet machine; see
    :mod:`troika_testkit.pace`) is killed."""
    stopping = list(processes)
    for process in stopping:
        process.terminate()
    deadline = time.monotonic() + scaled(timeout)
    for process in stopping:
        process.stop(max(0.0, deadline - time.monotonic()))


class ServiceProcess:
    """A service started as ``python -m <module>`` with a given environment, its output in a file.

    Args:
        module: The module to run (``troika_planner``).
        env: ``TROIKA_*`` variables added to this process's environment.
        log_dir: Where its output file goes.
        name: A label for the output file.
        within: A command it runs under, e.g. ``["ip", "netns", "exec", "host1"]`` (which
            becomes the process itself once it has entered the namespace).
    """

    def __init__(
        self,
        module: str,
        env: dict[str, str],
        log_dir: Path,
        name: str | None = None,
        within: Sequence[str] = (),
    ) -> None:
        self.module = module
        self.within = list(within)
        self.name = name or module
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "TROIKA_LOG_FORMAT": "json", **env}
        self.log_path = log_dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._terminated = False

    def start(self) -> ServiceProcess:
        """Starts the process."""
        self._terminated = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.within, sys.executable, "-m", self.module],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.process is not None, "not started"  # noqa: S101 - test helper
        return self.process.pid

    def output(self) -> str:
        """Everything the process has written so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no clean-up, no goodbye, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self) -> None:
        """SIGTERM, once: the process begins its clean stop (see :meth:`stop`)."""
        if self.process is not None and self.process.poll() is None and not self._terminated:
            self.process.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, waiting up to ``timeout`` seconds, then SIGKILL; returns the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode
