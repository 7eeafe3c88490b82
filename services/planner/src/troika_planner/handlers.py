"""The planner's handlers: a message in, the messages to publish out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from troika_planner.planning import MAX_SUBTASKS, draft_model, instructions, prompt, to_plan
from troika_shared.catalogue import offered
from troika_shared.llm import UnusableAnswer
from troika_shared.messages import Message, PlanProduced, PlanRequested, derive_id
from troika_shared.router import Router

if TYPE_CHECKING:
    from troika_shared.llm import LLM

__all__ = ["build_router", "plan"]


async def plan(request: PlanRequested, llm: LLM, most: int = MAX_SUBTASKS) -> PlanProduced:
    """Plans the objective in at most ``most`` subtasks; an unusable answer or a refusal
    becomes a reason, not an error."""
    reply_id = derive_id(request.id, "plan.produced")
    names = tuple(tool.name for tool in offered(request))
    try:
        answer = await llm.complete(
            system=instructions(most),
            messages=prompt(request),
            response_model=draft_model(most, names),
            context={"tools": list(names)},
        )
    except UnusableAnswer as exc:
        return PlanProduced(
            id=reply_id,
            correlation_id=request.correlation_id,
            requested_at=request.occurred_at,
            request_id=request.id,
            stuck_reason=exc.reason,
            unusable=exc.model_fault,
            usage=(exc.usage,),
        )
    draft = answer.value
    if draft.decision == "cannot_proceed":
        return PlanProduced(
            id=reply_id,
            correlation_id=request.correlation_id,
            requested_at=request.occurred_at,
            request_id=request.id,
            stuck_reason=draft.reason.strip(),
            usage=(answer.usage,),
        )
    return PlanProduced(
        id=reply_id,
        correlation_id=request.correlation_id,
        requested_at=request.occurred_at,
        request_id=request.id,
        plan=to_plan(draft),
        usage=(answer.usage,),
    )


def build_router(llm: LLM, most: int = MAX_SUBTASKS) -> Router:
    """The planner's router; plans have at most ``most`` subtasks."""
    router = Router("planner")

    async def on_plan_requested(request: PlanRequested) -> list[Message]:
        return [await plan(request, llm, most)]

    router.add(PlanRequested, on_plan_requested)
    return router
