"""Screenshots kept for a short while: a private temporary folder on the PC that is emptied of
every shot older than five minutes, and of a task's shots when the task ends.

Screenshots show whatever is on the person's screen, so none outlives its use: the agent hands
a shot to the task and keeps its file only until the model has looked at it.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["KEEP_S", "Shot", "ShotStore"]

KEEP_S = 300.0  # five minutes
_TASK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Shot:
    """A kept screenshot: its file, and the task it belongs to."""

    path: Path
    task_id: str


class ShotStore:
    """The folder of kept screenshots.

    Args:
        root: Where to keep them (default: a new private folder in the system's temporary
            folder, readable by this user only).
        keep_s: How long a shot is kept.
        clock: The time now, in seconds (``time.time``; a test's own clock).
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        keep_s: float = KEEP_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="troika-shots-"))
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.keep_s = keep_s
        self._clock = clock

    def keep(self, task_id: str, png: bytes) -> Shot:
        """Saves a screenshot of a task (mode 0600), stamped with the clock's time."""
        if not _TASK.match(task_id):
            raise ValueError(f"not a task id: {task_id!r}")
        folder = self.root / task_id
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / f"{int(self._clock() * 1000)}-{secrets.token_hex(4)}.png"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(png)
        return Shot(path, task_id)

    def shots(self, task_id: str | None = None) -> list[Shot]:
        """The shots kept now, oldest first (of one task, or of all)."""
        folders = [self.root / task_id] if task_id else sorted(self.root.iterdir())
        found = [
            Shot(path, folder.name)
            for folder in folders
            if folder.is_dir()
            for path in folder.glob("*.png")
        ]
        return sorted(found, key=lambda shot: _stamp(shot.path))

    def sweep(self) -> int:
        """Deletes every shot older than ``keep_s``; returns how many went."""
        oldest = (self._clock() - self.keep_s) * 1000
        gone = 0
        for shot in self.shots():
            if _stamp(shot.path) <= oldest:
                shot.path.unlink(missing_ok=True)
                gone += 1
        self._drop_empty()
        return gone

    def forget(self, task_id: str) -> int:
        """Deletes every shot of a task (it ended); returns how many went."""
        shots = self.shots(task_id)
        for shot in shots:
            shot.path.unlink(missing_ok=True)
        self._drop_empty()
        return len(shots)

    def _drop_empty(self) -> None:
        for folder in self.root.iterdir():
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _stamp(path: Path) -> int:
    return int(path.name.split("-", 1)[0])
