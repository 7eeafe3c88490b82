"""The tool catalogue: every tool the agents may use, as the planner and executor see it.

Specs live here, where every service can read them; the executor holds the implementations.
Each tool's arguments are a pydantic model, so the JSON schema shown to the model and the
validation of what the model proposes come from one definition.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from troika_shared.browser import BROWSER_TOOLS, call_risk
from troika_shared.desktop import DESKTOP_TOOLS
from troika_shared.messages import ToolSpec

__all__ = [
    "CATALOGUE",
    "AnalyzeCsvArgs",
    "AppendFileArgs",
    "CreateFileArgs",
    "DeleteFileArgs",
    "EditCsvArgs",
    "EditExcelArgs",
    "HttpRequestArgs",
    "ListFilesArgs",
    "ReadCsvArgs",
    "ReadExcelArgs",
    "ReadFileArgs",
    "ReadWebpageArgs",
    "RunPythonArgs",
    "SendEmailArgs",
    "ToolDefinition",
    "WebSearchArgs",
    "specs",
]

Risk = Literal["read", "write", "external"]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateFileArgs(_Args):
    """Writes a text file in the task's folder (replacing one of the same name)."""

    path: str = Field(min_length=1, max_length=255, description="Relative path, e.g. 'report.md'.")
    content: str = Field(max_length=2_000_000, description="The whole text of the file.")


class ReadFileArgs(_Args):
    """Reads a text file from the task's folder."""

    path: str = Field(min_length=1, max_length=255, description="Relative path of the file.")
    max_chars: int = Field(default=20_000, ge=1, le=200_000, description="Longest text returned.")


class ListFilesArgs(_Args):
    """Lists the files in the task's folder."""


class AppendFileArgs(_Args):
    """Adds text to the end of a file in the task's folder (creating it if needed)."""

    path: str = Field(min_length=1, max_length=255, description="Relative path of the file.")
    content: str = Field(max_length=2_000_000, description="The text to add at the end.")


class DeleteFileArgs(_Args):
    """Deletes a file from the task's folder."""

    path: str = Field(min_length=1, max_length=255, description="Relative path of the file.")


_PATH = Field(min_length=1, max_length=255, description="Relative path of the file.")
Scalar = str | int | float | bool | None


class ReadCsvArgs(_Args):
    """Reads a CSV file: its columns with their types, and the first rows."""

    path: str = _PATH
    rows: int = Field(default=20, ge=1, le=500, description="Rows to show.")


class CsvFilter(_Args):
    """Keeps the rows whose column compares true with the value."""

    column: str = Field(min_length=1, max_length=255)
    op: Literal["==", "!=", ">", ">=", "<", "<=", "contains"] = "=="
    value: str | float | int | bool


class CsvAggregate(_Args):
    """A summary of one column."""

    column: str = Field(min_length=1, max_length=255)
    func: Literal["sum", "mean", "median", "min", "max", "count", "nunique"] = "sum"


class CsvSort(_Args):
    """An ordering."""

    column: str = Field(min_length=1, max_length=255)
    descending: bool = False


class AnalyzeCsvArgs(_Args):
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


class CsvCellUpdate(_Args):
    """Sets one cell: the row's number (0 is the first data row) and the column's name."""

    row: int = Field(ge=0)
    column: str = Field(min_length=1, max_length=255)
    value: Scalar


class CsvNewColumn(_Args):
    """Adds a column, every row holding ``value``."""

    name: str = Field(min_length=1, max_length=255)
    value: Scalar = None


class EditCsvArgs(_Args):
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


class ReadExcelArgs(_Args):
    """Reads an Excel workbook (.xlsx, .xlsm): its sheets, and one sheet's cells (formulas
    shown as written, with their last computed values where the file has them)."""

    path: str = _PATH
    sheet: str | None = Field(default=None, max_length=31, description="Default: the first.")
    rows: int = Field(default=30, ge=1, le=1000, description="Rows to show.")


class ExcelCell(_Args):
    """One cell to write: ``A1`` notation; a text starting with ``=`` is a formula."""

    cell: str = Field(pattern=r"^[A-Za-z]{1,3}[1-9][0-9]{0,6}$")
    value: Scalar


class ExcelRange(_Args):
    """A block of values written from ``start`` to the right and down, row by row."""

    start: str = Field(pattern=r"^[A-Za-z]{1,3}[1-9][0-9]{0,6}$")
    rows: list[list[Scalar]] = Field(min_length=1, max_length=100_000)


_URL = Field(
    min_length=8, max_length=2000, pattern=r"^https?://", description="An http(s) address."
)


class HttpRequestArgs(_Args):
    """Calls an HTTP API: method, address, headers and a JSON or form body."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = _URL
    headers: dict[str, str] = Field(default_factory=dict, max_length=30)
    query: dict[str, str] = Field(default_factory=dict, max_length=50)
    json_body: JsonValue = Field(default=None, description="A JSON body (sent as JSON).")
    form: dict[str, str] | None = Field(default=None, description="A form body.")
    timeout_s: float = Field(default=20, gt=0, le=60)
    max_chars: int = Field(default=20_000, ge=100, le=200_000, description="Longest body shown.")


class ReadWebpageArgs(_Args):
    """Reads a web page: its title, its main text and its links."""

    url: str = _URL
    max_chars: int = Field(default=20_000, ge=100, le=200_000, description="Longest text shown.")
    links: bool = Field(default=True, description="List the page's links too.")


class WebSearchArgs(_Args):
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


class EditExcelArgs(_Args):
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


class SendEmailArgs(_Args):
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


class RunPythonArgs(_Args):
    """Runs a Python 3 program in a sandbox: no network, limited time, memory and disk. It
    starts in a copy of the task's folder (read the files by their relative paths); files it
    writes there come back into the folder. pandas, numpy and openpyxl can be imported."""

    code: str = Field(min_length=1, max_length=200_000, description="The whole program.")
    timeout_s: int = Field(default=60, ge=1, le=600, description="Longest run, in seconds.")


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A tool: its name, purpose, arguments and how much care it needs.

    Attributes:
        risk: ``read`` (looks only), ``write`` (changes the task's folder) or ``external``
            (acts in the world: sends, posts, submits, runs code, drives the desktop).
        input_fields: Arguments the person fills in on the approval form (an e-mail's
            recipient, subject and body): the agent proposes them, the person decides them.
        credentials: The kind of the person's stored credentials a call needs (``smtp``):
            the gateway sends them, sealed for that call, with its approval.
        runs_on: Where calls run: in the ``executor``, or on the person's own PC (``desktop``:
            the gateway hands them to that PC's ``troika-desktop`` agent).
        judge: For a tool whose calls differ in risk (a browser click on a link or on a "Buy"
            button): the risk of one call, from the tool's name and the call's arguments;
            ``risk`` is then the most a call can be, and an ``external`` call always asks.
        form_map: A mapping argument (field -> value) whose entries are the approval form's
            fields (the values a browser types): the person sees and may change each value.
        repeatable: The same call means something new once other calls ran (a browser click
            on "Next"): its key includes the step that proposed it (see
            :func:`troika_shared.approvals.call_key`).
    """

    name: str
    description: str
    arguments: type[BaseModel]
    risk: Risk
    input_fields: tuple[str, ...] = ()
    credentials: str | None = None
    runs_on: Literal["executor", "desktop"] = "executor"
    judge: Callable[[str, dict[str, Any]], Risk] | None = None
    form_map: str | None = None
    repeatable: bool = False

    def key_step(self, step: int) -> int | None:
        """What a call's key takes of the step that proposed it (see ``repeatable``)."""
        return step if self.repeatable else None

    @property
    def needs_input(self) -> bool:
        """Whether approving a call means filling in a form."""
        return bool(self.input_fields) or self.form_map is not None

    def risk_of(self, arguments: dict[str, Any]) -> Risk:
        """The risk of one call with these arguments."""
        return self.judge(self.name, arguments) if self.judge is not None else self.risk

    def always_asks(self, arguments: dict[str, Any]) -> bool:
        """Whether a call asks the person whatever their policies say: it needs their input,
        or it is one of a judged tool's risky calls (submitting, buying, posting)."""
        return self.needs_input or (
            self.judge is not None and self.risk_of(arguments) == "external"
        )

    @property
    def side_effects(self) -> bool:
        """Whether a call acts outside the task's folder (never allowed without asking unless
        the person confirms it)."""
        return self.risk == "external"

    def form(self, proposed: dict[str, Any]) -> dict[str, Any]:
        """The approval form: the JSON schema of the input fields, the agent's values as defaults.

        Returns:
            An object schema with only the input fields, ``additionalProperties: false``.
        """
        if self.form_map is not None:
            return _map_form(proposed.get(self.form_map) or {})
        schema = self.arguments.model_json_schema()
        properties = {}
        for name in self.input_fields:
            field = dict(schema["properties"][name])
            if name in proposed:
                field["default"] = proposed[name]
            properties[name] = field
        required = [name for name in schema.get("required", []) if name in self.input_fields]
        return {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments as the tool accepts them.

        Raises:
            pydantic.ValidationError: They do not fit the tool's schema.
        """
        return self.arguments.model_validate(arguments).model_dump(mode="json", exclude_unset=True)

    def spec(self) -> ToolSpec:
        """The tool as it is shown to the agents (built once: every step request carries it)."""
        return _spec(self)

    def _build_spec(self) -> ToolSpec:
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        return ToolSpec(
            name=self.name,
            description=self.description,
            parameters=schema,
            risk=self.risk,
            needs_input=self.needs_input,
        )


CATALOGUE: dict[str, ToolDefinition] = {
    tool.name: tool
    for tool in (
        ToolDefinition(
            "create_file",
            "Write a text file (Markdown, CSV, code…) in the task's folder.",
            CreateFileArgs,
            "write",
        ),
        ToolDefinition(
            "read_file", "Read a text file from the task's folder.", ReadFileArgs, "read"
        ),
        ToolDefinition("list_files", "List the files in the task's folder.", ListFilesArgs, "read"),
        ToolDefinition(
            "append_file",
            "Add text at the end of a file in the task's folder.",
            AppendFileArgs,
            "write",
        ),
        ToolDefinition(
            "delete_file", "Delete a file from the task's folder.", DeleteFileArgs, "write"
        ),
        ToolDefinition(
            "read_csv",
            "Read a CSV file: its columns, their types and the first rows.",
            ReadCsvArgs,
            "read",
        ),
        ToolDefinition(
            "analyze_csv",
            "Filter, group, aggregate (sum, mean, …) and sort a CSV file, or describe its "
            "columns; optionally save the result as a new CSV.",
            AnalyzeCsvArgs,
            "write",
        ),
        ToolDefinition(
            "edit_csv",
            "Change cells, add columns, append or delete rows of a CSV file.",
            EditCsvArgs,
            "write",
        ),
        ToolDefinition(
            "read_excel",
            "Read an Excel workbook: its sheets and a sheet's cells and formulas.",
            ReadExcelArgs,
            "read",
        ),
        ToolDefinition(
            "web_search",
            "Search the web: titles, addresses and snippets of the results.",
            WebSearchArgs,
            "read",
        ),
        ToolDefinition(
            "web_search_news",
            "Search recent news: headlines, dates, sources, addresses and excerpts.",
            WebSearchArgs,
            "read",
        ),
        ToolDefinition(
            "read_webpage",
            "Read a web page: its title, main text (without menus and ads) and links.",
            ReadWebpageArgs,
            "read",
        ),
        ToolDefinition(
            "http_request",
            "Call an HTTP API (GET, POST, …) with headers and a JSON or form body; returns "
            "the status, headers and body.",
            HttpRequestArgs,
            "external",
        ),
        ToolDefinition(
            "edit_excel",
            "Write cells, ranges and formulas into an Excel workbook (created if missing), "
            "adding sheets; .xlsm files keep their macros.",
            EditExcelArgs,
            "write",
        ),
        ToolDefinition(
            "send_email",
            "Send an e-mail (plain text, optionally HTML) from the person's own account, with "
            "files from the task's folder attached. The person checks the recipients, subject, "
            "text and attachments before it goes.",
            SendEmailArgs,
            "external",
            # Everything the recipients will see is on the form the person approves.
            input_fields=("to", "cc", "bcc", "subject", "body", "html_body", "attachments"),
            credentials="smtp",
        ),
        ToolDefinition(
            "run_python",
            "Run a Python program in a sandbox (no network; limited time, memory and disk) on "
            "a copy of the task's files; files it writes come back. Returns its output.",
            RunPythonArgs,
            "external",
        ),
        *(
            ToolDefinition(
                name,
                description,
                arguments,
                risk,
                judge=call_risk,
                form_map="values" if name == "browser_fill" else None,
                input_fields=("options",) if name == "browser_select" else (),
                repeatable=True,
            )
            for name, (description, arguments, risk) in BROWSER_TOOLS.items()
        ),
        *(
            ToolDefinition(
                name, description, arguments, "external", runs_on="desktop", repeatable=True
            )
            for name, (description, arguments) in DESKTOP_TOOLS.items()
        ),
    )
}


_SECRET_FIELD = re.compile(r"pass|pwd|secret|token|\bpin\b|otp|one.time|2fa|cvc|cvv", re.I)


def _map_form(entries: dict[str, Any]) -> dict[str, Any]:
    """A form with one text field per entry (its key the label, its value the default; a
    field that looks like a password is marked ``format: password`` and shown masked)."""
    properties = {}
    for name, value in entries.items():
        field: dict[str, Any] = {"type": "string", "title": name, "default": str(value)}
        if _SECRET_FIELD.search(name):
            field["format"] = "password"
        properties[name] = field
    return {
        "type": "object",
        "properties": properties,
        "required": [],
        "additionalProperties": False,
    }


@functools.cache
def _spec(definition: ToolDefinition) -> ToolSpec:
    return definition._build_spec()  # noqa: SLF001 - the cache's own builder


def specs(*, desktop: bool = True) -> tuple[ToolSpec, ...]:
    """The tools' specs, for requests to the agents (``desktop=False``: without the tools
    that act on the person's PC, for a person who has none paired)."""
    return _specs(desktop)


@functools.cache
def _specs(desktop: bool) -> tuple[ToolSpec, ...]:  # noqa: FBT001 - the cache's key
    return tuple(tool.spec() for tool in CATALOGUE.values() if desktop or tool.runs_on != "desktop")
