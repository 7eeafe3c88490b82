"""A replica's standing pull requests, against a real NATS server with JetStream."""

from __future__ import annotations

import asyncio
import subprocess
from typing import TYPE_CHECKING

from troika_shared.bus import Bus
from troika_shared.messages import PlanRequested, decode
from troika_shared.settings import BusSettings
from troika_shared.subjects import StreamKey
from troika_testkit import scaled, wait_for
from troika_testkit.ports import free_port

if TYPE_CHECKING:
    from pathlib import Path

    from nats.aio.msg import Msg

    from troika_shared.work_queue import WorkQueue


async def _publish(bus: Bus, count: int) -> list[PlanRequested]:
    sent = [PlanRequested(objective=f"objective {n}") for n in range(count)]
    for message in sent:
        await bus.publish(message)
    return sent


async def _holding(queue: WorkQueue, credit: int) -> None:
    async def reached() -> bool:
        return queue.credit == credit

    await wait_for(reached, what=f"credit {credit}")


async def test_a_replica_is_sent_no_more_messages_than_it_has_room_for(bus: Bus) -> None:
    sent = await _publish(bus, 6)
    first = await bus.work_queue(StreamKey.PLANNER, "planner")
    other = await bus.work_queue(StreamKey.PLANNER, "planner")

    taken = await first.fetch(2, timeout=scaled(5))
    info = await bus.js.consumer_info(first.spec.name, "planner")
    assert (len(taken), info.num_ack_pending, info.num_pending) == (2, 2, 4)

    rest = []
    while len(rest) < 4:  # the first replica holds none of them
        rest += await other.fetch(10, timeout=scaled(5))
    assert [decode(d.data) for d in taken + rest] == sent
    for delivery in taken + rest:
        await delivery.ack()
    await first.close()
    await other.close()


async def test_one_message_at_a_time_takes_a_request_only_every_few_deliveries(bus: Bus) -> None:
    queue = await bus.work_queue(StreamKey.PLANNER, "planner")
    requests: list[Msg] = []

    async def counted(msg: Msg) -> None:
        requests.append(msg)

    watch = await bus.nc.subscribe(
        f"$JS.API.CONSUMER.MSG.NEXT.{queue.spec.name}.planner", cb=counted
    )
    for _ in range(12):
        [message] = await _publish(bus, 1)
        [delivery] = await queue.fetch(8, timeout=scaled(5))
        assert decode(delivery.data) == message
        await delivery.ack()
    await bus.nc.flush()
    # Asking afresh for each one took two requests a delivery (a no-wait probe, then a wait).
    assert 1 <= len(requests) <= 4
    await watch.unsubscribe()
    await queue.close()


async def test_messages_that_arrived_untaken_go_to_another_replica_at_once(bus: Bus) -> None:
    leaving = await bus.work_queue(StreamKey.PLANNER, "planner", ack_wait_s=60)
    staying = await bus.work_queue(StreamKey.PLANNER, "planner", ack_wait_s=60)
    assert await leaving.fetch(4, timeout=0.2) == []  # a request for four stands
    [message] = await _publish(bus, 1)
    await _holding(leaving, 3)  # it arrived, and nobody took it

    await leaving.close()
    [delivery] = await staying.fetch(1, timeout=scaled(10))  # not after the minute's ack_wait
    assert decode(delivery.data) == message
    assert delivery.num_delivered == 2
    await delivery.ack()
    await staying.close()


async def test_an_expired_request_is_asked_again(bus: Bus) -> None:
    queue = await bus.work_queue(StreamKey.PLANNER, "planner", request_expires_s=0.5)
    assert await queue.fetch(3, timeout=0.1) == []
    await _holding(queue, 0)  # the server said the request ended with three unused

    [message] = await _publish(bus, 1)
    [delivery] = await queue.fetch(3, timeout=scaled(5))
    assert decode(delivery.data) == message
    await delivery.ack()
    await queue.close()


async def test_after_a_reconnect_the_replica_asks_afresh(tmp_path: Path) -> None:
    from troika.embedded import installed_binary  # noqa: PLC0415 - the cli's, only here

    port = free_port()
    argv = [installed_binary("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js"]
    argv += ["-sd", str(tmp_path)]

    def server() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    process = server()
    settings = BusSettings(nats_url=f"nats://127.0.0.1:{port}", connect_timeout_s=5)
    bus = await _connected(settings)
    try:
        await bus.ensure_streams()
        queue = await bus.work_queue(StreamKey.PLANNER, "planner")
        assert await queue.fetch(4, timeout=0.2) == []  # a request for four stands

        process.kill()  # a crash: no word to the requests standing
        process.wait(10)
        process = server()  # the same store: the consumer is back, the request is not
        await _holding(queue, 0)  # reconnected, and it knows

        [message] = await _publish(bus, 1)
        [delivery] = await queue.fetch(4, timeout=scaled(5))  # not after the request's expiry
        assert decode(delivery.data) == message
        await delivery.ack()
        await queue.close()
    finally:
        await bus.close()
        process.terminate()
        process.wait(10)


async def _connected(settings: BusSettings) -> Bus:
    for _ in range(50):  # the server is starting
        try:
            return await Bus.connect(settings, name="test")
        except Exception:  # noqa: BLE001 - not listening yet
            await asyncio.sleep(0.1)
    return await Bus.connect(settings, name="test")
