"""The watchdog: finds tasks that break the liveness invariant and repairs them.

A task that is neither final nor waiting for the person always has a request in flight (see
:func:`~troika_gateway.pipeline.liveness.missing_work`). The rules keep it so; the watchdog is the
net under them: every ``watchdog_sweep_s`` it looks at the tasks that have been still for
``watchdog_idle_s``, and one with nothing in flight is logged and repaired (what is missing is
requested again, through the rules like any other change). A task it found sound is not read
again until its version moves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select

from troika_gateway.db.models import Task
from troika_gateway.pipeline.liveness import missing_work
from troika_gateway.pipeline.snapshot import Repair
from troika_gateway.pipeline.states import TaskStatus
from troika_gateway.pipeline.sweeps import every

if TYPE_CHECKING:
    import asyncio

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_gateway.pipeline.store import TaskStore
    from troika_gateway.settings import GatewaySettings

__all__ = ["Watchdog"]

log = structlog.get_logger("troika.gateway.watchdog")

_WATCHED = tuple(
    s.value
    for s in TaskStatus
    if not s.final and s not in (TaskStatus.SCHEDULED, TaskStatus.NEEDS_GUIDANCE)
)
_BATCH = 500


class Watchdog:
    """Repairs tasks that have nothing in flight.

    Args:
        sessionmaker: The database.
        settings: How often to look, and how long a task must have been still.
        store: Changes tasks through the rules.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: GatewaySettings,
        store: TaskStore,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.store = store
        self._sound: dict[str, int] = {}  # task id → the version found sound

    async def run(self, stop: asyncio.Event) -> None:
        """Sweeps until ``stop`` is set."""
        await every(self.settings.watchdog_sweep_s, self.sweep, stop, name="watchdog")

    async def sweep(self, *, idle_s: float | None = None) -> list[str]:
        """Looks at every still task once; returns the ids of those it repaired."""
        idle = self.settings.watchdog_idle_s if idle_s is None else idle_s
        before = datetime.now(UTC) - timedelta(seconds=idle)
        async with self.sessionmaker() as db:
            candidates = list(
                await db.execute(
                    select(Task.id, Task.version)
                    .where(Task.status.in_(_WATCHED), Task.updated_at <= before)
                    .order_by(Task.updated_at)
                    .limit(_BATCH)
                )
            )
        still = {(task_id, version) for task_id, version in candidates}
        self._sound = {t: v for t, v in self._sound.items() if (t, v) in still}
        repaired: list[str] = []
        for task_id, version in candidates:
            if self._sound.get(task_id) == version:
                continue
            async with self.sessionmaker() as db:
                task = await db.get(Task, task_id)
                if task is None:
                    continue
                missing = missing_work(await self.store.snapshot(db, task))
            if not missing:
                self._sound[task_id] = version
                continue
            log.warning("task.stranded", task_id=task_id, missing=missing)
            applied = await self.store.change(self.sessionmaker, task_id, Repair())
            if applied.events:
                repaired.append(task_id)
        return repaired
