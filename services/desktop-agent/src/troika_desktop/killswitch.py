"""The kill switch's hotkey: Ctrl+Alt+Escape, anywhere on the X11 desktop, stops the agent.

The key combination is grabbed on the root window (so it reaches the agent whichever window has
the keyboard, with or without Caps Lock and Num Lock on); a thread waits for it and calls back.
pyautogui's own fail-safe, the mouse moved into a corner of the screen, works beside it.
"""

from __future__ import annotations

import select
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["HOTKEY", "Hotkey"]

HOTKEY = "Ctrl+Alt+Escape"


class Hotkey:
    """Watches for :data:`HOTKEY` on one display.

    Args:
        display: The X11 display's name (``:0``).
        pressed: Called (from the watching thread) each time the keys are pressed.
    """

    def __init__(self, display: str, pressed: Callable[[], None]) -> None:
        self.display = display
        self.pressed = pressed
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._failed: Exception | None = None
        self._thread = threading.Thread(target=self._watch, name="kill-switch", daemon=True)

    def start(self) -> Hotkey:
        """Grabs the keys; returns once they are grabbed.

        Raises:
            OSError: The display refused (another program holds the same keys).
        """
        self._thread.start()
        self._ready.wait(10)
        if self._failed is not None:
            raise OSError(f"the kill switch {HOTKEY} could not be set up: {self._failed}")
        return self

    def stop(self) -> None:
        """Lets the keys go."""
        self._stop.set()
        self._thread.join(5)

    def _watch(self) -> None:
        from Xlib import XK, X  # noqa: PLC0415 - needs the display
        from Xlib import display as xdisplay  # noqa: PLC0415
        from Xlib.error import CatchError  # noqa: PLC0415

        try:
            connection = xdisplay.Display(self.display)
        except Exception as exc:  # noqa: BLE001 - told to the caller of start()
            self._failed = exc
            self._ready.set()
            return
        root = connection.screen().root
        code = connection.keysym_to_keycode(XK.string_to_keysym("Escape"))
        wanted = X.ControlMask | X.Mod1Mask
        refused = CatchError()
        for locks in (0, X.LockMask, X.Mod2Mask, X.LockMask | X.Mod2Mask):
            root.grab_key(code, wanted | locks, owner_events=True, pointer_mode=X.GrabModeAsync,
                          keyboard_mode=X.GrabModeAsync, onerror=refused)  # fmt: skip
        connection.sync()
        if refused.get_error() is not None:  # another program holds these keys
            self._failed = OSError(str(refused.get_error()))
            connection.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([connection.fileno()], [], [], 0.2)
                if not readable and not connection.pending_events():
                    continue
                while connection.pending_events():
                    event = connection.next_event()
                    if event.type == X.KeyPress and event.detail == code:
                        self.pressed()
        finally:
            connection.close()
