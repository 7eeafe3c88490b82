"""Reading a stored file without holding more of it than asked: its start, or its digest."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from troika_shared.files.base import FileStore

__all__ = ["digest", "read_start"]


async def read_start(store: FileStore, task_id: str, name: str, limit: int) -> bytes:
    """The file's first ``limit`` bytes (all of it when it is shorter).

    Raises:
        FileNotFoundError: There is no such file.
    """
    parts: list[bytes] = []
    size = 0
    chunks = store.read(task_id, name)
    try:
        async for chunk in chunks:
            parts.append(chunk[: limit - size])
            size += len(parts[-1])
            if size >= limit:
                break
    finally:
        await chunks.aclose()
    return b"".join(parts)


async def digest(store: FileStore, task_id: str, name: str) -> tuple[int, str]:
    """The file's size and SHA-256 (hex), read a chunk at a time.

    Raises:
        FileNotFoundError: There is no such file.
    """
    sha = hashlib.sha256()
    size = 0
    async for chunk in store.read(task_id, name):
        sha.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest()
