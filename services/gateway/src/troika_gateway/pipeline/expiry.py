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

from troika_gateway.db.models import Interaction
from troika_gateway.pipeline.snapshot import Expire

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_gateway.pipeline.store import TaskStore
    from troika_gateway.settings import GatewaySettings

__all__ = ["Expirer"]

log = structlog.get_logger("troika.gateway.expiry")
_BATCH = 100


class Expirer:
    """Expires overdue approvals.

    Args:
        sessionmaker: The database.
        settings: The sweep interval.
        store: Changes tasks through the rules.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: GatewaySettings,
        store: TaskStore,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.store = store

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
                await db.execute(
                    select(Interaction.id, Interaction.task_id)
                    .where(
                        Interaction.status == "pending",
                        Interaction.expires_at <= datetime.now(UTC),
                    )
                    .order_by(Interaction.expires_at)
                    .limit(_BATCH)
                )
            )
        expired = 0
        for interaction_id, task_id in due:
            applied = await self.store.change(
                self.sessionmaker, task_id, Expire(ask_id=interaction_id)
            )
            if applied.refused is None and applied.task is not None:
                log.info("approval.expired", interaction_id=interaction_id, task_id=task_id)
                expired += 1
        return expired
