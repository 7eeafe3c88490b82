"""Task files in a folder on this machine (one machine, or a folder every host mounts)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
from typing import TYPE_CHECKING, BinaryIO

import anyio.to_thread

from troika_shared.files.base import ANY, CHUNK, Entry, Expected, FileChanged, check_name

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterator
    from pathlib import Path

__all__ = ["LocalStore"]

_LOCK = ".store.lock"


def _etag(stat: os.stat_result) -> str:
    """Changes with every write: each one replaces the file (a new inode), and its time and
    size go with it."""
    return f"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"


class LocalStore:
    """Each task's files in ``root/<task id>/``; a write goes to a temporary file that replaces
    the old one at once, under the task's lock, so a reader sees the old file or the new one."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, task_id: str) -> Path:
        check_name(task_id, "x")
        return self.root / task_id

    def _path(self, task_id: str, name: str) -> Path:
        check_name(task_id, name)
        return self.root / task_id / name

    def _inside(self, task_id: str, name: str) -> Path:
        """The path of an existing file, refused when it, or a folder on the way, is a link
        (a tool may leave one that points anywhere on this machine).

        Raises:
            FileNotFoundError: There is no such file, or it is reached through a link.
        """
        path = self._path(task_id, name)
        folder = self._folder(task_id).resolve()
        if path.is_symlink() or not path.resolve().is_relative_to(folder):
            raise FileNotFoundError(name)
        return path

    def _open(self, task_id: str, name: str) -> BinaryIO:
        path = self._inside(task_id, name)
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:  # a link made in the meantime reads as no file
            raise FileNotFoundError(name) from exc
        return os.fdopen(descriptor, "rb")

    @contextlib.contextmanager
    def _locked(self, task_id: str) -> Iterator[None]:
        folder = self._folder(task_id)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / _LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    async def list(self, task_id: str, folder: str = "") -> dict[str, Entry]:
        """Every file of the task (or of one of its folders), by name; links are not followed
        and not listed."""
        root = self._folder(task_id)
        start = self._path(task_id, folder) if folder else root

        def walk() -> dict[str, Entry]:
            found: dict[str, Entry] = {}
            if start.is_symlink() or not start.is_dir():
                return found
            for directory, _, files in os.walk(start):
                for file in files:
                    path = os.path.join(directory, file)  # noqa: PTH118 - os.walk's own strings
                    name = os.path.relpath(path, root).replace(os.sep, "/")
                    if name == _LOCK or ".part-" in file:
                        continue
                    stat = os.lstat(path)
                    if os.path.isfile(path) and not os.path.islink(path):  # noqa: PTH113,PTH114
                        found[name] = Entry(name, stat.st_size, _etag(stat))
            return found

        return await anyio.to_thread.run_sync(walk)

    async def read(self, task_id: str, name: str) -> AsyncGenerator[bytes, None]:
        """The file's content, a chunk at a time.

        Raises:
            FileNotFoundError: There is no such file.
        """
        # Opened and read in one trip to a thread: most files end within the first chunk
        handle, chunk, regular = await anyio.to_thread.run_sync(self._open_and_read, task_id, name)
        try:
            while chunk:
                yield chunk
                if regular and len(chunk) < CHUNK:  # a short read of a regular file: its end
                    break
                chunk = await anyio.to_thread.run_sync(handle.read, CHUNK)
        finally:
            handle.close()

    def _open_and_read(self, task_id: str, name: str) -> tuple[BinaryIO, bytes, bool]:
        handle = self._open(task_id, name)
        try:
            regular = stat.S_ISREG(os.fstat(handle.fileno()).st_mode)
            return handle, handle.read(CHUNK), regular
        except BaseException:
            handle.close()
            raise

    def _current(self, path: Path) -> str | None:
        try:
            return _etag(path.stat())
        except FileNotFoundError:
            return None

    async def write(
        self, task_id: str, name: str, source: Path, *, expected: Expected = ANY
    ) -> Entry:
        """Copies ``source`` in, if the stored file is still as ``expected``.

        Raises:
            FileChanged: It is not.
        """
        target = self._path(task_id, name)

        def put() -> Entry:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f"{target.name}.part-{os.getpid()}")
            shutil.copyfile(source, partial)
            shutil.copymode(source, partial)  # a file kept private stays private
            try:
                with self._locked(task_id):
                    if expected != ANY and self._current(target) != expected:
                        raise FileChanged(f"{name} changed since it was read")
                    partial.replace(target)
                    return Entry(name, target.stat().st_size, _etag(target.stat()))
            finally:
                partial.unlink(missing_ok=True)

        return await anyio.to_thread.run_sync(put)

    async def copy(self, task_id: str, name: str, to_task: str) -> Entry:
        """Copies a file to another task's folder under the same name.

        Raises:
            FileNotFoundError: There is no such file.
        """
        source = await anyio.to_thread.run_sync(self._inside, task_id, name)
        return await self.write(to_task, name, source)

    async def delete(self, task_id: str, name: str, *, expected: Expected = ANY) -> None:
        """Removes the file if it is still as ``expected``.

        Raises:
            FileChanged: It changed since.
        """
        target = self._path(task_id, name)

        def remove() -> None:
            with self._locked(task_id):
                current = self._current(target)
                if expected not in (ANY, current) and current is not None:
                    raise FileChanged(f"{name} changed since it was read")
                target.unlink(missing_ok=True)

        await anyio.to_thread.run_sync(remove)

    async def delete_task(self, task_id: str) -> None:
        """Removes the task's folder."""
        folder = self._folder(task_id)
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))
