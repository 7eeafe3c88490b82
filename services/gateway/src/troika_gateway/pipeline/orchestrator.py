"""The orchestrator: the single writer of task state, driven by the agents' answers.

Each answer is applied in one transaction (state, events, next commands in the outbox, and the
answer's id as processed), so a redelivered answer is acknowledged without being applied twice,
and a crash before the commit leaves nothing half-done: the answer is simply delivered again.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import msgspec
import structlog

from troika_gateway.db.engine import WRITE_CONFLICTS
from troika_gateway.db.models import ProcessedMessage, Task, TaskStatus
from troika_gateway.events import publish_events
from troika_gateway.pipeline.machine import Machine
from troika_gateway.pipeline.outbox import kick
from troika_shared.errors import RetryableError
from troika_shared.messages import (
    DeadLettered,
    Message,
    PlanProduced,
    PlanRequested,
    ReviewRequested,
    ReviewVerdict,
    StepProposed,
    StepRequested,
    ToolExecute,
    ToolOutcome,
    ToolResult,
    decode,
    derive_id,
    utcnow,
)
from troika_shared.router import Router

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_gateway.settings import GatewaySettings
    from troika_shared.bus import Bus

__all__ = ["Orchestrator"]

log = structlog.get_logger("troika.orchestrator")

_ATTEMPTS = 5  # a conflict means another answer for the task just committed: simply reapply


class Orchestrator:
    """Applies the agents' answers to their tasks.

    Args:
        sessionmaker: The database.
        settings: Thresholds and the data directory.
        bus: Where events and kicks go after each commit.
        writes: Held around each transaction, where the database takes one writer at a time
            (SQLite): queueing here is cheaper than SQLite's own busy-wait back-off.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: GatewaySettings,
        bus: Bus,
        writes: asyncio.Lock | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.bus = bus
        self.writes = writes or contextlib.nullcontext()

    def router(self) -> Router:
        """Routes every answer type to its transition."""
        router = Router("orchestrator")

        async def on_plan(message: PlanProduced) -> list[Message]:
            return await self.apply(message, lambda m, t: m.on_plan(t, message))

        async def on_step(message: StepProposed) -> list[Message]:
            return await self.apply(message, lambda m, t: m.on_step(t, message))

        async def on_result(message: ToolResult) -> list[Message]:
            return await self.apply(message, lambda m, t: m.on_tool_result(t, message))

        async def on_verdict(message: ReviewVerdict) -> list[Message]:
            return await self.apply(message, lambda m, t: m.on_verdict(t, message))

        router.add(PlanProduced, on_plan)
        router.add(StepProposed, on_step)
        router.add(ToolResult, on_result)
        router.add(ReviewVerdict, on_verdict)
        return router

    def dead_letter_router(self) -> Router:
        """Routes the commands an agent gave up on back into their tasks: a tool call that
        could not run fails like any failed call; a request no agent could answer pauses its
        task for guidance. Nothing is left waiting for an answer that will never come."""
        router = Router("dead-letters")

        async def on_dead(letter: DeadLettered) -> list[Message]:
            try:
                command = decode(letter.payload)
            except msgspec.DecodeError:
                return []  # not a message of ours: only an operator can make sense of it
            if isinstance(command, ToolExecute):
                result = ToolResult(
                    id=derive_id(letter.id, "tool.result"),
                    correlation_id=command.correlation_id,
                    subtask_id=command.subtask_id,
                    key=command.call.key,
                    outcome=ToolOutcome(
                        ok=False,
                        error=f"the {letter.service} gave up on this call: {letter.reason}",
                    ),
                )
                return await self.apply(result, lambda m, t: m.on_tool_result(t, result))
            if isinstance(command, (PlanRequested, StepRequested, ReviewRequested)):
                reason = f"the {letter.service} could not handle a request: {letter.reason}"
                return await self.apply(letter, lambda m, t: _pause(m, t, reason))
            return []

        router.add(DeadLettered, on_dead)
        return router

    async def apply(
        self, message: Message, change: Callable[[Machine, Task], Awaitable[None]]
    ) -> list[Message]:
        """Applies one answer in one transaction; publishes its events after the commit.

        Raises:
            RetryableError: Another writer changed the task meanwhile (the answer comes again).
        """
        for attempt in range(_ATTEMPTS):
            async with self.writes, self.sessionmaker() as db:
                if await db.get(ProcessedMessage, message.id) is not None:
                    return []  # applied already: this is a redelivery
                db.add(ProcessedMessage(id=message.id))
                task = await db.get(Task, message.correlation_id)
                machine = Machine(db, self.settings)
                try:
                    if task is not None and not TaskStatus(task.status).final:
                        await change(machine, task)
                    await db.commit()
                    break
                except WRITE_CONFLICTS as exc:
                    await db.rollback()
                    if attempt == _ATTEMPTS - 1:
                        raise RetryableError("the task kept changing", delay=0.2) from exc
        await kick(self.bus)  # the relay publishes the next commands while the events go out
        if machine.events:
            await publish_events(self.bus, machine.events)
        _log_round_trip(message)
        return []


async def _pause(machine: Machine, task: Task, reason: str) -> None:
    machine.pause(task, reason)


def _log_round_trip(message: Message) -> None:
    """Logs how long the answer's round trip took, and how much of it was not the LLM.

    The round trip runs from the request's creation to this answer's commit: the outbox, both
    bus hops, the agent's own work, the LLM call and this transaction. ``overhead_ms`` is that
    time less the LLM calls' latency (what ``make bench`` reports as the step overhead):
    ``there_ms`` up to the agent's answer, ``back_ms`` from there to this commit.
    """
    requested_at = getattr(message, "requested_at", None)
    if requested_at is None:
        return
    now = utcnow()
    round_trip_ms = (now - requested_at).total_seconds() * 1000
    back_ms = (now - message.occurred_at).total_seconds() * 1000
    llm_ms = sum(usage.latency_ms for usage in getattr(message, "usage", ()))
    log.info(
        "answer.applied",
        type=message.type,
        task_id=message.correlation_id,
        round_trip_ms=round(round_trip_ms, 3),
        llm_ms=round(llm_ms, 3),
        overhead_ms=round(round_trip_ms - llm_ms, 3),
        there_ms=round(round_trip_ms - back_ms - llm_ms, 3),
        back_ms=round(back_ms, 3),
    )
