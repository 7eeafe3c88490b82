"""What a task's file looks like, for a person: CSV and Excel as a table, Markdown as text to
render (escaped by the page), other text as it is, JSON indented, images by their address.

Pure: the start of a file (or all of an Excel workbook) in, a :class:`FilePreview` out.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import zipfile
from pathlib import PurePosixPath
from typing import Literal

from msgspec import Struct, field

__all__ = [
    "EXCEL_MAX_BYTES",
    "MAX_COLUMNS",
    "MAX_ROWS",
    "TEXT_MAX_BYTES",
    "FilePreview",
    "UnknownSheet",
    "needs_whole_file",
    "preview_of",
]

MAX_ROWS = 50
MAX_COLUMNS = 20
MAX_CELL = 200  # characters of one cell
TEXT_MAX_BYTES = 256 * 1024
EXCEL_MAX_BYTES = 10 * 1024 * 1024
_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_EXCEL = frozenset({".xlsx", ".xlsm"})
_CODE = {".json": "json", ".py": "python", ".yaml": "yaml", ".yml": "yaml", ".xml": "xml",
         ".html": "html", ".htm": "html", ".js": "javascript", ".sql": "sql"}  # fmt: skip

Kind = Literal["table", "markdown", "text", "image", "none"]


class FilePreview(Struct, kw_only=True):
    """A file as the task page shows it.

    Attributes:
        kind: ``table`` (``columns`` and ``rows``), ``markdown`` or ``text`` (``text``, with
            ``language`` for code), ``image`` (fetch the file itself), or ``none`` (``note``
            says why).
        sheets: An Excel workbook's sheets; ``sheet`` is the one shown.
        truncated: Only the start is shown (the first 50 rows and 20 columns, or 256 KiB).
    """

    name: str
    kind: Kind
    content_type: str
    size: int
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    sheets: list[str] = field(default_factory=list)
    sheet: str = ""
    text: str = ""
    language: str = ""
    truncated: bool = False
    note: str = ""


class UnknownSheet(ValueError):
    """The workbook has no sheet of that name."""


def needs_whole_file(name: str) -> bool:
    """Whether a preview reads the whole file (a workbook), not only its start."""
    return PurePosixPath(name).suffix.lower() in _EXCEL


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _table(rows: list[list[str]], base: FilePreview, *, more: bool) -> FilePreview:
    if not rows:
        base.kind, base.note = "none", "The table is empty."
        return base
    width = max(len(row) for row in rows)
    base.truncated = more or width > MAX_COLUMNS or len(rows) > MAX_ROWS + 1
    width = min(width, MAX_COLUMNS)
    padded = [[_cell(v) for v in row[:width]] + [""] * (width - len(row)) for row in rows]
    base.kind, base.columns, base.rows = "table", padded[0], padded[1 : MAX_ROWS + 1]
    return base


def _csv(text: str, base: FilePreview, *, more: bool, delimiter: str | None) -> FilePreview:
    if more:  # the last line may be cut in the middle
        text = text[: text.rfind("\n") + 1] or text
    try:
        dialect = delimiter or csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
    except csv.Error:
        dialect = ","
    rows = []
    for row in csv.reader(io.StringIO(text), delimiter=dialect):
        rows.append(row)
        if len(rows) > MAX_ROWS + 1:
            more = True
            break
    return _table(rows, base, more=more)


def _excel(data: bytes, base: FilePreview, sheet: str | None) -> FilePreview:
    from openpyxl import load_workbook  # noqa: PLC0415 - only workbooks need it

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        base.kind, base.note = "none", "The workbook cannot be read."
        return base
    try:
        base.sheets = list(book.sheetnames)
        chosen = sheet or base.sheets[0]
        if chosen not in base.sheets:
            raise UnknownSheet(chosen)
        base.sheet = chosen
        rows: list[list[str]] = []
        more = False
        for values in book[chosen].iter_rows(values_only=True, max_col=MAX_COLUMNS + 1):
            if len(rows) > MAX_ROWS:
                more = True
                break
            rows.append([_cell(v) for v in values])
        while rows and not any(rows[-1]):
            rows.pop()
        used = max((max((n + 1 for n, v in enumerate(r) if v), default=0) for r in rows),
                   default=0)  # fmt: skip
        return _table([r[:used] for r in rows], base, more=more)
    finally:
        book.close()


def preview_of(  # noqa: PLR0911 - one answer per kind of file
    name: str,
    content_type: str,
    size: int,
    data: bytes,
    *,
    more: bool = False,
    sheet: str | None = None,
) -> FilePreview:
    """The preview of a file from its first bytes (``data``; all of a workbook); ``more``:
    the file goes on past them.

    Raises:
        UnknownSheet: ``sheet`` is not one of the workbook's.
    """
    base = FilePreview(name=name, kind="none", content_type=content_type, size=size)
    suffix = PurePosixPath(name).suffix.lower()
    if content_type in _IMAGES:
        base.kind = "image"
        return base
    if suffix in _EXCEL:
        if more or size > EXCEL_MAX_BYTES:
            base.note = "The workbook is too big to preview; download it."
            return base
        return _excel(data, base, sheet)
    if b"\x00" in data[:8192]:
        base.note = "This file is not text; download it to open it."
        return base
    text = data.decode("utf-8", errors="replace")
    if more:  # a character may be cut at the end
        text = text.rstrip("\ufffd")
    if suffix in (".csv", ".tsv"):
        return _csv(text, base, more=more, delimiter="\t" if suffix == ".tsv" else None)
    base.truncated = more
    if suffix in (".md", ".markdown"):
        base.kind, base.text = "markdown", text
        return base
    base.kind, base.text, base.language = "text", text, _CODE.get(suffix, "")
    if suffix == ".json" and not more:
        with contextlib.suppress(ValueError):  # not JSON after all: shown as it is
            base.text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return base
