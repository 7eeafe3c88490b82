"""The caller's schedules: ``/schedules``."""

from __future__ import annotations

# Litestar reads handler annotations at run time: their types are real imports.
from datetime import datetime
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from msgspec import Struct
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from troika_gateway.auth.middleware import Principal
from troika_gateway.db.models import Schedule, ScheduleRun, Task, TaskStatus
from troika_gateway.errors import NotFound
from troika_gateway.events import publish_events
from troika_gateway.openapi import BEARER
from troika_gateway.scheduling.service import cancel_schedule, pause_schedule, resume_schedule
from troika_gateway.scheduling.times import describe, remaining

__all__ = ["ScheduleController", "ScheduleView"]


class RunView(Struct, kw_only=True):
    """One fire time of a schedule and what came of it."""

    due_at: datetime
    fired_at: datetime
    outcome: str
    task_id: str | None


class ScheduleView(Struct, kw_only=True):
    """A schedule: when it runs next and how long until then.

    Attributes:
        kind: ``once`` or ``repeating``.
        status: ``active``, ``paused``, ``finished`` or ``cancelled``.
        seconds_until_next: Seconds until the next run (``null`` without one).
        next_task_id: The task waiting for the next run (status ``scheduled``).
    """

    id: str
    kind: str
    title: str
    objective: str
    status: str
    run_at: datetime | None
    cron: str | None
    description: str
    timezone: str
    until: datetime | None
    max_runs: int | None
    runs: int
    misfire_policy: str
    next_run_at: datetime | None
    seconds_until_next: float | None
    next_task_id: str | None
    last_run: RunView | None
    created_at: datetime


async def _view(db: AsyncSession, schedule: Schedule, state: State) -> ScheduleView:
    upcoming = await db.scalar(
        select(Task.id).where(
            Task.schedule_id == schedule.id, Task.status == TaskStatus.SCHEDULED.value
        )
    )
    last = await db.scalar(
        select(ScheduleRun)
        .where(ScheduleRun.schedule_id == schedule.id)
        .order_by(ScheduleRun.due_at.desc())
        .limit(1)
    )
    return ScheduleView(
        id=schedule.id,
        kind="once" if schedule.cron is None else "repeating",
        title=schedule.title,
        objective=schedule.objective,
        status=schedule.status,
        run_at=schedule.run_at,
        cron=schedule.cron,
        description=describe(schedule.cron) if schedule.cron else "once",
        timezone=schedule.timezone,
        until=schedule.ends_at,
        max_runs=schedule.max_runs,
        runs=schedule.runs,
        misfire_policy=schedule.misfire_policy,
        next_run_at=schedule.next_run_at,
        seconds_until_next=remaining(schedule.next_run_at, state.clock),
        next_task_id=upcoming,
        last_run=RunView(
            due_at=last.due_at, fired_at=last.fired_at, outcome=last.outcome, task_id=last.task_id
        )
        if last
        else None,
        created_at=schedule.created_at,
    )


class ScheduleController(Controller):
    """The caller's schedules; make one with ``POST /tasks`` and ``run_at`` or ``cron``."""

    path = "/schedules"
    tags = ["schedules"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = BEARER

    @get("/")
    async def list_schedules(
        self,
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
        state: State,
    ) -> list[ScheduleView]:
        """The caller's schedules, the next to run first (finished and cancelled ones last)."""
        rows = await db.scalars(
            select(Schedule)
            .where(Schedule.user_id == request.user.user_id)
            .order_by(
                Schedule.next_run_at.is_(None), Schedule.next_run_at, Schedule.created_at.desc()
            )
        )
        return [await _view(db, row, state) for row in rows]

    @get("/{schedule_id:str}")
    async def show(
        self,
        schedule_id: FromPath[str],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
        state: State,
    ) -> ScheduleView:
        """One schedule."""
        row = await db.scalar(
            select(Schedule).where(
                Schedule.id == schedule_id, Schedule.user_id == request.user.user_id
            )
        )
        if row is None:
            raise NotFound("schedule")
        return await _view(db, row, state)

    @delete("/{schedule_id:str}", status_code=204)
    async def cancel(
        self,
        schedule_id: FromPath[str],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
        state: State,
    ) -> None:
        """Cancels the schedule: nothing fires any more, its waiting task shows ``cancelled``."""
        due, applied = await cancel_schedule(db, state.store, request.user.user_id, schedule_id)
        if due is not None:
            await state.jobs.withdraw(schedule_id, due)
        await state.store.announce(applied)

    @post("/{schedule_id:str}/pause", status_code=200)
    async def pause(
        self,
        schedule_id: FromPath[str],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
        state: State,
    ) -> ScheduleView:
        """Pauses a repeating schedule until it is resumed."""
        due, events = await pause_schedule(db, request.user.user_id, schedule_id)
        if due is not None:
            await state.jobs.withdraw(schedule_id, due)
        await publish_events(state.bus, events)
        return await self._reload(db, schedule_id, state)

    @post("/{schedule_id:str}/resume", status_code=200)
    async def resume(
        self,
        schedule_id: FromPath[str],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
        state: State,
    ) -> ScheduleView:
        """Resumes a paused schedule from now on (runs missed while paused are not made up)."""
        due, events = await resume_schedule(db, request.user.user_id, schedule_id, state.clock)
        if due is not None:
            await state.jobs.plan(schedule_id, due)
        await publish_events(state.bus, events)
        return await self._reload(db, schedule_id, state)

    @staticmethod
    async def _reload(db: AsyncSession, schedule_id: str, state: State) -> ScheduleView:
        row = await db.get(Schedule, schedule_id, populate_existing=True)
        if row is None:  # pragma: no cover - it was just changed
            raise NotFound("schedule")
        return await _view(db, row, state)
