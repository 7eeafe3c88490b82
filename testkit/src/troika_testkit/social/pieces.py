"""Small pieces the platforms share: new ids and tokens, telling an image's type, reading a
request's query, bearer token and JSON body."""

from __future__ import annotations

import json
import secrets
import string
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from troika_testkit.social.records import Recorded

__all__ = ["alnum", "bearer", "digits", "first", "image_type", "json_or_none", "new_token"]

_TOKEN_PREFIX = {"x": "", "instagram": "IGAA", "facebook": "EAAB", "linkedin": "AQV"}


def digits(count: int) -> str:
    return str(10 ** (count - 1) + secrets.randbelow(9 * 10 ** (count - 1)))


def alnum(count: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(count))


def new_token(platform: str) -> str:
    return _TOKEN_PREFIX[platform] + secrets.token_urlsafe(32)


def image_type(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def json_or_none(body: bytes) -> Any:  # noqa: ANN401 - whatever JSON the client sent
    try:
        return json.loads(body)
    except ValueError:
        return None


def first(request: Recorded, name: str) -> str | None:
    values = request.query.get(name)
    return values[0] if values else None


def bearer(request: Recorded) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None
