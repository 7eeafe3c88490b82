"""The tool catalogue: every tool the agents may use, as the planner and executor see it.

Specs live here, where every service can read them; the executor holds the implementations.
Each tool's arguments are a pydantic model (:mod:`.tool_args`, :mod:`.browser`, :mod:`.desktop`),
so the JSON schema shown to the model and the validation of what the model proposes come from
one definition.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from troika_shared.browser import BROWSER_TOOLS, call_risk
from troika_shared.desktop import DESKTOP_TOOLS
from troika_shared.messages import PlanRequested, StepRequested, ToolSpec
from troika_shared.social import SOCIAL_TOOLS
from troika_shared.tool_args import (
    AnalyzeCsvArgs,
    AppendFileArgs,
    CreateFileArgs,
    DeleteFileArgs,
    EditCsvArgs,
    EditExcelArgs,
    HttpRequestArgs,
    ListFilesArgs,
    ReadCsvArgs,
    ReadExcelArgs,
    ReadFileArgs,
    ReadWebpageArgs,
    RunPythonArgs,
    SendEmailArgs,
    ToolArgs,
    WebSearchArgs,
)

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
    "ToolArgs",
    "ToolDefinition",
    "WebSearchArgs",
    "names",
    "offered",
    "specs",
]

Risk = Literal["read", "write", "external"]


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
        irreversible: A call that cannot be taken back (an e-mail sent, a post published)
            runs at most once, even when the executor stops while it runs: a call that was
            started and never recorded is not run again.
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
    irreversible: bool = False

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
            irreversible=True,
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
                name,
                description,
                arguments,
                "external",
                # The post exactly as it will appear, and the account it goes out from.
                input_fields=tuple(arguments.model_fields),
                credentials=platform,
                irreversible=True,
            )
            for name, (description, arguments, platform) in SOCIAL_TOOLS.items()
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


@functools.cache
def names(*, desktop: bool = True) -> tuple[str, ...]:
    """The tools' names, as requests to the agents offer them (``desktop`` as for
    :func:`specs`)."""
    return tuple(spec.name for spec in _specs(desktop))


def offered(request: PlanRequested | StepRequested) -> tuple[ToolSpec, ...]:
    """The tools a request offers, described by this service's own catalogue.

    Requests name the tools (``tool_names``); a name this catalogue does not know is left out,
    since an agent can neither describe nor run it. Specs an older gateway sent in full
    (``tools``) are taken as they came.
    """
    return request.tools or _named(request.tool_names)


@functools.lru_cache(maxsize=16)
def _named(wanted: tuple[str, ...]) -> tuple[ToolSpec, ...]:
    return tuple(CATALOGUE[name].spec() for name in wanted if name in CATALOGUE)
