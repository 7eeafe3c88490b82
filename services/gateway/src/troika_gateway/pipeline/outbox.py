"""The outbox: commands are committed with the state change that caused them, then published.

Whoever commits outbox rows kicks the relay (a core NATS message); the relay also sweeps on a
timer, so a crash between commit and publish is repaired within a second or so. Publishing is
idempotent: each row's id is its message's ``Nats-Msg-Id``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select, update

from troika_gateway.db.engine import WRITE_CONFLICTS
from troika_gateway.db.models import Outbox, Task, TaskStatus
from troika_gateway.events import append_event, publish_events
from troika_shared.errors import DependencyUnavailable
from troika_shared.messages import (
    Message,
    PlanRequested,
    TaskStopped,
    decode,
    derive_id,
    encode,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_shared.bus import Bus

__all__ = ["Relay", "enqueue", "enqueue_stopped", "kick", "kick_subject"]

log = structlog.get_logger("troika.gateway.outbox")
_BATCH = 200
_MARK_ATTEMPTS = 5


def enqueue(db: AsyncSession, message: Message) -> None:
    """Adds a message to the outbox in the session's transaction."""
    db.add(
        Outbox(
            id=message.id,
            task_id=message.correlation_id or None,
            kind=message.type,
            payload=encode(message),
        )
    )


def enqueue_stopped(db: AsyncSession, task_id: str, status: str) -> None:
    """Tells the executors, through the outbox, that a task stopped: its queued calls must not
    run any more."""
    enqueue(db, TaskStopped(id=derive_id(task_id, "stopped"), correlation_id=task_id,
                            status=status))  # fmt: skip


def kick_subject(bus: Bus) -> str:
    """The subject that wakes the relays."""
    return f"{bus.topology.prefix}.outbox.kick"


async def kick(bus: Bus) -> None:
    """Wakes the relays (best effort: they sweep on a timer anyway)."""
    with contextlib.suppress(Exception):
        await bus.nc.publish(kick_subject(bus), b"")


class Relay:
    """Publishes outbox rows that are not published yet.

    Args:
        sessionmaker: The database.
        bus: The bus.
        interval_s: Time between sweeps when nobody kicks.
        writes: Held around each write where the database takes one writer at a time.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: Bus,
        interval_s: float,
        writes: asyncio.Lock | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.interval_s = interval_s
        self.writes = writes or contextlib.nullcontext()
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Sweeps until ``stop`` is set."""

        async def woken(_: object) -> None:
            self._wake.set()

        subscription = await self.bus.nc.subscribe(kick_subject(self.bus), cb=woken)
        try:
            while not stop.is_set():
                self._wake.clear()  # before the sweep: a kick during it means another sweep
                try:
                    while await self.sweep() == _BATCH:
                        continue
                except DependencyUnavailable as exc:
                    log.warning("outbox.publish_failed", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval_s):
                        waits = [
                            asyncio.create_task(self._wake.wait()),
                            asyncio.create_task(stop.wait()),
                        ]
                        try:
                            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                        finally:
                            for wait in waits:
                                wait.cancel()
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def sweep(self) -> int:
        """Publishes one batch of pending rows; returns how many."""
        async with self.sessionmaker() as db:
            rows = list(
                await db.scalars(
                    select(Outbox)
                    .where(Outbox.published_at.is_(None))
                    .order_by(Outbox.created_at)
                    .limit(_BATCH)
                )
            )
        messages = [decode(row.payload) for row in rows]
        for message in messages:
            await self.bus.publish(message)
        if rows:
            # One commit for the batch: a crash before it only re-publishes, and JetStream drops
            # the copies by their ids.
            async with self.writes, self.sessionmaker() as db:
                await db.execute(
                    update(Outbox)
                    .where(Outbox.id.in_([row.id for row in rows]))
                    .values(published_at=datetime.now(UTC))
                )
                await db.commit()
        for message in messages:
            if isinstance(message, PlanRequested):
                await self._mark_planning(message.correlation_id)
        return len(rows)

    async def _mark_planning(self, task_id: str) -> None:
        """A queued task whose plan request went out is now planning."""
        for _ in range(_MARK_ATTEMPTS):
            async with self.writes, self.sessionmaker() as db:
                task = await db.get(Task, task_id)
                if task is None or task.status != TaskStatus.QUEUED.value:
                    return  # another writer moved it on; nothing to do
                task.status = TaskStatus.PLANNING.value
                task.started_at = task.started_at or datetime.now(UTC)
                event = append_event(db, task, "task.planning", {"status": task.status})
                try:
                    await db.commit()
                except WRITE_CONFLICTS:
                    continue  # another writer committed to the task first: look again
            await publish_events(self.bus, [event])
            return
