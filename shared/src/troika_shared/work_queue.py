"""Taking a service's messages from its durable pull consumer, with standing requests.

A replica tells JetStream how many more messages it can take by sending it a pull request; the
server delivers up to that many as they come, until the request expires. Asking afresh for each
fetch, as a plain client does, costs a request per delivery, and with nats.py a second one: a
no-wait probe first, which the server answers "no messages" whenever the queue is empty. On a
work queue that is most of the bus's traffic besides the messages themselves.

:class:`WorkQueue` keeps requests standing instead. It knows how many messages its requests may
still bring (its *credit*): each delivery uses one, and a request that expires is reported by the
server with how many it left unused (``408`` with ``Nats-Pending-Messages``). It asks for more
only when the room its caller has is half unasked for, so a replica working one message at a time
sends about one request per several deliveries. Credit never exceeds the room the caller last
stated, so a replica is never sent more than it can work on.

What can go wrong, and what it costs:

* The server forgets a request without a word (it restarted; the consumer was recreated
  elsewhere). A reconnect, or a ``409`` without the count, forgets every request here too; a
  request that neither ended nor reported is taken as lost a few seconds after its expiry. Until
  then the replica waits on credit it will not get: at worst one expiry and those seconds.
* A request the server still held when this side forgot it (a reconnect to the same server)
  may deliver more than the room stated; the extra messages wait here for room, and one that
  waits past the consumer's ``ack_wait`` is delivered to another replica as well (its id makes
  the second handling harmless).
* Messages that arrive after the replica stopped taking them are given back (``nak``) when it
  closes the queue, so another replica gets them at once rather than after ``ack_wait``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
import structlog
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, ConnectionReconnectingError

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.subscription import Subscription

    from troika_shared.subjects import StreamSpec

__all__ = ["Delivery", "WorkQueue"]

log = structlog.get_logger("troika.bus")

_EXPIRES_S = 20.0  # how long one standing request lasts on the server
_LOST_AFTER_S = 5.0  # past its expiry, a request the server never reported is taken as lost
_API = "$JS.API"
_STATUS = "Status"
_PENDING = "Nats-Pending-Messages"
_EXPIRED = "408"
_HEARTBEAT = "100"
_encode_request = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of a stored message to this replica."""

    raw: Msg
    subject: str
    stream: str
    stream_seq: int
    num_delivered: int

    @classmethod
    def of(cls, msg: Msg) -> Delivery:
        """The delivery a JetStream message is (its metadata is in its reply subject)."""
        meta = msg.metadata
        return cls(
            raw=msg,
            subject=msg.subject,
            stream=meta.stream,
            stream_seq=meta.sequence.stream,
            num_delivered=meta.num_delivered,
        )

    @property
    def data(self) -> bytes:
        """The message's payload."""
        return self.raw.data

    @property
    def headers(self) -> dict[str, str]:
        """The message's headers (its id, the trace context it travels in)."""
        return self.raw.headers or {}

    async def ack(self) -> None:
        """Acknowledges: the message will not be delivered again.

        The acknowledgement is sent without waiting for the server to confirm it: a confirmed
        one guards against nothing more (the work is done either way, and one lost with the
        connection means one more delivery, which a message's id makes harmless), and waiting
        costs a round trip and a reply per message.
        """
        await self.raw.ack()

    async def nak(self, delay: float | None = None) -> None:
        """Asks for redelivery, after ``delay`` seconds if given."""
        await self.raw.nak(delay=delay)

    async def term(self) -> None:
        """Stops any further delivery of the message."""
        await self.raw.term()

    async def in_progress(self) -> None:
        """Tells JetStream the message is still being worked on (resets its ack timer)."""
        await self.raw.in_progress()


class WorkQueue:
    """A durable pull consumer bound by this replica (see the module's docstring).

    Build it with :meth:`bind` (the consumer must exist); close it with :meth:`close`.

    Args:
        nc: The connection.
        spec: The consumer's stream.
        durable: The consumer's name.
        expires_s: How long one standing request lasts on the server.
    """

    def __init__(
        self, nc: Client, spec: StreamSpec, durable: str, *, expires_s: float = _EXPIRES_S
    ) -> None:
        self.spec = spec
        self.durable = durable
        self.expires_s = expires_s
        self._nc = nc
        self._next = f"{_API}.CONSUMER.MSG.NEXT.{spec.name}.{durable}"
        self._inbox = nc.new_inbox()
        self._subscription: Subscription | None = None
        self._arrived: collections.deque[Msg] = collections.deque()
        self._has_arrivals = asyncio.Event()
        self._credit = 0  # messages the standing requests may still bring
        self._requests: collections.deque[tuple[float, int]] = collections.deque()
        self._closed = False

    @classmethod
    async def bind(
        cls, nc: Client, spec: StreamSpec, durable: str, *, expires_s: float = _EXPIRES_S
    ) -> WorkQueue:
        """Starts listening for the consumer's deliveries (nothing is asked for yet)."""
        queue = cls(nc, spec, durable, expires_s=expires_s)
        queue._subscription = await nc.subscribe(queue._inbox, cb=queue._receive)
        return queue

    @property
    def credit(self) -> int:
        """Messages the requests standing on the server may still deliver here."""
        return self._credit

    async def fetch(self, batch: int, timeout: float) -> list[Delivery]:
        """Waits up to ``timeout`` seconds for up to ``batch`` messages; ``[]`` if none came.

        ``batch`` is the room the caller has now: what the standing requests may bring is kept
        within it.
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if not self._arrived:
            await self._ask(batch)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._has_arrivals.wait()
        taken = [self._arrived.popleft() for _ in range(min(batch, len(self._arrived)))]
        if not self._arrived:
            self._has_arrivals.clear()
        return [Delivery.of(msg) for msg in taken]

    def forget_requests(self) -> None:
        """Takes every standing request as gone (the connection was replaced)."""
        self._credit = 0
        self._requests.clear()

    async def close(self) -> None:
        """Stops taking messages, and gives back those that arrived and were not taken (they go
        to another replica at once); those taken and unacknowledged are redelivered later."""
        self._closed = True
        if self._subscription is not None:
            with contextlib.suppress(ConnectionClosedError):
                await self._subscription.unsubscribe()
        while self._arrived:
            await self._give_back(self._arrived.popleft())
        self._has_arrivals.clear()

    async def _ask(self, room: int) -> None:
        """Sends a request for the room not yet asked for, when that is half the room or more
        (or nothing is asked for at all)."""
        self._forget_lost()
        wanted = room - self._credit
        if wanted < 1 or (self._credit and wanted * 2 < room):
            return
        request = {"batch": wanted, "expires": int(self.expires_s * 1e9)}
        try:
            await self._nc.publish(self._next, _encode_request(request), reply=self._inbox)
        except (ConnectionClosedError, ConnectionReconnectingError) as exc:
            log.debug("bus.pull_not_sent", consumer=self.durable, error=str(exc))
            return  # asked again on the next fetch
        self._credit += wanted
        self._requests.append((time.monotonic() + self.expires_s + _LOST_AFTER_S, wanted))

    def _forget_lost(self) -> None:
        """Drops the requests well past their expiry: their credit is at most what the others
        were asked for."""
        now = time.monotonic()
        dropped = False
        while self._requests and self._requests[0][0] < now:
            self._requests.popleft()
            dropped = True
        if dropped:
            self._credit = min(self._credit, sum(size for _, size in self._requests))

    async def _receive(self, msg: Msg) -> None:
        status = msg.headers.get(_STATUS) if msg.headers else None
        if status is None:
            self._used(1)
            if self._closed:
                await self._give_back(msg)
                return
            self._arrived.append(msg)
            self._has_arrivals.set()
            return
        if status == _HEARTBEAT:
            return
        pending = (msg.headers or {}).get(_PENDING, "")
        if status != _EXPIRED:
            log.warning(
                "bus.pull_ended",
                consumer=self.durable,
                status=status,
                description=(msg.headers or {}).get("Description", ""),
            )
        if pending.isdigit():
            self._used(int(pending))
            if self._requests:
                self._requests.popleft()
        else:  # which request ended, and with how much, is unknown: ask afresh
            self.forget_requests()

    def _used(self, count: int) -> None:
        self._credit = max(0, self._credit - count)
        if not self._credit:
            self._requests.clear()

    async def _give_back(self, msg: Msg) -> None:
        with contextlib.suppress(ConnectionClosedError, ConnectionReconnectingError):
            await msg.nak()
