"""``/ws/desktop``: the connection a paired PC's ``troika-desktop`` keeps open to the gateway.

The PC dials out (so it works behind NAT, with no open port) and authenticates with its first
message; the credential never goes in the URL. Protocol (JSON messages):

* PC → gateway: ``{"type": "hello", "token": "<device credential>", "agent": "…", "platform": "…"}``
* gateway → PC: ``{"type": "ready", "device_id": …, "name": …}``
* gateway → PC, one at a time: ``{"type": "action", "id", "task_id", "key", "tool", "arguments",
  "seal", "files": {path: base64}, "image": bool}`` (``files``: the task's images an action names;
  ``image``: send a screenshot back, for a model that reads images)
* PC → gateway: ``{"type": "result", "id": <action id>, "outcome": {"ok", "output", "error",
  "needs_person", "image"}}`` (``needs_person``: the person stopped it at the PC; the task asks
  them; ``image``: the screenshot taken, base64 PNG)
* PC → gateway: ``{"type": "ping"}`` → ``{"type": "pong"}``

The gateway closes the connection with 4401 (unknown or revoked credential), 4403 (the PC was
revoked just now) or 4409 (the PC connected again elsewhere). An action is given to the PC only
while its call still waits for an outcome; one the PC does not finish before it disconnects is
given to it again when it reconnects (the PC remembers what it did, and does nothing twice).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from sqlalchemy import select, update

from troika_gateway.db.models import Device, Task, ToolCall
from troika_gateway.desktop.devices import hash_secret
from troika_gateway.desktop.relay import Control, answer, device_queue, send_control
from troika_gateway.desktop.shots import ShotArea
from troika_gateway.errors import InvalidInput
from troika_gateway.pipeline.states import CallStatus, TaskStatus
from troika_gateway.storage import file_name
from troika_shared.files import read_start
from troika_shared.messages import DesktopAction, ToolOutcome, decode

if TYPE_CHECKING:
    from litestar.datastructures import State
    from nats.aio.msg import Msg

    from troika_gateway.settings import GatewaySettings
    from troika_shared.bus import Delivery, WorkQueue
    from troika_shared.files import FileStore

__all__ = ["desktop_link"]

log = structlog.get_logger("troika.gateway.desktop")

AUTH_TIMEOUT_S = 10.0
HEARTBEAT_S = 30.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_REVOKED = 4403
CLOSE_REPLACED = 4409
_IMAGE_LIMIT = 10 << 20
_OPEN = (CallStatus.APPROVED.value, CallStatus.RUNNING.value)
_FINAL = tuple(s.value for s in TaskStatus if s.final)


class _Hello(msgspec.Struct):
    type: str
    token: str = ""
    agent: str = ""
    platform: str = ""


class _Outcome(msgspec.Struct):
    ok: bool
    output: str = ""
    error: str | None = None
    needs_person: bool = False
    image: str = ""  # a screenshot, base64 PNG, when the action asked for it


class _FromPC(msgspec.Struct):
    type: str
    id: str = ""
    outcome: _Outcome | None = None


class _Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class DeviceLink:
    """One PC's connection: hands it its actions one at a time and publishes its answers."""

    def __init__(self, socket: WebSocket[Any, Any, Any], device: Device) -> None:
        self.socket = socket
        self.state: State = socket.app.state
        self.settings: GatewaySettings = self.state.settings
        self.device_id = device.id
        self.user_id = device.user_id
        self.name = device.name
        self.connection = uuid.uuid4().hex
        self.answers: dict[str, asyncio.Future[ToolOutcome]] = {}
        self.tasks: dict[str, str] = {}  # action id → its task, while the PC works on it
        self.shots = ShotArea(self.state.files, self.settings.data_dir / "staging")
        self.closed: asyncio.Future[_Closed] = asyncio.get_running_loop().create_future()

    async def run(self) -> None:
        bus = self.state.bus
        control = await bus.nc.subscribe(
            bus.topology.device_control_subject(self.user_id, self.device_id), cb=self._on_control
        )
        await send_control(bus, self.user_id, self.device_id, "connected", self.connection)
        await self._mark(connected=True)
        await self.socket.send_json(
            {"type": "ready", "device_id": self.device_id, "name": self.name}
        )
        queue = await device_queue(bus, self.user_id, self.device_id)
        workers = [
            asyncio.create_task(self._read()),
            asyncio.create_task(self._pump(queue)),
            asyncio.create_task(self._heartbeat()),
        ]
        try:
            watched: set[asyncio.Future[Any]] = {*workers, self.closed}
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for worker in workers:
                worker.cancel()
            for ended in await asyncio.gather(*workers, return_exceptions=True):
                if isinstance(ended, Exception) and not isinstance(ended, WebSocketDisconnect):
                    log.error("desktop.link_failed", device_id=self.device_id, exc_info=ended)
            if self.closed.done():
                closing = self.closed.result()
                with contextlib.suppress(Exception):
                    await self.socket.send_json({"type": "error", "detail": closing.reason})
                    await self.socket.close(code=closing.code, reason=closing.reason[:120])
        finally:
            with contextlib.suppress(Exception):
                await control.unsubscribe()
            with contextlib.suppress(Exception):
                await queue.close()
            with contextlib.suppress(Exception):
                await self._mark(connected=False)

    def _revoked(self) -> bool:
        return self.closed.done() and self.closed.result().code == CLOSE_REVOKED

    def _close(self, code: int, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(_Closed(code, reason))

    async def _on_control(self, msg: Msg) -> None:
        with contextlib.suppress(msgspec.DecodeError):
            control = msgspec.json.decode(msg.data, type=Control)
            if control.type == "revoked":
                self._close(CLOSE_REVOKED, "this PC was removed from the account")
            elif control.type == "connected" and control.connection != self.connection:
                self._close(CLOSE_REPLACED, "this PC connected again elsewhere")

    async def _mark(self, *, connected: bool) -> None:
        now = datetime.now(UTC)
        statement = update(Device).where(Device.id == self.device_id)
        if connected:
            statement = statement.values(
                connected=True, connection_id=self.connection, last_seen_at=now
            )
        else:  # only if no newer connection of the PC took over meanwhile
            statement = statement.where(Device.connection_id == self.connection).values(
                connected=False, last_seen_at=now
            )
        async with self.state.sessionmaker() as db:
            await db.execute(statement)
            await db.commit()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            async with self.state.sessionmaker() as db:
                await db.execute(
                    update(Device)
                    .where(Device.id == self.device_id, Device.connection_id == self.connection)
                    .values(last_seen_at=datetime.now(UTC), connected=True)
                )
                await db.commit()

    async def _read(self) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                raw = await self.socket.receive_data(mode="text")
                try:
                    message = msgspec.json.decode(raw, type=_FromPC)
                except msgspec.DecodeError:
                    await self._error("messages must be JSON objects with a 'type'")
                    continue
                if message.type == "ping":
                    await self.socket.send_json({"type": "pong"})
                elif message.type == "result" and message.outcome is not None:
                    waiting = self.answers.get(message.id)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(await self._outcome(message.id, message.outcome))
                else:
                    await self._error(f"unknown or incomplete message {message.type!r}")

    async def _outcome(self, action_id: str, got: _Outcome) -> ToolOutcome:
        """The PC's answer as the task hears it; its screenshot kept for the model."""
        images: tuple[str, ...] = ()
        if got.image and (task_id := self.tasks.get(action_id)):
            try:
                png = base64.b64decode(got.image, validate=True)
                images = (await self.shots.keep(task_id, png),)
            except (ValueError, binascii.Error):
                log.warning("desktop.bad_screenshot", device_id=self.device_id)
        return ToolOutcome(
            ok=got.ok,
            output=got.output[:100_000],
            error=(got.error or "")[:4000] or None,
            needs_person=got.needs_person and not got.ok,
            images=images,
        )

    async def _error(self, detail: str) -> None:
        await self.socket.send_json({"type": "error", "detail": detail})

    async def _pump(self, queue: WorkQueue) -> None:
        while True:
            for delivery in await queue.fetch(1, timeout=5.0):
                await self._hand_over(delivery)

    async def _hand_over(self, delivery: Delivery) -> None:
        try:
            action = decode(delivery.data)
        except msgspec.DecodeError:
            await delivery.term()
            return
        if not isinstance(action, DesktopAction) or action.device_id != self.device_id:
            await delivery.term()
            return
        if not await self._still_wanted(action):
            log.info("desktop.dropped", task_id=action.correlation_id, key=action.call.key)
            await delivery.ack()
            return
        try:
            files = await self._files(action)
        except (InvalidInput, OSError) as exc:
            await answer(self.state.bus, action, ToolOutcome(ok=False, error=str(exc)))
            await delivery.ack()
            return
        waiting: asyncio.Future[ToolOutcome] = asyncio.get_running_loop().create_future()
        self.answers[action.id] = waiting
        self.tasks[action.id] = action.correlation_id
        try:
            await self.socket.send_json(
                {
                    "type": "action",
                    "id": action.id,
                    "task_id": action.correlation_id,
                    "key": action.call.key,
                    "tool": action.call.tool,
                    "arguments": action.call.arguments,
                    "seal": action.seal,
                    "files": files,
                    "image": self.settings.sees_images,  # send the screenshot back
                }
            )
            outcome = await self._await(waiting, delivery)
        except BaseException:
            with contextlib.suppress(Exception):
                if self._revoked():
                    revoked = ToolOutcome(ok=False, error=f"your PC {self.name!r} was removed")
                    await answer(self.state.bus, action, revoked)
                    await delivery.ack()
                else:  # the PC went away mid-action: it gets it again when it reconnects
                    await delivery.nak()
            raise
        finally:
            self.answers.pop(action.id, None)
            self.tasks.pop(action.id, None)
        await answer(self.state.bus, action, outcome)
        await delivery.ack()

    async def _await(self, waiting: asyncio.Future[ToolOutcome], delivery: Delivery) -> ToolOutcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.desktop_answer_s
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return ToolOutcome(
                    ok=False,
                    error=f"your PC {self.name!r} did not finish the action within "
                    f"{self.settings.desktop_answer_s:.0f} seconds",
                )
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(waiting), min(left, 10.0))
            await delivery.in_progress()

    async def _still_wanted(self, action: DesktopAction) -> bool:
        """Whether the action's call still waits for its outcome (not cancelled, not given up)."""
        async with self.state.sessionmaker() as db:
            found = await db.scalar(
                select(ToolCall.id)
                .join(Task, Task.id == ToolCall.task_id)
                .where(
                    ToolCall.key == action.call.key,
                    ToolCall.task_id == action.correlation_id,
                    ToolCall.status.in_(_OPEN),
                    Task.status.not_in(_FINAL),
                    Task.user_id == self.user_id,
                )
            )
        return found is not None

    async def _files(self, action: DesktopAction) -> dict[str, str]:
        """The task's image an action names (to find on screen), base64-encoded.

        Raises:
            InvalidInput: The name points outside the task's folder.
            OSError: There is no such file, or it is too big.
        """
        image = action.call.arguments.get("image")
        if not isinstance(image, str) or not image:
            return {}
        files: FileStore = self.state.files
        try:
            data = await read_start(files, action.correlation_id, file_name(image),
                                    _IMAGE_LIMIT + 1)  # fmt: skip
        except (FileNotFoundError, ValueError):
            raise FileNotFoundError(f"there is no image {image!r} in the task's folder") from None
        if len(data) > _IMAGE_LIMIT:
            raise OSError(f"the image {image!r} is larger than {_IMAGE_LIMIT >> 20} MB")
        return {image: base64.b64encode(data).decode()}


@websocket("/ws/desktop")
async def desktop_link(socket: WebSocket[Any, Any, Any]) -> None:
    """A paired PC's connection; authenticate with the first message."""
    await socket.accept()
    state = socket.app.state
    try:
        raw = await asyncio.wait_for(socket.receive_data(mode="text"), AUTH_TIMEOUT_S)
        hello = msgspec.json.decode(raw, type=_Hello)
    except WebSocketDisconnect:
        return
    except (TimeoutError, msgspec.DecodeError):
        hello = _Hello(type="")
    device = None
    if hello.type == "hello" and hello.token:
        async with state.sessionmaker() as db:
            device = await db.scalar(
                select(Device).where(
                    Device.token_hash == hash_secret(hello.token), Device.revoked_at.is_(None)
                )
            )
    if device is None:
        detail = "unknown or revoked PC: pair it again (troika-desktop pair <gateway> <code>)"
        with contextlib.suppress(Exception):
            await socket.send_json({"type": "error", "detail": detail})
            await socket.close(code=CLOSE_UNAUTHORIZED, reason=detail[:120])
        return
    log.info("desktop.connected", device_id=device.id, agent=hello.agent[:64])
    await DeviceLink(socket, device).run()
    log.info("desktop.disconnected", device_id=device.id)
