"""The reviewer's handlers: a review request in, a verdict out."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from troika_reviewer.reviewing import SYSTEM, ReviewDecision, prompt, to_revisions
from troika_shared.llm import UnusableAnswer
from troika_shared.messages import Message, ReviewRequested, ReviewVerdict, derive_id
from troika_shared.router import Router

if TYPE_CHECKING:
    from troika_shared.llm import LLM

__all__ = ["build_router", "review"]


async def review(request: ReviewRequested, llm: LLM) -> ReviewVerdict:
    """Judges the work."""
    reply = partial(
        ReviewVerdict,
        id=derive_id(request.id, "review.verdict"),
        correlation_id=request.correlation_id,
        requested_at=request.occurred_at,
        request_id=request.id,
    )
    try:
        answer = await llm.complete(
            system=SYSTEM,
            messages=prompt(request),
            response_model=ReviewDecision,
            context={"subtasks": [s.id for s in request.plan.subtasks]},
        )
    except UnusableAnswer as exc:
        return reply(
            approved=False, stuck_reason=exc.reason, unusable=exc.model_fault, usage=(exc.usage,)
        )
    decision = answer.value
    if decision.verdict == "cannot_proceed":
        return reply(
            approved=False,
            summary=decision.summary,
            stuck_reason=decision.reason.strip(),
            usage=(answer.usage,),
        )
    return reply(
        approved=decision.approved,
        summary=decision.summary,
        revisions=to_revisions(decision),
        usage=(answer.usage,),
    )


def build_router(llm: LLM) -> Router:
    """The reviewer's router."""
    router = Router("reviewer")

    async def on_review(request: ReviewRequested) -> list[Message]:
        return [await review(request, llm)]

    router.add(ReviewRequested, on_review)
    return router
