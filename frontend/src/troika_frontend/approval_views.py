"""What an approval card shows, made from a pending interaction's JSON: the proposed call's
arguments, the form of a tool that needs the person's details, and the cards grouped by task
(plain data, no Reflex in here; agent text stays text)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from troika_frontend.views import json_text, when

__all__ = [
    "UNNAMED_TASK",
    "Approval",
    "ApprovalGroup",
    "Argument",
    "FormField",
    "approval_of",
    "evidence_of",
    "form_values",
    "group_approvals",
]

LONG_VALUE = 240
"""An argument longer than this is folded on its card."""


@dataclass
class Argument:
    """One argument of a proposed action."""

    name: str
    value: str
    long: bool


@dataclass
class FormField:
    """One field of an approval form (from the tool's JSON schema)."""

    name: str
    label: str
    kind: str  # text, password, multiline, list, number, checkbox
    value: str
    required: bool
    hint: str
    checked: bool = False


@dataclass
class Approval:
    """An action that waits for the person."""

    id: str
    task_id: str
    task_title: str
    kind: str
    tool: str
    risk: str
    risk_color: str
    description: str
    subtask: str
    arguments: list[Argument] = field(default_factory=list)
    arguments_json: str = ""
    fields: list[FormField] = field(default_factory=list)
    expires: str = ""
    page_shot: str = ""  # a browser action: the page it acts on (a data: URL)
    same_as: str = ""  # other subtasks of the task that wait for exactly the same call


UNNAMED_TASK = "A task without a name"


@dataclass
class ApprovalGroup:
    """One task's waiting actions, under the task's name."""

    task_id: str
    task_title: str
    actions: list[Approval] = field(default_factory=list)
    # What "approve all" would approve (the actions that need no details typed in), one line
    # each, shown before it does.
    approvable: list[str] = field(default_factory=list)


def group_approvals(items: list[Approval]) -> list[ApprovalGroup]:
    """The actions by task, in the order their tasks first appear; a task without a name is
    called by what it is."""
    groups: dict[str, ApprovalGroup] = {}
    alike: dict[tuple[str, str, str], list[Approval]] = {}
    for item in items:
        if item.kind != "input":
            alike.setdefault((item.task_id, item.tool, item.arguments_json), []).append(item)
    for same in alike.values():
        for item in same:
            others = sorted({o.subtask or "another" for o in same if o is not item})
            item.same_as = ", ".join(others) if len(same) > 1 else ""
    for item in items:
        group = groups.get(item.task_id)
        if group is None:
            title = item.task_title.strip() or UNNAMED_TASK
            group = groups[item.task_id] = ApprovalGroup(item.task_id, title)
        group.actions.append(item)
        if item.kind != "input":
            shown = ", ".join(f"{a.name}: {a.value[:60]}" for a in item.arguments[:2])
            group.approvable.append(f"{item.tool} — {shown}" if shown else item.tool)
    return list(groups.values())


_RISK_COLORS = {"read": "green", "write": "amber", "external": "red"}
_MULTILINE = frozenset({"body", "html_body", "content", "text", "code"})


def _text(value: object) -> str:
    return value if isinstance(value, str) else json_text(value)


def _field(name: str, schema: dict[str, Any], required: bool) -> FormField:  # noqa: FBT001
    options = schema.get("anyOf") or [schema]
    types = {str(option.get("type")) for option in options if isinstance(option, dict)}
    default = schema.get("default")
    if "array" in types:
        kind, value = "list", ", ".join(str(v) for v in default or [])
    elif "boolean" in types:
        kind, value = "checkbox", ""
    elif types & {"integer", "number"}:
        kind, value = "number", "" if default is None else str(default)
    elif schema.get("format") == "password":  # a secret the page needs: typed, never shown
        kind, value = "password", "" if default is None else str(default)
    else:
        long = name in _MULTILINE or int(schema.get("maxLength") or 0) > 1000
        kind, value = ("multiline" if long else "text"), "" if default is None else str(default)
    return FormField(
        name=name,
        label=str(schema.get("title") or name.replace("_", " ").capitalize()),
        kind=kind,
        value=value,
        required=required,
        hint=str(schema.get("description") or ""),
        checked=bool(default) if kind == "checkbox" else False,
    )


def approval_of(interaction: dict[str, Any], task_title: str = "") -> Approval:
    """A pending interaction as an approval card."""
    prompt: dict[str, Any] = interaction.get("prompt") or {}
    arguments: dict[str, Any] = prompt.get("arguments") or {}
    form: dict[str, Any] = prompt.get("form") or {}
    required = set(form.get("required") or [])
    risk = str(prompt.get("risk", "external"))
    return Approval(
        id=str(interaction["id"]),
        task_id=str(interaction["task_id"]),
        task_title=task_title.strip() or UNNAMED_TASK,
        kind=str(interaction.get("kind", "approval")),
        tool=str(prompt.get("tool", "")),
        risk=risk,
        risk_color=_RISK_COLORS.get(risk, "red"),
        description=str(prompt.get("description", "")),
        subtask=str(prompt.get("subtask", "")),
        arguments=[
            Argument(name=name, value=_text(value), long=len(_text(value)) > LONG_VALUE)
            for name, value in arguments.items()
        ],
        arguments_json=json_text(arguments),
        fields=[
            _field(name, schema, name in required)
            for name, schema in (form.get("properties") or {}).items()
        ],
        expires=when(interaction.get("expires_at")),
    )


def form_values(approval: Approval, submitted: dict[str, Any]) -> dict[str, Any]:
    """The form's values as the tool takes them (lists split at commas, numbers parsed).

    Raises:
        ValueError: A number field holds something else.
    """
    values: dict[str, Any] = {}
    for item in approval.fields:
        raw = submitted.get(item.name)
        if item.kind == "checkbox":
            values[item.name] = raw in (True, "on", "true", "1")
            continue
        text = "" if raw is None else str(raw)
        if item.kind == "list":
            values[item.name] = [part.strip() for part in text.split(",") if part.strip()]
        elif item.kind == "number":
            if text.strip():
                try:
                    values[item.name] = (
                        int(text) if text.strip().lstrip("-").isdigit() else float(text)
                    )
                except ValueError:
                    raise ValueError(f"{item.label} must be a number") from None
        elif text or item.required or item.value:
            values[item.name] = text  # a cleared field replaces what the agent proposed
    return values


_EVIDENCE_WORDS = {
    "tool": "Tool",
    "arguments": "Its arguments",
    "last_error": "The last error",
    "last": "The last refusal",
    "last_review": "The reviewer's last words",
    "agent": "Agent",
}


def evidence_of(evidence: dict[str, Any]) -> list[Argument]:
    """What the agents saw when a task paused, named in words, each value text or JSON (the
    rule's name is for programs: the pause's reason says it in words)."""
    shown = {k: v if isinstance(v, str) else json_text(v) for k, v in evidence.items()}
    return [
        Argument(
            name=_EVIDENCE_WORDS.get(k, k.replace("_", " ")), value=v, long=len(v) > LONG_VALUE
        )
        for k, v in shown.items()
        if k != "rule"
    ]
