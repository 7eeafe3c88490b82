"""A task's subtasks, calls, pending approvals and files, read as the rules see them.

A change reads them when the task's row moved on since this process last wrote them (another
process changed the task: the API answering an approval, say; see :class:`.rows.Kept`). On
PostgreSQL the four come in one statement, each table's rows as a JSON array, for the reason a
change's writes go in one (:mod:`.batch`): every statement is a round trip. SQLite, in the
process, reads them one statement each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import JSON, aggregate_order_by

from troika_gateway.db.models import File, Interaction, Subtask, ToolCall, table_of
from troika_gateway.pipeline.snapshot import AskState, CallState, SubtaskState
from troika_gateway.pipeline.states import AskStatus, CallStatus, SubtaskStatus
from troika_shared.messages import Subtask as PlannedSubtask

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy import ColumnElement, Table
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["FILES", "Read", "read"]

_SUBTASKS = table_of(Subtask)
_CALLS = table_of(ToolCall)
_ASKS = table_of(Interaction)
_FILE_ROWS = table_of(File)
_TASK_ID: BindParameter[str] = bindparam("task_id")
# Built once: a statement's SQL and cache key are then worked out once, not on every change.
_SUBTASKS_OF = (
    select(_SUBTASKS).where(_SUBTASKS.c.task_id == _TASK_ID).order_by(_SUBTASKS.c.position)
)
_CALLS_OF = (
    select(_CALLS).where(_CALLS.c.task_id == _TASK_ID).order_by(_CALLS.c.created_at, _CALLS.c.id)
)
_ASK_COLUMNS = (_ASKS.c.id, _ASKS.c.tool_call_id, _ASKS.c.kind, _ASKS.c.expires_at)
_PENDING = (_ASKS.c.task_id == _TASK_ID, _ASKS.c.status == AskStatus.PENDING)
_PENDING_ASKS = select(*_ASK_COLUMNS).where(*_PENDING)
FILES = select(_FILE_ROWS.c.name).where(_FILE_ROWS.c.task_id == _TASK_ID)
"""The names of the task's recorded files (``task_id`` a parameter)."""


def _rows_as_json(table: Table, row: ColumnElement[Any], *order: ColumnElement[Any]) -> Any:  # noqa: ANN401
    """The task's rows of ``table`` (``row`` of each, in ``order``) as one JSON array."""
    return (
        select(
            func.coalesce(
                func.json_agg(aggregate_order_by(row, *order) if order else row),
                literal_column("'[]'::json"),
                type_=JSON,
            )
        )
        .where(table.c.task_id == _TASK_ID)
        .scalar_subquery()
    )


_ALL_AT_ONCE = select(
    _rows_as_json(_SUBTASKS, _SUBTASKS.table_valued(), _SUBTASKS.c.position),
    _rows_as_json(_CALLS, _CALLS.table_valued(), _CALLS.c.created_at, _CALLS.c.id),
    select(
        func.coalesce(
            func.json_agg(func.json_build_object(*(p for c in _ASK_COLUMNS for p in (c.key, c)))),
            literal_column("'[]'::json"),
            type_=JSON,
        )
    )
    .where(*_PENDING)
    .scalar_subquery(),
    _rows_as_json(_FILE_ROWS, _FILE_ROWS.c.name),
)


@dataclass(frozen=True, slots=True)
class Read:
    """What was read: the task's subtasks, calls and pending approvals, the ids of the
    subtasks' and calls' rows by key, and the names of its files."""

    subtasks: list[SubtaskState]
    calls: list[CallState]
    asks: list[AskState]
    subtask_ids: dict[str, str]
    call_ids: dict[str, str]
    files: tuple[str, ...]


async def read(db: AsyncSession, task_id: str) -> Read:
    """The task's subtasks, calls, pending approvals and files, as they are now."""
    ids = {"task_id": task_id}
    subtasks: Sequence[Mapping[Any, Any]]
    calls: Sequence[Mapping[Any, Any]]
    asks: Sequence[Mapping[Any, Any]]
    if db.get_bind().dialect.name == "postgresql":
        subtasks, calls, asks, names = (await db.execute(_ALL_AT_ONCE, ids)).one()
        asks = [  # JSON has the time in the server's zone, as text
            {**a, "expires_at": datetime.fromisoformat(a["expires_at"]).astimezone(UTC)}
            if a["expires_at"] is not None
            else a
            for a in asks
        ]
    else:
        subtasks = (await db.execute(_SUBTASKS_OF, ids)).mappings().all()
        calls = (await db.execute(_CALLS_OF, ids)).mappings().all()
        asks = (await db.execute(_PENDING_ASKS, ids)).mappings().all()
        names = list(await db.scalars(FILES, ids))
    key_of = {c["id"]: c["key"] for c in calls}
    return Read(
        subtasks=[subtask_state(row) for row in subtasks],
        calls=[call_state(row) for row in calls],
        asks=[
            AskState(
                id=row["id"],
                call_key=key_of.get(row["tool_call_id"] or "", ""),
                kind="input" if row["kind"] == "input" else "approval",
                expires_at=row["expires_at"],
            )
            for row in asks
        ],
        subtask_ids={s["key"]: s["id"] for s in subtasks},
        call_ids={c["key"]: c["id"] for c in calls},
        files=tuple(sorted(names)),
    )


def subtask_state(row: Mapping[Any, Any]) -> SubtaskState:
    """The state of a subtask from its row."""
    planned = PlannedSubtask(
        id=row["key"],
        title=row["title"],
        description=row["description"],
        depends_on=tuple(row["depends_on"]),
        priority=row["priority"],
        acceptance_criteria=tuple(row["acceptance_criteria"]),
        tool_hints=tuple(row["tool_hints"]),
    )
    return SubtaskState(
        key=row["key"],
        planned=planned,
        position=row["position"],
        status=SubtaskStatus(row["status"]),
        steps=row["steps"],
        result=row["result"],
        result_files=tuple(row["result_files"]),
        revision_notes=tuple(row["revision_notes"]),
        in_flight=row["in_flight"],
    )


def call_state(row: Mapping[Any, Any]) -> CallState:
    """The state of a tool call from its row."""
    return CallState(
        key=row["key"],
        subtask=row["subtask_key"],
        tool=row["tool"],
        arguments=row["arguments"],
        step=row["step"],
        status=CallStatus(row["status"]),
        proposals=row["proposals"],
        output=row["output"],
        error=row["error"],
        images=tuple(row["images"] or ()),
    )
