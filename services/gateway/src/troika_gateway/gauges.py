"""What the whole system holds right now, read when Prometheus scrapes the gateway: tasks by
status, approvals waiting for people, the outbox's backlog and its oldest row's age, and the
messages in each JetStream stream (a work queue's count is its depth)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from prometheus_client import Gauge
from sqlalchemy import func, select

from troika_gateway.db.models import Interaction, Outbox, Task
from troika_gateway.pipeline.states import AskStatus, TaskStatus

if TYPE_CHECKING:
    from litestar.datastructures import State

__all__ = ["refresh"]

log = structlog.get_logger("troika.gateway")

TASKS = Gauge("troika_tasks", "Tasks of every person, by status.", ["status"])
PENDING_ASKS = Gauge(
    "troika_pending_approvals", "Approvals and forms waiting for a person's answer."
)
OUTBOX_BACKLOG = Gauge(
    "troika_outbox_unpublished", "Commands and events committed but not yet published."
)
OUTBOX_LAG = Gauge(
    "troika_outbox_lag_seconds", "How long the oldest unpublished outbox row has waited."
)
STREAM_MESSAGES = Gauge(
    "troika_stream_messages",
    "Messages held by each JetStream stream (for a work queue: the messages not yet handled).",
    ["stream"],
)


async def refresh(state: State) -> None:
    """Reads the gauges' values from the database and the bus (a failing source keeps its
    last values and is logged, so a scrape never fails for it)."""
    try:
        async with state.sessionmaker() as db:
            counts = dict((await db.execute(select(Task.status, func.count()).group_by(
                Task.status))).all())  # fmt: skip
            for status in TaskStatus:
                TASKS.labels(status.value).set(counts.get(status.value, 0))
            PENDING_ASKS.set(await db.scalar(select(func.count()).select_from(Interaction)
                             .where(Interaction.status == AskStatus.PENDING)) or 0)  # fmt: skip
            backlog, oldest = (await db.execute(
                select(func.count(), func.min(Outbox.created_at))
                .where(Outbox.published_at.is_(None))
            )).one()  # fmt: skip
        OUTBOX_BACKLOG.set(backlog or 0)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        OUTBOX_LAG.set((datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0)
    except Exception as exc:  # noqa: BLE001 - a scrape reports what it can
        log.warning("metrics.database_unread", error=repr(exc))
    bus = getattr(state, "bus", None)
    if bus is None:
        return
    for spec in bus.topology.streams():
        try:
            info = await bus.js.stream_info(spec.name)
        except Exception as exc:  # noqa: BLE001 - as above
            log.warning("metrics.stream_unread", stream=spec.name, error=repr(exc))
            continue
        STREAM_MESSAGES.labels(spec.key.value.lower()).set(info.state.messages)
