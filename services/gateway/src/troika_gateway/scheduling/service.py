"""Schedules in the database, the source of truth: creating them, firing them exactly once,
missed runs after downtime, cancelling, pausing and resuming.

A schedule always has one upcoming task, waiting as ``scheduled``; firing turns it into a
running task (queued for the planners) and, for a repeating schedule, makes the next one. A
firing is claimed by moving the schedule's ``next_run_at`` on from the fire time it is for, in
the same transaction that records the run (unique per schedule and fire time): two workers, a
repeated job or a reconciliation racing with its job can each try, and one of them wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from troika_gateway.db.engine import WRITE_CONFLICTS
from troika_gateway.db.models import (
    Schedule,
    ScheduleRun,
    Task,
    TaskEvent,
    TaskStatus,
    ToolPolicy,
)
from troika_gateway.errors import Conflict, InvalidInput, NotFound
from troika_gateway.events import append
from troika_gateway.interactions.policies import USER_SCOPE
from troika_gateway.pipeline.snapshot import Cancel, Fire
from troika_gateway.pipeline.store import Applied
from troika_gateway.scheduling.times import InvalidSchedule, localize, next_fire, zone
from troika_gateway.storage import copy_files
from troika_shared import task_events as ev
from troika_shared.catalogue import CATALOGUE

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_gateway.pipeline.store import TaskStore
    from troika_gateway.scheduling.times import Clock

__all__ = [
    "Fired",
    "ScheduleSpec",
    "cancel_schedule",
    "create_scheduled_task",
    "fire",
    "first_run",
    "pause_schedule",
    "resume_schedule",
]

Mode = Literal["ask", "ask_once", "allow", "deny"]
Outcome = Literal["ran", "ran_late", "skipped", "stale"]


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """When a new task runs, as the person asked (see ``TaskCreate``)."""

    run_at: datetime | None = None
    cron: str | None = None
    timezone: str | None = None
    until: datetime | None = None
    max_runs: int | None = None
    misfire: Literal["run_once", "skip"] = "run_once"
    policies: dict[str, Mode] | None = None


@dataclass(frozen=True, slots=True)
class Fired:
    """What one attempt to fire did: ``outcome``, the run's task, the next fire time, and the
    events to publish."""

    outcome: Outcome
    task_id: str | None = None
    next_run_at: datetime | None = None
    applied: Applied = field(default_factory=Applied)


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, [{"field": field, "message": message}])


def _first(spec: ScheduleSpec, timezone: str, now: datetime) -> datetime:
    if spec.run_at is not None:
        if spec.until is not None or spec.max_runs is not None:
            raise InvalidSchedule("until", "`until` and `max_runs` are for repeating schedules")
        first = localize(spec.run_at, spec.timezone)
        if first <= now:
            raise InvalidSchedule("run_at", "that time is in the past")
        return first
    following = next_fire(spec.cron or "", timezone, now)
    if following is None:
        raise InvalidSchedule("cron", "this expression never fires")
    return following


def first_run(spec: ScheduleSpec, now: datetime) -> tuple[datetime, str]:
    """The first fire time and the schedule's time zone.

    Raises:
        InvalidInput: The schedule is contradictory, in the past, or never fires.
    """
    if (spec.run_at is None) == (spec.cron is None):
        raise _invalid("run_at", "give either `run_at` (once) or `cron` (repeating), not both")
    timezone = spec.timezone or "UTC"
    try:
        zone(timezone)
        first = _first(spec, timezone, now)
        until = localize(spec.until, timezone, "until") if spec.until is not None else None
    except InvalidSchedule as exc:
        raise _invalid(exc.field, str(exc)) from None
    if until is not None and (until <= now or first > until):
        raise _invalid("until", "the schedule would end before it first runs")
    return first, timezone


async def _policy_snapshot(
    db: AsyncSession, user_id: str, chosen: dict[str, Mode] | None
) -> dict[str, str]:
    """Every tool's mode as it stands now (the person's policies for all tasks, then the ones
    chosen for this schedule): its runs keep exactly this, whatever changes later."""
    unknown = sorted(set(chosen or {}) - set(CATALOGUE))
    if unknown:
        raise _invalid("policies", f"no such tool: {', '.join(unknown)}")
    rows = await db.scalars(
        select(ToolPolicy).where(ToolPolicy.user_id == user_id, ToolPolicy.scope == USER_SCOPE)
    )
    current = {row.tool: row.mode for row in rows}
    snapshot = {name: current.get(name, "ask") for name in CATALOGUE}
    for name, mode in (chosen or {}).items():
        snapshot[name] = "deny" if current.get(name) == "deny" else mode  # a deny stays
    return snapshot


async def create_scheduled_task(
    db: AsyncSession, task: Task, spec: ScheduleSpec, clock: Clock
) -> Schedule:
    """Makes ``task`` (just inserted, not yet started) wait for its schedule; the caller commits.

    Raises:
        InvalidInput: The schedule is not valid (the field says which part).
    """
    first, timezone = first_run(spec, clock.now())
    schedule = Schedule(
        user_id=task.user_id,
        objective=task.objective,
        title=task.title,
        run_at=first if spec.run_at is not None else None,
        cron=spec.cron,
        timezone=timezone,
        ends_at=localize(spec.until, timezone, "until") if spec.until is not None else None,
        max_runs=spec.max_runs,
        misfire_policy=spec.misfire,
        next_run_at=first,
        status="active",
        policy={"tools": await _policy_snapshot(db, task.user_id, spec.policies)},
        budget=task.budget,
    )
    db.add(schedule)
    await db.flush()
    task.schedule_id = schedule.id
    task.status = TaskStatus.SCHEDULED.value
    task.status_reason = f"runs at {first.isoformat()}"
    return schedule


async def _upcoming(db: AsyncSession, schedule: Schedule) -> Task | None:
    return await db.scalar(
        select(Task).where(
            Task.schedule_id == schedule.id, Task.status == TaskStatus.SCHEDULED.value
        )
    )


def _following(schedule: Schedule, after: datetime) -> datetime | None:
    """The fire time after ``after``: none for a one-shot, past its end or its run count."""
    if schedule.cron is None:
        return None
    if schedule.max_runs is not None and schedule.runs >= schedule.max_runs:
        return None
    moment = next_fire(schedule.cron, schedule.timezone, after)
    if moment is None or (schedule.ends_at is not None and moment > schedule.ends_at):
        return None
    return moment


def _next_task(db: AsyncSession, schedule: Schedule, due: datetime) -> Task:
    task = Task(
        user_id=schedule.user_id,
        title=schedule.title,
        objective=schedule.objective,
        status=TaskStatus.SCHEDULED.value,
        status_reason=f"runs at {due.isoformat()}",
        budget=schedule.budget,
        schedule_id=schedule.id,
        guidance=[],
        last_event_seq=0,
    )
    db.add(task)
    return task


async def _claim(
    db: AsyncSession, schedule: Schedule, due: datetime, following: datetime | None, runs: int
) -> bool:
    """Moves the schedule from ``due`` to ``following``; ``False`` if another got there first."""
    result = await db.execute(
        update(Schedule)
        .where(
            Schedule.id == schedule.id,
            Schedule.status == "active",
            Schedule.next_run_at == due,
        )
        .values(
            next_run_at=following,
            runs=runs,
            status="active" if following is not None else "finished",
            updated_at=datetime.now(UTC),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def fire(
    db: AsyncSession,
    store: TaskStore,
    clock: Clock,
    schedule_id: str,
    due: datetime,
    *,
    grace: timedelta,
) -> Fired:
    """Starts the run of ``schedule_id`` that is due at ``due``, once; commits.

    A fire time that passed more than ``grace`` ago (nothing was running)
    follows the schedule's misfire policy: ``run_once`` runs it now, once, and says so on the
    task; ``skip`` records and announces the missed run and moves on.
    """
    schedule = await db.get(Schedule, schedule_id)
    if schedule is None or schedule.status != "active" or schedule.next_run_at != due:
        return Fired("stale")
    now = clock.now()
    late = now - due > grace
    if late and schedule.misfire_policy == "skip":
        return await _skip(db, store, schedule, due, now)
    runs = schedule.runs + 1
    schedule.runs = runs  # for _following; the claim below writes it
    # On time (or a little late): the next slot after this one, so a slow firing loses none.
    # Missed while down: the next slot from now, the missed ones having run once, here.
    following = _following(schedule, now if late else due)
    task = await _upcoming(db, schedule) or _next_task(db, schedule, due)
    await db.flush()
    db.add(
        ScheduleRun(
            schedule_id=schedule.id, due_at=due, fired_at=now, task_id=task.id,
            outcome="ran_late" if late else "ran",
        )
    )  # fmt: skip
    try:
        await db.flush()
        claimed = await _claim(db, schedule, due, following, runs)
    except IntegrityError:
        claimed = False
    if not claimed:
        await db.rollback()
        return Fired("stale")
    await _apply_policies(db, schedule, task)
    applied = await store.apply_in(db, task, Fire(schedule_id=schedule.id, due=due, late=late))
    if following is not None:
        upcoming = _next_task(db, schedule, following)
        await db.flush()
        # What the person attached to the schedule's task goes with every run.
        await copy_files(db, store.files, task.id, upcoming.id, only_uploads=True)
        applied.events.append(
            append(db, upcoming, ev.TaskScheduled(schedule_id=schedule.id,
                                                  run_at=following.isoformat()))
        )  # fmt: skip
    await db.commit()
    outcome: Outcome = "ran_late" if late else "ran"
    return Fired(outcome, task.id, following, applied)


async def _apply_policies(db: AsyncSession, schedule: Schedule, task: Task) -> None:
    """The run's task decides calls with the policies accepted when the schedule was made."""
    for tool, mode in dict(schedule.policy.get("tools", {})).items():
        db.add(ToolPolicy(user_id=task.user_id, scope=task.id, tool=tool, mode=mode))


async def _skip(
    db: AsyncSession, store: TaskStore, schedule: Schedule, due: datetime, now: datetime
) -> Fired:
    """A run missed while nothing was running, under the ``skip`` misfire policy: recorded and
    announced, not run; a repeating schedule moves on to its next time. Commits."""
    following = _following(schedule, now)
    task = await _upcoming(db, schedule)
    db.add(
        ScheduleRun(
            schedule_id=schedule.id, due_at=due, fired_at=now,
            task_id=task.id if task else None, outcome="skipped",
        )
    )  # fmt: skip
    try:
        await db.flush()
        claimed = await _claim(db, schedule, due, following, schedule.runs)
    except IntegrityError:
        claimed = False
    if not claimed:
        await db.rollback()
        return Fired("stale")
    applied = Applied()
    if task is not None:
        reason = "its time passed while Troika was not running (misfire policy: skip)"
        skipped = ev.ScheduleSkipped(schedule_id=schedule.id, due=due.isoformat(), reason=reason)
        applied.events.append(append(db, task, skipped))
        if following is None:
            cancelled = await store.apply_in(
                db, task, Cancel(by="schedule", reason=f"not run: {reason}")
            )
            applied.events.extend(cancelled.events)
            applied.messages.extend(cancelled.messages)
        else:
            task.status_reason = f"runs at {following.isoformat()}"
            applied.events.append(append(db, task, ev.TaskScheduled(run_at=following.isoformat())))
    await db.commit()
    return Fired("skipped", task.id if task else None, following, applied)


async def _owned(db: AsyncSession, user_id: str, schedule_id: str) -> Schedule:
    schedule = await db.scalar(
        select(Schedule).where(Schedule.id == schedule_id, Schedule.user_id == user_id)
    )
    if schedule is None:
        raise NotFound("schedule")
    return schedule


async def cancel_schedule(
    db: AsyncSession, store: TaskStore, user_id: str, schedule_id: str
) -> tuple[datetime | None, Applied]:
    """Cancels a schedule: it never fires again and its upcoming task shows ``cancelled``.
    Commits; returns the fire time whose job to withdraw, and the events.

    Raises:
        NotFound: No such schedule of the caller's.
    """
    for attempt in range(3):
        schedule = await _owned(db, user_id, schedule_id)
        if schedule.status in ("cancelled", "finished"):
            return None, Applied()
        due = schedule.next_run_at
        schedule.status = "cancelled"
        schedule.next_run_at = None
        task = await _upcoming(db, schedule)
        applied = Applied()
        if task is not None:
            cancel = Cancel(by="schedule", reason="the schedule was cancelled")
            applied = await store.apply_in(db, task, cancel)
        try:
            await db.commit()
        except WRITE_CONFLICTS:
            await db.rollback()
            if attempt == 2:
                raise Conflict("the schedule kept changing; try again") from None
            continue
        return due, applied
    raise AssertionError("unreachable")  # pragma: no cover


async def pause_schedule(
    db: AsyncSession, user_id: str, schedule_id: str
) -> tuple[datetime | None, list[TaskEvent]]:
    """Pauses a repeating schedule (nothing fires until it is resumed). Commits; returns the
    fire time whose job to withdraw, and the events.

    Raises:
        NotFound: No such schedule of the caller's.
        Conflict: It is not a repeating schedule, or not active.
    """
    schedule = await _owned(db, user_id, schedule_id)
    if schedule.cron is None:
        raise Conflict("only repeating schedules can be paused; cancel a one-time one instead")
    if schedule.status == "paused":
        return None, []
    if schedule.status != "active":
        raise Conflict(f"the schedule is {schedule.status}")
    due = schedule.next_run_at
    schedule.status = "paused"
    schedule.next_run_at = None
    events = []
    task = await _upcoming(db, schedule)
    if task is not None:
        task.status_reason = "the schedule is paused"
        events.append(append(db, task, ev.SchedulePaused(schedule_id=schedule.id)))
    await db.commit()
    return due, events


async def resume_schedule(
    db: AsyncSession, user_id: str, schedule_id: str, clock: Clock
) -> tuple[datetime | None, list[TaskEvent]]:
    """Resumes a paused schedule from now on (the times it missed while paused are not run).
    Commits; returns its next fire time and the events.

    Raises:
        NotFound: No such schedule of the caller's.
        Conflict: It is not paused, or it has no time left to run.
    """
    schedule = await _owned(db, user_id, schedule_id)
    if schedule.status == "active":
        return schedule.next_run_at, []
    if schedule.status != "paused":
        raise Conflict(f"the schedule is {schedule.status}")
    following = _following(schedule, clock.now())
    if following is None:
        raise Conflict("the schedule has no runs left before its end")
    schedule.status = "active"
    schedule.next_run_at = following
    events = []
    task = await _upcoming(db, schedule) or _next_task(db, schedule, following)
    await db.flush()
    task.status_reason = f"runs at {following.isoformat()}"
    events.append(append(db, task, ev.ScheduleResumed(run_at=following.isoformat())))
    await db.commit()
    return following, events
