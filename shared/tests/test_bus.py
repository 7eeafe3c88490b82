"""The bus against a real NATS server with JetStream (the CI machine's under CI=true)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from nats.js import api
from nats.js.errors import NotFoundError

from troika_shared.bus import Bus
from troika_shared.errors import DependencyUnavailable
from troika_shared.messages import PlanRequested, decode
from troika_shared.settings import BusSettings
from troika_shared.subjects import StreamKey
from troika_testkit.streams import stored


async def test_a_published_message_comes_back_from_the_work_queue_intact(bus: Bus) -> None:
    sent = PlanRequested(correlation_id="task-1", objective="Research Tesla news")
    assert await bus.publish(sent) is True

    queue = await bus.work_queue(StreamKey.PLANNER, "planner")
    [delivery] = await queue.fetch(10, timeout=5)
    assert decode(delivery.data) == sent
    assert delivery.subject == f"{bus.topology.prefix}.plan.requested"
    assert delivery.num_delivered == 1
    await delivery.ack()
    assert await queue.fetch(1, timeout=0.3) == []
    await queue.close()


async def test_a_republished_message_id_is_dropped_as_a_duplicate(bus: Bus) -> None:
    message = PlanRequested(correlation_id="task-1", objective="o")
    assert await bus.publish(message) is True
    assert await bus.publish(message) is False
    assert await stored(bus, StreamKey.PLANNER) == [message]


async def test_an_acknowledged_message_leaves_the_work_queue(bus: Bus) -> None:
    await bus.publish(PlanRequested(objective="o"))
    queue = await bus.work_queue(StreamKey.PLANNER, "planner")
    [delivery] = await queue.fetch(1, timeout=5)
    await delivery.ack()
    assert await stored(bus, StreamKey.PLANNER) == []
    await queue.close()


async def test_an_unacknowledged_message_is_delivered_again(bus: Bus) -> None:
    await bus.publish(PlanRequested(objective="o"))
    queue = await bus.work_queue(StreamKey.PLANNER, "planner", ack_wait_s=1)
    [first] = await queue.fetch(1, timeout=5)
    [again] = await queue.fetch(1, timeout=5)  # no ack: it comes back after ack_wait
    assert again.stream_seq == first.stream_seq
    assert again.num_delivered == 2
    await again.ack()
    await queue.close()


async def test_creating_streams_twice_keeps_their_messages(bus: Bus) -> None:
    message = PlanRequested(objective="o")
    await bus.publish(message)
    await bus.ensure_streams()
    assert await stored(bus, StreamKey.PLANNER) == [message]


async def test_changed_stream_settings_are_applied_to_existing_streams(
    bus: Bus, nats_url: str
) -> None:
    settings = BusSettings(nats_url=nats_url, bus_prefix=bus.topology.prefix, duplicate_window_s=7)
    async with await Bus.connect(settings, name="test") as other:
        await other.ensure_streams()
        info = await other.js.stream_info(other.topology.stream_name(StreamKey.PLANNER))
    assert info.config.duplicate_window == 7


async def test_the_gateway_removes_the_event_stream_earlier_versions_kept(bus: Bus) -> None:
    [retired] = bus.topology.retired_streams()
    subject = f"{bus.topology.prefix}.events.u.t"
    await bus.js.add_stream(api.StreamConfig(name=retired, subjects=[subject]))
    await bus.ensure_streams(update=False)  # an agent leaves it
    assert await bus.js.stream_info(retired)
    await bus.ensure_streams()
    with pytest.raises(NotFoundError):
        await bus.js.stream_info(retired)
    await bus.ensure_streams()  # and finds nothing to remove the next time


async def test_services_starting_together_all_find_their_streams(nats_url: str) -> None:
    # Compose starts the gateway and every agent at once; each creates the streams it needs.
    for round_ in range(20):
        settings = BusSettings(nats_url=nats_url, bus_prefix=f"race{uuid.uuid4().hex[:8]}")
        buses = [await Bus.connect(settings, name=f"service-{n}") for n in range(6)]
        try:
            await asyncio.gather(*(b.ensure_streams(update=n == 0) for n, b in enumerate(buses)))
            names = {spec.name for spec in buses[0].topology.streams()}
            found = {info.config.name for info in await buses[0].js.streams_info()}
            assert names <= found, round_
        finally:
            await buses[0].delete_streams()
            for each in buses:
                await each.close()


async def test_an_unreachable_server_is_a_clear_retryable_error() -> None:
    settings = BusSettings(nats_url="nats://127.0.0.1:1", connect_timeout_s=1, connect_attempts=1)
    with pytest.raises(DependencyUnavailable, match="nats is unavailable") as caught:
        await Bus.connect(settings, name="test")
    assert caught.value.dependency == "nats"


async def test_a_connection_to_a_server_that_went_away_closes_at_once(tmp_path) -> None:
    from troika.embedded import EmbeddedNats  # noqa: PLC0415 - the cli's, only here

    server = EmbeddedNats(tmp_path)
    settings = BusSettings(nats_url=server.start())
    bus = await Bus.connect(settings, name="test")
    server.stop()
    for _ in range(100):  # the client notices and starts reconnecting
        if bus.nc.is_reconnecting:
            break
        await asyncio.sleep(0.05)
    assert bus.nc.is_reconnecting
    await asyncio.wait_for(bus.close(), 5)  # no error, and no wait for a server that is away
    assert bus.nc.is_closed
