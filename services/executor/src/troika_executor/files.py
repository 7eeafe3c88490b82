"""Where the executor finds a task's files.

With ``TROIKA_FILES=local`` the task's folder under the data directory is the files themselves,
shared with the gateway. With ``s3`` the folder is this replica's working copy: before a call
runs (and before a step is decided) it is brought up to date from the bucket; after, what the
call changed is written back, each file only if no other replica changed it meanwhile. The
call ledger and the browser's state are files of the task like any other, so every replica
sees which calls ran.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from troika_shared.files import Mirror

if TYPE_CHECKING:
    from pathlib import Path

    from troika_shared.files import FilesSettings, FileStore

__all__ = ["TaskFiles"]


class TaskFiles:
    """The store the task files live in, opened when the executor starts."""

    def __init__(self, settings: FilesSettings) -> None:
        self.settings = settings
        self.store: FileStore | None = None
        self._closing = contextlib.AsyncExitStack()

    async def open(self) -> None:
        """Connects to the bucket (nothing to do for local files)."""
        self.store = await self.settings.open_store(self._closing)

    async def close(self) -> None:
        """Closes the bucket's client."""
        await self._closing.aclose()

    def mirror(self, task_id: str, root: Path) -> Mirror | None:
        """The working copy of the task's files in ``root`` (``None``: the folder is the
        files)."""
        return Mirror(self.store, task_id, root) if self.store is not None else None
