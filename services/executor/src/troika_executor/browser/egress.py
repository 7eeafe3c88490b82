"""The browser's only way out: a forward proxy on loopback that applies the outbound guard.

Chromium is started with this proxy for every request (loopback included) and with a host
resolver that resolves nothing, so it cannot connect anywhere by itself. Each request, redirects
and sub-requests (images, scripts, ``fetch``, WebSockets) included, arrives here: plain HTTP as an
absolute URL, HTTPS and WebSockets as ``CONNECT``. The destination is resolved and checked
(:func:`troika_executor.net.checked_addresses`) and the connection goes to the address that was
checked, so a name that changes its answer cannot lead elsewhere. TLS stays end to end between
Chromium and the site.

Each browser context signs in to the proxy with its own name (``Proxy-Authorization``), so a
refusal is reported to the task whose page made the request.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpcore
import structlog

from troika_executor.net import Blocked, checked_addresses

if TYPE_CHECKING:
    from playwright.async_api import ProxySettings

    from troika_executor.net import OutboundPolicy

__all__ = ["Egress"]

log = structlog.get_logger("troika.executor.browser")

_HEAD_LIMIT = 64 * 1024
_CONNECT_TIMEOUT_S = 15.0
_KEPT_REFUSALS = 50


@dataclass(slots=True)
class _Account:
    refused: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=_KEPT_REFUSALS)
    )


class Egress:
    """The guarded forward proxy (one per executor process).

    Args:
        policy: The operator's outbound rule (the same as for the HTTP tools).
    """

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy
        self.password = secrets.token_urlsafe(24)
        self._accounts: dict[str, _Account] = {}
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        """Listens on a free loopback port."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=_HEAD_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stops listening and cuts every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def account(self) -> tuple[str, ProxySettings]:
        """A new sign-in for one browser context: its name, and Playwright's ``proxy`` option."""
        name = secrets.token_hex(8)
        self._accounts[name] = _Account()
        return name, {
            "server": f"http://127.0.0.1:{self.port}",
            "username": name,
            "password": self.password,
        }

    def forget(self, username: str) -> None:
        """The context closed: its sign-in no longer works."""
        self._accounts.pop(username, None)

    def refusals(self, username: str) -> list[str]:
        """What the context's pages tried to reach and were refused since the last call (each
        once), and forgets them."""
        account = self._accounts.get(username)
        if account is None:
            return []
        found = list(dict.fromkeys(account.refused))
        account.refused.clear()
        return found

    # --- one connection ------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._pipes.add(task)
        try:
            await self._handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the browser went away, or sent something that is not HTTP
        finally:
            if task is not None:
                self._pipes.discard(task)
            with contextlib.suppress(OSError):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [tuple(line.split(":", 1)) for line in lines[1:] if ":" in line]
        account = self._signed_in(headers)
        if account is None:
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="troika"\r\nContent-Length: 0\r\n'
                b"Connection: close\r\n\r\n"
            )
            await writer.drain()
            return
        if method == "CONNECT":
            host, _, port_text = target.rpartition(":")
            port = int(port_text)
            forward = b""
        else:
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                await _refuse(writer, 400, "the browser may only make http(s) requests")
                return
            host, port = url.hostname, url.port or 80
            path = url.path or "/"
            if url.query:
                path += "?" + url.query
            kept = [
                f"{name}:{value}"
                for name, value in headers
                if name.strip().lower()
                not in ("proxy-authorization", "proxy-connection", "connection", "keep-alive")
            ]
            forward = (
                "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""])
            ).encode("latin-1")
        host = host.strip("[]")
        try:
            addresses = await checked_addresses(host, port, self.policy)
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(addresses[0], port), _CONNECT_TIMEOUT_S
            )
        except Blocked as exc:
            account.refused.append(f"{host}:{port} ({exc})")
            log.info("browser.refused", host=host, port=port)
            await _refuse(writer, 403, f"refused: {exc}")
            return
        except (httpcore.ConnectError, OSError, TimeoutError) as exc:
            await _refuse(writer, 502, f"could not reach {host}:{port}: {exc}")
            return
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                upstream_writer.write(forward)
                await upstream_writer.drain()
            await _pipe_both(reader, writer, upstream_reader, upstream_writer)
        finally:
            with contextlib.suppress(OSError):
                upstream_writer.close()

    def _signed_in(self, headers: list[tuple[str, ...]]) -> _Account | None:
        for name, value in headers:
            if name.strip().lower() != "proxy-authorization":
                continue
            scheme, _, encoded = value.strip().partition(" ")
            if scheme.lower() != "basic":
                return None
            try:
                user, _, password = base64.b64decode(encoded).decode().partition(":")
            except ValueError:
                return None
            if secrets.compare_digest(password, self.password):
                return self._accounts.get(user)
        return None


async def _refuse(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    body = reason.encode()
    writer.write(
        f"HTTP/1.1 {status} Refused\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nX-Troika-Refused: 1\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(65_536):
                sink.write(chunk)
                await sink.drain()
        finally:
            with contextlib.suppress(OSError):
                if sink.can_write_eof():
                    sink.write_eof()

    results = await asyncio.gather(
        pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, OSError):
            raise result
