"""The executor's handlers: a step request in, proposed calls or a result out; an approved
tool call in, its outcome out."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from troika_executor.ledger import CallLedger
from troika_executor.stepping import SYSTEM, StepDecision, prompt, to_tool_calls
from troika_executor.tools import run_tool
from troika_executor.workspace import Workspace
from troika_shared.llm import UnusableAnswer
from troika_shared.messages import (
    Message,
    StepProposed,
    StepRequested,
    SubtaskResult,
    ToolExecute,
    ToolResult,
    derive_id,
)
from troika_shared.router import Router

if TYPE_CHECKING:
    from pathlib import Path

    from troika_shared.llm import LLM

__all__ = ["build_router", "execute", "step"]


async def step(request: StepRequested, llm: LLM) -> StepProposed:
    """Decides a subtask's next step."""
    reply = partial(
        StepProposed,
        id=derive_id(request.id, "step.proposed"),
        correlation_id=request.correlation_id,
        subtask_id=request.subtask_id,
        requested_at=request.occurred_at,
    )
    try:
        answer = await llm.complete(
            system=SYSTEM,
            messages=prompt(request),
            response_model=StepDecision,
            context={"tools": [tool.name for tool in request.tools]},
        )
    except UnusableAnswer as exc:
        return reply(stuck_reason=exc.reason, unusable=True, usage=(exc.usage,))
    decision = answer.value
    if decision.action == "use_tools":
        calls = to_tool_calls(request, decision)
        return reply(tool_calls=calls, usage=(answer.usage,))
    if decision.action == "finish":
        result = SubtaskResult(summary=decision.result.strip(), files=tuple(decision.result_files))
        return reply(result=result, usage=(answer.usage,))
    return reply(stuck_reason=decision.stuck_reason.strip(), usage=(answer.usage,))


async def execute(request: ToolExecute, data_dir: Path) -> ToolResult:
    """Runs one approved tool call in the task's folder, at most once per idempotency key.

    The outcome is kept in the task's folder (where no tool can reach it) before the message is
    acknowledged, so a redelivered request after a crash returns the kept outcome instead of
    running the call again.
    """
    ledger = CallLedger(Workspace(data_dir, request.correlation_id))
    outcome = await ledger.recall(request.call.key)
    if outcome is None:
        outcome = await run_tool(
            data_dir, request.correlation_id, request.call.tool, request.call.arguments
        )
        await ledger.remember(request.call.key, outcome)
    return ToolResult(
        id=derive_id(request.id, "tool.result"),
        correlation_id=request.correlation_id,
        subtask_id=request.subtask_id,
        key=request.call.key,
        outcome=outcome,
        requested_at=request.occurred_at,
    )


def build_router(llm: LLM, data_dir: Path) -> Router:
    """The executor's router."""
    router = Router("executor")

    async def on_step(request: StepRequested) -> list[Message]:
        return [await step(request, llm)]

    async def on_execute(request: ToolExecute) -> list[Message]:
        return [await execute(request, data_dir)]

    router.add(StepRequested, on_step)
    router.add(ToolExecute, on_execute)
    return router
