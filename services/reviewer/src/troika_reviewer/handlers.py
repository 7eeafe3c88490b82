"""The reviewer's handlers: a review request in, a verdict out."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from troika_reviewer.reviewing import SYSTEM, ReviewDecision, prompt, to_revisions
from troika_shared.llm import UnusableAnswer
from troika_shared.messages import Message, ReviewRequested, ReviewVerdict, Revision, derive_id
from troika_shared.promises import promised_files
from troika_shared.router import Router

if TYPE_CHECKING:
    from troika_shared.llm import LLM

__all__ = ["build_router", "review", "unkept_promises"]


def unkept_promises(request: ReviewRequested) -> tuple[Revision, ...]:
    """Each subtask whose promised files (:func:`promised_files`) are missing or empty, with
    what is wrong: such work goes back without asking the model, whatever it would say."""
    missing, empty = set(request.missing_files), set(request.empty_files)
    revisions = []
    for subtask in request.plan.subtasks:
        promised = promised_files(subtask, request.results.get(subtask.id))
        problems = [f"{name} does not exist" for name in promised if name in missing] + [
            f"{name} is empty" for name in promised if name in empty
        ]
        if problems:
            problem = f"it promised files it did not deliver: {', '.join(problems)}"
            revisions.append(Revision(subtask_id=subtask.id, problem=problem))
    return tuple(revisions)


async def review(request: ReviewRequested, llm: LLM) -> ReviewVerdict:
    """Judges the work: promised files that are missing or empty send their subtasks back at
    once; otherwise the model weighs the results and evidence against the criteria."""
    reply = partial(
        ReviewVerdict,
        id=derive_id(request.id, "review.verdict"),
        correlation_id=request.correlation_id,
        requested_at=request.occurred_at,
        request_id=request.id,
    )
    if unkept := unkept_promises(request):
        named = "; ".join(f"subtask {r.subtask_id} — {r.problem}" for r in unkept)
        return reply(approved=False, summary=f"Checked without the model: {named}.",
                     revisions=unkept)  # fmt: skip
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
