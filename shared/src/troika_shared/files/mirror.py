"""A task's files copied to a local folder to work on, and written back.

A replica that runs a tool on a task's files (the executor) works on a local copy:
:meth:`Mirror.pull` brings the folder up to date with the store (only files whose etag changed
are downloaded), the tool works in the folder, and :meth:`Mirror.push` writes back what it
added, changed or removed — each write conditional on the etag the pull saw, so a file another
replica changed meanwhile is not overwritten: the push stops with :class:`FileChanged` and the
other replica's version stays. What was pulled is remembered in a hidden file of the folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from pathlib import Path

    from troika_shared.files.base import FileStore

__all__ = ["Mirror", "Pushed"]

_STATE = ".mirror.json"


@dataclass
class _Seen:
    """A file as the last pull or push left it: the store's etag, the local file's size,
    modification time and inode (a tool that writes the file changes them)."""

    etag: str
    size: int
    mtime_ns: int
    inode: int = 0

    def same(self, stat: os.stat_result) -> bool:
        """Whether the local file is as it was left."""
        now = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        return now == (self.size, self.mtime_ns, self.inode)

    @classmethod
    def of(cls, etag: str, stat: os.stat_result) -> _Seen:
        return cls(etag, stat.st_size, stat.st_mtime_ns, stat.st_ino)


@dataclass(frozen=True)
class Pushed:
    """What a push wrote back."""

    written: tuple[str, ...]
    removed: tuple[str, ...]


class Mirror:
    """The local copy of one task's files in ``root``."""

    def __init__(self, store: FileStore, task_id: str, root: Path) -> None:
        self.store = store
        self.task_id = task_id
        self.root = root

    async def _load(self) -> dict[str, _Seen]:
        path = anyio.Path(self.root / _STATE)
        if not await path.is_file():
            return {}
        raw = json.loads(await path.read_text())
        return {name: _Seen(**fields) for name, fields in raw.items()}

    async def _save(self, seen: dict[str, _Seen]) -> None:
        path = anyio.Path(self.root / _STATE)
        partial = anyio.Path(self.root / f"{_STATE}.part")
        await partial.write_text(json.dumps({name: asdict(s) for name, s in seen.items()}))
        await partial.replace(path)

    def _local(self) -> dict[str, os.stat_result]:
        """The folder's files now (not links, not the mirror's own state)."""
        found = {}
        for directory, _, files in os.walk(self.root):
            for file in files:
                path = os.path.join(directory, file)  # noqa: PTH118 - os.walk's own strings
                name = os.path.relpath(path, self.root).replace(os.sep, "/")
                partial = name in (_STATE, f"{_STATE}.part") or file.endswith(".mirror-part")
                if partial or os.path.islink(path):  # noqa: PTH114
                    continue
                found[name] = os.stat(path)  # noqa: PTH116
        return found

    async def pull(self) -> list[str]:
        """Brings the folder up to date with the store; returns the names downloaded.

        Files removed from the store are removed here; files that did not change are not
        downloaded again.
        """
        await anyio.Path(self.root).mkdir(parents=True, exist_ok=True)
        remote = await self.store.list(self.task_id)
        seen = await self._load()
        local = await anyio.to_thread.run_sync(self._local)
        fetched = []
        for name, entry in remote.items():
            had = seen.get(name)
            here = local.get(name)
            if had is not None and here is not None and had.etag == entry.etag and had.same(here):
                continue  # as pulled last time
            stat = await self._download(name)
            seen[name] = _Seen.of(entry.etag, stat)
            fetched.append(name)
        gone = set(seen) - set(remote)
        for name in gone:
            await anyio.Path(self.root / name).unlink(missing_ok=True)
            del seen[name]
        if fetched or gone:  # a step's pull with nothing new writes nothing
            await self._save(seen)
        return fetched

    async def _download(self, name: str) -> os.stat_result:
        target = anyio.Path(self.root / name)
        await target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.mirror-part")
        async with await anyio.open_file(partial, "wb") as out:
            async for chunk in self.store.read(self.task_id, name):
                await out.write(chunk)
        await partial.replace(target)
        return await target.stat()

    async def push(self) -> Pushed:
        """Writes back what changed in the folder since the last pull or push.

        Raises:
            FileChanged: Another replica changed, created or removed one of those files in
                the store meanwhile (what was written before it stays written; pull, then
                redo the work).
        """
        seen = await self._load()
        local = await anyio.to_thread.run_sync(self._local)
        written, removed = [], []
        try:
            for name, stat in sorted(local.items()):
                had = seen.get(name)
                if had is not None and had.same(stat):
                    continue
                entry = await self.store.write(
                    self.task_id, name, self.root / name,
                    expected=had.etag if had is not None else None,
                )  # fmt: skip
                seen[name] = _Seen.of(entry.etag, stat)
                written.append(name)
            for name in sorted(set(seen) - set(local)):
                await self.store.delete(self.task_id, name, expected=seen[name].etag)
                del seen[name]
                removed.append(name)
        finally:
            if written or removed:
                await self._save(seen)
        return Pushed(tuple(written), tuple(removed))
