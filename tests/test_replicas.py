"""Replicas of a service as real processes on a real NATS: crashes, sharing, duplicates."""

from __future__ import annotations

import asyncio

import pytest

from troika.stack import ping_service
from troika_shared.messages import PlanProduced, PlanRequested
from troika_shared.subjects import StreamKey
from troika_testkit import scaled, wait_for
from troika_testkit.streams import stored

pytestmark = pytest.mark.slow

PROBE = "troika_testkit.probe"


async def replicas_ready(bus, count: int) -> None:
    async def ready() -> bool:
        return len(await ping_service(bus.nc, bus.topology.service_name("probe"))) >= count

    await wait_for(ready, timeout=60, what=f"{count} probe replicas")


async def test_a_replica_killed_mid_message_hands_it_to_the_survivor(bus, spawn, journal):
    common = {"TROIKA_PROBE_JOURNAL": str(journal.path), "TROIKA_ACK_WAIT_S": "2"}
    doomed = spawn(PROBE, name="doomed", TROIKA_PROBE_DELAY_S="60", **common)
    await replicas_ready(bus, 1)
    request = PlanRequested(correlation_id="task-1", objective="o")
    await bus.publish(request)

    async def doomed_started() -> bool:
        return journal.of("start", request.id) == [str(doomed.pid)]

    await wait_for(doomed_started, what="the first replica to take the message")
    survivor = spawn(PROBE, name="survivor", TROIKA_PROBE_DELAY_S="0", **common)
    await replicas_ready(bus, 2)
    doomed.kill()

    async def answered() -> bool:
        return len(await stored(bus, StreamKey.RESULTS)) > 0

    await wait_for(answered, timeout=20, what="the survivor's answer")
    await asyncio.sleep(scaled(1))  # time enough for a second answer, if one were coming
    [reply] = await stored(bus, StreamKey.RESULTS)
    assert isinstance(reply, PlanProduced)
    assert reply.plan is not None
    assert reply.plan.summary == f"handled by {survivor.pid}"
    assert journal.of("done", request.id) == [str(survivor.pid)]
    assert journal.of("start", request.id) == [str(doomed.pid), str(survivor.pid)]
    assert await stored(bus, StreamKey.PLANNER) == []
    assert await stored(bus, StreamKey.DEAD) == []


async def test_two_replicas_share_the_queue_and_handle_each_message_once(bus, spawn, journal):
    common = {
        "TROIKA_PROBE_JOURNAL": str(journal.path),
        "TROIKA_PROBE_DELAY_S": "0.1",
        "TROIKA_CONCURRENCY": "1",
    }
    first = spawn(PROBE, name="probe-1", **common)
    second = spawn(PROBE, name="probe-2", **common)
    await replicas_ready(bus, 2)
    requests = [PlanRequested(correlation_id=f"task-{n}", objective="o") for n in range(30)]
    for request in requests:
        await bus.publish(request)

    async def all_answered() -> bool:
        return len(await stored(bus, StreamKey.RESULTS)) == len(requests)

    await wait_for(all_answered, timeout=60, what="every answer")
    done = [journal.of("done", request.id) for request in requests]
    assert all(len(pids) == 1 for pids in done), done
    handled_by = {pids[0] for pids in done}
    assert handled_by == {str(first.pid), str(second.pid)}


async def test_a_duplicate_publish_is_handled_once(bus, spawn, journal):
    spawn(PROBE, TROIKA_PROBE_JOURNAL=str(journal.path))
    await replicas_ready(bus, 1)
    request = PlanRequested(correlation_id="task-1", objective="o")
    assert await bus.publish(request) is True
    assert await bus.publish(request) is False  # e.g. an outbox re-publishing after a crash

    async def answered() -> bool:
        return len(await stored(bus, StreamKey.RESULTS)) == 1

    await wait_for(answered, what="the answer")
    await asyncio.sleep(scaled(0.5))  # time enough for a second answer, if one were coming
    assert journal.of("done", request.id) != []
    assert len(journal.of("done", request.id)) == 1
    assert len(await stored(bus, StreamKey.RESULTS)) == 1


async def test_a_malformed_message_is_dead_lettered_by_the_planner_not_looped(bus, spawn):
    planner = spawn("troika_planner", name="planner")

    async def planner_ready() -> bool:
        return len(await ping_service(bus.nc, bus.topology.service_name("planner"))) == 1

    await wait_for(planner_ready, timeout=60, what="the planner")
    subject = f"{bus.topology.prefix}.plan.requested"
    await bus.js.publish(subject, b'{"type": "plan.requested", "objective": 42}')

    async def dead() -> bool:
        return len(await stored(bus, StreamKey.DEAD)) >= 1

    await wait_for(dead, what="the dead letter")
    await asyncio.sleep(scaled(1))  # a looping message would be dead-lettered again by now
    [letter] = await stored(bus, StreamKey.DEAD)
    assert letter.type == "dead.lettered"
    assert letter.service == "planner"
    assert letter.deliveries == 1
    assert "Expected `str`, got `int`" in letter.reason
    assert await stored(bus, StreamKey.PLANNER) == []
    assert "message.dead_lettered" in planner.output()
