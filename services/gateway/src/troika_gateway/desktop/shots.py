"""Screenshots from the person's PCs, kept only while the model may look at them.

A screenshot a desktop action took comes back with its result when the model reads images; it
waits among the task's hidden files (:data:`~troika_shared.desktop.SHOTS_FOLDER`, in the folder
or the bucket where the executors find it) for the executor's next step, and is deleted after
five minutes, or as soon as its task has ended. The executor's own screenshots of a browser
page wait there too, and go the same way.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from sqlalchemy import or_, select

from troika_gateway.db.models import Task
from troika_gateway.pipeline.states import TaskStatus
from troika_gateway.pipeline.sweeps import every
from troika_shared.desktop import (
    SHOT_KEEP_S,
    SHOTS_FOLDER,
    check_png,
    new_shot_name,
    shot_age,
    shot_name,
    write_private,
)

if TYPE_CHECKING:
    import asyncio
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_shared.files import FileStore

__all__ = ["ShotArea"]

_FINAL = tuple(s.value for s in TaskStatus if s.final)
_ENDED_WITHIN = timedelta(days=1)  # an ended task's screenshots go at its first sweep


class ShotArea:
    """The screenshots kept among the tasks' files.

    Args:
        files: Where the tasks' files are.
        staging: A folder of this process's own, where a screenshot is written on its way in.
        keep_s: How long a screenshot is kept.
    """

    def __init__(self, files: FileStore, staging: Path, keep_s: float = SHOT_KEEP_S) -> None:
        self.files = files
        self.staging = staging
        self.keep_s = keep_s

    async def keep(self, task_id: str, png: bytes) -> str:
        """Keeps one screenshot of a task (readable by the services' user only, where it is a
        file); returns its name.

        Raises:
            ValueError: It is not a PNG image, or the task id is not one of ours.
        """
        check_png(png)
        name = new_shot_name()
        partial = self.staging / f"{uuid.uuid4().hex}.png"
        try:
            await anyio.to_thread.run_sync(write_private, partial, png)
            await self.files.write(task_id, shot_name(name), partial)
        finally:
            await anyio.Path(partial).unlink(missing_ok=True)
        return name

    async def sweep(self, tasks: dict[str, bool], now: float | None = None) -> int:
        """Deletes the screenshots of ``tasks`` (id → whether it ended) that are older than
        ``keep_s``, and every one of an ended task; returns how many went."""
        removed = 0
        for task_id, ended in tasks.items():
            for name in await self.files.list(task_id, SHOTS_FOLDER):
                shot = name.removeprefix(f"{SHOTS_FOLDER}/")
                try:
                    old = shot_age(shot, now) >= self.keep_s
                except ValueError:
                    old = True  # not a name of ours
                if ended or old:
                    await self.files.delete(task_id, name)
                    removed += 1
        return removed

    async def run(
        self, sessionmaker: async_sessionmaker[AsyncSession], stop: asyncio.Event
    ) -> None:
        """Sweeps every 30 seconds until ``stop`` is set: the tasks under way, and those that
        ended within the last day."""

        async def sweep() -> int:
            since = datetime.now(UTC) - _ENDED_WITHIN
            async with sessionmaker() as db:
                rows = await db.execute(
                    select(Task.id, Task.status).where(
                        or_(Task.status.not_in(_FINAL), Task.updated_at >= since)
                    )
                )
                tasks = {task_id: status in _FINAL for task_id, status in rows}
            return await self.sweep(tasks)

        await every(30.0, sweep, stop, name="desktop_shots")
