"""Tool policies: which calls still ask the person, and which are decided by a rule they set.

A policy is per tool, for all of a user's tasks (scope ``user``) or for one task (scope: its id).
How a call is decided (by :func:`troika_gateway.pipeline.policy.decide`):

* ``deny`` at either level wins: the call is refused without asking;
* otherwise the task's own policy, then the user's, then the default ``ask``;
* ``ask_once``: the first call of the tool in a task asks; once one is approved, later ones are
  approved by the rule;
* ``allow``: approved by the rule. A tool that acts outside the task's folder (sends, posts,
  submits, runs code) can be allowed for all tasks only with an explicit confirmation;
* a tool with an input form always asks: the person's details are never guessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError
from sqlalchemy import bindparam, select

from troika_gateway.db.models import ToolPolicy
from troika_gateway.errors import InvalidInput
from troika_shared.browser import seal_typed

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_shared.catalogue import ToolDefinition

__all__ = [
    "MODES",
    "Mode",
    "all_modes",
    "edited_arguments",
    "modes",
    "sealed_typing",
    "set_policy",
]

Mode = Literal["ask", "ask_once", "allow", "deny"]
MODES: tuple[Mode, ...] = ("ask", "ask_once", "allow", "deny")
USER_SCOPE = "user"

_POLICIES = select(ToolPolicy.tool, ToolPolicy.scope, ToolPolicy.mode).where(
    ToolPolicy.user_id == bindparam("user_id"),
    ToolPolicy.scope.in_((USER_SCOPE, bindparam("task_id"))),
)
_TOOL_POLICIES = _POLICIES.where(ToolPolicy.tool == bindparam("tool"))


async def all_modes(
    db: AsyncSession, user_id: str, task_id: str, tool: str | None = None
) -> dict[str, dict[str, str]]:
    """The policies that apply to the task, per tool: ``{tool: {"user": mode, "task": mode}}``
    (every tool, or only ``tool``), in one query."""
    params = {"user_id": user_id, "task_id": task_id}
    query = _POLICIES
    if tool is not None:
        query, params = _TOOL_POLICIES, {**params, "tool": tool}
    found: dict[str, dict[str, str]] = {}
    for row in await db.execute(query, params):
        found.setdefault(row.tool, {})["user" if row.scope == USER_SCOPE else "task"] = row.mode
    return found


async def modes(db: AsyncSession, user_id: str, task_id: str, tool: str) -> dict[str, str]:
    """The tool's policies that apply to the task: ``{"user": mode, "task": mode}``."""
    return (await all_modes(db, user_id, task_id, tool)).get(tool, {})


async def set_policy(
    db: AsyncSession,
    *,
    user_id: str,
    scope: str,
    definition: ToolDefinition,
    mode: Mode | None,
    confirm: bool = False,
) -> ToolPolicy | None:
    """Sets (or, with ``mode`` ``None``, removes) a policy; the caller commits.

    Raises:
        InvalidInput: ``allow`` for all tasks on a tool with side effects, unconfirmed.
    """
    if mode == "allow" and scope == USER_SCOPE and definition.side_effects and not confirm:
        message = (
            f"{definition.name} acts outside the task's folder; allowing it for every task "
            "without asking needs the explicit confirmation `confirm: true`"
        )
        raise InvalidInput(message, [{"field": "confirm", "message": "must be true"}])
    row = await db.scalar(
        select(ToolPolicy).where(
            ToolPolicy.user_id == user_id,
            ToolPolicy.scope == scope,
            ToolPolicy.tool == definition.name,
        )
    )
    if mode is None:
        if row is not None:
            await db.delete(row)
        return None
    if row is None:
        row = ToolPolicy(user_id=user_id, scope=scope, tool=definition.name, mode=mode)
        db.add(row)
    else:
        row.mode = mode
    return row


def edited_arguments(
    definition: ToolDefinition | None,
    proposed: dict[str, Any],
    *,
    arguments: dict[str, Any] | None,
    values: dict[str, Any] | None,
) -> dict[str, Any]:
    """The arguments the person approves: as proposed, edited whole, or with form values.

    Raises:
        InvalidInput: A form value the tool does not ask for, or arguments the tool refuses.
    """
    if arguments is None and values is None:
        return proposed
    if definition is None:
        raise InvalidInput("this tool is not in the catalogue; its arguments cannot be edited")
    result = dict(arguments if arguments is not None else proposed)
    if values is not None and definition.form_map is not None:
        entries = dict(result.get(definition.form_map) or {})
        unknown = sorted(set(values) - set(entries))
        if unknown:
            errors = [{"field": f"values.{name}", "message": "not a field of this form"}
                      for name in unknown]  # fmt: skip
            raise InvalidInput(f"unknown form fields: {', '.join(unknown)}", errors)
        bad = sorted(name for name, value in values.items() if not isinstance(value, str))
        if bad:
            errors = [{"field": f"values.{name}", "message": "must be text"} for name in bad]
            raise InvalidInput(f"form fields must be text: {', '.join(bad)}", errors)
        result[definition.form_map] = {**entries, **values}
    elif values is not None:
        unknown = sorted(set(values) - set(definition.input_fields))
        if unknown:
            errors = [{"field": f"values.{name}", "message": "not a field of this form"}
                      for name in unknown]  # fmt: skip
            raise InvalidInput(f"unknown form fields: {', '.join(unknown)}", errors)
        result.update(values)
    try:
        return definition.validate(result)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(map(str, error["loc"])), "message": error["msg"]}
            for error in exc.errors(include_url=False)
        ]
        raise InvalidInput(f"the arguments do not fit {definition.name}", errors) from None


def sealed_typing(
    definition: ToolDefinition | None,
    arguments: dict[str, Any],
    values: dict[str, Any] | None,
    *,
    key: bytes | None,
    task_id: str,
) -> dict[str, Any]:
    """The approved arguments with what the person typed into a form's password fields sealed
    (:func:`troika_shared.browser.seal_typed`): the database, the bus and the logs keep only
    the sealed value, the executor opens it to type it, and the model never sees it."""
    if definition is None or definition.form_map is None or not values or key is None:
        return arguments
    entries = dict(arguments.get(definition.form_map) or {})
    fields = definition.form(arguments)["properties"]
    for name, value in values.items():
        if value and fields.get(name, {}).get("format") == "password":
            entries[name] = seal_typed(key, task_id, str(value))
    return {**arguments, definition.form_map: entries}
