"""Approvals that nobody answers in time expire as denied; the agent is told, and it counts.

The worker sweeps for them every ``expiry_sweep_s`` seconds; each expiry is its own transaction
through the task's state machine, like any other change to a task.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select

from troika_gateway.db.engine import WRITE_CONFLICTS
from troika_gateway.db.models import Interaction, Task, TaskStatus, ToolCall
from troika_gateway.events import publish_events
from troika_gateway.pipeline.machine import Machine
from troika_gateway.pipeline.outbox import kick

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_gateway.settings import GatewaySettings
    from troika_shared.bus import Bus

__all__ = ["Expirer"]

log = structlog.get_logger("troika.gateway.expiry")
_BATCH = 100


class Expirer:
    """Expires overdue approvals.

    Args:
        sessionmaker: The database.
        settings: The timeout and the sweep interval.
        bus: Where events and kicks go after each expiry.
        writes: Held around each transaction where the database takes one writer at a time.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: GatewaySettings,
        bus: Bus,
        writes: asyncio.Lock | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.bus = bus
        self.writes = writes or contextlib.nullcontext()

    async def run(self, stop: asyncio.Event) -> None:
        """Sweeps until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:  # a failed sweep is retried on the next one
                log.exception("expiry.sweep_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.expiry_sweep_s)

    async def sweep(self) -> int:
        """Expires every overdue approval; returns how many."""
        async with self.sessionmaker() as db:
            due = list(
                await db.scalars(
                    select(Interaction.id)
                    .where(
                        Interaction.status == "pending",
                        Interaction.expires_at <= datetime.now(UTC),
                    )
                    .order_by(Interaction.expires_at)
                    .limit(_BATCH)
                )
            )
        expired = 0
        for interaction_id in due:
            expired += await self._expire(interaction_id)
        return expired

    async def _expire(self, interaction_id: str) -> int:
        for _ in range(5):
            async with self.writes, self.sessionmaker() as db:
                interaction = await db.get(Interaction, interaction_id)
                if interaction is None or interaction.status != "pending":
                    return 0  # answered meanwhile
                task = await db.get(Task, interaction.task_id)
                call = (
                    await db.get(ToolCall, interaction.tool_call_id)
                    if interaction.tool_call_id
                    else None
                )
                machine = Machine(db, self.settings)
                if task is None or TaskStatus(task.status).final or call is None:
                    interaction.status = "expired"
                elif call.status == "proposed":
                    await machine.expire(task, call, interaction)
                else:
                    interaction.status = "expired"
                try:
                    await db.commit()
                except WRITE_CONFLICTS:
                    continue
            log.info("approval.expired", interaction_id=interaction_id)
            await publish_events(self.bus, machine.events)
            await kick(self.bus)
            return 1
        return 0
