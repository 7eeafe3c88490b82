"""The interaction endpoints: ``/interactions/…`` (answering them comes with approvals)."""

from __future__ import annotations

# Litestar reads handler annotations at run time: their types are real imports.
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from msgspec import Struct
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from troika_gateway.auth.middleware import Principal
from troika_gateway.db.models import Interaction
from troika_gateway.errors import NotFound
from troika_gateway.openapi import BEARER

__all__ = ["InteractionController", "InteractionView"]


class InteractionView(Struct, kw_only=True):
    """Something a task is waiting for the person to answer."""

    id: str
    task_id: str
    kind: str
    status: str
    prompt: dict[str, Any]
    created_at: datetime
    expires_at: datetime | None


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
