"""The live view: ``/ws`` pushes the events of all of the caller's tasks as they happen.

Protocol (JSON messages):

* The client's first message authenticates; the token never goes in the URL::

      {"type": "auth", "token": "<access token>", "resume": {"<task id>": <last seq seen>}}

* The server answers ``{"type": "ready", "user_id": …}`` and from then on sends
  ``{"type": "event", "task_id", "seq", "kind", "data", "at"}`` for every event of the user's tasks.
* ``{"type": "resume", "task_id": …, "after": N}`` at any time replays that task's events after N.
* ``{"type": "auth", "token": …}`` again renews an expiring token; ``{"type": "ping"}`` gets a pong.

Each task's events reach the client once each, with no gaps: events come from the database (the
log's source of truth) wherever the live feed from the bus skipped some.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from sqlalchemy import select

from troika_gateway.auth.middleware import Principal, authenticate
from troika_gateway.db.models import Session, Task, TaskEvent
from troika_gateway.errors import Unauthorized
from troika_shared.messages import LoggedEvent, TaskEvents, decode
from troika_shared.messages import TaskEvent as OneTaskEvent

if TYPE_CHECKING:
    from litestar.datastructures import State
    from nats.aio.msg import Msg

__all__ = ["live_events"]

log = structlog.get_logger("troika.gateway.live")

AUTH_TIMEOUT_S = 10.0
REVOCATION_CHECK_S = 30.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_POLICY = 1008
_PAGE = 500


class _Hello(msgspec.Struct):
    type: str
    token: str = ""
    resume: dict[str, int] = msgspec.field(default_factory=dict)


class _Command(msgspec.Struct):
    type: str
    token: str = ""
    task_id: str = ""
    after: int = 0


class _Resume(msgspec.Struct, frozen=True):
    task_id: str
    after: int


class LiveSession:
    """One authenticated connection: a queue of things to send, in the order they must go."""

    def __init__(
        self, socket: WebSocket[Any, Any, Any], principal: Principal, expires: datetime
    ) -> None:
        self.socket = socket
        self.state: State = socket.app.state
        self.principal = principal
        self.expires = expires
        self.queue: asyncio.Queue[_Resume | TaskEvents] = asyncio.Queue()
        self.cursor: dict[str, int] = {}  # highest seq sent per task
        self.first: dict[str, int] = {}  # lowest seq sent per task
        self.owned: dict[str, bool] = {}
        self.recheck = asyncio.Event()  # a session of the user ended somewhere: check ours now

    async def run(self, resume: dict[str, int]) -> None:
        for task_id, after in resume.items():
            self.queue.put_nowait(_Resume(task_id, max(int(after), 0)))
        bus = self.state.bus
        subscription = await bus.nc.subscribe(
            bus.topology.event_subject(self.principal.user_id), cb=self._on_live
        )
        ended = await bus.nc.subscribe(
            bus.topology.sessions_ended_subject(self.principal.user_id), cb=self._on_ended
        )
        await self.socket.send_json({"type": "ready", "user_id": self.principal.user_id})
        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(self._read())
                writer = group.create_task(self._write())
                watcher = group.create_task(self._watch())
                await asyncio.wait({reader, writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
                for task in (reader, writer, watcher):
                    task.cancel()
        finally:
            for each in (subscription, ended):
                with contextlib.suppress(Exception):
                    await each.unsubscribe()

    async def _on_ended(self, _msg: Msg) -> None:
        self.recheck.set()

    async def _on_live(self, msg: Msg) -> None:
        with contextlib.suppress(msgspec.DecodeError):
            message = decode(msg.data)
            if not isinstance(message, TaskEvents | OneTaskEvent):
                return
            if message.user_id != self.principal.user_id:
                return
            if isinstance(message, OneTaskEvent):  # one event a message, from an older gateway
                event = LoggedEvent(seq=message.seq, kind=message.kind, data=message.data,
                                    at=message.occurred_at)  # fmt: skip
                message = TaskEvents(correlation_id=message.correlation_id,
                                     user_id=message.user_id, events=(event,))  # fmt: skip
            self.queue.put_nowait(message)

    async def _read(self) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                raw = await self.socket.receive_data(mode="text")
                try:
                    command = msgspec.json.decode(raw, type=_Command)
                except msgspec.DecodeError:
                    await self._error("messages must be JSON objects with a 'type'")
                    continue
                if command.type == "resume" and command.task_id:
                    self.queue.put_nowait(_Resume(command.task_id, max(command.after, 0)))
                elif command.type == "auth":
                    try:
                        principal, claims = await authenticate(
                            command.token, self.state.tokens, self.state.sessionmaker
                        )
                    except Unauthorized as exc:
                        await self._error(exc.detail)
                        continue
                    if principal.user_id == self.principal.user_id:
                        self.principal, self.expires = principal, claims.expires_at
                elif command.type == "ping":
                    await self.socket.send_json({"type": "pong"})
                else:
                    await self._error(f"unknown message type {command.type!r}")

    async def _error(self, detail: str, **extra: object) -> None:
        await self.socket.send_json({"type": "error", "detail": detail, **extra})

    async def _watch(self) -> None:
        """Ends the connection when the token expires or the session is revoked."""
        while True:
            remaining = (self.expires - datetime.now(UTC)).total_seconds()
            wait_s = max(min(remaining, REVOCATION_CHECK_S), 0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.recheck.wait(), wait_s)
            self.recheck.clear()
            reason = None
            if self.expires <= datetime.now(UTC):
                reason = "the access token expired; reconnect with a fresh one"
            else:
                try:
                    await self._session_live()
                except Unauthorized as exc:
                    reason = exc.detail
            if reason:
                with contextlib.suppress(Exception):
                    await self._error(reason)
                    await self.socket.close(code=CLOSE_UNAUTHORIZED, reason=reason[:120])
                return

    async def _session_live(self) -> None:
        async with self.state.sessionmaker() as db:
            row = await db.get(Session, self.principal.session_id)
        if row is None or row.revoked_at is not None or row.expires_at <= datetime.now(UTC):
            raise Unauthorized("this session has ended; sign in again")

    async def _write(self) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                item = await self.queue.get()
                if isinstance(item, _Resume):
                    await self._resume(item)
                else:
                    await self._live(item)

    async def _owns(self, task_id: str) -> bool:
        if task_id not in self.owned:
            async with self.state.sessionmaker() as db:
                found = await db.scalar(
                    select(Task.id).where(
                        Task.id == task_id, Task.user_id == self.principal.user_id
                    )
                )
            self.owned[task_id] = found is not None
        return self.owned[task_id]

    async def _replay(self, task_id: str, after: int, before: int | None = None) -> None:
        while True:
            query = select(TaskEvent).where(TaskEvent.task_id == task_id, TaskEvent.seq > after)
            if before is not None:
                query = query.where(TaskEvent.seq < before)
            async with self.state.sessionmaker() as db:
                rows = list(await db.scalars(query.order_by(TaskEvent.seq).limit(_PAGE)))
            for row in rows:
                await self._send(task_id, row.seq, row.kind, row.data, row.created_at)
            if len(rows) < _PAGE:
                return
            after = rows[-1].seq

    async def _resume(self, item: _Resume) -> None:
        if not await self._owns(item.task_id):
            await self._error("no such task", task_id=item.task_id)
            return
        if item.task_id in self.cursor:
            # Already streaming this task: fill in only what came before the first event sent.
            await self._replay(item.task_id, item.after, before=self.first[item.task_id])
            return
        self.cursor[item.task_id] = item.after
        self.first[item.task_id] = item.after + 1
        await self._replay(item.task_id, item.after)

    async def _live(self, message: TaskEvents) -> None:
        task_id = message.correlation_id
        for event in message.events:
            last = self.cursor.get(task_id)
            if last is not None and event.seq <= last:
                continue  # sent already (from the database or an earlier copy)
            if last is not None and event.seq > last + 1:
                await self._replay(task_id, last, before=event.seq)  # the bus skipped some
            if last is None:
                self.first[task_id] = event.seq
            await self._send(task_id, event.seq, event.kind, event.data, event.at)

    async def _send(
        self, task_id: str, seq: int, kind: str, data: dict[str, Any], at: datetime
    ) -> None:
        await self.socket.send_json(
            {
                "type": "event",
                "task_id": task_id,
                "seq": seq,
                "kind": kind,
                "data": data,
                "at": at.isoformat(),
            }
        )
        self.cursor[task_id] = max(seq, self.cursor.get(task_id, 0))


@websocket("/ws")
async def live_events(socket: WebSocket[Any, Any, Any]) -> None:
    """Live events of all of the caller's tasks; authenticate with the first message."""
    await socket.accept()
    state = socket.app.state
    try:
        raw = await asyncio.wait_for(socket.receive_data(mode="text"), AUTH_TIMEOUT_S)
        hello = msgspec.json.decode(raw, type=_Hello)
        principal, claims = await authenticate(
            hello.token if hello.type == "auth" else "", state.tokens, state.sessionmaker
        )
    except WebSocketDisconnect:
        return
    except (TimeoutError, msgspec.DecodeError, Unauthorized) as exc:
        detail = (
            exc.detail
            if isinstance(exc, Unauthorized)
            else "authenticate first: "
            + ("no message came" if isinstance(exc, TimeoutError) else "send a JSON auth message")
        )
        with contextlib.suppress(Exception):
            await socket.send_json({"type": "error", "detail": detail})
            await socket.close(code=CLOSE_UNAUTHORIZED, reason=detail[:120])
        return
    log.info("live.connected", user_id=principal.user_id)
    await LiveSession(socket, principal, claims.expires_at).run(hello.resume)
    log.info("live.disconnected", user_id=principal.user_id)
