"""A virtual screen for the desktop tests, one per test process (pyautogui keeps the display it
first met), and the tests' own Tk form on it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from troika_desktop.x11 import Window, X11Desktop
from troika_testkit.display import VirtualDisplay
from troika_testkit.pace import scaled

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

FORM = Path(__file__).with_name("form_app.py")


@pytest.fixture(scope="session")
def x_display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualDisplay]:
    display = VirtualDisplay.start(tmp_path_factory.mktemp("x11"))
    saved = {name: os.environ.get(name) for name in display.env}
    os.environ.update(display.env)
    yield display
    display.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def desktop(x_display: VirtualDisplay) -> X11Desktop:
    return X11Desktop(x_display.env)


@pytest.fixture
def form(
    x_display: VirtualDisplay, desktop: X11Desktop, tmp_path: Path
) -> Iterator[Callable[[str], tuple[Window, Path]]]:
    """Opens the Tk form with a title; returns its window and the file its button writes."""
    opened: list[subprocess.Popen[bytes]] = []

    def open_form(title: str) -> tuple[Window, Path]:
        saved = tmp_path / f"{len(opened)}.txt"
        opened.append(
            subprocess.Popen(
                [sys.executable, str(FORM), str(saved), title],
                env={**os.environ, **x_display.env},
            )
        )
        deadline = time.monotonic() + scaled(15)
        while time.monotonic() < deadline:
            if found := desktop.windows(title):
                return found[0], saved
            time.sleep(0.1)
        raise AssertionError(f"the form {title!r} did not open")

    yield open_form
    for process in opened:
        process.terminate()
        process.wait(timeout=10)
