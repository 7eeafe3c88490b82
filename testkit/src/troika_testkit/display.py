"""A virtual X11 screen for desktop tests: Xvfb with a real window manager (openbox).

Debian's ``xvfb``, ``openbox``, ``xdotool`` and ``xclip`` packages provide what it runs; CI
installs them. Where one is missing the calling test is skipped, except under ``CI=true``, where
it fails.

    with VirtualDisplay.start(tmp) as display:
        env = display.env          # DISPLAY and XAUTHORITY for programs on this screen
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from troika_testkit.pace import scaled
from troika_testkit.servers import in_ci

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["PROGRAMS", "VirtualDisplay", "require_programs"]

PROGRAMS = {"Xvfb": "xvfb", "openbox": "openbox", "xdotool": "xdotool", "xclip": "xclip"}
# (and Tk: the tests' applications are Tk forms)
SIZE = (1024, 768)


def require_programs() -> None:
    """Skips the calling test when a program of :data:`PROGRAMS`, or Tk, is missing (fails it
    in CI)."""
    missing = sorted(package for program, package in PROGRAMS.items() if not shutil.which(program))
    if importlib.util.find_spec("tkinter") is None:
        missing.append("python3-tk")
    if missing:
        reason = f"no virtual screen: apt-get install {' '.join(missing)} (CI always has them)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class VirtualDisplay:
    """A running Xvfb screen and its window manager.

    Attributes:
        number: The display's number (``:number``).
        env: ``DISPLAY`` and ``XAUTHORITY`` for programs that use it.
    """

    number: int
    env: dict[str, str]
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, folder: Path) -> VirtualDisplay:
        """Starts Xvfb on a free display number, then openbox on it."""
        require_programs()
        folder.mkdir(parents=True, exist_ok=True)
        authority = folder / "Xauthority"
        authority.touch()  # no cookie: the screen listens on its local socket only
        read, write = os.pipe()
        width, height = SIZE
        server = subprocess.Popen(
            [
                "Xvfb",
                "-displayfd",
                str(write),
                "-screen",
                "0",
                f"{width}x{height}x24",
                "-nolisten",
                "tcp",
            ],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        with os.fdopen(read) as announced:
            number = int(announced.readline().strip() or -1)
        if number < 0:
            server.kill()
            raise RuntimeError("Xvfb did not start")
        env = {"DISPLAY": f":{number}", "XAUTHORITY": str(authority)}
        display = cls(number, env, [server])
        manager = subprocess.Popen(
            ["openbox", "--sm-disable"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        display._processes.append(manager)
        display._wait_for_manager()
        return display

    def _wait_for_manager(self) -> None:
        deadline = time.monotonic() + scaled(10)
        while time.monotonic() < deadline:
            found = subprocess.run(
                ["xdotool", "search", "--name", "."],
                env={**os.environ, **self.env},
                capture_output=True,
                check=False,
            )
            if found.returncode in (0, 1):  # the server answers (with or without windows)
                time.sleep(0.3)  # openbox takes the screen over right after it connects
                return
            time.sleep(0.1)
        raise RuntimeError("the virtual screen did not answer")

    def stop(self) -> None:
        """Stops the window manager and the screen."""
        for process in reversed(self._processes):
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()

    def __enter__(self) -> VirtualDisplay:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
