"""The outbox: commands are committed with the state change that caused them, then published.

The process that committed them publishes them right away (:class:`Publisher`) and marks them
published in batches. The relay, in the worker, publishes what is left unpublished a little
later: a crash between commit and publish is repaired within a second or two. Publishing is
idempotent: each row's id is its message's ``Nats-Msg-Id``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, update

from troika_gateway.db.models import Outbox
from troika_shared.errors import DependencyUnavailable
from troika_shared.messages import Message, decode, encode
from troika_shared.tracing import carrier

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_shared.bus import Bus

__all__ = ["Publisher", "Relay", "enqueue", "outbox_row"]

log = structlog.get_logger("troika.gateway.outbox")
_BATCH = 200


def enqueue(db: AsyncSession, message: Message, trace: Mapping[str, str] | None = None) -> None:
    """Adds a message to the outbox in the session's transaction, with the trace it is sent
    in (``trace``, a change's; the current span's when not given)."""
    db.add(Outbox(**outbox_row(message, trace)))


def outbox_row(message: Message, trace: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The outbox row of ``message`` (see :func:`enqueue`), as a plain insert writes it."""
    context = carrier() if trace is None else dict(trace)
    return {
        "id": message.id,
        "task_id": message.correlation_id or None,
        "kind": message.type,
        "payload": encode(message),
        "trace_context": context or None,
    }


class Publisher:
    """Publishes committed outbox messages at once; marks them published in batches.

    Args:
        bus: The bus.
        sessionmaker: The database (for the marks).
        writes: Held around each write where the database takes one writer at a time.
        interval_s: How often the marks are written.
    """

    def __init__(
        self,
        bus: Bus,
        sessionmaker: async_sessionmaker[AsyncSession],
        writes: asyncio.Lock | None = None,
        interval_s: float = 0.5,
    ) -> None:
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.writes: contextlib.AbstractAsyncContextManager[Any] = (
            writes or contextlib.nullcontext()
        )
        self.interval_s = interval_s
        self._done: list[str] = []

    async def publish(
        self, messages: Iterable[Message], trace: Mapping[str, str] | None = None
    ) -> None:
        """Publishes committed messages, all at once, in the trace they were committed in; one
        that does not go through is left to the relay."""
        await asyncio.gather(*(self._publish(message, trace) for message in messages))

    async def _publish(self, message: Message, trace: Mapping[str, str] | None) -> None:
        try:
            await self.bus.publish(message, trace=trace)
        except DependencyUnavailable as exc:
            log.warning("outbox.publish_failed", message_id=message.id, error=str(exc))
            return
        self._done.append(message.id)

    async def mark(self) -> int:
        """Marks what was published since the last mark; returns how many."""
        done, self._done = self._done, []
        for start in range(0, len(done), _BATCH):
            batch = done[start : start + _BATCH]
            async with self.writes, self.sessionmaker() as db:
                await db.execute(
                    update(Outbox)
                    .where(Outbox.id.in_(batch), Outbox.published_at.is_(None))
                    .values(published_at=datetime.now(UTC))
                )
                await db.commit()
        return len(done)

    async def run(self, stop: asyncio.Event) -> None:
        """Writes the marks until ``stop`` is set, and once more after."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
            try:
                await self.mark()
            except Exception:  # the relay publishes unmarked rows again: harmless
                log.exception("outbox.mark_failed")


class Relay:
    """Publishes outbox rows that are still unpublished ``grace_s`` after their commit.

    Args:
        sessionmaker: The database.
        bus: The bus.
        interval_s: Time between sweeps.
        writes: Held around each write where the database takes one writer at a time.
        grace_s: How long the committing process has to publish a row itself.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: Bus,
        interval_s: float,
        writes: asyncio.Lock | None = None,
        grace_s: float = 2.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.writes: contextlib.AbstractAsyncContextManager[Any] = (
            writes or contextlib.nullcontext()
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Sweeps until ``stop`` is set."""
        while not stop.is_set():
            try:
                while await self.sweep() == _BATCH:
                    continue
            except DependencyUnavailable as exc:
                log.warning("outbox.publish_failed", error=str(exc))
            except Exception:  # a failed sweep is retried on the next one
                log.exception("outbox.sweep_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    async def sweep(self, *, grace_s: float | None = None) -> int:
        """Publishes one batch of rows left unpublished; returns how many."""
        grace = self.grace_s if grace_s is None else grace_s
        before = datetime.now(UTC) - timedelta(seconds=grace)
        async with self.sessionmaker() as db:
            rows = list(
                await db.scalars(
                    select(Outbox)
                    .where(Outbox.published_at.is_(None), Outbox.created_at <= before)
                    .order_by(Outbox.created_at)
                    .limit(_BATCH)
                )
            )
        if not rows:
            return 0
        for row in rows:
            await self.bus.publish(decode(row.payload), trace=row.trace_context or {})
        # One commit for the batch: a crash before it only re-publishes, and JetStream drops
        # the copies by their ids.
        async with self.writes, self.sessionmaker() as db:
            await db.execute(
                update(Outbox)
                .where(Outbox.id.in_([row.id for row in rows]))
                .values(published_at=datetime.now(UTC))
            )
            await db.commit()
        return len(rows)
