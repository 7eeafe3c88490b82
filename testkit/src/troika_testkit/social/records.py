"""What the tests look at: the requests the platforms received, their accounts and the posts
they accepted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import HTTP
from email.utils import collapse_rfc2231_value
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from email.message import Message

__all__ = ["Account", "Part", "Post", "Recorded"]


@dataclass(frozen=True)
class Part:
    """One part of a ``multipart/form-data`` body.

    Attributes:
        name: The form field's name.
        filename: The file's name, for a file.
        content_type: The part's media type (``text/plain`` when it names none).
        data: The part's bytes.
    """

    name: str
    filename: str | None
    content_type: str
    data: bytes

    def text(self) -> str:
        """The part's bytes as UTF-8 text."""
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True)
class Recorded:
    """One request a platform received, as it came.

    Attributes:
        platform: ``x``, ``instagram``, ``facebook`` or ``linkedin``.
        method: The HTTP method.
        path: The path after the platform's prefix, e.g. ``/2/tweets``.
        query: The query string's parameters.
        headers: The headers, by lower-case name (repeated ones joined with ``", "``).
        body: The body's bytes.
    """

    platform: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:  # noqa: ANN401 - whatever JSON the client sent
        """The body parsed as JSON."""
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded`` (first value of each)."""
        fields = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[0] for name, values in fields.items()}

    def parts(self) -> list[Part]:
        """The body's parts, for a ``multipart/form-data`` body (else none)."""
        return _multipart(self.headers.get("content-type", ""), self.body)


@dataclass
class Account:
    """An account on one platform: an X user, an Instagram professional account, a Facebook
    Page or a LinkedIn member. The tokens are the last ones the platform gave out.

    Attributes:
        platform: The platform it belongs to.
        id: Its id (LinkedIn: the member id, the ``sub`` of ``/v2/userinfo``).
        name: Its display name.
        username: Its handle, where the platform has one.
        access_token: The access token the platform takes now.
        refresh_token: The refresh token (X and LinkedIn).
        expires_at: When the access token expires (epoch seconds); ``None``: never.
        organizations: LinkedIn organization ids the member may post as.
    """

    platform: str
    id: str
    name: str
    username: str | None
    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None
    organizations: tuple[str, ...] = ()


@dataclass
class Post:
    """A post a platform accepted.

    Attributes:
        platform: The platform.
        id: Its id (Facebook: ``<page id>_<post id>``; LinkedIn: ``urn:li:share:<n>``).
        url: Where a person would see it.
        account_id: The posting account's id.
        text: The tweet's text, caption, message or commentary.
        media: The images' bytes, in the order they were attached.
        reply_to: The tweet it answers (X).
        author: The author's URN (LinkedIn).
        raw: The request's JSON or form (Instagram: the container's form and the publishing
            form together).
    """

    platform: str
    id: str
    url: str
    account_id: str
    text: str
    media: list[bytes] = field(default_factory=list)
    reply_to: str | None = None
    author: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


# --- reading a multipart body ------------------------------------------------------------------


def _param(message: Message, name: str, header: str) -> str | None:
    value = message.get_param(name, header=header)
    return None if value is None else collapse_rfc2231_value(value)


def _headers(raw: bytes) -> Message:
    return BytesHeaderParser(policy=HTTP).parsebytes(raw + b"\r\n\r\n")


def _multipart(content_type: str, body: bytes) -> list[Part]:
    message = _headers(b"Content-Type: " + content_type.encode("latin-1", "replace"))
    boundary = _param(message, "boundary", "content-type")
    if message.get_content_type() != "multipart/form-data" or not boundary:
        return []
    found = []
    for chunk in body.split(b"--" + boundary.encode("latin-1", "replace"))[1:]:
        if chunk.startswith(b"--"):  # the closing delimiter
            break
        head, _, data = chunk.removeprefix(b"\r\n").removesuffix(b"\r\n").partition(b"\r\n\r\n")
        headers = _headers(head)
        name = _param(headers, "name", "content-disposition") or ""
        found.append(Part(name, headers.get_filename(), headers.get_content_type(), data))
    return found
