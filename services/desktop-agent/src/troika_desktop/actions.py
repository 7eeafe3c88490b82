"""Carrying out one approved desktop action on this PC, within the person's own limits.

Each tool's arguments arrive as the gateway sealed them (checked before this runs). The person
may allow only some applications (``--allow "Firefox"``): then windows are found, focused and
photographed only when their title holds one of those words, input goes only to such a window,
and whole-screen screenshots are refused. The kill switch (Ctrl+Alt+Escape, or pyautogui's
fail-safe: the mouse moved into a corner of the screen) stops the action, and the agent stops
taking any more.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from typing import Any

from troika_desktop.shots import ShotStore
from troika_desktop.x11 import Box, DesktopError, Halted, Window, X11Desktop

__all__ = ["Actions", "KillSwitch", "Outcome", "Refused"]

_INPUT = {
    "desktop_click",
    "desktop_move",
    "desktop_drag",
    "desktop_scroll",
    "desktop_type_text",
    "desktop_hotkey",
}


class Refused(Exception):
    """The person's limits on this PC do not allow the action."""


class KillSwitch(Exception):
    """The person stopped the agent at the PC (the hotkey, or the mouse into a corner)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the action did, as the task hears it."""

    ok: bool
    output: str = ""
    error: str | None = None
    needs_person: bool = False
    image: bytes | None = None  # the screenshot taken (PNG)

    def as_dict(self) -> dict[str, Any]:
        """The outcome as the connection sends it (the screenshot apart: see ``image``)."""
        return {
            "ok": self.ok,
            "output": self.output,
            "error": self.error,
            "needs_person": self.needs_person,
        }


@dataclass(frozen=True, slots=True)
class _Shot:
    """What a screenshot action says, and the picture."""

    text: str
    png: bytes


@dataclass
class Actions:
    """The desktop tools, on one display.

    Args:
        desktop: The display's actions.
        shots: Where screenshots are kept (five minutes).
        allowed: Parts of window titles input may go to; empty: any window.
    """

    desktop: X11Desktop
    shots: ShotStore
    allowed: tuple[str, ...] = field(default=())

    def run(
        self, task_id: str, tool: str, arguments: dict[str, Any], files: dict[str, str]
    ) -> Outcome:
        """Runs one action and says how it went (never raises for the action's own failure).

        Raises:
            KillSwitch: The person stopped the agent at the PC.
        """
        if self.desktop.halt.is_set():
            raise KillSwitch
        handler = getattr(self, "_" + tool.removeprefix("desktop_"), None)
        if not tool.startswith("desktop_") or handler is None:
            return Outcome(ok=False, error=f"this PC does not know the tool {tool!r}")
        try:
            if tool in _INPUT:
                self._check_active()
            done = handler(task_id, arguments, files)
            if isinstance(done, _Shot):
                return Outcome(ok=True, output=done.text, image=done.png)
            return Outcome(ok=True, output=done)
        except Refused as exc:
            return Outcome(ok=False, error=f"refused at the PC: {exc}")
        except Halted as exc:
            raise KillSwitch from exc
        except DesktopError as exc:
            return Outcome(ok=False, error=str(exc))
        except Exception as exc:
            if type(exc).__name__ == "FailSafeException":  # pyautogui's, imported lazily
                raise KillSwitch from exc
            return Outcome(ok=False, error=f"{tool} failed: {type(exc).__name__}: {exc}")

    # --- the person's limits ---------------------------------------------------------------

    def _permitted(self, title: str) -> bool:
        return not self.allowed or any(a.casefold() in title.casefold() for a in self.allowed)

    def _check_active(self) -> None:
        if not self.allowed:
            return
        active = self.desktop.active_window()
        titles = dict(self.desktop.titles())
        title = titles.get(active or -1, "")
        if not self._permitted(title):
            shown = repr(title) if title else "the desktop"
            raise Refused(f"the active window ({shown}) is not among the applications allowed")

    def _window(self, title: str) -> Window:
        found = [w for w in self.desktop.windows(title) if self._permitted(w.title)]
        if not found:
            hidden = self.allowed and self.desktop.windows(title)
            if hidden:
                raise Refused(f"{title!r} is not among the applications allowed on this PC")
            raise DesktopError(f"no window's title contains {title!r}")
        return found[0]

    # --- the tools -------------------------------------------------------------------------

    def _screenshot(self, task_id: str, args: dict[str, Any], _: dict[str, str]) -> _Shot:
        region = _box(args.get("region"))
        what = "the screen"
        if args.get("window"):
            window = self._window(str(args["window"]))
            region, what = window.box, f"the window {window.title!r}"
        elif self.allowed:
            raise Refused("only allowed windows may be photographed: name one in 'window'")
        elif region is not None:
            what = f"the region at ({region.left}, {region.top})"
        image = self.desktop.screenshot(region)
        png = self.desktop.png(image)
        shot = self.shots.keep(task_id, png)
        width, height = image.size
        text = (
            f"screenshot of {what}, {width} by {height} pixels, kept on the PC for five minutes "
            f"as {shot.path.name}"
        )
        return _Shot(text, png)

    def _find_window(self, _: str, args: dict[str, Any], __: dict[str, str]) -> str:
        found = [w for w in self.desktop.windows(str(args["title"])) if self._permitted(w.title)]
        if not found:
            return f"no window's title contains {args['title']!r}"
        return "\n".join(
            f"{w.title!r}: at ({w.box.left}, {w.box.top}), {w.box.width} by {w.box.height}"
            for w in found
        )

    def _focus_window(self, _: str, args: dict[str, Any], __: dict[str, str]) -> str:
        window = self._window(str(args["title"]))
        self.desktop.focus(window)
        return f"focused {window.title!r}"

    def _find_on_screen(self, _: str, args: dict[str, Any], files: dict[str, str]) -> str:
        found = self._locate(args, files)
        if found is None:
            return f"{args['image']!r} is not on the screen"
        x, y = found.center
        return (
            f"found {args['image']!r} at ({found.left}, {found.top}), {found.width} by "
            f"{found.height}; its middle is ({x}, {y})"
        )

    def _click(self, _: str, args: dict[str, Any], files: dict[str, str]) -> str:
        if args.get("image"):
            found = self._locate(args, files)
            if found is None:
                raise DesktopError(f"{args['image']!r} is not on the screen: nothing clicked")
            x, y = found.center
        elif args.get("x") is not None and args.get("y") is not None:
            x, y = int(args["x"]), int(args["y"])
        else:
            raise DesktopError("say where to click: x and y, or an image")
        button, clicks = str(args.get("button", "left")), int(args.get("clicks", 1))
        self.desktop.click(x, y, button=button, clicks=clicks)  # type: ignore[arg-type]
        kind = {1: "clicked", 2: "double-clicked"}.get(clicks, f"clicked {clicks} times")
        return f"{kind} {button} at ({x}, {y})"

    def _move(self, _: str, args: dict[str, Any], __: dict[str, str]) -> str:
        self.desktop.move(int(args["x"]), int(args["y"]))
        return f"moved the pointer to ({args['x']}, {args['y']})"

    def _drag(self, _: str, args: dict[str, Any], __: dict[str, str]) -> str:
        start, end = (
            (int(args["from_x"]), int(args["from_y"])),
            (int(args["to_x"]), int(args["to_y"])),
        )
        self.desktop.drag(start, end, button=str(args.get("button", "left")))  # type: ignore[arg-type]
        return f"dragged from {start} to {end}"

    def _scroll(self, _: str, args: dict[str, Any], __: dict[str, str]) -> str:
        x, y = args.get("x"), args.get("y")
        self.desktop.scroll(int(args["amount"]), x, y)
        return f"scrolled {args['amount']} notches"

    def _type_text(self, _: str, args: dict[str, Any], __: dict[str, str]) -> str:
        text = str(args["text"])
        self.desktop.type_text(text)
        return f"typed {len(text)} characters"

    def _hotkey(self, _: str, args: dict[str, Any], __: dict[str, str]) -> str:
        keys = [str(k).lower() for k in args["keys"]]
        self.desktop.hotkey(*keys)
        return "pressed " + "+".join(keys)

    def _locate(self, args: dict[str, Any], files: dict[str, str]) -> Box | None:
        from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 - only for images

        name = str(args["image"])
        try:
            needle = Image.open(io.BytesIO(base64.b64decode(files[name], validate=True)))
            needle.load()
        except KeyError as exc:
            raise DesktopError(f"the image {name!r} did not come with the action") from exc
        except (binascii.Error, UnidentifiedImageError, OSError) as exc:
            raise DesktopError(f"{name!r} is not an image this PC can read") from exc
        tolerance = round((1.0 - float(args.get("confidence", 0.9))) * 255)
        return self.desktop.find_on_screen(needle, _box(args.get("region")), tolerance=tolerance)


def _box(region: Any) -> Box | None:  # noqa: ANN401 - the sealed arguments' JSON
    if not isinstance(region, dict):
        return None
    return Box(int(region["x"]), int(region["y"]), int(region["width"]), int(region["height"]))
