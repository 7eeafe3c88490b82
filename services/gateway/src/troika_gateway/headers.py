"""Headers every answer of the gateway carries, errors and unknown addresses included: the
browser must not guess a download's type, show the API inside another site's frame, or tell
other sites which of its addresses a person came from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from litestar.types import Message, Scope

__all__ = ["SECURITY_HEADERS", "security_headers"]

SECURITY_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


async def security_headers(message: Message, scope: Scope) -> None:  # noqa: ARG001 - the hook's
    """Adds :data:`SECURITY_HEADERS` to an HTTP answer that does not set them itself (a
    ``before_send`` hook: it sees every answer the application sends)."""
    if message["type"] != "http.response.start":
        return
    headers = list(message.get("headers") or [])
    present = {bytes(name).lower() for name, _ in headers}
    headers.extend(header for header in SECURITY_HEADERS if header[0] not in present)
    message["headers"] = headers
