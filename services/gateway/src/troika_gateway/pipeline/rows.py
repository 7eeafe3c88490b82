"""Between the database and the rules: a task's rows read into its snapshot, and the new
state written back (only what changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import BindParameter, bindparam, case, delete, exists, func, select

from troika_gateway.db.models import (
    Device,
    File,
    Interaction,
    LlmUsage,
    Subtask,
    Task,
    ToolCall,
    User,
    new_uuid,
)
from troika_gateway.interactions.policies import all_modes
from troika_gateway.pipeline.snapshot import (
    AskState,
    CallState,
    Respond,
    SubtaskState,
    TaskState,
)
from troika_gateway.pipeline.states import AskStatus, CallStatus, SubtaskStatus, TaskStatus
from troika_gateway.pipeline.stuck import PERSON_LIMITS
from troika_shared.messages import Plan, StepProposed
from troika_shared.messages import Subtask as PlannedSubtask

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_gateway.pipeline.snapshot import Command


__all__ = ["Rows", "load", "person_budget", "spending", "write"]

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
_TASK_ID: BindParameter[str] = bindparam("task_id")
_SUBTASKS = select(Subtask).where(Subtask.task_id == _TASK_ID).order_by(Subtask.position)
_CALLS = (
    select(ToolCall).where(ToolCall.task_id == _TASK_ID).order_by(ToolCall.created_at, ToolCall.id)
)
_PENDING_ASKS = select(Interaction).where(
    Interaction.task_id == _TASK_ID, Interaction.status == AskStatus.PENDING
)
_FILES = select(File.name).where(File.task_id == _TASK_ID)
_USER_ID: BindParameter[str] = bindparam("user_id")
_LIMITS = (
    User.daily_budget_usd,
    User.monthly_budget_usd,
    User.daily_budget_tokens,
    User.monthly_budget_tokens,
)
# The person's own limits and whether they have a PC paired, in one trip.
_PERSON = select(
    *_LIMITS,
    exists().where(Device.user_id == User.id, Device.revoked_at.is_(None)),
).where(User.id == _USER_ID)


@dataclass
class Rows:
    """The rows a snapshot was read from, to write the new state back to."""

    task: Task
    subtasks: list[Subtask]
    calls: dict[str, ToolCall]
    asks: dict[str, Interaction]
    desktop: bool  # whether the person has a PC paired (the desktop tools are offered)


async def load(
    db: AsyncSession, task: Task, command: Command | None = None
) -> tuple[TaskState, Rows]:
    """The task's state as the rules see it, and the rows it was read from.

    The person's tool policies decide proposed calls only: they are read for a proposal of
    calls (or when no ``command`` is named), not for every change.
    """
    ids = {"task_id": task.id}
    subtasks = list(await db.scalars(_SUBTASKS, ids))
    calls = list(await db.scalars(_CALLS, ids))
    asks = list(await db.scalars(_PENDING_ASKS, ids))
    files = tuple(await db.scalars(_FILES, ids))
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
    found = (await db.execute(_PERSON, {"user_id": task.user_id})).one_or_none()
    *limit_values, desktop = found or (None,) * (len(_LIMITS) + 1)
    person_limits, person_spent = await _spent_against(
        db, task.user_id, datetime.now(UTC), limit_values
    )
    key_of = {c.id: c.key for c in calls}
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
        subtasks=[_subtask_state(row) for row in subtasks],
        calls=[_call_state(row) for row in calls],
        asks=[
            AskState(
                id=row.id,
                call_key=key_of.get(row.tool_call_id or "", ""),
                kind="input" if row.kind == "input" else "approval",
                expires_at=row.expires_at,
            )
            for row in asks
        ],
        files=tuple(sorted(files)),
        tokens=int(tokens),
        cost_usd=float(cost),
        policies=await all_modes(db, task.user_id, task.id) if _decides_calls(command) else {},
        review_plan=task.review_plan,
        paused_for=task.paused_for,
        person_limits=person_limits,
        person_spent=person_spent,
    )
    rows = Rows(
        task=task,
        subtasks=subtasks,
        calls={c.key: c for c in calls},
        asks={a.id: a for a in asks},
        desktop=bool(desktop),
    )
    return state, rows


async def write(  # noqa: PLR0912 - one block per kind of row
    db: AsyncSession,
    rows: Rows,
    *,
    old: TaskState,
    new: TaskState,
    command: Command,
    now: datetime,
) -> None:
    task = rows.task
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
    if [s.planned for s in new.subtasks] != [s.planned for s in old.subtasks]:
        await db.execute(delete(Subtask).where(Subtask.task_id == task.id))
        for sub in new.subtasks:
            db.add(_subtask_row(task.id, sub))
    else:
        for sub_row, sub in zip(rows.subtasks, new.subtasks, strict=True):
            _set(sub_row, "status", sub.status.value)
            _set(sub_row, "steps", sub.steps)
            _set(sub_row, "result", sub.result)
            _set(sub_row, "in_flight", sub.in_flight)
            if list(sub.result_files) != sub_row.result_files:
                sub_row.result_files = list(sub.result_files)
            if list(sub.revision_notes) != sub_row.revision_notes:
                sub_row.revision_notes = list(sub.revision_notes)
    await _write_calls(db, rows, new)
    for ask in new.asks:
        ask_row = rows.asks.get(ask.id)
        if ask_row is None or ask.status == AskStatus.PENDING:
            continue  # a new one is written by its Ask effect
        ask_row.status = ask.status.value
        ask_row.responded_at = now
        if isinstance(command, Respond) and command.ask_id == ask.id:
            ask_row.response = command.response
            ask_row.responded_by = command.responded_by[:255]


async def _write_calls(db: AsyncSession, rows: Rows, new: TaskState) -> None:
    """The task's calls: withdrawn ones deleted, new ones added, the others updated."""
    task = rows.task
    kept = {c.key for c in new.calls}
    for key, withdrawn in list(rows.calls.items()):
        if key not in kept:
            await db.delete(withdrawn)  # its pending approval goes with it
            del rows.calls[key]
    for call in new.calls:
        known = rows.calls.get(call.key)
        if known is None:
            row = ToolCall(id=new_uuid(), task_id=task.id, subtask_key=call.subtask,
                           key=call.key, tool=call.tool, arguments=call.arguments,
                           step=call.step, status=call.status.value,
                           proposals=call.proposals)  # fmt: skip
            db.add(row)
            rows.calls[call.key] = row
            continue
        _set(known, "status", call.status.value)
        _set(known, "proposals", call.proposals)
        _set(known, "output", call.output)
        _set(known, "error", call.error)
        _set(known, "images", list(call.images))


async def person_budget(
    db: AsyncSession, user_id: str, now: datetime
) -> tuple[dict[str, float], dict[str, float]]:
    """The person's own limits (keys of :data:`~.stuck.PERSON_LIMITS`: dollars and tokens a day
    and a month, those they set) and what their tasks used in each of those periods (read
    only when they set one)."""
    found = (await db.execute(select(*_LIMITS).where(User.id == user_id))).one_or_none()
    return await _spent_against(db, user_id, now, found or (None,) * len(_LIMITS))


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


def _subtask_state(row: Subtask) -> SubtaskState:
    planned = PlannedSubtask(
        id=row.key,
        title=row.title,
        description=row.description,
        depends_on=tuple(row.depends_on),
        priority=row.priority,
        acceptance_criteria=tuple(row.acceptance_criteria),
        tool_hints=tuple(row.tool_hints),
    )
    return SubtaskState(
        key=row.key,
        planned=planned,
        position=row.position,
        status=SubtaskStatus(row.status),
        steps=row.steps,
        result=row.result,
        result_files=tuple(row.result_files),
        revision_notes=tuple(row.revision_notes),
        in_flight=row.in_flight,
    )


def _subtask_row(task_id: str, sub: SubtaskState) -> Subtask:
    planned = sub.planned
    return Subtask(
        task_id=task_id,
        key=sub.key,
        position=sub.position,
        title=planned.title,
        description=planned.description,
        depends_on=list(planned.depends_on),
        priority=planned.priority,
        acceptance_criteria=list(planned.acceptance_criteria),
        tool_hints=list(planned.tool_hints),
        status=sub.status.value,
        steps=sub.steps,
        result=sub.result,
        result_files=list(sub.result_files),
        revision_notes=list(sub.revision_notes),
        in_flight=sub.in_flight,
    )


def _call_state(row: ToolCall) -> CallState:
    return CallState(
        key=row.key,
        subtask=row.subtask_key,
        tool=row.tool,
        arguments=row.arguments,
        step=row.step,
        status=CallStatus(row.status),
        proposals=row.proposals,
        output=row.output,
        error=row.error,
        images=tuple(row.images or ()),
    )
