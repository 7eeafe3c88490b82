"""The orchestrator: the single writer of task state, driven by the agents' answers.

Each answer is applied in one transaction (state, events, next commands in the outbox, and the
answer's id as processed), so a redelivered answer is acknowledged without being applied twice,
and a crash before the commit leaves nothing half-done: the answer is simply delivered again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import structlog

from troika_gateway.errors import Conflict
from troika_gateway.pipeline.snapshot import AgentGaveUp
from troika_shared.errors import RetryableError
from troika_shared.messages import (
    DeadLettered,
    DesktopResult,
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
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_gateway.pipeline.snapshot import Command
    from troika_gateway.pipeline.store import TaskStore

__all__ = ["Orchestrator"]

log = structlog.get_logger("troika.orchestrator")

_AGENTS = {PlanRequested: "planner", StepRequested: "executor", ReviewRequested: "reviewer"}


class Orchestrator:
    """Applies the agents' answers to their tasks.

    Args:
        sessionmaker: The database.
        store: Changes tasks through the rules, one transaction per answer.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], store: TaskStore) -> None:
        self.sessionmaker = sessionmaker
        self.store = store

    def router(self) -> Router:
        """Routes every answer type to its task."""
        router = Router("orchestrator")

        async def on_plan(message: PlanProduced) -> list[Message]:
            return await self.apply(message, message)

        async def on_step(message: StepProposed) -> list[Message]:
            return await self.apply(message, message)

        async def on_result(message: ToolResult) -> list[Message]:
            return await self.apply(message, message)

        async def on_verdict(message: ReviewVerdict) -> list[Message]:
            return await self.apply(message, message)

        async def on_desktop(message: DesktopResult) -> list[Message]:
            result = ToolResult(
                id=message.id,
                correlation_id=message.correlation_id,
                occurred_at=message.occurred_at,
                subtask_id=message.subtask_id,
                key=message.key,
                outcome=message.outcome,
                requested_at=message.requested_at,
            )
            return await self.apply(message, result)

        router.add(PlanProduced, on_plan)
        router.add(StepProposed, on_step)
        router.add(ToolResult, on_result)
        router.add(ReviewVerdict, on_verdict)
        router.add(DesktopResult, on_desktop)
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
                return await self.apply(result, result)
            if isinstance(command, (PlanRequested, StepRequested, ReviewRequested)):
                gave_up = AgentGaveUp(agent=letter.service, reason=letter.reason)
                return await self.apply(letter, gave_up)
            return []

        router.add(DeadLettered, on_dead)
        return router

    async def apply(self, message: Message, command: Command) -> list[Message]:
        """Applies one answer in one transaction; announces it after the commit."""
        try:
            await self.store.change(
                self.sessionmaker, message.correlation_id, command, message_id=message.id
            )
        except Conflict as exc:
            raise RetryableError("the task kept changing", delay=0.2) from exc
        _log_round_trip(message)
        return []


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
