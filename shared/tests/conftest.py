"""What the runner's tests share: a runner with one scripted handler, in this process."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import pytest
import structlog

from troika_shared.logs import CHATTY_CLIENTS
from troika_shared.messages import (
    DeadLettered,
    Message,
    Plan,
    PlanProduced,
    PlanRequested,
    derive_id,
)
from troika_shared.router import Router
from troika_shared.runner import ServiceRunner
from troika_shared.subjects import StreamKey
from troika_testkit import scaled, wait_for
from troika_testkit.streams import stored

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

    from troika_shared.bus import Bus
    from troika_shared.settings import AgentSettings


@pytest.fixture
def restores_logging() -> Iterator[None]:
    """Lets a test configure this process's logging, and puts it back after (the root
    logger's handlers and level, the HTTP clients' levels, structlog's configuration)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    clients = {name: logging.getLogger(name).level for name in CHATTY_CLIENTS}
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        root.handlers, root.level = handlers, level
        for name, was in clients.items():
            logging.getLogger(name).setLevel(was)


async def the_dead_letter(bus: Bus) -> DeadLettered:
    """Waits for the one dead letter the test expects."""

    async def dead() -> bool:
        return len(await stored(bus, StreamKey.DEAD)) > 0

    await wait_for(dead, what="the dead letter")
    [letter] = await stored(bus, StreamKey.DEAD)
    assert isinstance(letter, DeadLettered)
    return letter


def answer(message: PlanRequested) -> PlanProduced:
    return PlanProduced(
        id=derive_id(message.id, "plan.produced"),
        correlation_id=message.correlation_id,
        plan=Plan(summary=message.objective),
    )


class Harness:
    """A runner whose one handler behaves as the test says and counts its calls."""

    def __init__(self, settings: AgentSettings) -> None:
        self.calls = 0
        self.behaviour: Callable[[int], Awaitable[None]] | None = None
        router = Router("planner")
        router.add(PlanRequested, self.handle)
        self.runner = ServiceRunner(
            service="planner",
            version="1.0.0",
            settings=settings,
            router=router,
            stream=StreamKey.PLANNER,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def handle(self, message: PlanRequested) -> Sequence[Message]:
        self.calls += 1
        if self.behaviour is not None:
            await self.behaviour(self.calls)
        return [answer(message)]

    async def start(self) -> None:
        self.task = asyncio.create_task(self.runner.run(self.stop))
        await asyncio.wait_for(self.runner.ready.wait(), scaled(10))

    async def close(self) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, scaled(15))


@pytest.fixture
async def harness(agent_settings: AgentSettings, bus: Bus) -> AsyncIterator[Harness]:
    h = Harness(agent_settings)
    await h.start()
    yield h
    await h.close()
