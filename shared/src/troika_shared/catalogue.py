"""The tool catalogue: every tool the agents may use, as the planner and executor see it.

Specs live here, where every service can read them; the executor holds the implementations.
Each tool's arguments are a pydantic model, so the JSON schema shown to the model and the
validation of what the model proposes come from one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from troika_shared.messages import ToolSpec

__all__ = [
    "CATALOGUE",
    "CreateFileArgs",
    "ListFilesArgs",
    "ReadFileArgs",
    "ToolDefinition",
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


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A tool: its name, purpose, arguments and how much care it needs.

    Attributes:
        risk: ``read`` (looks only), ``write`` (changes the task's folder) or ``external``
            (acts in the world: sends, posts, submits, runs code, drives the desktop).
        input_fields: Arguments the person fills in on the approval form (an e-mail's
            recipient, subject and body): the agent proposes them, the person decides them.
    """

    name: str
    description: str
    arguments: type[_Args]
    risk: Risk
    input_fields: tuple[str, ...] = ()

    @property
    def needs_input(self) -> bool:
        """Whether approving a call means filling in a form."""
        return bool(self.input_fields)

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
        """The tool as it is shown to the agents."""
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
    )
}


def specs() -> tuple[ToolSpec, ...]:
    """Every tool's spec, for requests to the agents."""
    return tuple(tool.spec() for tool in CATALOGUE.values())
