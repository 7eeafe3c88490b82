"""The record of tool calls that ran, kept in each task's folder, so a call runs at most once.

It lives in a hidden folder of the workspace, which the tools refuse to touch, and each entry is
written atomically. Nothing is kept in the executor's memory: any replica finds it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import anyio.to_thread
import msgspec

from troika_shared.messages import ToolOutcome

if TYPE_CHECKING:
    from pathlib import Path

    from troika_executor.workspace import Workspace

__all__ = ["CallLedger"]

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class CallLedger:
    """Outcomes of the calls that ran in one task's folder, by idempotency key."""

    def __init__(self, workspace: Workspace) -> None:
        self.folder = workspace.root / ".calls"

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not an idempotency key: {key!r}")
        return self.folder / f"{key}.json"

    async def recall(self, key: str) -> ToolOutcome | None:
        """The outcome of the call if it ran already."""
        path = self._path(key)

        def read() -> bytes | None:
            return path.read_bytes() if path.is_file() else None

        raw = await anyio.to_thread.run_sync(read)
        return None if raw is None else msgspec.json.decode(raw, type=ToolOutcome)

    async def begin(self, key: str) -> None:
        """Notes that a call that cannot be taken back is about to run (see
        :meth:`interrupted`)."""
        path = self._path(key).with_suffix(".started")

        def write() -> None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path.touch()

        await anyio.to_thread.run_sync(write)

    async def interrupted(self, key: str) -> bool:
        """Whether the call started and its outcome was never recorded: the executor stopped
        while it ran, so it may or may not have acted."""
        started = self._path(key).with_suffix(".started")
        return await anyio.to_thread.run_sync(started.is_file)

    async def remember(self, key: str, outcome: ToolOutcome) -> None:
        """Records the outcome (atomically: a crash leaves the old state or the new one)."""
        path = self._path(key)

        def write() -> None:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            partial.write_bytes(msgspec.json.encode(outcome))
            partial.replace(path)

        await anyio.to_thread.run_sync(write)
