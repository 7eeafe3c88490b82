"""The gateway worker's part in scheduling: an arq worker that fires due schedules, and a
reconciler that makes Redis agree with the database.

The reconciler runs at start and then every ``schedule_sweep_s``: a schedule whose job is
missing (Redis restarted, the gateway could not reach it) gets one; a schedule whose time passed
longer than ``schedule_misfire_grace_s`` ago, because nothing was running, follows its misfire
policy: ``run_once`` fires it once now, ``skip`` records the missed run and moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from arq.worker import Retry, Worker, func
from redis.exceptions import RedisError
from sqlalchemy import select

from troika_gateway.db.engine import WRITE_CONFLICTS
from troika_gateway.db.models import Schedule
from troika_gateway.scheduling import service
from troika_gateway.scheduling.jobs import FIRE, Jobs, decode, encode, queue_name
from troika_shared import tracing
from troika_shared.errors import DependencyUnavailable

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_gateway.pipeline.store import TaskStore
    from troika_gateway.scheduling.times import Clock
    from troika_gateway.settings import GatewaySettings

__all__ = ["Scheduler"]

log = structlog.get_logger("troika.scheduler")


class Scheduler:
    """Fires schedules on time, once, and reconciles Redis with the database.

    Args:
        sessionmaker: The database.
        settings: Redis, the poll interval, the sweep interval and the misfire grace.
        store: Starts the runs' tasks (and announces them).
        jobs: The deferred jobs (a connection of this process's own).
        clock: The time schedules are read against.
        writes: SQLite's single-writer queue, shared with the rest of the worker.
    """

    def __init__(  # noqa: PLR0917 - the worker's parts, as its siblings take them
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: GatewaySettings,
        store: TaskStore,
        jobs: Jobs,
        clock: Clock,
        writes: asyncio.Lock | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.clock = clock
        self.writes = writes or contextlib.nullcontext()

    def _worker(self) -> Worker:
        return Worker(
            functions=[func(self._fire_job, name=FIRE, max_tries=10)],
            redis_pool=self.jobs.redis,
            queue_name=queue_name(self.settings),
            handle_signals=False,
            poll_delay=self.settings.schedule_poll_s,
            job_serializer=encode,
            job_deserializer=decode,
            keep_result=3600,
            max_jobs=20,
            log_results=False,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Fires jobs and reconciles until ``stop`` is set. Redis going away stops only the
        firing through jobs, which starts again once it answers (the rest of the worker goes
        on, and missed times are caught up by the misfire policy)."""
        worker = self._worker()
        polling = asyncio.create_task(worker.async_run())
        try:
            while not stop.is_set():
                try:
                    await self.reconcile()
                except (DependencyUnavailable, RedisError, OSError, *WRITE_CONFLICTS) as exc:
                    log.warning("schedules.reconcile_failed", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.schedule_sweep_s)
                if polling.done() and not stop.is_set():
                    failure = None if polling.cancelled() else polling.exception()
                    log.warning("schedules.polling_stopped", error=str(failure))
                    worker = self._worker()
                    polling = asyncio.create_task(worker.async_run())
        finally:
            await _stop(worker, polling)  # the connection is the jobs', closed by their owner

    async def _fire_job(
        self,
        ctx: dict[str, Any],
        schedule_id: str,
        due: str,
        trace: dict[str, str] | None = None,
    ) -> str:
        """arq's entry point: fires one schedule at one fire time.

        The timer's work is a trace of its own, linked to the trace that queued the job (the
        person's request, or the run before); the task it starts goes on in the trace of the
        request that made it, and a later run's task in this one.
        """
        with tracing.job_span("fire schedule", trace, {"troika.schedule_id": schedule_id,
                                                      "troika.schedule.due": due}):  # fmt: skip
            try:
                return await self.fire(schedule_id, datetime.fromisoformat(due))
            except (DependencyUnavailable, OSError, *WRITE_CONFLICTS) as exc:
                log.warning("schedule.fire_retry", schedule_id=schedule_id, error=str(exc))
                raise Retry(defer=min(30, 2 ** int(ctx.get("job_try", 1)))) from exc

    async def fire(self, schedule_id: str, due: datetime) -> str:
        """Fires the schedule's run due at ``due`` (once, whoever else tries; a late one by its
        misfire policy); returns what happened, and queues the next run's job."""
        async with self.writes, self.sessionmaker() as db:
            grace = timedelta(seconds=self.settings.schedule_misfire_grace_s)
            fired = await service.fire(db, self.store, self.clock, schedule_id, due, grace=grace)
        await self._after(schedule_id, fired)
        return fired.outcome

    async def _after(self, schedule_id: str, fired: service.Fired) -> None:
        if fired.outcome == "stale":
            return
        log.info(
            "schedule.fired" if fired.outcome != "skipped" else "schedule.skipped",
            schedule_id=schedule_id, outcome=fired.outcome, task_id=fired.task_id,
            next_run_at=fired.next_run_at.isoformat() if fired.next_run_at else None,
        )  # fmt: skip
        await self.store.announce(fired.applied)
        if fired.next_run_at is not None:
            await self.jobs.plan(schedule_id, fired.next_run_at)

    async def reconcile(self) -> None:
        """Makes sure each active schedule's next firing has its job, and applies the misfire
        policy to those whose time passed while nothing ran."""
        async with self.sessionmaker() as db:
            rows = (
                await db.execute(
                    select(Schedule.id, Schedule.next_run_at).where(
                        Schedule.status == "active", Schedule.next_run_at.is_not(None)
                    )
                )
            ).all()
        now = self.clock.now()
        grace = self.settings.schedule_misfire_grace_s
        for schedule_id, due in rows:
            if due is None:  # pragma: no cover - the query excludes them
                continue
            if (now - due).total_seconds() <= grace:
                await self.jobs.plan(schedule_id, due)  # queued once, whoever asks
            else:
                await self.fire(schedule_id, due)  # missed while down: its misfire policy


async def _stop(worker: Worker, polling: asyncio.Task[None]) -> None:
    """Ends arq's polling after its current round, once the firings it started are done.

    Not by cancelling it: a cancellation can land inside the Redis transaction that takes a job
    (its connection is then never returned) or be swallowed by one of the Redis client's reads
    with a timeout (the polling then goes on, and stopping waits for ever). As a burst of no more
    jobs, arq's own loop takes nothing new and returns at its next turn. Shielded, so that a
    stop cut short still leaves it to end by itself.
    """
    worker.burst, worker.max_burst_jobs = True, 0
    with contextlib.suppress(RedisError, OSError):
        await asyncio.shield(polling)
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
