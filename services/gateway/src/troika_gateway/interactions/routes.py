"""The interaction endpoints: ``/interactions/…``: what waits for the person, and the answers."""

from __future__ import annotations

# Litestar reads handler annotations at run time: their types are real imports.
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import Meta, Struct
from sqlalchemy import bindparam, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from troika_gateway.auth.middleware import Principal
from troika_gateway.credentials import load_secrets
from troika_gateway.db.models import Interaction, Task, TaskStatus, ToolCall
from troika_gateway.errors import Conflict, InvalidInput, NotFound
from troika_gateway.interactions.policies import edited_arguments, sealed_typing
from troika_gateway.openapi import BEARER
from troika_gateway.pipeline.snapshot import Respond
from troika_gateway.social.accounts import ready_account
from troika_shared.catalogue import CATALOGUE
from troika_shared.social import PLATFORMS

if TYPE_CHECKING:
    from troika_gateway.settings import GatewaySettings
    from troika_shared.catalogue import ToolDefinition

__all__ = ["Answer", "InteractionController", "InteractionView"]

# An answer's interaction with its task and its call, in one query
_ANSWERING = (
    select(Interaction, Task, ToolCall)
    .outerjoin(Task, Task.id == Interaction.task_id)
    .outerjoin(ToolCall, ToolCall.id == Interaction.tool_call_id)
    .where(
        Interaction.id == bindparam("interaction_id"),
        Interaction.user_id == bindparam("user_id"),
    )
)


class InteractionView(Struct, kw_only=True):
    """Something a task is waiting for the person to answer."""

    id: str
    task_id: str
    kind: str
    status: str
    prompt: dict[str, Any]
    created_at: datetime
    expires_at: datetime | None


class Answer(Struct, forbid_unknown_fields=True, kw_only=True):
    """The person's decision on a proposed action.

    Attributes:
        decision: ``approve`` or ``deny``.
        reason: Why (the agent sees it).
        arguments: Approve these arguments instead of the proposed ones (a new action).
        values: The form's fields, for a call that asks for the person's details.
        remember: ``task``: approve this tool's later calls in this task without asking.
    """

    decision: Literal["approve", "deny"]
    reason: Annotated[str, Meta(max_length=2000)] = ""
    arguments: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    remember: Literal["task"] | None = None


def _client(request: Request[Principal, Any, State]) -> dict[str, str]:
    """Where an answer came from, for the audit trail."""
    return {
        "ip": request.client.host if request.client else "unknown",
        "user_agent": request.headers.get("user-agent", "")[:255],
        "name": request.headers.get("x-troika-client", "")[:64],
    }


def _view(row: Interaction) -> InteractionView:
    return InteractionView(
        id=row.id,
        task_id=row.task_id,
        kind=row.kind,
        status=row.status,
        prompt=row.prompt,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


async def _require_credentials(
    db: AsyncSession, settings: GatewaySettings, task: Task, definition: ToolDefinition | None
) -> None:
    """Refuses to approve a call whose tool acts with credentials the person has not saved.

    Raises:
        Conflict: They are not set up (the person saves them, then approves again).
    """
    if definition is None or definition.credentials is None or definition.credentials in PLATFORMS:
        return  # a post's account is checked with the approved arguments (ready_account)
    if await load_secrets(db, settings, task.user_id, definition.credentials) is None:
        kind = definition.credentials
        raise Conflict(
            f"{definition.name} acts with your {kind.upper()} settings, which are not set up: "
            f"save them (PUT /credentials/{kind}) and approve again"
        )


class InteractionController(Controller):
    """The caller's interactions; another user's answer 404 and never show in lists."""

    path = "/interactions"
    tags = ["interactions"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = BEARER

    @get("/pending")
    async def pending(
        self,
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
        task_id: Annotated[str | None, QueryParameter(description="only this task's")] = None,
    ) -> list[InteractionView]:
        """Everything waiting for the caller, oldest first."""
        query = select(Interaction).where(
            Interaction.user_id == request.user.user_id, Interaction.status == "pending"
        )
        if task_id is not None:
            query = query.where(Interaction.task_id == task_id)
        rows = await db.scalars(query.order_by(Interaction.created_at, Interaction.id))
        return [_view(row) for row in rows]

    @get("/{interaction_id:str}")
    async def detail(
        self,
        interaction_id: FromPath[str],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
    ) -> InteractionView:
        """One interaction."""
        row = await db.scalar(
            select(Interaction).where(
                Interaction.id == interaction_id, Interaction.user_id == request.user.user_id
            )
        )
        if row is None:
            raise NotFound("interaction")
        return _view(row)

    @post("/{interaction_id:str}/respond", status_code=200, request_max_body_size=64 * 1024)
    async def respond(
        self,
        interaction_id: FromPath[str],
        data: JSONBody[Answer],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
        state: State,
    ) -> InteractionView:
        """Approves or denies a proposed action; an interaction is answered once."""
        found = (
            await db.execute(
                _ANSWERING, {"interaction_id": interaction_id, "user_id": request.user.user_id}
            )
        ).first()
        if found is None:
            raise NotFound("interaction")
        row, task, call = found
        if row.status != "pending":
            raise Conflict(f"this was answered already ({row.status})")
        if task is None or TaskStatus(task.status).final:
            raise Conflict("the task has finished")
        if call is None or call.status != "proposed":
            raise Conflict("this action is no longer waiting for a decision")
        if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
            raise Conflict("this approval request expired; the call was not made")
        approve = data.decision == "approve"
        definition = CATALOGUE.get(call.tool)
        if row.kind == "input" and approve and data.values is None:
            raise InvalidInput(
                "this action needs your details: send them as `values`",
                [{"field": "values", "message": "required to approve this action"}],
            )
        arguments = call.arguments
        if approve:
            await _require_credentials(db, state.settings, task, definition)
            arguments = edited_arguments(
                definition, call.arguments, arguments=data.arguments, values=data.values
            )
            await ready_account(db, state.settings, task.user_id, definition, arguments)
            arguments = sealed_typing(
                definition, arguments, data.values,
                key=state.settings.call_secrets_key(), task_id=task.id,
            )  # fmt: skip
        client = _client(request)
        command = Respond(
            ask_id=row.id,
            approve=approve,
            arguments=arguments,
            reason=data.reason.strip(),
            actor=f"user: {request.user.user_id}",
            client=client,
            remember=approve and data.remember == "task" and definition is not None,
            response={"decision": data.decision, "reason": data.reason,
                      "arguments": arguments, "remember": data.remember},
            responded_by=f"{request.user.user_id}@{client['ip']}",
        )  # fmt: skip
        await state.store.change_in(db, task.id, command, user_id=request.user.user_id)
        if sa_inspect(row).expired_attributes:  # only after a retried change
            await db.refresh(row)
        return _view(row)
