"""Profile photos: checked by their first bytes, stored as files, never as base64 in JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from troika_gateway.errors import InvalidInput

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["photo_path", "sniff_image"]

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
    """Where a user's photo is kept."""
    return (data_dir / "users" / user_id / "photo").resolve()
