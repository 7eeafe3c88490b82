"""The service runner every agent service stands on.

settings → logging → connect → consume with a router → drain on shutdown. Replicas of a service
share one durable consumer on its work-queue stream, so each message is handled by one of them;
a replica that dies mid-message stops sending heartbeats, and the message goes to another.

For each delivery the runner:

1. decodes it (a payload that does not decode is dead-lettered at once: it never will);
2. runs the handler, sending ``in_progress`` heartbeats while it works;
3. publishes what the handler returned (ids derived from the cause, so a redelivery's output is
   de-duplicated), then acknowledges; a copy of a message this replica is still handling (it
   came again because its heartbeats were late) waits for that delivery, and is acknowledged
   without running the handler a second time if that delivery settled the message;
4. on a :class:`~troika_shared.errors.RetryableError` (or an unexpected exception) asks for a
   redelivery after an exponential back-off, until the delivery limit, then dead-letters;
5. on a :class:`~troika_shared.errors.PermanentError` dead-letters at once.

A dead letter is a :class:`~troika_shared.messages.DeadLettered` event on ``<prefix>.dead.<stream>``
(kept for an operator), published before the message is terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from importlib import metadata
from typing import TYPE_CHECKING

import msgspec
import structlog
from nats.micro import add_service
from opentelemetry.trace import SpanKind, StatusCode

from troika_shared import heap, metrics, tracing
from troika_shared.bus import Bus, Delivery, WorkQueue
from troika_shared.errors import (
    DependencyUnavailable,
    PermanentError,
    RetryableError,
    UndecodableMessage,
)
from troika_shared.logs import configure_logging
from troika_shared.messages import DeadLettered, Message, decode, derive_id
from troika_shared.private import keep_private

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractContextManager

    from nats.micro.service import Service
    from opentelemetry.trace import Span

    from troika_shared.router import Router
    from troika_shared.settings import AgentSettings
    from troika_shared.subjects import StreamKey

__all__ = ["ServiceRunner", "instance_name", "run_until_signalled", "serve", "settle_when_ready"]

log = structlog.get_logger("troika.runner")

_FETCH_TIMEOUT_S = 1.0  # how quickly an idle replica notices it is asked to stop
_SETTLED = frozenset({"handled", "dead_lettered"})  # outcomes after which the message is gone


class ServiceRunner:
    """Consumes one work-queue stream with a router until told to stop.

    Args:
        service: The service's name (``planner``); also its durable consumer's name.
        version: The service's version, announced for discovery.
        settings: Bus and consumer settings.
        router: The handlers.
        stream: The work-queue stream to consume.
        on_start: Awaited with the connected bus before the first message (handlers that need
            to look something up on the bus bind to it here).
    """

    def __init__(
        self,
        *,
        service: str,
        version: str,
        settings: AgentSettings,
        router: Router,
        stream: StreamKey,
        on_start: Callable[[Bus], Awaitable[None]] | None = None,
    ) -> None:
        self.service = service
        self.version = version
        self.settings = settings
        self.router = router
        self.stream = stream
        self.on_start = on_start
        self.instance = instance_name()
        self.ready = asyncio.Event()
        self._bus: Bus | None = None
        # the messages being handled now, by stream sequence: each one's outcome, once known
        self._handling: dict[int, asyncio.Future[str]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Runs until ``stop`` is set, then lets in-flight messages finish and drains.

        Raises:
            DependencyUnavailable: NATS could not be reached at start.
        """
        bus = await Bus.connect(
            self.settings, name=f"{self.service}@{self.instance}", service=self.service
        )
        self._bus = bus
        try:
            await bus.ensure_streams(update=False)  # the gateway updates them
            if self.on_start is not None:
                await self.on_start(bus)
            queue = await bus.work_queue(
                self.stream,
                self.service,
                ack_wait_s=self.settings.ack_wait_s,
                max_deliver=self.settings.max_deliver,
            )
            discovery = await self._announce(bus)
            self.ready.set()
            log.info(
                "service.ready",
                stream=queue.spec.name,
                consumer=queue.durable,
                instance=self.instance,
                concurrency=self.settings.concurrency,
            )
            try:
                await self._consume(queue, stop)
            finally:
                await discovery.stop()
                await queue.close()
        finally:
            await bus.close()
            log.info("service.stopped", instance=self.instance)

    async def _announce(self, bus: Bus) -> Service:
        """Joins NATS service discovery: answering ``$SRV.PING`` means this replica is ready."""
        return await add_service(
            bus.nc,
            name=bus.topology.service_name(self.service),
            version=self.version,
            description=f"Troika {self.service}",
            metadata={"instance": self.instance, "prefix": bus.topology.prefix},
        )

    async def _consume(self, queue: WorkQueue, stop: asyncio.Event) -> None:
        inflight: set[asyncio.Task[None]] = set()
        limit = self.settings.concurrency
        while not stop.is_set():
            if len(inflight) >= limit:
                await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                continue
            for delivery in await queue.fetch(limit - len(inflight), _FETCH_TIMEOUT_S):
                task = asyncio.create_task(self._handle(delivery))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
        if inflight:
            log.info("service.draining", inflight=len(inflight))
            _, pending = await asyncio.wait(inflight, timeout=self.settings.shutdown_grace_s)
            for task in pending:
                task.cancel()  # unacknowledged: JetStream redelivers it to another replica
            await asyncio.gather(*pending, return_exceptions=True)

    async def _handle(self, delivery: Delivery) -> None:
        try:
            await self._handle_delivery(delivery)
        except Exception:
            log.exception("message.unsettled", subject=delivery.subject, seq=delivery.stream_seq)

    async def _handle_delivery(self, delivery: Delivery) -> None:
        with structlog.contextvars.bound_contextvars(
            subject=delivery.subject,
            stream_seq=delivery.stream_seq,
            delivery=delivery.num_delivered,
        ):
            try:
                message = decode(delivery.data)
            except msgspec.DecodeError as exc:
                await self._dead_letter(delivery, UndecodableMessage(delivery.subject, str(exc)))
                metrics.HANDLED.labels("unknown", "undecodable").inc()
                return
            with (
                self._span(delivery, message) as span,
                structlog.contextvars.bound_contextvars(
                    message_id=message.id, task_id=message.correlation_id, type=message.type
                ),
            ):
                if delivery.num_delivered > 1:
                    metrics.REDELIVERED.labels(message.type).inc()
                started = time.perf_counter()
                outcome = await self._handle_once(delivery, message)
                metrics.HANDLING_SECONDS.labels(message.type).observe(time.perf_counter() - started)
                metrics.HANDLED.labels(message.type, outcome).inc()
                span.set_attribute("troika.outcome", outcome)
                if outcome != "handled":
                    span.set_status(StatusCode.ERROR, outcome)

    def _span(self, delivery: Delivery, message: Message) -> AbstractContextManager[Span]:
        """The delivery's span: a messaging consumer span inside the trace the message
        carries."""
        return tracing.tracer().start_as_current_span(
            f"process {message.type}",
            context=tracing.context_of(delivery.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": delivery.subject,
                "messaging.message.id": message.id,
                "messaging.consumer.group.name": self.service,
                "messaging.message.delivery_count": delivery.num_delivered,
                "troika.task_id": message.correlation_id,
            },
        )

    async def _handle_once(self, delivery: Delivery, message: Message) -> str:
        """Handles the delivery after any other delivery of the same message still handled
        here; ``duplicate`` if that one settled the message (this copy is acknowledged)."""
        seq = delivery.stream_seq
        while (first := self._handling.get(seq)) is not None:
            log.info("message.copy_waits")
            await asyncio.wait({first})
            if first.result() in _SETTLED:
                await delivery.ack()
                log.info("message.copy_dropped")
                return "duplicate"
        done = asyncio.get_running_loop().create_future()
        self._handling[seq] = done
        outcome = "unsettled"
        try:
            outcome = await self._handle_message(delivery, message)
        finally:
            del self._handling[seq]
            done.set_result(outcome)
        return outcome

    async def _handle_message(self, delivery: Delivery, message: Message) -> str:
        """Handles one delivery; how it ended (``handled``, ``retried``, ``dead_lettered``)."""
        bus = self._require_bus()
        heartbeat = asyncio.create_task(self._heartbeat(delivery))
        try:
            outputs = await self.router.dispatch(message)
            for output in outputs:
                await bus.publish(output)
            await delivery.ack()
            log.info("message.handled", published=len(outputs))
        except PermanentError as exc:
            await self._dead_letter(delivery, exc)
            return "dead_lettered"
        except RetryableError as exc:
            return await self._retry(delivery, exc, exc.delay)
        except Exception as exc:
            log.exception("message.failed")
            return await self._retry(delivery, exc, None)
        else:
            return "handled"
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _heartbeat(self, delivery: Delivery) -> None:
        interval = max(self.settings.ack_wait_s / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            try:
                await delivery.in_progress()
            except Exception as exc:  # noqa: BLE001 - a lost heartbeat is logged, not fatal
                log.warning("message.heartbeat_failed", error=repr(exc))

    async def _retry(self, delivery: Delivery, exc: Exception, delay: float | None) -> str:
        if delivery.num_delivered >= self.settings.max_deliver:
            reason = f"gave up after {delivery.num_delivered} deliveries: {exc}"
            await self._dead_letter(delivery, PermanentError(reason))
            return "dead_lettered"
        if delay is None:
            base = self.settings.retry_backoff_s * 2 ** (delivery.num_delivered - 1)
            delay = min(base, self.settings.retry_backoff_max_s)
        log.warning("message.retry", error=str(exc), delay_s=delay)
        await delivery.nak(delay=delay)
        return "retried"

    async def _dead_letter(self, delivery: Delivery, exc: PermanentError) -> None:
        bus = self._require_bus()
        correlation = ""
        with contextlib.suppress(msgspec.DecodeError):
            correlation = decode(delivery.data).correlation_id
        letter = DeadLettered(
            id=derive_id(delivery.stream, delivery.stream_seq, "dead"),
            correlation_id=correlation,
            subject=delivery.subject,
            stream=delivery.stream,
            stream_seq=delivery.stream_seq,
            deliveries=delivery.num_delivered,
            service=self.service,
            reason=exc.reason,
            payload=delivery.data,
        )
        # Published before the term: a crash in between redelivers, and the re-published
        # letter (same id) is dropped as a duplicate.
        await bus.publish(letter)
        await delivery.term()
        log.error("message.dead_lettered", reason=exc.reason)

    def _require_bus(self) -> Bus:
        if self._bus is None:
            raise RuntimeError("the runner is not connected")
        return self._bus


def instance_name() -> str:
    """This replica's name: its host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def settle_when_ready(*runners: ServiceRunner) -> None:
    """Once every one of ``runners`` takes messages, keeps what the process made while
    starting out of the garbage collector's full passes (:func:`troika_shared.heap.settle`)."""
    await asyncio.gather(*(runner.ready.wait() for runner in runners))
    heap.settle()


def run_until_signalled(
    runner: ServiceRunner, on_stop: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Runs a service in a fresh event loop until SIGTERM or SIGINT, then shuts it down cleanly.

    Args:
        runner: The service.
        on_stop: Awaited last, in the same loop (closing the service's own clients).
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        settling = asyncio.create_task(settle_when_ready(runner))
        try:
            await runner.run(stop)
        finally:
            settling.cancel()
            if on_stop is not None:
                await on_stop()

    asyncio.run(main())


def serve(
    *,
    service: str,
    distribution: str,
    settings: AgentSettings,
    router: Router,
    stream: StreamKey,
    on_start: Callable[[Bus], Awaitable[None]] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Everything an agent service's ``__main__`` does: logging, then the runner until a signal.

    Args:
        service: The service's name (``planner``).
        distribution: The installed distribution whose version the service announces.
        settings: The service's settings, already built.
        router: Its handlers.
        stream: The work-queue stream it consumes.
        on_start: Awaited with the connected bus before the first message.
        on_stop: Awaited after the runner stops (closing the service's LLM client).
    """
    configure_logging(service=service, level=settings.log_level, fmt=settings.log_format)
    keep_private(getattr(settings, "data_dir", None))
    metrics.serve_metrics(settings.metrics_port, settings.metrics_host)
    stop_tracing = tracing.configure_tracing(
        service, tracing.endpoint_from(settings.otel_endpoint), instance=instance_name()
    )
    runner = ServiceRunner(
        service=service,
        version=metadata.version(distribution),
        settings=settings,
        router=router,
        stream=stream,
        on_start=on_start,
    )
    try:
        run_until_signalled(runner, on_stop)
    except DependencyUnavailable as exc:
        log.error(  # noqa: TRY400 - an expected condition: no traceback, just the reason
            "service.unavailable", dependency=exc.dependency, error=str(exc)
        )
        raise SystemExit(3) from exc
    finally:
        stop_tracing()
