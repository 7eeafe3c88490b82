"""Files on disk: task workspaces, uploads and profile photos, all under the data directory.

Every path is built from a checked name and checked again after resolving, so no name, ``..`` or
symbolic link can reach outside its folder. Writes go to a temporary file first and are renamed
into place, so a failed or oversized upload leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import shutil
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from sqlalchemy import select

from troika_gateway.db.models import File
from troika_gateway.errors import InvalidInput, PayloadTooLarge

if TYPE_CHECKING:
    from pathlib import Path

    from litestar.datastructures import UploadFile
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = [
    "Stored",
    "Workspace",
    "content_type_of",
    "copy_files",
    "record_file",
    "remove_tree",
    "safe_name",
    "store_upload",
]

_CHUNK = 1 << 16
_MAX_NAME_BYTES = 255
_RESERVED = {".", ".."}


def safe_name(name: str) -> str:
    """A file name that is safe to store as given, or a clear refusal.

    Raises:
        InvalidInput: The name is empty, too long, has a path separator, a control character,
            or is ``.``/``..`` or hidden.
    """
    cleaned = unicodedata.normalize("NFC", name).strip()
    problem = None
    if not cleaned:
        problem = "is empty"
    elif "/" in cleaned or "\\" in cleaned:
        problem = "may not contain '/' or '\\'"
    elif cleaned in _RESERVED or cleaned.startswith("."):
        problem = "may not start with '.'"
    elif any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        problem = "may not contain control characters"
    elif len(cleaned.encode()) > _MAX_NAME_BYTES:
        problem = f"is longer than {_MAX_NAME_BYTES} bytes"
    if problem:
        raise InvalidInput(
            f"the file name {name[:80]!r} {problem}", [{"field": "name", "message": problem}]
        )
    return cleaned


@dataclass(frozen=True, slots=True)
class Stored:
    """A file as written: its size and SHA-256."""

    size: int
    sha256: str


class Workspace:
    """A task's folder: uploads and everything the task's tools write.

    Args:
        data_dir: The data directory.
        task_id: The task.
    """

    def __init__(self, data_dir: Path, task_id: str) -> None:
        self.root = (data_dir / "workspaces" / task_id).resolve()

    def path(self, name: str) -> Path:
        """Where a file of this name lives.

        Raises:
            InvalidInput: The name is not safe, or it resolves outside the workspace.
        """
        target = (self.root / safe_name(name)).resolve()
        if target.parent != self.root:
            raise InvalidInput(f"the file name {name[:80]!r} points outside the task's folder")
        return target

    def nested(self, relative: str) -> Path:
        """Where a file at ``relative`` (``notes/summary.md``, as a tool wrote it) lives.

        Raises:
            InvalidInput: A part of the path is not a safe name, or it resolves outside the
                workspace (through ``..`` or a link).
        """
        parts = [safe_name(part) for part in relative.strip("/").split("/")]
        target = self.root.joinpath(*parts).resolve()
        if not target.is_relative_to(self.root) or target == self.root:
            raise InvalidInput(f"the path {relative[:80]!r} points outside the task's folder")
        return target


async def store_upload(upload: UploadFile, target: Path, limit: int) -> Stored:
    """Copies an upload to ``target`` (atomically), refusing it past ``limit`` bytes.

    Raises:
        PayloadTooLarge: The upload is over the limit (nothing is written).
    """
    await anyio.Path(target.parent).mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{uuid.uuid4().hex}.part")
    digest = hashlib.sha256()
    size = 0
    try:
        async with await anyio.open_file(partial, "wb") as out:
            while chunk := await upload.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the file {upload.filename!r}", limit)
                digest.update(chunk)
                await out.write(chunk)
        await anyio.to_thread.run_sync(os.replace, partial, target)
    finally:
        await anyio.Path(partial).unlink(missing_ok=True)
    return Stored(size=size, sha256=digest.hexdigest())


async def remove_tree(path: Path) -> None:
    """Deletes a folder and everything in it, if it exists."""
    await anyio.to_thread.run_sync(lambda: shutil.rmtree(path, ignore_errors=True))


async def copy_files(
    db: AsyncSession, data_dir: Path, old_id: str, new_id: str, *, only_uploads: bool
) -> None:
    """Copies a task's files (or only those the person uploaded) into another task's
    workspace, with their records; the caller commits."""
    query = select(File).where(File.task_id == old_id)
    if only_uploads:
        query = query.where(File.origin == "upload")
    source, target = Workspace(data_dir, old_id), Workspace(data_dir, new_id)
    for row in list(await db.scalars(query)):
        src = source.path(row.name)
        if not await anyio.Path(src).is_file():
            continue
        await anyio.Path(target.root).mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(shutil.copy2, src, target.path(row.name))
        db.add(File(task_id=new_id, name=row.name, content_type=row.content_type,
                    size=row.size, sha256=row.sha256, origin=row.origin))  # fmt: skip


_CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")


def content_type_of(name: str, declared: str = "") -> str:
    """The declared content type when it names one, else a guess from the file's name."""
    content_type = declared.split(";", maxsplit=1)[0].strip().lower()
    if not _CONTENT_TYPE.match(content_type) or content_type == "application/octet-stream":
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return content_type


async def record_file(
    db: AsyncSession, task_id: str, name: str, stored: Stored, *, content_type: str, origin: str
) -> File:
    """Records a file of the task's folder (a new one, or the same name written again); the
    caller commits."""
    row = await db.scalar(select(File).where(File.task_id == task_id, File.name == name))
    if row is None:
        row = File(task_id=task_id, name=name, content_type=content_type, size=stored.size,
                   sha256=stored.sha256, origin=origin)  # fmt: skip
        db.add(row)
    else:
        row.content_type, row.size, row.sha256 = content_type, stored.size, stored.sha256
        row.updated_at = datetime.now(UTC)
    return row
