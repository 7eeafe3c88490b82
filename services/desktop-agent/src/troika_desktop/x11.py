"""GUI actions on a Linux X11 desktop: what the desktop agent does once an action is approved.

The mouse and the keys go through pyautogui; screenshots through ``mss`` (pyautogui's own
needs a screenshot program); windows are listed by their UTF-8 titles with python-xlib and
raised with ``xdotool`` (pyautogui's window functions are Windows-only); text is typed with
``xdotool type``, or pasted from the clipboard (``xclip``) when it holds characters beyond
ASCII, which ``xdotool type`` drops at any useful speed and pyautogui's ``write`` cannot type
at all. pyautogui is imported on first use: it needs a display as soon as it is imported.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["Box", "DesktopError", "Halted", "Window", "X11Desktop", "locate"]

Button = Literal["left", "right", "middle"]


class DesktopError(Exception):
    """An action could not be carried out; the message says why, for the agent."""


class Halted(DesktopError):
    """The person used the kill switch while the action ran."""


_PIECE = 40  # characters typed between two looks at the kill switch


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle on the screen, in pixels."""

    left: int
    top: int
    width: int
    height: int

    @property
    def center(self) -> tuple[int, int]:
        """Its middle point."""
        return self.left + self.width // 2, self.top + self.height // 2


@dataclass(frozen=True, slots=True)
class Window:
    """A top-level window: its X11 id, title and place on the screen."""

    id: int
    title: str
    box: Box


class X11Desktop:
    """The actions on the X11 display that ``DISPLAY`` names.

    Args:
        env: The environment of the helper programs (``DISPLAY``, ``XAUTHORITY``); this
            process's own by default.
        type_delay_ms: The pause between keys when ``xdotool`` types ASCII text.
    """

    def __init__(self, env: dict[str, str] | None = None, *, type_delay_ms: int = 12) -> None:
        self._env = {**os.environ, **(env or {})}
        if not self._env.get("DISPLAY"):
            raise DesktopError("no X11 display: DISPLAY is not set")
        self._type_delay_ms = type_delay_ms
        self.halt = threading.Event()
        """Set by the kill switch: long actions stop at their next chunk (:class:`Halted`)."""

    @property
    def display(self) -> str:
        """The display's name."""
        return self._env["DISPLAY"]

    def _check(self) -> None:
        if self.halt.is_set():
            raise Halted("stopped at the PC with the kill switch")

    # --- looking ------------------------------------------------------------------------

    def screenshot(self, region: Box | None = None) -> Image:
        """The screen, or the part of it in ``region``, as an RGB image."""
        import mss  # noqa: PLC0415 - needs the display
        from PIL import Image as PILImage  # noqa: PLC0415 - with mss

        with mss.MSS(display=self._env["DISPLAY"]) as screen:
            whole = screen.monitors[1]
            area = whole if region is None else {
                "left": region.left, "top": region.top,
                "width": region.width, "height": region.height,
            }  # fmt: skip
            shot = screen.grab(area)
        return PILImage.frombytes("RGB", shot.size, shot.rgb)

    @staticmethod
    def png(image: Image) -> bytes:
        """``image`` as PNG bytes."""
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()

    def find_on_screen(
        self, needle: Image, region: Box | None = None, *, tolerance: int = 0
    ) -> Box | None:
        """Where ``needle`` appears on the screen, if it does: the first place, from the top,
        where every pixel's channels are within ``tolerance`` (0-255) of the needle's."""
        return locate(needle, self.screenshot(region), tolerance=tolerance, origin=region)

    def windows(self, title: str) -> list[Window]:
        """The windows the window manager shows whose title contains ``title`` (any case).

        Titles are read as the window manager reads them (``_NET_WM_NAME``, UTF-8), so a
        title in any script is found; ``xdotool search`` matches the older Latin-1 name only.
        """
        wanted = title.casefold()
        windows = []
        for window_id, name in self.titles():
            if wanted not in name.casefold():
                continue
            geometry = self._xdotool("getwindowgeometry", "--shell", str(window_id), check=False)
            values = dict(item.split("=", 1) for item in geometry.split() if "=" in item)
            try:
                box = Box(int(values["X"]), int(values["Y"]),
                          int(values["WIDTH"]), int(values["HEIGHT"]))  # fmt: skip
            except (KeyError, ValueError):
                continue  # it closed between the listing and the question
            windows.append(Window(window_id, name, box))
        return windows

    def titles(self) -> list[tuple[int, str]]:
        """Every managed window's id and title, in the window manager's order."""
        from Xlib import X  # noqa: PLC0415 - needs the display
        from Xlib import display as xdisplay  # noqa: PLC0415
        from Xlib.error import BadWindow  # noqa: PLC0415

        connection = xdisplay.Display(self._env["DISPLAY"])
        try:
            root = connection.screen().root
            managed = root.get_full_property(
                connection.intern_atom("_NET_CLIENT_LIST"), X.AnyPropertyType
            )
            utf8_name = connection.intern_atom("_NET_WM_NAME")
            utf8 = connection.intern_atom("UTF8_STRING")
            titles = []
            for window_id in managed.value if managed is not None else ():
                window = connection.create_resource_object("window", int(window_id))
                try:
                    named = window.get_full_property(utf8_name, utf8)
                    raw = named.value if named is not None else window.get_wm_name()
                except BadWindow:
                    continue  # it closed between the listing and the question
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
                titles.append((int(window_id), text))
            return titles
        finally:
            connection.close()

    def focus(self, window: Window) -> None:
        """Raises the window and gives it the keyboard.

        Raises:
            DesktopError: It is gone, or the window manager refused.
        """
        self._xdotool("windowactivate", "--sync", str(window.id))

    def active_window(self) -> int | None:
        """The id of the window that has the keyboard."""
        answer = self._xdotool("getactivewindow", check=False).strip()
        return int(answer) if answer.isdigit() else None

    # --- acting -------------------------------------------------------------------------

    def click(self, x: int, y: int, *, button: Button = "left", clicks: int = 1) -> None:
        """Clicks at a point of the screen."""
        self._gui().click(x=x, y=y, button=button, clicks=clicks, interval=0.05)

    def move(self, x: int, y: int) -> None:
        """Moves the pointer."""
        self._gui().moveTo(x, y)

    def drag(
        self, start: tuple[int, int], end: tuple[int, int], *, button: Button = "left"
    ) -> None:
        """Presses at ``start``, moves to ``end`` and lets go."""
        gui = self._gui()
        gui.moveTo(*start)
        gui.dragTo(*end, duration=0.2, button=button)

    def scroll(self, clicks: int, x: int | None = None, y: int | None = None) -> None:
        """Scrolls up (positive) or down (negative) by ``clicks`` notches."""
        self._gui().scroll(clicks, x=x, y=y)

    def hotkey(self, *keys: str) -> None:
        """Presses keys together, e.g. ``hotkey("ctrl", "s")``."""
        self._gui().hotkey(*keys)

    def type_text(self, text: str) -> None:
        """Types ``text`` into the focused field, whatever characters it holds (a piece at a
        time, so that the kill switch stops it between pieces).

        Raises:
            Halted: The kill switch was used.
        """
        self._check()
        if not text.isascii():
            self._paste(text)
            return
        for start in range(0, len(text), _PIECE):
            self._check()
            piece = text[start : start + _PIECE]
            self._xdotool("type", "--delay", str(self._type_delay_ms), "--", piece)

    def _paste(self, text: str) -> None:
        if not shutil.which("xclip"):
            raise DesktopError("typing beyond ASCII needs xclip (Debian: apt-get install xclip)")
        # xclip stays in the background to serve the clipboard until something else owns it.
        subprocess.run(
            ["xclip", "-selection", "clipboard", "-in"],  # noqa: S607
            input=text.encode(),
            env=self._env,
            check=True,
            timeout=10,
        )
        self._xdotool("key", "--clearmodifiers", "ctrl+v")

    # --- helpers ------------------------------------------------------------------------

    def _gui(self) -> Any:  # noqa: ANN401 - the pyautogui module
        os.environ.setdefault("DISPLAY", self._env["DISPLAY"])
        if "XAUTHORITY" in self._env:
            os.environ.setdefault("XAUTHORITY", self._env["XAUTHORITY"])
        import pyautogui  # noqa: PLC0415 - needs the display as soon as it is imported

        pyautogui.PAUSE = 0.05
        return pyautogui

    def _xdotool(self, *args: str, check: bool = True) -> str:
        if not shutil.which("xdotool"):
            raise DesktopError("window actions need xdotool (Debian: apt-get install xdotool)")
        done = subprocess.run(  # noqa: S603 - a fixed program and its arguments
            ["xdotool", *args],  # noqa: S607
            env=self._env,
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
        if check and done.returncode != 0:
            raise DesktopError(
                f"xdotool {args[0]} failed: {done.stderr.strip() or done.returncode}"
            )
        return done.stdout


def locate(
    needle: Image, haystack: Image, *, tolerance: int = 0, origin: Box | None = None
) -> Box | None:
    """Where ``needle`` appears in ``haystack`` (see :meth:`X11Desktop.find_on_screen`),
    offset by ``origin``'s corner."""
    import numpy as np  # noqa: PLC0415 - only for finding images

    hay = np.asarray(haystack.convert("RGB"), dtype=np.int16)
    ndl = np.asarray(needle.convert("RGB"), dtype=np.int16)
    height, width = ndl.shape[:2]
    rows, cols = hay.shape[0] - height + 1, hay.shape[1] - width + 1
    if rows <= 0 or cols <= 0:
        return None
    corner = np.abs(hay[:rows, :cols] - ndl[0, 0]).max(axis=-1) <= tolerance
    for top, left in zip(*np.nonzero(corner), strict=True):
        window = hay[top : top + height, left : left + width]
        if np.abs(window - ndl).max() <= tolerance:
            x, y = (origin.left, origin.top) if origin else (0, 0)
            return Box(x + int(left), y + int(top), width, height)
    return None
