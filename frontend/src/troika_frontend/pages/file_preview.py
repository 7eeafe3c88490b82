"""A task's file shown on its page: CSV and Excel as a table (a workbook's sheets to choose),
Markdown rendered with any HTML in it as text, other text as it is, images as pictures."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import reflex as rx

from troika_client import ApiError
from troika_frontend.components import markdown, panel
from troika_frontend.pages.task_state import TaskState

__all__ = ["FilePreviewState", "file_preview"]

_IMAGE_MAX_BYTES = 5 * 1024 * 1024


class FilePreviewState(TaskState):
    """The file being looked at."""

    preview_name: str = ""
    preview_for: str = ""  # the task it belongs to
    preview_kind: str = ""
    columns: list[str] = []  # noqa: RUF012 - Reflex state vars are declared on the class
    rows: list[list[str]] = []  # noqa: RUF012
    sheets: list[str] = []  # noqa: RUF012
    sheet: str = ""
    text: str = ""
    language: str = ""
    image: str = ""
    note: str = ""
    truncated: bool = False

    @rx.var
    def previewing(self) -> bool:
        """Whether a file of the task on screen is shown."""
        return self.preview_name != "" and self.preview_for == self.current

    @rx.event
    async def show(self, name: str) -> Any:  # noqa: ANN401 - Reflex event specs
        """Shows one of the task's files."""
        return await self._show(name, "")

    @rx.event
    async def show_sheet(self, sheet: str) -> Any:  # noqa: ANN401
        """Shows another sheet of the workbook on screen."""
        return await self._show(self.preview_name, sheet)

    @rx.event
    def close(self) -> None:
        """Hides the file."""
        self.preview_name = ""

    async def _show(self, name: str, sheet: str) -> Any:  # noqa: ANN401
        path = f"/tasks/{self.current}/previews/{quote(name, safe='/')}"
        try:
            found = await self._api("GET", path, params={"sheet": sheet} if sheet else None)
            image = ""
            if found["kind"] == "image" and int(found.get("size", 0)) <= _IMAGE_MAX_BYTES:
                data = await self._fetch(f"/tasks/{self.current}/files/{quote(name, safe='/')}")
                image = f"data:{found['content_type']};base64,{base64.b64encode(data).decode()}"
        except ApiError as exc:
            return rx.toast.error(exc.message)
        self.preview_name, self.preview_for = name, self.current
        self.preview_kind = str(found["kind"]) if image or found["kind"] != "image" else "none"
        self.columns = [str(c) for c in found.get("columns") or []]
        self.rows = [[str(v) for v in row] for row in found.get("rows") or []]
        self.sheets = [str(s) for s in found.get("sheets") or []]
        self.sheet = str(found.get("sheet") or "")
        self.text = str(found.get("text") or "")
        self.language = str(found.get("language") or "")
        self.truncated = bool(found.get("truncated"))
        self.image = image
        self.note = str(found.get("note") or "") or (
            "" if image or found["kind"] != "image" else "The picture is too big to show here."
        )
        return None


def _table() -> rx.Component:
    return rx.box(
        rx.table.root(
            rx.table.header(
                rx.table.row(rx.foreach(FilePreviewState.columns, rx.table.column_header_cell))
            ),
            rx.table.body(
                rx.foreach(
                    FilePreviewState.rows,
                    lambda row: rx.table.row(rx.foreach(row, rx.table.cell)),
                )
            ),
            size="1",
            variant="surface",
        ),
        overflow_x="auto",
        width="100%",
        max_height="28em",
        overflow_y="auto",
        class_name="preview-table",
    )


def _code() -> rx.Component:
    def block(language: str) -> rx.Component:
        return rx.code_block(
            FilePreviewState.text,
            language=language,  # type: ignore[arg-type]
            wrap_long_lines=True,
            class_name="preview-text",
        )

    return rx.match(
        FilePreviewState.language,
        ("json", block("json")),
        ("python", block("python")),
        ("yaml", block("yaml")),
        block("log"),
    )


def file_preview() -> rx.Component:
    """The file being looked at, under the task's files."""
    return rx.cond(
        FilePreviewState.previewing,
        panel(
            rx.hstack(
                rx.icon("eye", size=16),
                rx.heading(FilePreviewState.preview_name, size="3", id="preview-name"),
                rx.spacer(),
                rx.button(
                    "Download",
                    size="1",
                    variant="soft",
                    on_click=TaskState.download(FilePreviewState.preview_name),
                ),
                rx.icon_button(
                    rx.icon("x", size=14),
                    size="1",
                    variant="ghost",
                    on_click=FilePreviewState.close,
                    aria_label="Close the preview",
                    id="preview-close",
                ),
                width="100%",
                align="center",
                wrap="wrap",
            ),
            rx.cond(
                FilePreviewState.sheets.length() > 1,
                rx.select(
                    FilePreviewState.sheets,
                    value=FilePreviewState.sheet,
                    on_change=FilePreviewState.show_sheet,
                    size="1",
                    id="preview-sheet",
                ),
            ),
            rx.match(
                FilePreviewState.preview_kind,
                ("table", _table()),
                ("markdown", rx.box(markdown(FilePreviewState.text), class_name="preview-md")),
                ("text", _code()),
                (
                    "image",
                    rx.image(
                        src=FilePreviewState.image,
                        alt=FilePreviewState.preview_name,
                        max_width="100%",
                        class_name="preview-image",
                    ),
                ),
                rx.text(FilePreviewState.note, size="2", color_scheme="gray"),
            ),
            rx.cond(
                FilePreviewState.truncated,
                rx.text(
                    "Only the start is shown; download the file for all of it.",
                    size="1",
                    color_scheme="gray",
                ),
            ),
            id="preview",
        ),
    )
