"""The gateway's side of files: uploads into a task's files, downloads out of them, copies to
a new run, and profile photos.

Task files go through the file store (:mod:`troika_shared.files`): the data directory's
``workspaces`` folder on one machine, an S3 bucket where the services run on several. Names are
checked before they reach the store, and the store keeps every name inside its task. An upload
is streamed to a file of its own first, so one that fails or is too large stores nothing, and
every download streams: no file is held whole in memory.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

import anyio
import anyio.to_thread
from litestar.response import Stream
from sqlalchemy import select

from troika_gateway.db.models import File
from troika_gateway.errors import InvalidInput, PayloadTooLarge
from troika_shared.files import LocalStore, digest, read_start

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator
    from contextlib import AsyncExitStack
    from pathlib import Path

    from litestar.datastructures import UploadFile
    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_shared.files import FilesSettings, FileStore

__all__ = [
    "Stored",
    "content_type_of",
    "copy_files",
    "describe",
    "file_name",
    "open_files",
    "read_text_start",
    "record_file",
    "safe_name",
    "store_upload",
    "stream_file",
    "upload_to_task",
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


def file_name(relative: str) -> str:
    """The stored name of a file at ``relative`` (``notes/summary.md``, as a tool wrote it).

    Raises:
        InvalidInput: A part of the path is not a safe name.
    """
    return "/".join(safe_name(part) for part in relative.strip("/").split("/"))


async def open_files(settings: FilesSettings, data_dir: Path, stack: AsyncExitStack) -> FileStore:
    """The store the task files live in: the bucket, or the data directory's ``workspaces``
    folder (the folder the executors work in on the same machine)."""
    return await settings.open_store(stack) or LocalStore(data_dir / "workspaces")


async def upload_to_task(
    files: FileStore, task_id: str, name: str, upload: UploadFile, *, staging: Path, limit: int
) -> Stored:
    """Stores an upload among the task's files as ``name`` (a :func:`safe_name`), streamed
    through a file in ``staging``.

    Raises:
        PayloadTooLarge: The upload is over the limit (nothing is stored).
    """
    partial = staging / f"{uuid.uuid4().hex}.upload"
    try:
        stored = await store_upload(upload, partial, limit)
        await files.write(task_id, name, partial)
    finally:
        await anyio.Path(partial).unlink(missing_ok=True)
    return stored


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


async def copy_files(
    db: AsyncSession, files: FileStore, old_id: str, new_id: str, *, only_uploads: bool
) -> None:
    """Copies a task's files (or only those the person uploaded) to another task, with their
    records; the caller commits."""
    query = select(File).where(File.task_id == old_id)
    if only_uploads:
        query = query.where(File.origin == "upload")
    for row in list(await db.scalars(query)):
        try:
            await files.copy(old_id, row.name, new_id)
        except FileNotFoundError:
            continue
        db.add(File(task_id=new_id, name=row.name, content_type=row.content_type,
                    size=row.size, sha256=row.sha256, origin=row.origin))  # fmt: skip


async def describe(files: FileStore, task_id: str, name: str) -> Stored | None:
    """A stored file's size and SHA-256 (``None``: there is no such file)."""
    try:
        size, sha256 = await digest(files, task_id, name)
    except (FileNotFoundError, ValueError):
        return None
    return Stored(size=size, sha256=sha256)


async def read_text_start(files: FileStore, task_id: str, name: str, limit: int) -> str | None:
    """The first ``limit`` characters of a file as text (marked when there is more), or
    ``None`` when there is no such file."""
    try:
        raw = await read_start(files, task_id, name, limit * 4)
    except (FileNotFoundError, ValueError):
        return None
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "\n[truncated]"


def _disposition(kind: str, name: str) -> str:
    """A ``Content-Disposition`` value: an ASCII fallback name and the exact one (RFC 6266)."""
    plain = "".join(ch if " " <= ch < "\x7f" and ch not in '"\\' else "_" for ch in name)
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


async def stream_file(
    files: FileStore,
    task_id: str,
    name: str,
    *,
    media_type: str,
    kind: str = "attachment",
    cache: str = "private, no-cache",
) -> Stream:
    """A response that streams a stored file a chunk at a time (``kind``: ``attachment`` to
    save it, ``inline`` to show it).

    Raises:
        FileNotFoundError: There is no such file (nothing is sent yet).
    """
    chunks = files.read(task_id, name)
    try:
        first = await anext(chunks, b"")
    except BaseException:
        await chunks.aclose()
        raise

    async def body() -> AsyncGenerator[bytes, None]:
        try:
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    return Stream(
        body(),
        media_type=media_type,
        headers={"Content-Disposition": _disposition(kind, name.rsplit("/", 1)[-1]),
                 "Cache-Control": cache},
    )  # fmt: skip


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
