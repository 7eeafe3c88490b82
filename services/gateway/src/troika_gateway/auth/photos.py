"""Profile photos: checked by their first bytes, kept in the database (every gateway replica
serves them), sent as images, never as base64 in JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio

from troika_gateway.db.models import UserPhoto
from troika_gateway.errors import InvalidInput, PayloadTooLarge

if TYPE_CHECKING:
    from pathlib import Path

    from litestar.datastructures import UploadFile
    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_gateway.db.models import User

__all__ = ["find_photo", "photo_path", "remove_photo", "save_photo", "sniff_image"]

_CHUNK = 1 << 16

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image(head: bytes) -> str:
    """The image type that ``head`` (a file's first bytes) starts, whatever the upload claims.

    Raises:
        InvalidInput: Not a PNG, JPEG, GIF or WebP image.
    """
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    raise InvalidInput(
        "the photo must be a PNG, JPEG, GIF or WebP image",
        [{"field": "photo", "message": "unsupported image type"}],
    )


def photo_path(data_dir: Path, user_id: str) -> Path:
    """Where a user's photo was kept before photos moved into the database."""
    return (data_dir / "users" / user_id / "photo").resolve()


async def save_photo(db: AsyncSession, user: User, upload: UploadFile, limit: int) -> None:
    """Reads an uploaded photo (refused past ``limit`` bytes, or when it is not an image) and
    makes it the user's; the caller commits.

    Raises:
        InvalidInput: It is not a PNG, JPEG, GIF or WebP image.
        PayloadTooLarge: It is over the limit.
    """
    parts: list[bytes] = []
    size = 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("the photo", limit)
        parts.append(chunk)
    data = b"".join(parts)
    media_type = sniff_image(data[:16])
    row = await db.get(UserPhoto, user.id)
    if row is None:
        db.add(UserPhoto(user_id=user.id, content_type=media_type, data=data))
    else:
        row.content_type, row.data = media_type, data
    user.photo_content_type = media_type
    user.photo_updated_at = datetime.now(UTC)


async def find_photo(db: AsyncSession, data_dir: Path, user: User) -> UserPhoto | None:
    """The user's photo; one still in the data folder from before is moved in (and committed)."""
    if user.photo_content_type is None:
        return None
    row = await db.get(UserPhoto, user.id)
    if row is not None:
        return row
    legacy = anyio.Path(photo_path(data_dir, user.id))
    try:
        data = await legacy.read_bytes()
    except OSError:
        return None
    row = UserPhoto(user_id=user.id, content_type=user.photo_content_type, data=data)
    db.add(row)
    await db.commit()
    await legacy.unlink(missing_ok=True)
    return row


async def remove_photo(db: AsyncSession, data_dir: Path, user: User) -> None:
    """Removes the user's photo (and any left in the data folder); the caller commits."""
    row = await db.get(UserPhoto, user.id)
    if row is not None:
        await db.delete(row)
    await anyio.Path(photo_path(data_dir, user.id)).unlink(missing_ok=True)
    user.photo_content_type = None
    user.photo_updated_at = None
