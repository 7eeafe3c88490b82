"""The planner's handler: a plan request in, a validated plan (or a reason) out."""

from __future__ import annotations

import json

import pytest

from troika_planner.handlers import plan
from troika_shared.catalogue import names
from troika_shared.messages import PlanRequested, derive_id
from troika_testkit.agents import llm_for, plan_answer

REQUEST = PlanRequested(
    correlation_id="task-1",
    objective="Research the latest news about Tesla and create a summary",
    files=("notes.txt",),
    guidance=("Use only two sources",),
    tool_names=names(),
)


@pytest.fixture
async def llm(scripted_llm):
    client = llm_for(scripted_llm, llm_validation_retries=1)
    yield client
    await client.close()


async def test_a_plan_with_dependencies_comes_back_in_order(scripted_llm, llm) -> None:
    scripted_llm.reply(
        "PlanDraft",
        plan_answer(
            ("search", [], []), ("write", ["search"], ["create_file"]), summary="two steps"
        ),
    )
    produced = await plan(REQUEST, llm)
    assert produced.id == derive_id(REQUEST.id, "plan.produced")
    assert produced.correlation_id == "task-1"
    assert produced.plan is not None
    assert [(s.id, s.depends_on, s.tool_hints) for s in produced.plan.subtasks] == [
        ("search", (), ()),
        ("write", ("search",), ("create_file",)),
    ]
    assert produced.plan.summary == "two steps"
    assert produced.usage[0].prompt_tokens == 120
    prompt = scripted_llm.requests[0]["messages"][1]["content"]
    assert "<<<DATA objective>>>\nResearch the latest news about Tesla" in prompt
    assert "Use only two sources" in prompt
    assert "create_file" in prompt
    assert "notes.txt" in prompt


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (plan_answer(("a", ["b"], []), ("b", ["a"], [])), "cycle"),
        (plan_answer(("a", ["ghost"], [])), "unknown ids"),
        (plan_answer(("a", [], ["launch_rocket"])), "Input should be 'create_file'"),
        (plan_answer(("a", [], []), ("a", [], [])), "unique"),
        ({"decision": "plan", "summary": "nothing", "subtasks": []}, "at least one subtask"),
        ({"summary": "no decision", "subtasks": []}, "decision"),
    ],
)
async def test_an_invalid_plan_is_sent_back_with_the_reason(scripted_llm, llm, bad, reason) -> None:
    scripted_llm.reply("PlanDraft", bad, plan_answer(("a", [], [])))
    produced = await plan(REQUEST, llm)
    assert produced.plan is not None
    assert [s.id for s in produced.plan.subtasks] == ["a"]
    assert reason in str(scripted_llm.requests[1]["messages"])


async def test_a_plan_that_stays_invalid_is_an_unusable_answer(scripted_llm, llm) -> None:
    scripted_llm.always("PlanDraft", plan_answer(("a", ["a"], [])))
    produced = await plan(REQUEST, llm)
    assert produced.plan is None
    assert produced.unusable is True
    assert "not usable" in produced.stuck_reason


async def test_stopping_is_an_explicit_choice_never_a_stray_field(scripted_llm, llm) -> None:
    scripted_llm.reply(
        "PlanDraft",
        {**plan_answer(("write", [], ["create_file"])), "reason": "a note the model left"},
    )
    produced = await plan(REQUEST, llm)
    assert produced.plan is not None  # text in `reason` does not stop a plan
    offered = scripted_llm.requests[0]["tools"][0]["function"]["parameters"]
    assert "decision" in offered["required"]
    assert offered["properties"]["decision"]["enum"] == ["plan", "cannot_proceed"]


async def test_cannot_proceed_without_a_reason_is_sent_back(scripted_llm, llm) -> None:
    scripted_llm.reply(
        "PlanDraft",
        {"decision": "cannot_proceed"},
        {"decision": "cannot_proceed", "reason": "Which report?"},
    )
    produced = await plan(REQUEST, llm)
    assert produced.stuck_reason == "Which report?"
    assert "say in reason why" in str(scripted_llm.requests[1]["messages"])


async def test_a_planner_that_cannot_proceed_says_why(scripted_llm, llm) -> None:
    scripted_llm.reply(
        "PlanDraft",
        {"decision": "cannot_proceed", "reason": "Which Tesla: the company or the scientist?"},
    )
    produced = await plan(REQUEST, llm)
    assert produced.plan is None
    assert produced.unusable is False
    assert produced.stuck_reason == "Which Tesla: the company or the scientist?"


async def test_the_plans_limits_are_in_the_schema_offered(scripted_llm, llm) -> None:
    scripted_llm.reply("PlanDraft", plan_answer(("a", [], ["create_file"])))
    produced = await plan(REQUEST, llm, most=1)
    assert produced.plan is not None
    offered = scripted_llm.requests[0]["tools"][0]["function"]
    assert offered["name"] == "PlanDraft"
    assert offered["parameters"]["properties"]["subtasks"]["maxItems"] == 1
    hints = offered["parameters"]["$defs"]["SubtaskDraft"]["properties"]["tool_hints"]
    assert "read_webpage" in hints["items"]["enum"]  # tool names are a choice, not free text
    assert "at most 1)" in scripted_llm.requests[0]["messages"][0]["content"]


@pytest.mark.parametrize("desktop", [True, False], ids=["a PC paired", "no PC"])
async def test_hints_may_name_only_the_tools_the_task_is_offered(
    scripted_llm, llm, desktop
) -> None:
    scripted_llm.reply("PlanDraft", plan_answer(("write", [], ["create_file"])))
    request = PlanRequested(correlation_id="t", objective="o", tool_names=names(desktop=desktop))
    assert (await plan(request, llm)).plan is not None
    offered = scripted_llm.requests[0]["tools"][0]["function"]["parameters"]
    hints = json.dumps(offered)
    assert ('"desktop_type_text"' in hints) is desktop
    assert '"create_file"' in hints
