"""Between the database and the rules: a task's rows read into its snapshot, and the new
state written back (only what changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import BindParameter, bindparam, case, delete, exists, func, insert, select
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from troika_gateway.db.models import (
    Base,
    Device,
    Interaction,
    LlmUsage,
    Subtask,
    Task,
    ToolCall,
    User,
    new_uuid,
    table_of,
)
from troika_gateway.interactions.policies import all_modes
from troika_gateway.pipeline.reading import FILES, read
from troika_gateway.pipeline.snapshot import (
    AskState,
    CallState,
    Respond,
    SubtaskState,
    TaskState,
)
from troika_gateway.pipeline.states import AskStatus, TaskStatus
from troika_gateway.pipeline.stuck import PERSON_LIMITS
from troika_shared.messages import Plan, StepProposed

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_gateway.pipeline.batch import Batch
    from troika_gateway.pipeline.snapshot import Command


__all__ = [
    "PERSON_COLUMNS",
    "Kept",
    "Rows",
    "kept_after",
    "load",
    "person_budget",
    "spending",
    "write",
]

_COUNTERS = (
    "paused_for",
    "steps",
    "dispatches",
    "revision_round",
    "unusable_streak",
    "failure_streak",
    "denials",
    "in_flight",
    "started_at",
    "finished_at",
)


# Built once: a statement's SQL and cache key are then worked out once, not on every change.
# The task's own row is the ORM's (its version guards concurrent writers, and the request that
# changes a task shows it after); its subtasks, calls and approvals are read (.reading) and
# written as plain rows, which costs a fraction of the ORM's bookkeeping.
_SUBTASK_ROWS = table_of(Subtask)
_CALL_ROWS = table_of(ToolCall)
_USER_ID: BindParameter[str] = bindparam("user_id")
_LIMITS = (
    User.daily_budget_usd,
    User.monthly_budget_usd,
    User.daily_budget_tokens,
    User.monthly_budget_tokens,
)
# The person's own limits and whether they have a PC paired, in one trip; a change reads them
# with its task (:data:`PERSON_COLUMNS`, beside ``tasks`` joined to ``users``).
PERSON_COLUMNS = (
    *_LIMITS,
    exists().where(Device.user_id == User.id, Device.revoked_at.is_(None)).label("desktop"),
)
_PERSON = select(*PERSON_COLUMNS).where(User.id == _USER_ID)
_SUBTASK_FIELDS = ("status", "steps", "result", "in_flight", "result_files", "revision_notes")
_CALL_FIELDS = ("status", "proposals", "output", "error", "images")


@dataclass
class Rows:
    """The rows a snapshot was read from, to write the new state back to: the task's, and the
    ids of its subtasks' and calls' rows by key."""

    task: Task
    subtask_ids: dict[str, str]
    call_ids: dict[str, str]
    desktop: bool  # whether the person has a PC paired (the desktop tools are offered)
    files_as_recorded: bool = True  # the state's files are the task's recorded ones


@dataclass(frozen=True, slots=True)
class Kept:
    """A task's subtasks, calls, pending approvals and files as a committed change left them,
    at the version of the task's row that change wrote.

    Every change that writes those rows writes the task's row too (:func:`write`), so its
    version moves on with them: a copy whose version is the row's is the database's, in any
    process, and saves the change reading them (four statements; one on PostgreSQL). Files
    recorded outside a change (uploads) are recorded in one that announces them, which moves
    the version too. ``files`` is ``None`` when the change could not record every file the
    state lists: the next change reads them.
    """

    version: int
    subtasks: tuple[SubtaskState, ...]
    calls: tuple[CallState, ...]
    asks: tuple[AskState, ...]
    subtask_ids: dict[str, str]
    call_ids: dict[str, str]
    files: tuple[str, ...] | None

    @classmethod
    def new_task(cls, task: Task, *, with_files: bool) -> Kept:
        """What a task inserted in the open transaction has: no subtasks, calls or approvals
        yet, and files only if some were recorded with it (``with_files``: read them)."""
        return cls(version=task.version, subtasks=(), calls=(), asks=(), subtask_ids={},
                   call_ids={}, files=None if with_files else ())  # fmt: skip


def kept_after(rows: Rows, state: TaskState) -> Kept:
    """What a change wrote (its new ``state``, through ``rows``), to be kept once committed."""
    pending = tuple(a for a in state.asks if a.status == AskStatus.PENDING)
    return Kept(version=rows.task.version, subtasks=tuple(state.subtasks),
                calls=tuple(state.calls), asks=pending, subtask_ids=dict(rows.subtask_ids),
                call_ids=dict(rows.call_ids),
                files=state.files if rows.files_as_recorded else None)  # fmt: skip


async def load(
    db: AsyncSession,
    task: Task,
    command: Command | None = None,
    kept: Kept | None = None,
    person: Sequence[Any] | None = None,
) -> tuple[TaskState, Rows]:
    """The task's state as the rules see it, and the rows it was read from.

    The person's tool policies decide proposed calls only: they are read for a proposal of
    calls (or when no ``command`` is named), not for every change. ``kept``: the task's rows
    as this process last wrote them, used if the task has not changed since. ``person``: the
    values of :data:`PERSON_COLUMNS`, when read already with the task.
    """
    if kept is not None and kept.version == task.version:
        subtasks, calls, asks = list(kept.subtasks), list(kept.calls), list(kept.asks)
        subtask_ids, call_ids = dict(kept.subtask_ids), dict(kept.call_ids)
        files = kept.files
        if files is None:
            files = tuple(sorted(await db.scalars(FILES, {"task_id": task.id})))
    else:
        found = await read(db, task.id)
        subtasks, calls, asks = found.subtasks, found.calls, found.asks
        subtask_ids, call_ids, files = found.subtask_ids, found.call_ids, found.files
    budget = task.budget or {}
    tokens, cost = 0, 0.0
    if budget.get("max_tokens") or budget.get("max_cost_usd"):
        tokens, cost = (
            await db.execute(
                select(
                    func.coalesce(func.sum(LlmUsage.prompt_tokens + LlmUsage.completion_tokens), 0),
                    func.coalesce(func.sum(LlmUsage.cost_usd), 0.0),
                ).where(LlmUsage.task_id == task.id)
            )
        ).one()
    if person is None:
        person = (await db.execute(_PERSON, {"user_id": task.user_id})).one_or_none()
    *limit_values, desktop = person or (None,) * len(PERSON_COLUMNS)
    person_limits, person_spent = await _spent_against(
        db, task.user_id, datetime.now(UTC), limit_values
    )
    state = TaskState(
        id=task.id,
        user_id=task.user_id,
        objective=task.objective,
        status=TaskStatus(task.status),
        title=task.title,
        reason=task.status_reason,
        plan=msgspec.convert(task.plan, Plan) if task.plan else None,
        review=task.review,
        result=task.result,
        budget=task.budget,
        guidance=tuple(task.guidance),
        steps=task.steps,
        dispatches=task.dispatches,
        revision_round=task.revision_round,
        unusable_streak=task.unusable_streak,
        failure_streak=task.failure_streak,
        denials=task.denials,
        in_flight=task.in_flight,
        started_at=task.started_at,
        finished_at=task.finished_at,
        subtasks=subtasks,
        calls=calls,
        asks=asks,
        files=files,
        tokens=int(tokens),
        cost_usd=float(cost),
        policies=await all_modes(db, task.user_id, task.id) if _decides_calls(command) else {},
        review_plan=task.review_plan,
        paused_for=task.paused_for,
        person_limits=person_limits,
        person_spent=person_spent,
    )
    rows = Rows(task=task, subtask_ids=subtask_ids, call_ids=call_ids, desktop=bool(desktop))
    return state, rows


async def write(
    db: AsyncSession,
    rows: Rows,
    *,
    old: TaskState,
    new: TaskState,
    command: Command,
    now: datetime,
    batch: Batch,
) -> None:
    """Writes what changed from ``old`` to ``new``: the task's row through the ORM, the updates
    of its subtasks, calls and approvals and its new calls in the change's ``batch`` (all
    written at its end), a new plan's subtasks and withdrawn calls at once.

    The task's row is written whenever any of its other rows are, so that its version tells
    every process that they changed (see :class:`Kept`)."""
    task = rows.task
    if new.subtasks != old.subtasks or new.calls != old.calls or new.asks != old.asks:
        task.updated_at = now
    _set(task, "status", new.status.value)
    _set(task, "title", new.title)
    _set(task, "status_reason", new.reason)
    if new.plan is not old.plan:
        task.plan = msgspec.to_builtins(new.plan) if new.plan is not None else None
    if new.review is not old.review:
        task.review = new.review
    if new.budget != old.budget:
        task.budget = new.budget
    _set(task, "result", new.result)
    if new.guidance != old.guidance:
        task.guidance = list(new.guidance)
    for name in _COUNTERS:
        _set(task, name, getattr(new, name))
    await _write_subtasks(db, rows, old, new, now=now, batch=batch)
    await _write_calls(db, rows, old, new, now=now, batch=batch)
    answered = {a.id for a in old.asks if a.status == AskStatus.PENDING}
    for ask in new.asks:
        if ask.id not in answered or ask.status == AskStatus.PENDING:
            continue  # a new one is written by its Ask effect
        values: dict[str, Any] = {"status": ask.status.value, "responded_at": now}
        if isinstance(command, Respond) and command.ask_id == ask.id:
            values["response"] = command.response
            values["responded_by"] = command.responded_by[:255]
        _update(db, batch, Interaction, ask.id, values)


async def _write_subtasks(
    db: AsyncSession, rows: Rows, old: TaskState, new: TaskState, *, now: datetime, batch: Batch
) -> None:
    """A new plan's subtasks replace the old ones; otherwise each changed one is updated."""
    if [s.planned for s in new.subtasks] != [s.planned for s in old.subtasks]:
        await db.execute(delete(_SUBTASK_ROWS).where(_SUBTASK_ROWS.c.task_id == rows.task.id))
        if new.subtasks:
            fresh = [_subtask_row(rows.task.id, sub) for sub in new.subtasks]
            await db.execute(insert(_SUBTASK_ROWS), fresh)
            rows.subtask_ids = {row["key"]: row["id"] for row in fresh}
        else:
            rows.subtask_ids = {}
        return
    for before, sub in zip(old.subtasks, new.subtasks, strict=True):
        changed = _changed(before, sub, _SUBTASK_FIELDS)
        if changed:
            _update(db, batch, Subtask, rows.subtask_ids[sub.key], changed | {"updated_at": now})


async def _write_calls(
    db: AsyncSession, rows: Rows, old: TaskState, new: TaskState, *, now: datetime, batch: Batch
) -> None:
    """The task's calls: withdrawn ones deleted (at once), new ones added and the others
    updated (in the ``batch``)."""
    kept = {c.key for c in new.calls}
    withdrawn = [key for key in rows.call_ids if key not in kept]
    if withdrawn:  # their pending approvals go with them (the foreign key cascades)
        gone = [rows.call_ids.pop(key) for key in withdrawn]
        await db.execute(delete(_CALL_ROWS).where(_CALL_ROWS.c.id.in_(gone)))
        for row_id in gone:
            held = db.identity_map.get(identity_key(ToolCall, row_id))
            if held is not None:
                db.expunge(held)
    before = {c.key: c for c in old.calls}
    for call in new.calls:
        known = before.get(call.key)
        if known is None:
            row_id = new_uuid()
            rows.call_ids[call.key] = row_id
            batch.insert(_CALL_ROWS, {
                "id": row_id, "task_id": rows.task.id, "subtask_key": call.subtask,
                "key": call.key, "tool": call.tool, "arguments": call.arguments,
                "step": call.step, "status": call.status.value, "proposals": call.proposals,
                "output": call.output, "error": call.error, "images": list(call.images),
            })  # fmt: skip
            continue
        changed = _changed(known, call, _CALL_FIELDS)
        if changed:
            _update(db, batch, ToolCall, rows.call_ids[call.key], changed | {"updated_at": now})


def _changed(old: object, new: object, fields: Sequence[str]) -> dict[str, Any]:
    """The ``fields`` whose value differs, with the new values as the database stores them."""
    changed: dict[str, Any] = {}
    for name in fields:
        value = getattr(new, name)
        if value != getattr(old, name):
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            changed[name] = value
    return changed


def _update(
    db: AsyncSession, batch: Batch, model: type[Base], row_id: str, values: dict[str, Any]
) -> None:
    """Updates one row by its id in the ``batch``, and the session's copy of it at once, if the
    request holds one (the approval route shows the approval it answered)."""
    batch.update(table_of(model), row_id, values)
    held = db.identity_map.get(identity_key(model, row_id))
    if held is not None:
        for name, value in values.items():
            set_committed_value(held, name, value)


async def person_budget(
    db: AsyncSession, user_id: str, now: datetime, person: Sequence[Any] | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """The person's own limits (keys of :data:`~.stuck.PERSON_LIMITS`: dollars and tokens a day
    and a month, those they set) and what their tasks used in each of those periods (read
    only when they set one). ``person``: the values of :data:`PERSON_COLUMNS`, when read
    already."""
    if person is None:
        found = (await db.execute(select(*_LIMITS).where(User.id == user_id))).one_or_none()
        values: Sequence[Any] = found or (None,) * len(_LIMITS)
    else:
        values = person[: len(_LIMITS)]
    return await _spent_against(db, user_id, now, values)


async def _spent_against(
    db: AsyncSession, user_id: str, now: datetime, values: Sequence[float | int | None]
) -> tuple[dict[str, float], dict[str, float]]:
    """The limits the person set (of their limit ``values``) and what they used against each."""
    limits = {k: float(v) for k, v in zip(PERSON_LIMITS, values, strict=True) if v is not None}
    if not limits:
        return {}, {}
    spent = await spending(db, user_id, now)
    return limits, {k: spent[k] for k in limits}


async def spending(db: AsyncSession, user_id: str, now: datetime) -> dict[str, float]:
    """What the person's tasks have used today and this month (UTC): US dollars (``day``,
    ``month``) and tokens (``day_tokens``, ``month_tokens``)."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    today = LlmUsage.created_at >= day
    tokens = LlmUsage.prompt_tokens + LlmUsage.completion_tokens
    sums = (
        await db.execute(
            select(
                func.sum(case((today, LlmUsage.cost_usd), else_=0.0)),
                func.sum(LlmUsage.cost_usd),
                func.sum(case((today, tokens), else_=0)),
                func.sum(tokens),
            )
            .join(Task, Task.id == LlmUsage.task_id)
            .where(Task.user_id == user_id, LlmUsage.created_at >= month)
        )
    ).one()
    return {key: float(value or 0) for key, value in zip(PERSON_LIMITS, sums, strict=True)}


def _decides_calls(command: Command | None) -> bool:
    return command is None or (isinstance(command, StepProposed) and bool(command.tool_calls))


def _set(row: object, name: str, value: object) -> None:
    """Sets an attribute only when it changes (an unchanged row is not written)."""
    if getattr(row, name) != value:
        setattr(row, name, value)


def _subtask_row(task_id: str, sub: SubtaskState) -> dict[str, Any]:
    planned = sub.planned
    return {
        "id": new_uuid(),
        "task_id": task_id,
        "key": sub.key,
        "position": sub.position,
        "title": planned.title,
        "description": planned.description,
        "depends_on": list(planned.depends_on),
        "priority": planned.priority,
        "acceptance_criteria": list(planned.acceptance_criteria),
        "tool_hints": list(planned.tool_hints),
        "status": sub.status.value,
        "steps": sub.steps,
        "result": sub.result,
        "result_files": list(sub.result_files),
        "revision_notes": list(sub.revision_notes),
        "in_flight": sub.in_flight,
    }
