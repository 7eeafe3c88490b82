"""Security headers on every answer of the web app, pages and socket alike.

The content security policy lets the browser run only the app's own scripts: files from this
origin, and the inline scripts the build wrote into its pages, each named by its SHA-256 hash (read
from the built pages once, on the first request). Injected markup — a ``<script>`` or an
``onerror=`` in text a task or a model produced — does not run. Two allowances stay, because the
framework needs them: inline styles (the component library sets them at run time) and ``eval``
(Reflex runs the scripts an event asks for with it). The pages may not be framed by another site.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["content_security_policy", "inline_script_hashes", "security_headers"]

_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.I)

_FIXED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def inline_script_hashes(pages: Path) -> list[str]:
    """The CSP sources (``'sha256-…'``) of every inline script in the built pages under
    ``pages``, sorted, each once."""
    found: set[str] = set()
    for page in pages.rglob("*.html"):
        for script in _INLINE_SCRIPT.findall(page.read_text(encoding="utf-8", errors="replace")):
            digest = hashlib.sha256(script.encode()).digest()
            found.add(f"'sha256-{base64.b64encode(digest).decode()}'")
    return sorted(found)


def content_security_policy(public_url: str, script_hashes: list[str]) -> str:
    """The policy for the app served at ``public_url`` whose pages hold those inline scripts."""
    parts = urlsplit(public_url)
    socket = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", "'unsafe-eval'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'", socket],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


@cache
def _policy() -> str:
    from reflex import constants  # noqa: PLC0415 - Reflex's build paths, read when serving
    from reflex.utils.prerequisites import get_web_dir  # noqa: PLC0415

    from troika_frontend.settings import WebSettings  # noqa: PLC0415

    pages = get_web_dir() / constants.Dirs.STATIC
    return content_security_policy(WebSettings().url, inline_script_hashes(pages))


def security_headers(app: ASGIApp) -> ASGIApp:
    """Wraps the web app's ASGI app so each HTTP answer carries the security headers."""

    async def with_headers(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.decode("latin-1").lower() not in _FIXED
                ]
                headers += [(name.encode(), value.encode()) for name, value in _FIXED.items()]
                headers.append((b"content-security-policy", _policy().encode()))
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_headers)

    return with_headers
