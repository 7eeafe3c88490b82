"""The desktop tools' arguments, and the seal that lets a person's PC check an action.

Desktop tools run on the person's own PC, in the ``troika-desktop`` agent, not in the executor.
Every action the gateway hands to a PC carries a seal made with that PC's own key (derived from
the deployment's approval key and the device's id; the PC receives it once, when it is paired):
a PC can check that an action was approved for it, with exactly these arguments, and can forge
nothing for any other PC or tool.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "DESKTOP_TOOLS",
    "SHOTS_FOLDER",
    "SHOT_KEEP_S",
    "DesktopClickArgs",
    "DesktopDragArgs",
    "DesktopFindOnScreenArgs",
    "DesktopFindWindowArgs",
    "DesktopFocusWindowArgs",
    "DesktopHotkeyArgs",
    "DesktopMoveArgs",
    "DesktopScreenshotArgs",
    "DesktopScrollArgs",
    "DesktopTypeTextArgs",
    "check_png",
    "device_key",
    "keep_shot",
    "new_shot_name",
    "seal_action",
    "shot_age",
    "shot_name",
    "shot_path",
    "write_private",
]

SHOT_KEEP_S = 300.0
"""How long a screenshot is kept for the model to look at (five minutes)."""
_PNG = b"\x89PNG\r\n\x1a\n"
_SHOT_NAME = re.compile(r"^[0-9a-f]{32}\.png$")
_TASK_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")

_PURPOSE = b"troika: desktop device key, v1\n"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DEVICE = Field(
    default=None,
    max_length=64,
    description="The name of the person's PC; leave it out when they have one.",
)
_COORD = Field(ge=0, le=32_767)
_TITLE = Field(min_length=1, max_length=200, description="Part of the window's title (any case).")
Button = Literal["left", "right", "middle"]


class Region(_Args):
    """A rectangle of the screen, in pixels from its top-left corner."""

    x: int = _COORD
    y: int = _COORD
    width: int = Field(ge=1, le=32_767)
    height: int = Field(ge=1, le=32_767)


class DesktopScreenshotArgs(_Args):
    """Takes a screenshot of the whole screen, of one window, or of a region."""

    window: str | None = Field(
        default=None, min_length=1, max_length=200, description="Only this window (its title)."
    )
    region: Region | None = Field(default=None, description="Only this part of the screen.")
    device: str | None = _DEVICE


class DesktopFindWindowArgs(_Args):
    """Lists the open windows whose title contains the text, with where they are."""

    title: str = _TITLE
    device: str | None = _DEVICE


class DesktopFocusWindowArgs(_Args):
    """Brings a window to the front and gives it the keyboard."""

    title: str = _TITLE
    device: str | None = _DEVICE


class DesktopFindOnScreenArgs(_Args):
    """Finds where an image (a file in the task's folder, e.g. a button's picture) is shown."""

    image: str = Field(min_length=1, max_length=255, description="The image's path (PNG).")
    confidence: float = Field(
        default=0.9, ge=0.5, le=1.0, description="How exactly the pixels must match (1: exactly)."
    )
    region: Region | None = Field(default=None, description="Only look in this part.")
    device: str | None = _DEVICE


class DesktopClickArgs(_Args):
    """Clicks at a point, or on the middle of an image found on screen."""

    x: int | None = Field(default=None, ge=0, le=32_767)
    y: int | None = Field(default=None, ge=0, le=32_767)
    image: str | None = Field(
        default=None, min_length=1, max_length=255, description="Click on this image instead."
    )
    button: Button = "left"
    clicks: int = Field(default=1, ge=1, le=3, description="2 for a double click.")
    device: str | None = _DEVICE


class DesktopMoveArgs(_Args):
    """Moves the mouse pointer."""

    x: int = _COORD
    y: int = _COORD
    device: str | None = _DEVICE


class DesktopDragArgs(_Args):
    """Presses a mouse button at one point, moves to another and lets go."""

    from_x: int = _COORD
    from_y: int = _COORD
    to_x: int = _COORD
    to_y: int = _COORD
    button: Button = "left"
    device: str | None = _DEVICE


class DesktopScrollArgs(_Args):
    """Scrolls up (positive) or down (negative), over a point or where the pointer is."""

    amount: int = Field(ge=-100, le=100, description="Notches of the wheel.")
    x: int | None = Field(default=None, ge=0, le=32_767)
    y: int | None = Field(default=None, ge=0, le=32_767)
    device: str | None = _DEVICE


class DesktopTypeTextArgs(_Args):
    """Types text into the focused field; any characters (accents, CJK, emoji)."""

    text: str = Field(min_length=1, max_length=10_000)
    device: str | None = _DEVICE


class DesktopHotkeyArgs(_Args):
    """Presses keys together, e.g. ['ctrl', 's']."""

    keys: list[str] = Field(
        min_length=1, max_length=5, description="Key names: ctrl, alt, shift, enter, tab, a, f5…"
    )
    device: str | None = _DEVICE


DESKTOP_TOOLS: dict[str, tuple[str, type[_Args]]] = {
    "desktop_screenshot": (
        "Take a screenshot of the person's screen, one window, or a region.",
        DesktopScreenshotArgs,
    ),
    "desktop_find_window": (
        "Find open windows on the person's PC by title: their ids, titles and positions.",
        DesktopFindWindowArgs,
    ),
    "desktop_focus_window": (
        "Bring a window on the person's PC to the front (by title).",
        DesktopFocusWindowArgs,
    ),
    "desktop_find_on_screen": (
        "Find where an image from the task's folder shows on the person's screen.",
        DesktopFindOnScreenArgs,
    ),
    "desktop_click": (
        "Click (left, right, middle; double) at a point or on an image on the person's screen.",
        DesktopClickArgs,
    ),
    "desktop_move": ("Move the mouse pointer on the person's PC.", DesktopMoveArgs),
    "desktop_drag": ("Drag with the mouse from one point to another.", DesktopDragArgs),
    "desktop_scroll": ("Scroll the mouse wheel on the person's PC.", DesktopScrollArgs),
    "desktop_type_text": (
        "Type text into the focused field on the person's PC (any language, emoji).",
        DesktopTypeTextArgs,
    ),
    "desktop_hotkey": ("Press a key combination on the person's PC.", DesktopHotkeyArgs),
}
"""Each desktop tool: its description and its arguments."""


SHOTS_FOLDER = ".shots"
"""The hidden folder among a task's files where screenshots wait for the model (out of the tools'
reach and the file list, like every hidden name), each for :data:`SHOT_KEEP_S` at most."""


def new_shot_name(now: float | None = None) -> str:
    """A new screenshot's name: when it was taken (10 hex digits of Unix time), then 88 random
    bits, so its age can be read from the name wherever it is stored."""
    seconds = int(time.time() if now is None else now)
    return f"{seconds:010x}{secrets.token_hex(11)}.png"


def shot_age(name: str, now: float | None = None) -> float:
    """How old a screenshot of :func:`new_shot_name`'s making is, in seconds."""
    return (time.time() if now is None else now) - int(name[:10], 16)


def shot_name(name: str) -> str:
    """A screenshot's name among the task's files.

    Raises:
        ValueError: The name is not one :func:`new_shot_name` makes.
    """
    if not _SHOT_NAME.match(name):
        raise ValueError(f"not a screenshot: {name!r}")
    return f"{SHOTS_FOLDER}/{name}"


def shot_path(data_dir: Path, task_id: str, name: str) -> Path:
    """The file of one screenshot in the executor's copy of the task's files.

    Raises:
        ValueError: The task or the name is not one of ours.
    """
    if not _TASK_ID.match(task_id):
        raise ValueError(f"not a screenshot of a task: {task_id!r}/{name!r}")
    return data_dir / "workspaces" / task_id / shot_name(name)


def check_png(png: bytes) -> None:
    """Raises ``ValueError`` unless ``png`` is a PNG image."""
    if not png.startswith(_PNG):
        raise ValueError("a screenshot must be a PNG image")


def keep_shot(data_dir: Path, task_id: str, png: bytes) -> str:
    """Keeps one screenshot in the executor's copy of the task's files, readable by this user
    only; returns its name.

    Raises:
        ValueError: It is not a PNG image, or the task id is not one of ours.
    """
    check_png(png)
    name = new_shot_name()
    write_private(shot_path(data_dir, task_id, name), png)
    return name


def write_private(path: Path, data: bytes) -> None:
    """Writes a new file readable by this user only (0600, its folder made 0700).

    Raises:
        FileExistsError: There is one of that name already.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def device_key(approval_key: bytes, device_id: str) -> bytes:
    """The key that seals actions for one PC (given to it once, when it is paired)."""
    return hmac.new(approval_key, _PURPOSE + device_id.encode(), hashlib.sha256).digest()


def _payload(device_id: str, task_id: str, call_key: str, tool: str, body: str) -> bytes:
    return json.dumps([device_id, task_id, call_key, tool, body]).encode()


def seal_action(
    key: bytes, *, device_id: str, task_id: str, call_key: str, tool: str, arguments: dict[str, Any]
) -> str:
    """The seal on one approved action for one PC: hex HMAC of the device, the task, the
    call's key, the tool and the arguments (canonical JSON)."""
    body = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    payload = _payload(device_id, task_id, call_key, tool, body)
    return hmac.new(key, payload, hashlib.sha256).hexdigest()
