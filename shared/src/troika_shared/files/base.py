"""The interface every task-file store offers, and the rules its names follow."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Final, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator
    from pathlib import Path

__all__ = ["ANY", "CHUNK", "Entry", "Expected", "FileChanged", "FileStore", "check_name"]

CHUNK: Final = 1 << 20  # reads and copies go a megabyte at a time

ANY: Final = "*"
"""Write or delete whatever is there (no condition)."""

Expected = str | None | Literal["*"]
"""What a writer last saw: the file's etag, ``None`` (there was no such file) or :data:`ANY`."""

_TASK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class FileChanged(Exception):
    """The file is not as the writer last saw it (another replica changed, created or removed
    it): nothing was written."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored file: its name in the task, its size, and a tag that changes with its content."""

    name: str
    size: int
    etag: str


def check_name(task_id: str, name: str) -> str:
    """The name, checked: a relative path inside the task's files.

    Raises:
        ValueError: The task id or the name is not acceptable (absolute, ``..``, empty parts).
    """
    if not _TASK.fullmatch(task_id):
        raise ValueError(f"not a task id: {task_id!r}")
    path = PurePosixPath(name)
    if (
        not name
        or name != str(path)
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in path.parts)
        or "\\" in name
        or "\x00" in name
        or len(name) > 1024
    ):
        raise ValueError(f"not a file name inside a task: {name!r}")
    return name


class FileStore(Protocol):
    """Where task files live."""

    async def list(self, task_id: str, folder: str = "") -> dict[str, Entry]:
        """Every file of the task (or of one of its folders, and below), by name."""
        ...

    def read(self, task_id: str, name: str) -> AsyncGenerator[bytes, None]:
        """The file's content, a chunk at a time.

        Raises:
            FileNotFoundError: There is no such file.
        """
        ...

    async def write(
        self, task_id: str, name: str, source: Path, *, expected: Expected = ANY
    ) -> Entry:
        """Stores the local file ``source`` under ``name`` if the stored one is still as
        ``expected``; returns what is stored now.

        Raises:
            FileChanged: It is not (nothing was written).
        """
        ...

    async def copy(self, task_id: str, name: str, to_task: str) -> Entry:
        """Copies a file to another task under the same name (replacing one there).

        Raises:
            FileNotFoundError: There is no such file.
        """
        ...

    async def delete(self, task_id: str, name: str, *, expected: Expected = ANY) -> None:
        """Removes a file if it is still as ``expected`` (gone already: nothing to do).

        Raises:
            FileChanged: It changed since (nothing was removed).
        """
        ...

    async def delete_task(self, task_id: str) -> None:
        """Removes every file of the task."""
        ...
