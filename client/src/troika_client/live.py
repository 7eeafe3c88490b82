"""The live events of a person's tasks, from the gateway's ``/ws``, across lost connections.

The feed remembers the last event it delivered of each task it follows; when the connection
drops (the gateway restarted, the network blinked, the access token expired) it connects
again and asks the gateway to resume each task after that event, so every event arrives
exactly once and in order. Each event's body can be read typed (:meth:`LiveEvent.body`).

    async with Session.open(url) as session:
        await session.login("ada", password)
        feed = LiveFeed(session.ws_url, session.token)
        async for event in feed.events():
            if isinstance(event.body(), TaskCompleted): ...
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
import websockets

from troika_shared.task_events import TaskEventBody, decode_event

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable

__all__ = ["CONNECTED", "LiveEvent", "LiveFeed", "LiveRefused"]

log = structlog.get_logger("troika.client.live")

CONNECTED = "live.connected"
"""The kind of the event a feed yields (with no task) each time its connection is made."""


class LiveRefused(Exception):
    """The gateway would not open the live view for this session (signed out, expired)."""


class LiveEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event of one of the person's tasks, as the live feed delivers it.

    Attributes:
        task_id: The task (``""`` for the feed's own ``live.connected``).
        seq: Its place in the task's event log, from 1.
        kind: What happened, e.g. ``"tool.approved"``.
        data: The event's body as JSON.
        at: When, as an ISO 8601 time.
    """

    task_id: str = ""
    seq: int = 0
    kind: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    at: str = ""

    def body(self) -> TaskEventBody | None:
        """The typed body (``None`` for a kind this version does not know, or a bad body)."""
        try:
            return decode_event(self.kind, self.data)
        except msgspec.ValidationError:
            return None

    def as_dict(self) -> dict[str, Any]:
        """The event as plain JSON values."""
        return msgspec.structs.asdict(self)


class _Frame(msgspec.Struct, kw_only=True):
    """Any message the gateway sends on ``/ws``."""

    type: str
    task_id: str = ""
    seq: int = 0
    kind: str = ""
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    at: str = ""
    detail: str = ""


_frames = msgspec.json.Decoder(_Frame)
_encoder = msgspec.json.Encoder()


def _encode(message: dict[str, Any]) -> str:
    """A message as the gateway reads it: a text frame of JSON."""
    return _encoder.encode(message).decode()


class LiveFeed:
    """Events of one person's tasks, each once, in order, for as long as it is iterated.

    Args:
        ws_url: The gateway's ``/ws`` address.
        token: Returns a current access token (renewing it when needed).
        follow: Task id → the last event already shown; those tasks are replayed from there.
        retry_s: The pause before connecting again.
        refusals: Refusals in a row (signed out, expired) after which :meth:`events` gives up.
    """

    def __init__(
        self,
        ws_url: str,
        token: Callable[[], Awaitable[str]],
        follow: dict[str, int] | None = None,
        *,
        retry_s: float = 1.0,
        refusals: int = 2,
    ) -> None:
        self.ws_url = ws_url
        self.token = token
        self.cursors = dict(follow or {})
        self.retry_s = retry_s
        self.refusals = refusals
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
                await socket.send(_encode({"type": "resume", "task_id": task_id, "after": after}))

    async def events(self) -> AsyncGenerator[LiveEvent]:
        """Yields the events until cancelled, and a ``live.connected`` event (no task) each
        time the connection is made: events of tasks the feed did not follow may have
        happened while it was away, so whoever listens reloads what they show.

        Raises:
            LiveRefused: The gateway refused the session ``refusals`` times in a row.
        """
        refused = 0
        while True:
            try:
                async for event in self._connection():
                    refused = 0
                    yield event
            except LiveRefused:
                refused += 1
                if refused >= self.refusals:
                    raise
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                log.info("live.reconnecting", reason=type(exc).__name__)
            self.connected.clear()
            self._socket = None
            await asyncio.sleep(self.retry_s)

    async def _connection(self) -> AsyncGenerator[LiveEvent]:
        token = await self.token()
        async with websockets.connect(self.ws_url, max_size=None, open_timeout=10) as socket:
            await socket.send(_encode({"type": "auth", "token": token, "resume": self.cursors}))
            ready = _frames.decode(await asyncio.wait_for(socket.recv(), 10))
            if ready.type != "ready":
                with contextlib.suppress(websockets.WebSocketException):
                    await socket.close()
                raise LiveRefused(ready.detail or "the live view was refused")
            self._socket = socket
            self.connected.set()
            yield LiveEvent(kind=CONNECTED)
            async for raw in socket:
                frame = _frames.decode(raw)
                if frame.type != "event":
                    continue
                if frame.seq <= self.cursors.get(frame.task_id, 0):
                    continue  # delivered already
                self.cursors[frame.task_id] = frame.seq
                yield LiveEvent(
                    task_id=frame.task_id,
                    seq=frame.seq,
                    kind=frame.kind,
                    data=frame.data,
                    at=frame.at,
                )
