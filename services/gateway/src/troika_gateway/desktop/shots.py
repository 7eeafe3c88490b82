"""Screenshots from the person's PCs, kept only while the model may look at them.

A screenshot a desktop action took comes back with its result when the model reads images; it
waits here (one private folder per task, outside the task's files and the database) for the
executor's next step, and is deleted after five minutes, or as soon as its task has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select

from troika_gateway.db.models import Task
from troika_gateway.pipeline.states import TaskStatus
from troika_gateway.pipeline.sweeps import every
from troika_shared.desktop import SHOT_KEEP_S, keep_shot, shots_folder

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = ["ShotArea"]

log = structlog.get_logger("troika.gateway.desktop")

_FINAL = tuple(s.value for s in TaskStatus if s.final)


class ShotArea:
    """The kept screenshots under the data folder.

    Args:
        data_dir: The data folder (shared with the executors on one machine).
        keep_s: How long a screenshot is kept.
    """

    def __init__(self, data_dir: Path, keep_s: float = SHOT_KEEP_S) -> None:
        self.root = shots_folder(data_dir)
        self.data_dir = data_dir
        self.keep_s = keep_s

    def keep(self, task_id: str, png: bytes) -> str:
        """Keeps one screenshot of a task; returns its name.

        Raises:
            ValueError: It is not a PNG image.
        """
        return keep_shot(self.data_dir, task_id, png)

    def sweep(self, ended: set[str], now: float | None = None) -> int:
        """Deletes the screenshots older than ``keep_s`` and every one of the ``ended`` tasks;
        returns how many went."""
        now = time.time() if now is None else now
        removed = 0
        if not self.root.is_dir():
            return 0
        for folder in self.root.iterdir():
            if folder.name in ended:
                removed += sum(1 for _ in folder.iterdir())
                shutil.rmtree(folder, ignore_errors=True)
                continue
            for shot in folder.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if now - shot.stat().st_mtime >= self.keep_s:
                        shot.unlink()
                        removed += 1
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        return removed

    def tasks(self) -> list[str]:
        """The tasks that have screenshots kept."""
        return [f.name for f in self.root.iterdir()] if self.root.is_dir() else []

    async def run(
        self, sessionmaker: async_sessionmaker[AsyncSession], stop: asyncio.Event
    ) -> None:
        """Sweeps every 30 seconds until ``stop`` is set."""

        async def sweep() -> int:
            ended: set[str] = set()
            if held := self.tasks():
                async with sessionmaker() as db:
                    ended = set(
                        await db.scalars(
                            select(Task.id).where(Task.id.in_(held), Task.status.in_(_FINAL))
                        )
                    )
            return await asyncio.to_thread(self.sweep, ended)

        await every(30.0, sweep, stop, name="desktop_shots")
