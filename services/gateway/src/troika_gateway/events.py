"""The task event log: numbered rows in the database, pushed live over the bus after commit.

The database is the log's source of truth (``GET /tasks/{id}/events`` and WebSocket resumption
read it); the bus only carries the news, so a missed live message costs nothing but a re-read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from troika_gateway.db.models import Task, TaskEvent, table_of
from troika_shared.errors import DependencyUnavailable
from troika_shared.messages import LoggedEvent, derive_id, utcnow
from troika_shared.messages import TaskEvents as TaskEventsMessage
from troika_shared.task_events import body, kind_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_shared.bus import Bus
    from troika_shared.task_events import TaskEventBody

__all__ = [
    "EVENTS",
    "append",
    "event_row",
    "next_event",
    "publish_events",
    "to_message",
]

log = structlog.get_logger("troika.gateway.events")


def next_event(task: Task, kind: str, data: dict[str, Any]) -> TaskEvent:
    """The task's next event, numbered after its last one, not yet written (a change writes
    its events as plain rows: see :func:`event_row`).

    Numbering goes through the task row, whose version column makes two writers that race for
    the same number conflict instead of both succeeding.
    """
    task.last_event_seq += 1
    return TaskEvent(
        task_id=task.id,
        user_id=task.user_id,
        seq=task.last_event_seq,
        kind=kind,
        data=data,
        created_at=utcnow(),
    )


EVENTS = table_of(TaskEvent)
"""The events' table, for a plain insert: no ORM bulk step for rows never read back (their
number is their identity in the log)."""


def event_row(event: TaskEvent) -> dict[str, Any]:
    """The row of a new event in :data:`EVENTS`."""
    return {
        "task_id": event.task_id,
        "user_id": event.user_id,
        "seq": event.seq,
        "kind": event.kind,
        "data": event.data,
        "created_at": event.created_at,
    }


def append(db: AsyncSession, task: Task, event: TaskEventBody) -> TaskEvent:
    """Adds a typed event to the task's log, in the session (see :func:`next_event`)."""
    row = next_event(task, kind_of(event), body(event))
    db.add(row)
    return row


def to_message(events: Sequence[TaskEvent]) -> TaskEventsMessage:
    """The bus message for stored events of one task, in order (its id is stable, so
    re-publishing is harmless)."""
    first = events[0]
    return TaskEventsMessage(
        id=derive_id(first.task_id, "events", first.seq, events[-1].seq),
        correlation_id=first.task_id,
        occurred_at=events[-1].created_at,
        user_id=first.user_id,
        events=tuple(
            LoggedEvent(seq=e.seq, kind=e.kind, data=e.data, at=e.created_at) for e in events
        ),
    )


async def publish_events(bus: Bus, events: Iterable[TaskEvent]) -> None:
    """Announces committed events to live viewers, one message per task; a failure only
    delays them until a re-read."""
    by_task: dict[str, list[TaskEvent]] = {}
    for event in events:
        by_task.setdefault(event.task_id, []).append(event)
    for task_id, entries in by_task.items():
        try:
            await bus.announce(to_message(entries))
        except DependencyUnavailable as exc:
            log.warning("event.publish_failed", task_id=task_id, seq=entries[0].seq, error=str(exc))
