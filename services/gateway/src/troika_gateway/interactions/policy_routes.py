"""Tool policies, for all of the caller's tasks (``/policies``) or one task
(``/tasks/{id}/policies``), and a task's audit trail (``/tasks/{id}/audit``)."""

from __future__ import annotations

# Litestar reads handler annotations at run time: their types are real imports.
from datetime import datetime
from typing import Any

from litestar import Controller, Request, delete, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from msgspec import Struct
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from troika_gateway.auth.middleware import Principal
from troika_gateway.db.models import AuditEntry, ToolPolicy
from troika_gateway.errors import NotFound
from troika_gateway.interactions.policies import USER_SCOPE, Mode, all_modes, modes, set_policy
from troika_gateway.openapi import BEARER
from troika_gateway.tasks.routes import provide_tasks
from troika_gateway.tasks.service import Tasks
from troika_shared.catalogue import CATALOGUE, ToolDefinition

__all__ = ["AuditController", "PolicyController", "TaskPolicyController"]


class PolicyChange(Struct, forbid_unknown_fields=True, kw_only=True):
    """A tool's policy.

    Attributes:
        mode: ``ask`` every time, ``ask_once`` per task, ``allow`` without asking, ``deny``.
        confirm: Needed to ``allow`` a tool with side effects for all tasks.
    """

    mode: Mode
    confirm: bool = False


class PolicyView(Struct, kw_only=True):
    """One tool and how its calls are decided."""

    tool: str
    description: str
    risk: str
    side_effects: bool
    needs_input: bool
    mode: str
    task_mode: str | None = None


class AuditView(Struct, kw_only=True):
    """One decision about a tool call."""

    at: datetime
    action: str
    actor: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    client: dict[str, Any]
    tool_call_id: str | None
    interaction_id: str | None


async def _save_policy(db: AsyncSession, **change: Any) -> None:  # noqa: ANN401
    """Sets a policy and commits; a concurrent first write of the same policy is applied over."""
    for attempt in range(2):
        await set_policy(db, **change)
        try:
            await db.commit()
        except IntegrityError:
            await db.rollback()
            if attempt:
                raise
        else:
            return


def _tool(name: str) -> ToolDefinition:
    definition = CATALOGUE.get(name)
    if definition is None:
        raise NotFound("tool")
    return definition


def _view(definition: ToolDefinition, found: dict[str, str]) -> PolicyView:
    return PolicyView(
        tool=definition.name,
        description=definition.description,
        risk=definition.risk,
        side_effects=definition.side_effects,
        needs_input=definition.needs_input,
        mode=found.get("user", "ask"),
        task_mode=found.get("task"),
    )


class PolicyController(Controller):
    """The caller's policies for all of their tasks."""

    path = "/policies"
    tags = ["policies"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = BEARER

    @get("/")
    async def list_policies(
        self, request: Request[Principal, Any, State], db: NamedDependency[AsyncSession]
    ) -> list[PolicyView]:
        """Every tool in the catalogue with the caller's policy for it (``ask`` unless set)."""
        rows = await db.scalars(
            select(ToolPolicy).where(
                ToolPolicy.user_id == request.user.user_id, ToolPolicy.scope == USER_SCOPE
            )
        )
        found = {row.tool: row.mode for row in rows}
        return [
            _view(definition, {"user": found[name]} if name in found else {})
            for name, definition in CATALOGUE.items()
        ]

    @put("/{tool:str}", request_max_body_size=4096)
    async def set_user_policy(
        self,
        tool: FromPath[str],
        data: JSONBody[PolicyChange],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
    ) -> PolicyView:
        """Sets how the tool's calls are decided in all of the caller's tasks."""
        definition = _tool(tool)
        await _save_policy(
            db,
            user_id=request.user.user_id,
            scope=USER_SCOPE,
            definition=definition,
            mode=data.mode,
            confirm=data.confirm,
        )
        return _view(definition, {"user": data.mode})

    @delete("/{tool:str}", status_code=204)
    async def reset_user_policy(
        self,
        tool: FromPath[str],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
    ) -> None:
        """Back to asking every time."""
        await _save_policy(
            db, user_id=request.user.user_id, scope=USER_SCOPE, definition=_tool(tool), mode=None
        )


class TaskPolicyController(Controller):
    """Policies for one of the caller's tasks (a task's ``deny`` or the user's wins)."""

    path = "/tasks/{task_id:str}/policies"
    tags = ["policies"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = BEARER
    dependencies = {"tasks": Provide(provide_tasks)}  # noqa: RUF012 - as above

    @get("/")
    async def list_task_policies(
        self,
        task_id: FromPath[str],
        tasks: NamedDependency[Tasks],
        db: NamedDependency[AsyncSession],
    ) -> list[PolicyView]:
        """Every tool with the caller's policy and this task's own."""
        task = await tasks.get(task_id)
        found = await all_modes(db, task.user_id, task.id)
        return [_view(definition, found.get(name, {})) for name, definition in CATALOGUE.items()]

    @put("/{tool:str}", request_max_body_size=4096)
    async def set_task_policy(
        self,
        task_id: FromPath[str],
        tool: FromPath[str],
        data: JSONBody[PolicyChange],
        tasks: NamedDependency[Tasks],
        db: NamedDependency[AsyncSession],
    ) -> PolicyView:
        """Sets how the tool's calls are decided in this task."""
        task = await tasks.get(task_id)
        definition = _tool(tool)
        await _save_policy(
            db,
            user_id=task.user_id,
            scope=task.id,
            definition=definition,
            mode=data.mode,
            confirm=data.confirm,
        )
        return _view(definition, await modes(db, task.user_id, task.id, tool))

    @delete("/{tool:str}", status_code=204)
    async def reset_task_policy(
        self,
        task_id: FromPath[str],
        tool: FromPath[str],
        tasks: NamedDependency[Tasks],
        db: NamedDependency[AsyncSession],
    ) -> None:
        """Back to the caller's policy for all tasks."""
        task = await tasks.get(task_id)
        await _save_policy(
            db, user_id=task.user_id, scope=task.id, definition=_tool(tool), mode=None
        )


class AuditController(Controller):
    """A task's audit trail: every decision about its tool calls."""

    path = "/tasks/{task_id:str}/audit"
    tags = ["tasks"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = BEARER
    dependencies = {"tasks": Provide(provide_tasks)}  # noqa: RUF012 - as above

    @get("/")
    async def audit(
        self,
        task_id: FromPath[str],
        tasks: NamedDependency[Tasks],
        db: NamedDependency[AsyncSession],
    ) -> list[AuditView]:
        """Every decision, oldest first: who or which rule, when, which arguments, from where."""
        task = await tasks.get(task_id)
        rows = await db.scalars(
            select(AuditEntry).where(AuditEntry.task_id == task.id).order_by(AuditEntry.id)
        )
        return [
            AuditView(
                at=row.at,
                action=row.action,
                actor=row.actor,
                tool=row.tool,
                arguments=row.arguments,
                reason=row.reason,
                client=row.client,
                tool_call_id=row.tool_call_id,
                interaction_id=row.interaction_id,
            )
            for row in rows
        ]
