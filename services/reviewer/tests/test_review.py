"""The reviewer's handler: results in, a verdict out."""

from __future__ import annotations

import msgspec
import pytest

from troika_reviewer.handlers import review
from troika_shared.messages import Plan, ReviewRequested, Subtask, SubtaskResult
from troika_shared.promises import promised_files
from troika_testkit.agents import llm_for

REQUEST = ReviewRequested(
    correlation_id="task-1",
    objective="Summarise Tesla news into summary.md",
    plan=Plan(
        subtasks=(
            Subtask(id="search", title="Search", acceptance_criteria=("3 sources",)),
            Subtask(id="write", title="Write", acceptance_criteria=("summary.md exists",)),
        )
    ),
    results={
        "search": SubtaskResult(summary="found 3"),
        "write": SubtaskResult(summary="wrote it", files=("summary.md",)),
    },
    evidence={"summary.md": "# Tesla\nDeliveries rose."},
    round=1,
)


@pytest.fixture
async def llm(scripted_llm):
    client = llm_for(scripted_llm, llm_validation_retries=1)
    yield client
    await client.close()


async def test_an_approval(scripted_llm, llm) -> None:
    scripted_llm.reply("ReviewDecision", {"verdict": "approve", "summary": "All criteria met."})
    verdict = await review(REQUEST, llm)
    assert (verdict.approved, verdict.summary, verdict.revisions) == (True, "All criteria met.", ())
    prompt = scripted_llm.requests[0]["messages"][1]["content"]
    assert "<<<DATA evidence summary.md>>>\n# Tesla" in prompt
    assert "summary.md exists" in prompt


async def test_a_revision_names_the_subtask_and_the_problem(scripted_llm, llm) -> None:
    scripted_llm.reply(
        "ReviewDecision",
        {"verdict": "revise", "revisions": [{"subtask_id": "ghost", "problem": "x"}]},
        {
            "verdict": "revise",
            "revisions": [{"subtask_id": "write", "problem": "cite the sources"}],
        },
    )
    verdict = await review(REQUEST, llm)
    assert verdict.approved is False
    assert [(r.subtask_id, r.problem) for r in verdict.revisions] == [("write", "cite the sources")]
    assert "unknown subtask ids" in str(scripted_llm.requests[1]["messages"])


async def test_a_rejection_without_revisions_is_sent_back(scripted_llm, llm) -> None:
    scripted_llm.always("ReviewDecision", {"verdict": "revise"})
    verdict = await review(REQUEST, llm)
    assert verdict.unusable is True
    assert verdict.approved is False


async def test_a_reviewer_that_cannot_judge_says_why_and_nothing_is_approved(
    scripted_llm, llm
) -> None:
    scripted_llm.reply(
        "ReviewDecision",
        {"verdict": "cannot_proceed", "reason": "The sources are behind a login."},
    )
    verdict = await review(REQUEST, llm)
    assert verdict.approved is False
    assert verdict.stuck_reason == "The sources are behind a login."
    offered = scripted_llm.requests[0]["tools"][0]["function"]["parameters"]
    assert "verdict" in offered["required"]


@pytest.mark.parametrize(
    ("missing", "empty", "problem"),
    [
        (("summary.md",), (), "it promised files it did not deliver: summary.md does not exist"),
        ((), ("summary.md",), "it promised files it did not deliver: summary.md is empty"),
    ],
)
async def test_a_promised_file_missing_or_empty_sends_the_subtask_back_without_the_model(
    scripted_llm, llm, missing, empty, problem
) -> None:
    scripted_llm.reply("ReviewDecision", {"verdict": "approve", "summary": "Looks great."})
    request = msgspec.structs.replace(REQUEST, missing_files=missing, empty_files=empty)
    verdict = await review(request, llm)
    assert verdict.approved is False
    assert [(r.subtask_id, r.problem) for r in verdict.revisions] == [("write", problem)]
    assert scripted_llm.requests == [], "no model is asked to approve what is not there"


def test_the_files_a_subtask_promised_are_named_by_its_result_or_its_plan_entry() -> None:
    subtask = Subtask(
        id="report",
        title="Total the figures into totals.csv",
        description="Read sales.xlsx; see https://example.com/data.csv and ask ada@example.com",
        acceptance_criteria=("`report.md` exists and names the total.", "version 1.2 is used"),
    )
    result = SubtaskResult(summary="done", files=("notes/extra.txt",))
    assert promised_files(subtask, result) == (
        "notes/extra.txt",
        "totals.csv",
        "sales.xlsx",
        "report.md",
    )
