"""The arguments of the tools that run in the executor, one pydantic model per tool.

The model is the tool's contract: its JSON schema is what the model is offered, and it
validates what the model proposes and what the person edits (see :mod:`.catalogue`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = [
    "AnalyzeCsvArgs",
    "AppendFileArgs",
    "CreateFileArgs",
    "CsvAggregate",
    "CsvCellUpdate",
    "CsvFilter",
    "CsvNewColumn",
    "CsvSort",
    "DeleteFileArgs",
    "EditCsvArgs",
    "EditExcelArgs",
    "ExcelCell",
    "ExcelRange",
    "HttpRequestArgs",
    "ListFilesArgs",
    "ReadCsvArgs",
    "ReadExcelArgs",
    "ReadFileArgs",
    "ReadWebpageArgs",
    "RunPythonArgs",
    "Scalar",
    "SendEmailArgs",
    "ToolArgs",
    "WebSearchArgs",
]


class ToolArgs(BaseModel):
    """A tool's arguments: nothing unknown, nothing changed after parsing."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateFileArgs(ToolArgs):
    """Writes a text file in the task's folder (replacing one of the same name)."""

    path: str = Field(min_length=1, max_length=255, description="Relative path, e.g. 'report.md'.")
    content: str = Field(max_length=2_000_000, description="The whole text of the file.")


class ReadFileArgs(ToolArgs):
    """Reads a text file from the task's folder."""

    path: str = Field(min_length=1, max_length=255, description="Relative path of the file.")
    max_chars: int = Field(default=20_000, ge=1, le=200_000, description="Longest text returned.")


class ListFilesArgs(ToolArgs):
    """Lists the files in the task's folder."""


class AppendFileArgs(ToolArgs):
    """Adds text to the end of a file in the task's folder (creating it if needed)."""

    path: str = Field(min_length=1, max_length=255, description="Relative path of the file.")
    content: str = Field(max_length=2_000_000, description="The text to add at the end.")


class DeleteFileArgs(ToolArgs):
    """Deletes a file from the task's folder."""

    path: str = Field(min_length=1, max_length=255, description="Relative path of the file.")


_PATH = Field(min_length=1, max_length=255, description="Relative path of the file.")
Scalar = str | int | float | bool | None


class ReadCsvArgs(ToolArgs):
    """Reads a CSV file: its columns with their types, and the first rows."""

    path: str = _PATH
    rows: int = Field(default=20, ge=1, le=500, description="Rows to show.")


class CsvFilter(ToolArgs):
    """Keeps the rows whose column compares true with the value."""

    column: str = Field(min_length=1, max_length=255)
    op: Literal["==", "!=", ">", ">=", "<", "<=", "contains"] = "=="
    value: str | float | int | bool


class CsvAggregate(ToolArgs):
    """A summary of one column."""

    column: str = Field(min_length=1, max_length=255)
    func: Literal["sum", "mean", "median", "min", "max", "count", "nunique"] = "sum"


class CsvSort(ToolArgs):
    """An ordering."""

    column: str = Field(min_length=1, max_length=255)
    descending: bool = False


class AnalyzeCsvArgs(ToolArgs):
    """Filters, groups, aggregates and sorts a CSV file; without a grouping or aggregates it
    describes each column (count, mean, spread, most frequent values)."""

    path: str = _PATH
    filters: list[CsvFilter] = Field(default_factory=list, max_length=20)
    group_by: list[str] = Field(default_factory=list, max_length=10)
    aggregates: list[CsvAggregate] = Field(default_factory=list, max_length=20)
    sort_by: list[CsvSort] = Field(default_factory=list, max_length=10)
    limit: int = Field(default=50, ge=1, le=1000, description="Rows of the result to show.")
    save_as: str | None = Field(
        default=None, max_length=255, description="Also write the result to this CSV file."
    )


class CsvCellUpdate(ToolArgs):
    """Sets one cell: the row's number (0 is the first data row) and the column's name."""

    row: int = Field(ge=0)
    column: str = Field(min_length=1, max_length=255)
    value: Scalar


class CsvNewColumn(ToolArgs):
    """Adds a column, every row holding ``value``."""

    name: str = Field(min_length=1, max_length=255)
    value: Scalar = None


class EditCsvArgs(ToolArgs):
    """Changes a CSV file: cells, new columns, new rows, rows removed."""

    path: str = _PATH
    updates: list[CsvCellUpdate] = Field(default_factory=list, max_length=10_000)
    add_columns: list[CsvNewColumn] = Field(default_factory=list, max_length=100)
    append_rows: list[dict[str, Scalar]] = Field(default_factory=list, max_length=10_000)
    delete_rows: list[int] = Field(
        default_factory=list,
        max_length=10_000,
        description="Row numbers to remove (0 is the first data row).",
    )
    save_as: str | None = Field(
        default=None, max_length=255, description="Write the result here instead of over the file."
    )


class ReadExcelArgs(ToolArgs):
    """Reads an Excel workbook (.xlsx, .xlsm): its sheets, and one sheet's cells (formulas
    shown as written, with their last computed values where the file has them)."""

    path: str = _PATH
    sheet: str | None = Field(default=None, max_length=31, description="Default: the first.")
    rows: int = Field(default=30, ge=1, le=1000, description="Rows to show.")


class ExcelCell(ToolArgs):
    """One cell to write: ``A1`` notation; a text starting with ``=`` is a formula."""

    cell: str = Field(pattern=r"^[A-Za-z]{1,3}[1-9][0-9]{0,6}$")
    value: Scalar


class ExcelRange(ToolArgs):
    """A block of values written from ``start`` to the right and down, row by row."""

    start: str = Field(pattern=r"^[A-Za-z]{1,3}[1-9][0-9]{0,6}$")
    rows: list[list[Scalar]] = Field(min_length=1, max_length=100_000)


_URL = Field(
    min_length=8, max_length=2000, pattern=r"^https?://", description="An http(s) address."
)


class HttpRequestArgs(ToolArgs):
    """Calls an HTTP API: method, address, headers and a JSON or form body."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = _URL
    headers: dict[str, str] = Field(default_factory=dict, max_length=30)
    query: dict[str, str] = Field(default_factory=dict, max_length=50)
    json_body: JsonValue = Field(default=None, description="A JSON body (sent as JSON).")
    form: dict[str, str] | None = Field(default=None, description="A form body.")
    timeout_s: float = Field(default=20, gt=0, le=60)
    max_chars: int = Field(default=20_000, ge=100, le=200_000, description="Longest body shown.")


class ReadWebpageArgs(ToolArgs):
    """Reads a web page: its title, its main text and its links."""

    url: str = _URL
    max_chars: int = Field(default=20_000, ge=100, le=200_000, description="Longest text shown.")
    links: bool = Field(default=True, description="List the page's links too.")


class WebSearchArgs(ToolArgs):
    """Searches the web."""

    query: str = Field(min_length=1, max_length=500)
    region: str = Field(
        default="wt-wt",
        pattern=r"^[a-z]{2}-[a-z]{2}$",
        description="Region code such as 'us-en' or 'de-de'; 'wt-wt' is none.",
    )
    time_limit: Literal["d", "w", "m", "y"] | None = Field(
        default=None, description="Only results from the last day, week, month or year."
    )
    max_results: int = Field(default=10, ge=1, le=50)


class EditExcelArgs(ToolArgs):
    """Writes cells, ranges and formulas into a workbook, adding sheets as needed; creates the
    workbook if it does not exist. A macro-enabled .xlsm keeps its macros."""

    path: str = _PATH
    sheet: str | None = Field(
        default=None, max_length=31, description="The sheet to write in (created if missing)."
    )
    cells: list[ExcelCell] = Field(default_factory=list, max_length=100_000)
    ranges: list[ExcelRange] = Field(default_factory=list, max_length=100)
    new_sheets: list[str] = Field(default_factory=list, max_length=50)


_ADDRESS = r"^[^@\s<>,;]{1,64}@[^@\s<>,;]{1,255}$"
_ADDRESSES: list[str] = Field(default_factory=list, max_length=50)


class SendEmailArgs(ToolArgs):
    """Sends an e-mail from the person's own account (their SMTP settings), with files from
    the task's folder attached."""

    to: list[Annotated[str, Field(pattern=_ADDRESS)]] = Field(
        min_length=1, max_length=50, description="Recipients' addresses."
    )
    subject: str = Field(min_length=1, max_length=998, pattern=r"^[^\r\n]*$")
    body: str = Field(max_length=1_000_000, description="The message as plain text.")
    html_body: str | None = Field(
        default=None,
        max_length=2_000_000,
        description="The same message as HTML (sent alongside the plain text).",
    )
    cc: list[Annotated[str, Field(pattern=_ADDRESS)]] = _ADDRESSES
    bcc: list[Annotated[str, Field(pattern=_ADDRESS)]] = _ADDRESSES
    reply_to: Annotated[str, Field(pattern=_ADDRESS)] | None = None
    attachments: list[str] = Field(
        default_factory=list, max_length=20, description="Paths of files in the task's folder."
    )


class RunPythonArgs(ToolArgs):
    """Runs a Python 3 program in a sandbox: no network, limited time, memory and disk. It
    starts in a copy of the task's folder (read the files by their relative paths); files it
    writes there come back into the folder. pandas, numpy and openpyxl can be imported."""

    code: str = Field(min_length=1, max_length=200_000, description="The whole program.")
    timeout_s: int = Field(default=60, ge=1, le=600, description="Longest run, in seconds.")
