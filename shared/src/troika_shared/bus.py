"""The message bus: NATS JetStream, as Troika uses it.

* Streams are created (or updated) from the :class:`~troika_shared.subjects.Topology`.
* Every publish carries the message id as ``Nats-Msg-Id``, so JetStream drops a re-published copy
  within its duplicate window.
* Agents pull from durable consumers on work-queue streams: each message goes to one replica,
  stays until explicitly acknowledged, and goes to another replica if the first one dies.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING, Self

import structlog
from nats.aio.client import Client
from nats.errors import (
    ConnectionClosedError,
    ConnectionReconnectingError,
    NoServersError,
    OutboundBufferLimitError,
)
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api
from nats.js.errors import BadRequestError, NotFoundError

from troika_shared.errors import DependencyUnavailable
from troika_shared.messages import Message, encode
from troika_shared.settings import shown
from troika_shared.subjects import Retention, StreamKey, Topology
from troika_shared.tracing import carrier
from troika_shared.work_queue import Delivery, WorkQueue

if TYPE_CHECKING:
    from collections.abc import Mapping

    from nats.js import JetStreamContext

    from troika_shared.settings import BusSettings

__all__ = ["Bus", "Delivery", "WorkQueue"]

log = structlog.get_logger("troika.bus")

_STREAM_NAME_IN_USE = (
    10058  # JetStream: "stream name already in use with a different configuration"
)
# JetStream: "subjects overlap with an existing stream" — also what a server answers when
# another service created the same stream between its name check and its subject check.
_SUBJECTS_OVERLAP = 10065
_MSG_ID = "Nats-Msg-Id"


class Bus:
    """A connection to NATS JetStream under one topology.

    Build it with :meth:`connect`; close it with :meth:`close` (or ``async with``).

    Args:
        nc: A connected NATS client.
        topology: Subject and stream names.
        publish_timeout: Seconds to wait for JetStream to confirm a publish.
        duplicate_window: Seconds JetStream remembers message ids.
    """

    def __init__(
        self,
        nc: Client,
        topology: Topology,
        *,
        publish_timeout: float = 5.0,
        duplicate_window: float = 120.0,
    ) -> None:
        self.nc = nc
        self._closing = False
        self.js: JetStreamContext = nc.jetstream(timeout=publish_timeout)
        self.topology = topology
        self._publish_timeout = publish_timeout
        self._duplicate_window = duplicate_window
        self._queues: weakref.WeakSet[WorkQueue] = weakref.WeakSet()

    @classmethod
    async def connect(cls, settings: BusSettings, *, name: str, service: str | None = None) -> Self:
        """Connects to the NATS servers of ``settings``.

        Args:
            settings: Where the bus is and its prefix.
            name: The client name the server shows for this connection.
            service: The service connecting: its replies come back under an inbox prefix of
                its own (:meth:`Topology.inbox_prefix`), as its NATS user's permissions expect.

        Raises:
            DependencyUnavailable: No server answered.
        """

        bus = cls(
            Client(),
            Topology(settings.bus_prefix),
            publish_timeout=settings.publish_timeout_s,
            duplicate_window=settings.duplicate_window_s,
        )
        inbox = bus.topology.inbox_prefix(service) if service else "_INBOX"
        try:
            await bus.nc.connect(
                servers=settings.nats_servers,
                name=name,
                inbox_prefix=inbox,
                connect_timeout=settings.connect_timeout_s,
                max_reconnect_attempts=settings.connect_attempts,
                error_cb=bus._on_error,
                disconnected_cb=bus._on_disconnect,
                reconnected_cb=bus._on_reconnect,
            )
        except (NoServersError, OSError, TimeoutError) as exc:
            raise DependencyUnavailable("nats", f"{shown(settings.nats_url)}: {exc}") from exc
        # Once connected, a lost connection is retried for as long as it takes: the client reads
        # this option on every reconnect, and there is no separate one for the first connect.
        bus.nc.options["max_reconnect_attempts"] = -1
        return bus

    async def _on_error(self, exc: Exception) -> None:
        log.warning("bus.error", error=str(exc))

    async def _on_disconnect(self) -> None:
        if not self._closing:
            log.warning("bus.disconnected")

    async def _on_reconnect(self) -> None:
        log.info("bus.reconnected")
        for queue in self._queues:  # the server may have dropped their standing requests
            queue.forget_requests()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def ensure_streams(self, *, update: bool = True) -> None:
        """Creates every stream of the topology, or updates one whose settings changed.

        Args:
            update: Whether to update a stream that exists with other settings, and remove
                the streams earlier versions made that nothing reads now (the gateway does; an
                agent, whose NATS user may only create streams, leaves them as they are).
        """
        for spec in self.topology.streams():
            config = api.StreamConfig(
                name=spec.name,
                description=spec.description,
                subjects=list(spec.subjects),
                retention=(
                    api.RetentionPolicy.WORK_QUEUE
                    if spec.retention is Retention.WORK_QUEUE
                    else api.RetentionPolicy.LIMITS
                ),
                storage=api.StorageType.FILE,
                max_age=spec.max_age_s or None,
                max_msgs_per_subject=spec.max_msgs_per_subject,
                duplicate_window=self._duplicate_window,
            )
            try:
                await self.js.add_stream(config)
            except BadRequestError as exc:
                raced = exc.err_code == _SUBJECTS_OVERLAP and await self._stream_exists(spec.name)
                if exc.err_code != _STREAM_NAME_IN_USE and not raced:
                    raise
                if update:
                    await self.js.update_stream(config)
        if update:
            for name in self.topology.retired_streams():
                with contextlib.suppress(NotFoundError):
                    await self.js.delete_stream(name)

    async def _stream_exists(self, name: str) -> bool:
        try:
            await self.js.stream_info(name)
        except NotFoundError:
            return False
        return True

    async def delete_streams(self) -> None:
        """Removes every stream of the topology and the messages in them (tests, resets)."""
        for spec in self.topology.streams():
            try:
                await self.js.delete_stream(spec.name)
            except NotFoundError:
                continue

    async def publish(
        self,
        message: Message,
        *,
        subject: str | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> bool:
        """Publishes a message on its subject, de-duplicated by its id.

        Args:
            message: The message; its ``id`` becomes the ``Nats-Msg-Id``.
            subject: Overrides the topology's subject for the message.
            trace: The trace context it travels in (headers from
                :func:`troika_shared.tracing.carrier`); the current span's when not given.

        Returns:
            ``True`` if JetStream stored it, ``False`` if it was a duplicate and dropped.

        Raises:
            DependencyUnavailable: JetStream did not confirm in time.
        """
        target = subject or self.topology.subject_for(message)
        try:
            ack = await self.js.publish(
                target,
                encode(message),
                timeout=self._publish_timeout,
                headers={**(carrier() if trace is None else trace), _MSG_ID: message.id},
            )
        except (NatsTimeoutError, NoServersError, ConnectionClosedError) as exc:
            raise DependencyUnavailable("nats", f"publish to {target}: {exc!r}") from exc
        return not ack.duplicate

    async def announce(self, message: Message) -> None:
        """Publishes news that nobody must acknowledge (a task's live events): no round trip
        for JetStream's confirmation, so a lost one is only a missed notice, never lost state.

        Raises:
            DependencyUnavailable: The connection is closed or its buffer is full.
        """
        target = self.topology.subject_for(message)
        try:
            await self.nc.publish(target, encode(message), headers={_MSG_ID: message.id})
        except (ConnectionClosedError, OutboundBufferLimitError) as exc:
            raise DependencyUnavailable("nats", f"publish to {target}: {exc!r}") from exc

    async def stopped(self, task_id: str) -> bool:
        """Whether the task has reached a final status (its queued calls must not run).

        Raises:
            DependencyUnavailable: JetStream did not answer.
        """
        stream = self.topology.stream_name(StreamKey.STOPPED)
        try:
            await self.js.get_last_msg(stream, self.topology.stopped_subject(task_id))
        except NotFoundError:
            return False
        except (NatsTimeoutError, TimeoutError, ConnectionClosedError) as exc:
            raise DependencyUnavailable("nats", f"could not look up task {task_id}: {exc}") from exc
        return True

    async def work_queue(
        self,
        key: StreamKey,
        durable: str,
        *,
        ack_wait_s: float = 30.0,
        max_deliver: int = 5,
        max_ack_pending: int = 1000,
        filter_subject: str | None = None,
        request_expires_s: float = 20.0,
    ) -> WorkQueue:
        """Binds to (creating if needed) the durable pull consumer a service's replicas share.

        Args:
            key: The stream to consume.
            durable: The consumer's name; every replica of a service uses the same one.
            ack_wait_s: Seconds a delivered message may go unacknowledged before redelivery.
            max_deliver: Deliveries before JetStream stops redelivering.
            max_ack_pending: Messages delivered and unacknowledged at once, over all replicas.
            filter_subject: Only the stream's messages on this subject (one PC's actions).
            request_expires_s: How long one of the replica's standing pull requests lasts.
        """
        spec = self.topology.stream(key)
        config = api.ConsumerConfig(
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait_s,
            max_deliver=max_deliver,
            max_ack_pending=max_ack_pending,
            deliver_policy=api.DeliverPolicy.ALL,
            filter_subject=filter_subject,
        )
        await self.js.add_consumer(spec.name, config)
        queue = await WorkQueue.bind(self.nc, spec, durable, expires_s=request_expires_s)
        self._queues.add(queue)
        return queue

    async def close(self) -> None:
        """Drains the connection: pending publishes are flushed, subscriptions closed. Where
        the server cannot be reached (it is away, or this host is cut off) it is simply closed:
        what was not acknowledged is delivered again, to another replica."""
        if self.nc.is_closed:
            return
        self._closing = True
        try:
            await self.nc.drain()
        except (ConnectionClosedError, ConnectionReconnectingError, NatsTimeoutError):
            await self.nc.close()
