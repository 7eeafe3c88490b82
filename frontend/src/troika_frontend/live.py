"""The live events of a person's tasks, from the gateway's ``/ws``, across lost connections.

The feed remembers the last event it delivered of each task it follows; when the connection
drops (the gateway restarted, the network blinked, the access token expired) it connects
again and asks the gateway to resume each task after that event, so every event arrives
exactly once and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import structlog
import websockets

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["LiveFeed", "LiveRefused"]

log = structlog.get_logger("troika.web.live")


class LiveRefused(Exception):
    """The gateway would not open the live view for this session (signed out, expired)."""


class LiveFeed:
    """Events of one person's tasks, each once, in order, for as long as it is iterated.

    Args:
        ws_url: The gateway's ``/ws`` address.
        token: Returns a current access token (renewing it when needed).
        follow: Task id → the last event already shown; those tasks are replayed from there.
        retry_s: The pause before connecting again.
    """

    def __init__(
        self,
        ws_url: str,
        token: Callable[[], Awaitable[str]],
        follow: dict[str, int] | None = None,
        *,
        retry_s: float = 1.0,
    ) -> None:
        self.ws_url = ws_url
        self.token = token
        self.cursors = dict(follow or {})
        self.retry_s = retry_s
        self.connected = asyncio.Event()
        self._socket: websockets.ClientConnection | None = None

    async def resume(self, task_id: str, after: int) -> None:
        """Delivers ``task_id``'s events after ``after`` (those not delivered already).

        A page that has read a task's log up to ``after`` calls this, so that nothing between
        its read and the live events is missed: the gateway replays the difference.
        """
        if task_id in self.cursors and self.cursors[task_id] >= after:
            return  # this feed already follows the task from an earlier point
        self.cursors[task_id] = after
        socket = self._socket
        if socket is not None and self.connected.is_set():
            with contextlib.suppress(websockets.WebSocketException, OSError):
                await socket.send(
                    json.dumps({"type": "resume", "task_id": task_id, "after": after})
                )

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Yields ``{"task_id", "seq", "kind", "data", "at"}`` events until cancelled, and a
        ``live.connected`` event (no task) each time the connection is made.

        Raises:
            LiveRefused: The gateway refused the session twice in a row.
        """
        refusals = 0
        while True:
            try:
                async for event in self._connection():
                    refusals = 0
                    yield event
            except LiveRefused:
                refusals += 1
                if refusals >= 2:
                    raise
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                log.info("live.reconnecting", reason=type(exc).__name__)
            self.connected.clear()
            self._socket = None
            await asyncio.sleep(self.retry_s)

    async def _connection(self) -> AsyncIterator[dict[str, Any]]:
        token = await self.token()
        async with websockets.connect(self.ws_url, max_size=None, open_timeout=10) as socket:
            hello = {"type": "auth", "token": token, "resume": self.cursors}
            await socket.send(json.dumps(hello))
            ready = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if ready.get("type") != "ready":
                with contextlib.suppress(websockets.WebSocketException):
                    await socket.close()
                raise LiveRefused(str(ready.get("detail") or "the live view was refused"))
            self._socket = socket
            self.connected.set()
            # Events of tasks this feed did not follow may have happened while it was away:
            # whoever listens reloads what they show.
            yield {"type": "event", "task_id": "", "seq": 0, "kind": "live.connected", "data": {}}
            async for raw in socket:
                message = json.loads(raw)
                if message.get("type") != "event":
                    continue
                task_id, seq = str(message["task_id"]), int(message["seq"])
                if seq <= self.cursors.get(task_id, 0):
                    continue  # delivered already
                self.cursors[task_id] = seq
                yield message
