"""The browser tools' arguments, and how risky each call is.

The executor drives one isolated Chromium context per task (see ``troika_executor.browser``).
A call's risk depends on what it does, not only on the tool: reading a page, scrolling, following
a link by its role are low; filling fields, pressing Enter, clicking a button (anything that may
submit, buy, post or delete) and downloading are high, and a high call always asks the person,
whatever their policies say (:func:`call_risk`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from troika_shared.vault import VaultError, open_secret, seal_secret

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "BROWSER_FOLDER",
    "BROWSER_TOOLS",
    "SCREEN_NAME",
    "SEALED",
    "BrowserClickArgs",
    "BrowserCloseArgs",
    "BrowserDownloadArgs",
    "BrowserFillArgs",
    "BrowserGetTextArgs",
    "BrowserHandOverArgs",
    "BrowserOpenArgs",
    "BrowserPressArgs",
    "BrowserScreenshotArgs",
    "BrowserScrollArgs",
    "BrowserSelectArgs",
    "browser_folder",
    "call_risk",
    "open_typed",
    "screen_path",
    "seal_typed",
]

SEALED = "troika-sealed:"
"""How a value the person typed into a password field of an approval form starts: it is kept
sealed in the call's arguments (database, bus, logs) and opened by the executor only to type it."""


Risk = Literal["read", "write", "external"]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_URL = Field(
    min_length=8, max_length=2000, pattern=r"^https?://", description="An http(s) address."
)
_FIELD = Field(
    min_length=1,
    max_length=300,
    description="The field: its label, placeholder, name or id, or a CSS selector.",
)
Role = Literal[
    "button", "link", "checkbox", "radio", "tab", "menuitem", "option", "switch", "textbox",
    "combobox", "heading", "cell", "row", "listitem", "img",
]  # fmt: skip


class _Target(_Args):
    """An element, by exactly one of: a CSS selector, its visible text, or its ARIA role (with
    its accessible name)."""

    selector: str | None = Field(default=None, max_length=500, description="A CSS selector.")
    text: str | None = Field(default=None, max_length=300, description="Its visible text.")
    role: Role | None = Field(default=None, description="Its role, e.g. 'button' or 'link'.")
    name: str | None = Field(
        default=None, max_length=300, description="With `role`: its accessible name (label)."
    )

    @model_validator(mode="after")
    def _one_way(self) -> _Target:
        given = [way for way in ("selector", "text", "role") if getattr(self, way)]
        if len(given) != 1:
            raise ValueError("name the element by exactly one of: selector, text, role")
        if self.name is not None and self.role is None:
            raise ValueError("`name` goes with `role`")
        return self

    def described(self) -> str:
        """The target in words, for outputs and errors."""
        if self.selector:
            return f"the element {self.selector!r}"
        if self.text:
            return f"the element with the text {self.text!r}"
        return f"the {self.role} {self.name!r}" if self.name else f"the {self.role}"


class BrowserOpenArgs(_Args):
    """Opens an address in the task's browser."""

    url: str = _URL


class BrowserClickArgs(_Target):
    """Clicks an element of the page."""


class BrowserFillArgs(_Args):
    """Types into fields of the page, each replacing what the field held."""

    values: dict[str, str] = Field(
        min_length=1,
        max_length=30,
        description="Field -> the text to type. A field is named by its label, placeholder, "
        "name or id, or a CSS selector.",
    )


class BrowserSelectArgs(_Args):
    """Chooses options in a drop-down list (a ``<select>``)."""

    field: str = _FIELD
    options: list[str] = Field(
        min_length=1, max_length=50, description="The options to choose, by their text or value."
    )


class BrowserPressArgs(_Args):
    """Presses a key or a combination (``Enter``, ``Tab``, ``Control+A``), in a field or on the
    page."""

    key: str = Field(
        min_length=1, max_length=60, pattern=r"^[A-Za-z0-9+ _-]+$", description="e.g. 'Enter'."
    )
    field: str | None = Field(default=None, max_length=300, description="Focus this field first.")


class BrowserScrollArgs(_Args):
    """Scrolls the page, or to an element."""

    direction: Literal["down", "up"] = "down"
    screens: float = Field(default=1, gt=0, le=20, description="How far, in screen heights.")
    selector: str | None = Field(
        default=None, max_length=500, description="Scroll this element into view instead."
    )


class BrowserGetTextArgs(_Args):
    """Reads the page (or one part of it) as text, with its links and its fields."""

    selector: str | None = Field(default=None, max_length=500, description="Only this part.")
    max_chars: int = Field(default=20_000, ge=100, le=200_000, description="Longest text shown.")


class BrowserScreenshotArgs(_Args):
    """Saves a screenshot of the page in the task's folder."""

    path: str | None = Field(
        default=None,
        max_length=255,
        pattern=r"(?i)\.png$",
        description="Where in the task's folder (a .png); default screenshots/page-N.png.",
    )
    full_page: bool = Field(default=False, description="The whole page, not only the screen.")


class BrowserDownloadArgs(_Target):
    """Clicks a link or button that downloads a file, and saves the file in the task's folder."""

    save_as: str | None = Field(
        default=None, max_length=255, description="Its path in the task's folder (default: "
        "the name the site gives it)."
    )  # fmt: skip


class BrowserCloseArgs(_Args):
    """Closes the task's browser (its cookies and pages are forgotten)."""


class BrowserHandOverArgs(_Args):
    """Hands the page to the person: the task pauses with the page's screenshot and the message,
    and goes on when they answer."""

    message: str = Field(
        min_length=1, max_length=1000, description="What the person should do or tell you."
    )


BROWSER_TOOLS: dict[str, tuple[str, type[BaseModel], Risk]] = {
    "browser_open": (
        "Open an address in the task's own browser (a real Chromium: pages run their scripts).",
        BrowserOpenArgs,
        "read",
    ),
    "browser_click": (
        (
            "Click an element of the page, found by CSS selector, visible text, or role and name. "
            "Following a link by role 'link' is low-risk; other clicks ask the person."
        ),
        BrowserClickArgs,
        "external",
    ),
    "browser_fill": (
        (
            "Type into fields of the page (by label, placeholder, name or selector). The person "
            "sees and may change every value before it is typed."
        ),
        BrowserFillArgs,
        "external",
    ),
    "browser_select": (
        "Choose options in a drop-down list of the page.",
        BrowserSelectArgs,
        "external",
    ),
    "browser_press": (
        "Press a key (Enter, Tab, Escape, Control+A…) in a field or on the page.",
        BrowserPressArgs,
        "external",
    ),
    "browser_scroll": ("Scroll the page, or to an element.", BrowserScrollArgs, "read"),
    "browser_get_text": (
        "Read the page, or part of it, as text: headings, tables, its links and its fields.",
        BrowserGetTextArgs,
        "read",
    ),
    "browser_screenshot": (
        "Save a screenshot of the page in the task's folder (shown to you when you read images).",
        BrowserScreenshotArgs,
        "write",
    ),
    "browser_download": (
        "Click a link or button that downloads a file, saving it in the task's folder.",
        BrowserDownloadArgs,
        "external",
    ),
    "browser_close": (
        "Close the task's browser (when the browsing is done).",
        BrowserCloseArgs,
        "read",
    ),
    "browser_hand_over": (
        (
            "Pause and hand the page to the person (a login, a captcha, a choice only they can "
            "make), with what they should do; the task goes on when they answer."
        ),
        BrowserHandOverArgs,
        "read",
    ),
}
"""Each browser tool: its description, its arguments, and its risk at most."""

_FORM_SUBMITTING_KEYS = frozenset({"enter", "numpadenter", "return", "space", " "})
_LOW_ROLES = frozenset({"link", "tab", "menuitem", "option", "heading", "cell", "row", "listitem",
                        "img"})  # fmt: skip
_ACTION_WORDS = re.compile(
    r"\b(submit|send|post|publish|tweet|share|buy|purchase|pay|order|checkout|check out|"
    r"confirm|delete|remove|erase|cancel|sign|subscribe|unsubscribe|transfer|donate|book|"
    r"reserve|apply|save|accept|agree|upload|approve|reject|log ?out)\b",
    re.IGNORECASE,
)


def call_risk(tool: str, arguments: dict[str, Any]) -> Risk:
    """How risky one browser call is: ``external`` calls may submit, post, buy or delete, and
    always ask the person; arguments that do not parse count as ``external``."""
    risk = BROWSER_TOOLS[tool][2]
    if tool == "browser_click":
        role, name = arguments.get("role"), str(arguments.get("name") or "")
        if role in _LOW_ROLES and not _ACTION_WORDS.search(name) and len(arguments) <= 2:
            return "read"
        return "external"
    if tool == "browser_press":
        keys = str(arguments.get("key", "")).lower().replace(" ", "").split("+")
        pressed = keys[-1] if keys else ""
        return "external" if pressed in _FORM_SUBMITTING_KEYS or pressed == "" else "read"
    return risk


BROWSER_FOLDER: Final = ".browser"
"""The hidden folder among a task's files that holds its browser's sealed state and the page's
latest screenshot (out of the tools' reach, like every hidden name)."""

SCREEN_NAME: Final = f"{BROWSER_FOLDER}/screen.png"
"""The page's screenshot after the task's latest browser action (the approval shows it)."""


def browser_folder(data_dir: Path, task_id: str) -> Path:
    """The task's :data:`BROWSER_FOLDER` in the executor's copy of its files."""
    return data_dir / "workspaces" / task_id / BROWSER_FOLDER


def screen_path(data_dir: Path, task_id: str) -> Path:
    """The file of :data:`SCREEN_NAME` in the executor's copy of the task's files."""
    return data_dir / "workspaces" / task_id / SCREEN_NAME


def seal_typed(key: bytes, task_id: str, text: str) -> str:
    """A password the person typed for the page, sealed for this task (see :data:`SEALED`)."""
    return SEALED + seal_secret(key, {"text": text}, f"typed\n{task_id}")


def open_typed(key: bytes | None, task_id: str, value: str) -> tuple[str, bool]:
    """The text to type and whether it came sealed (then it is never shown).

    Raises:
        troika_shared.vault.VaultError: It came sealed but does not open here.
    """
    if not value.startswith(SEALED):
        return value, False
    if key is None:
        raise VaultError("no key to open what the person typed")
    return str(open_secret(key, value[len(SEALED) :], f"typed\n{task_id}").get("text", "")), True
