"""The service runner, in this process, against a real NATS: ack, retry, dead-letter, heartbeat."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from troika_shared.errors import PermanentError, RetryableError
from troika_shared.messages import (
    Message,
    PlanRequested,
)
from troika_shared.metrics import serve_metrics
from troika_shared.router import Router
from troika_shared.runner import ServiceRunner
from troika_shared.subjects import StreamKey
from troika_testkit import scaled, wait_for
from troika_testkit.ports import free_port
from troika_testkit.streams import stored

from .conftest import Harness, answer, the_dead_letter

if TYPE_CHECKING:
    from collections.abc import Sequence

    from troika_shared.bus import Bus
    from troika_shared.settings import AgentSettings


def _ids(messages: Sequence[Message]) -> list[str]:
    return [message.id for message in messages]


async def test_a_handled_message_is_answered_and_acknowledged(harness: Harness, bus: Bus) -> None:
    request = PlanRequested(correlation_id="task-1", objective="write a haiku")
    await bus.publish(request)

    async def answered() -> bool:
        return _ids(await stored(bus, StreamKey.RESULTS)) == [answer(request).id]

    await wait_for(answered, what="the plan")
    await wait_for(lambda: _empty(bus, StreamKey.PLANNER), what="the request to be acknowledged")
    assert harness.calls == 1


async def _empty(bus: Bus, key: StreamKey) -> bool:
    return await stored(bus, key) == []


async def answered_after_two_retries(harness: Harness, bus: Bus) -> None:
    """Publishes a request whose handler fails twice (retryable), and waits for its answer."""

    async def flaky(call: int) -> None:
        if call < 3:
            raise RetryableError("the LLM is busy", delay=0.1)

    harness.behaviour = flaky
    request = PlanRequested(objective="o")
    await bus.publish(request)

    async def answered() -> bool:
        return _ids(await stored(bus, StreamKey.RESULTS)) == [answer(request).id]

    await wait_for(answered, what="the plan after retries")


async def test_a_retryable_failure_is_retried_until_it_succeeds(harness: Harness, bus: Bus) -> None:
    await answered_after_two_retries(harness, bus)
    assert harness.calls == 3
    assert await stored(bus, StreamKey.DEAD) == []


async def test_a_permanent_failure_is_dead_lettered_at_once(harness: Harness, bus: Bus) -> None:
    async def refuse(call: int) -> None:
        raise PermanentError("the objective is empty")

    harness.behaviour = refuse
    request = PlanRequested(correlation_id="task-7", objective="")
    await bus.publish(request)

    letter = await the_dead_letter(bus)
    assert letter.reason == "the objective is empty"
    assert (letter.deliveries, letter.service) == (1, "planner")
    assert letter.correlation_id == "task-7"
    assert harness.calls == 1
    assert await stored(bus, StreamKey.PLANNER) == []
    assert await stored(bus, StreamKey.RESULTS) == []


async def test_a_handler_that_always_crashes_is_dead_lettered_after_the_delivery_limit(
    harness: Harness, bus: Bus, agent_settings: AgentSettings
) -> None:
    async def crash(call: int) -> None:
        raise ZeroDivisionError("bug")

    harness.behaviour = crash
    await bus.publish(PlanRequested(objective="o"))

    letter = await the_dead_letter(bus)
    assert letter.deliveries == agent_settings.max_deliver
    assert "gave up after 3 deliveries" in letter.reason
    await asyncio.sleep(0.5)  # nothing may come back after the dead letter
    assert harness.calls == agent_settings.max_deliver


async def test_a_copy_delivered_while_the_message_is_handled_waits_and_does_not_run_again(
    harness: Harness, bus: Bus, agent_settings: AgentSettings
) -> None:
    # The machine stalls past the acknowledgement's deadline (no heartbeat goes out), so
    # JetStream delivers the message again while its handler still works on it.
    async def stall(call: int) -> None:
        if call == 1:
            time.sleep(agent_settings.ack_wait_s + 1)  # noqa: ASYNC251 - the stall itself
            await asyncio.sleep(scaled(1))  # the copy arrives meanwhile

    def dropped() -> float:
        labels = {"type": "plan.requested", "outcome": "duplicate"}
        return REGISTRY.get_sample_value("troika_messages_handled_total", labels) or 0.0

    before = dropped()
    harness.behaviour = stall
    request = PlanRequested(objective="o")
    await bus.publish(request)

    async def answered() -> bool:
        return _ids(await stored(bus, StreamKey.RESULTS)) == [answer(request).id]

    await wait_for(answered, what="the plan")
    await wait_for(lambda: _empty(bus, StreamKey.PLANNER), what="the request to be acknowledged")
    assert dropped() == before + 1  # the copy came, waited, and was acknowledged
    assert harness.calls == 1  # the model was asked once, not again beside the first


async def test_a_malformed_payload_is_dead_lettered_without_reaching_a_handler(
    harness: Harness, bus: Bus
) -> None:
    subject = f"{bus.topology.prefix}.plan.requested"
    await bus.js.publish(subject, b"\xff{not a message", headers={"Nats-Msg-Id": "bad-1"})

    letter = await the_dead_letter(bus)
    assert letter.reason.startswith(f"undecodable message on {subject}")
    assert letter.payload == b"\xff{not a message"
    assert letter.deliveries == 1
    assert harness.calls == 0
    assert await stored(bus, StreamKey.PLANNER) == []


async def test_a_message_type_with_no_handler_is_dead_lettered(
    agent_settings: AgentSettings, bus: Bus
) -> None:
    runner = ServiceRunner(
        service="planner",
        version="1.0.0",
        settings=agent_settings,
        router=Router("planner"),
        stream=StreamKey.PLANNER,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await bus.publish(PlanRequested(objective="o"))

    letter = await the_dead_letter(bus)
    assert letter.reason == "planner has no handler for 'plan.requested'"
    stop.set()
    await task


@pytest.mark.slow
async def test_heartbeats_keep_a_long_handler_from_being_redelivered(
    harness: Harness, bus: Bus, agent_settings: AgentSettings
) -> None:
    async def slow(call: int) -> None:
        await asyncio.sleep(agent_settings.ack_wait_s * 2)

    harness.behaviour = slow
    request = PlanRequested(objective="o")
    await bus.publish(request)

    async def answered() -> bool:
        return _ids(await stored(bus, StreamKey.RESULTS)) == [answer(request).id]

    await wait_for(answered, timeout=15, what="the slow plan")
    assert harness.calls == 1


async def test_stopping_lets_an_in_flight_message_finish(harness: Harness, bus: Bus) -> None:
    started = asyncio.Event()

    async def working(call: int) -> None:
        started.set()
        await asyncio.sleep(0.5)

    harness.behaviour = working
    request = PlanRequested(objective="o")
    await bus.publish(request)
    await asyncio.wait_for(started.wait(), scaled(10))
    await harness.close()

    assert _ids(await stored(bus, StreamKey.RESULTS)) == [answer(request).id]
    assert await stored(bus, StreamKey.PLANNER) == []


def _scraped(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The service's metrics as Prometheus reads them over HTTP."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_the_metrics_count_each_delivery_by_type_and_outcome(
    harness: Harness, bus: Bus
) -> None:
    port = free_port()
    server = serve_metrics(port, "127.0.0.1")
    assert server is not None
    try:
        handled = ("troika_messages_handled_total",
                   (("outcome", "handled"), ("type", "plan.requested")))  # fmt: skip
        retried = ("troika_messages_handled_total",
                   (("outcome", "retried"), ("type", "plan.requested")))  # fmt: skip
        redelivered = ("troika_messages_redelivered_total", (("type", "plan.requested"),))
        timed = ("troika_message_handling_seconds_count", (("type", "plan.requested"),))
        before = _scraped(port)
        await answered_after_two_retries(harness, bus)

        def moved() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            after = _scraped(port)
            return {key: after.get(key, 0.0) - before.get(key, 0.0)
                    for key in (handled, retried, redelivered, timed)}  # fmt: skip

        # the answer is published before the delivery is acknowledged and counted
        async def counted() -> bool:
            return moved()[handled] >= 1

        await wait_for(counted, timeout=10, what="the handled delivery to be counted")
        assert moved() == {handled: 1.0, retried: 2.0, redelivered: 2.0, timed: 3.0}
    finally:
        server.shutdown()
        server.server_close()


def test_a_metrics_port_in_use_leaves_the_service_running_without_them() -> None:
    port = free_port()
    first = serve_metrics(port, "127.0.0.1")
    assert first is not None
    try:
        assert serve_metrics(port, "127.0.0.1") is None  # logged, not raised
    finally:
        first.shutdown()
        first.server_close()
