"""A TCP proxy on loopback whose connections a test can cut, like a network that goes away.

Browsers' own "offline" switches do not close a WebSocket that is already open (Chromium holds its
frames, Firefox lets them through), so a test that wants a page to lose its connection puts this
proxy between the browser and the server and cuts it: every open connection is closed, and new
ones are closed as soon as they arrive, until the test restores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

from troika_testkit.pace import scaled

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["CuttableProxy"]

_CHUNK = 64 * 1024


@dataclass
class CuttableProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port`` from a thread of its own.

    Attributes:
        target_port: Where the connections go.
        port: The proxy's own port: any free one unless given.
        source: The loopback address its connections come from (any 127.x.y.z on Linux), so
            the server sees every client behind the proxy at an address of their own.
        connections: How many connections it has accepted, refused ones included.
    """

    target_port: int
    port: int = 0
    source: str = "127.0.0.1"
    connections: int = 0
    _cut: bool = False
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Starts listening; returns once the port is known."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="cuttable-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(scaled(10)):
            message = "the proxy did not start listening"
            raise RuntimeError(message)
        return self

    def cut(self) -> None:
        """Closes every open connection and every new one, until :meth:`restore`."""
        self._call(self._cut_now)

    def restore(self) -> None:
        """Lets connections through again."""
        self._call(self._restore_now)

    def stop(self) -> None:
        """Closes everything and ends the thread."""
        if self._loop is None or self._thread is None:
            return
        self._call(self._stop_now)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(scaled(10))
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, action: Callable[[], Coroutine[None, None, None]]) -> None:
        if self._loop is None:
            message = "the proxy is not running"
            raise RuntimeError(message)
        asyncio.run_coroutine_threadsafe(action(), self._loop).result(10)

    async def _cut_now(self) -> None:
        self._cut = True
        for writer in list(self._open):
            writer.transport.abort()  # at once, as a lost network would: nothing more is sent
        self._open.clear()

    async def _restore_now(self) -> None:
        self._cut = False

    async def _stop_now(self) -> None:
        await self._cut_now()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._cut:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port, local_addr=(self.source, 0)
            )
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, upstream_writer)
        self._open.update(pair)
        try:
            await asyncio.gather(
                self._pump(reader, upstream_writer), self._pump(upstream_reader, writer)
            )
        finally:
            for end in pair:
                self._open.discard(end)
                end.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
