"""The executor's step against the ways model servers speak: each tool-call dialect, constrained
JSON, strict schemas, Azure's deployment addresses, and a context too small for the step."""

from __future__ import annotations

import json

import pytest

from troika_executor.handlers import step
from troika_shared.catalogue import names
from troika_shared.messages import (
    Plan,
    StepRequested,
    Subtask,
    ToolCall,
    ToolOutcome,
    TranscriptEntry,
)
from troika_testkit.agents import llm_for

PLAN = Plan(
    subtasks=(
        Subtask(
            id="write",
            title="Write the summary",
            acceptance_criteria=("summary.md",),
            tool_hints=("create_file", "read_file"),
        ),
    )
)
CREATE = {"tool": "create_file", "arguments": {"path": "summary.md", "content": "# Hi"}}


def request(**extra) -> StepRequested:
    fields = {"correlation_id": "task-1", "objective": "Summarise", "plan": PLAN,
              "subtask_id": "write", "tool_names": names()}  # fmt: skip
    return StepRequested(**(fields | extra))


@pytest.mark.parametrize("dialect", ["openai", "object_arguments", "hermes", "mistral",
                                     "content_json"])  # fmt: skip
async def test_every_tool_call_dialect_gives_the_same_proposal(scripted_llm, dialect) -> None:
    scripted_llm.dialect = dialect
    scripted_llm.reply("StepDecision", {"action": "use_tools", "tool_calls": [CREATE, CREATE]})
    llm = llm_for(scripted_llm)
    try:
        proposed = await step(request(), llm)
    finally:
        await llm.close()
    assert [(c.tool, c.arguments) for c in proposed.tool_calls] == [
        ("create_file", CREATE["arguments"])
    ] * 2
    assert not proposed.unusable


async def test_a_server_that_only_constrains_json_gets_one_schema_of_the_functions(
    scripted_llm,
) -> None:
    scripted_llm.reply(
        "StepDecision",
        {"action": "use_tools", "tool_calls": [CREATE]},
        {"action": "finish", "result": "Wrote it", "result_files": ["summary.md"]},
    )
    llm = llm_for(scripted_llm, llm_mode="json_schema")
    try:
        proposed = await step(request(), llm)
        finished = await step(request(step=2), llm)
    finally:
        await llm.close()
    assert [c.tool for c in proposed.tool_calls] == ["create_file"]
    assert finished.result is not None
    assert finished.result.files == ("summary.md",)
    asked = scripted_llm.requests[0]
    assert "tools" not in asked
    options = asked["response_format"]["json_schema"]["schema"]["properties"]["calls"]["items"]
    names = [o["properties"]["function"]["const"] for o in options["anyOf"]]
    assert names == ["create_file", "read_file", "finish", "stuck", "more_tools"]
    assert "- finish: Finish the subtask" in asked["messages"][0]["content"]


async def test_strict_functions_take_the_nulls_a_strict_answer_gives(scripted_llm) -> None:
    read = {"tool": "read_file", "arguments": {"path": "notes.md", "max_chars": None}}
    scripted_llm.reply("StepDecision", {"action": "use_tools", "tool_calls": [read]})
    llm = llm_for(scripted_llm, llm_strict_tools=True)
    try:
        proposed = await step(request(), llm)
    finally:
        await llm.close()
    assert [(c.tool, c.arguments) for c in proposed.tool_calls] == [
        ("read_file", {"path": "notes.md"})  # the default applies
    ]
    tools = {t["function"]["name"]: t["function"] for t in scripted_llm.requests[0]["tools"]}
    assert tools["read_file"]["strict"] is True
    assert tools["read_file"]["parameters"]["required"] == ["path", "max_chars"]


async def test_azure_deployments_are_addressed_with_their_api_version(scripted_llm) -> None:
    scripted_llm.reply("StepDecision", {"action": "use_tools", "tool_calls": [CREATE]})
    llm = llm_for(scripted_llm, llm_api_version="2024-10-21", model="writer")
    try:
        proposed = await step(request(), llm)
    finally:
        await llm.close()
    assert [c.tool for c in proposed.tool_calls] == ["create_file"]
    path, headers = scripted_llm.addressed[0]
    assert path.endswith("/openai/deployments/writer/chat/completions?api-version=2024-10-21")
    assert headers["api-key"] == "test-key"


def long_transcript(entries: int, chars: int) -> tuple[TranscriptEntry, ...]:
    return tuple(
        TranscriptEntry(
            call=ToolCall(key=f"k{n}", tool="read_file", arguments={"path": f"part{n}.md"}),
            outcome=ToolOutcome(ok=True, output=f"part {n} " + "x" * chars),
        )
        for n in range(1, entries + 1)
    )


async def test_a_step_is_fitted_into_the_models_context(scripted_llm) -> None:
    scripted_llm.reply("StepDecision", {"action": "use_tools", "tool_calls": [CREATE]})
    llm = llm_for(scripted_llm, llm_context_tokens=8192, llm_max_tokens=1024)
    try:
        proposed = await step(request(transcript=long_transcript(12, 5000), step=13), llm)
    finally:
        await llm.close()
    assert [c.tool for c in proposed.tool_calls] == ["create_file"]
    sent = scripted_llm.requests[0]["messages"][1]["content"]
    assert "12. read_file" in sent
    assert "1. read_file" in sent
    assert "[output left out to fit the model's context: 5,007 characters]" in sent
    assert "more characters]" in sent  # the latest outputs, cut with a marker
    size = len(json.dumps(scripted_llm.requests[0]["messages"] + scripted_llm.requests[0]["tools"]))
    assert size / 3 + 1024 <= 8192


async def test_a_context_too_small_is_a_plain_configuration_problem(scripted_llm) -> None:
    llm = llm_for(scripted_llm, llm_context_tokens=1024, llm_max_tokens=512)
    try:
        proposed = await step(request(), llm)
    finally:
        await llm.close()
    assert not scripted_llm.requests  # nothing was sent
    assert proposed.unusable is False  # not the model's fault: the task asks the person
    assert proposed.stuck_reason is not None
    assert "this step needs about" in proposed.stuck_reason
    assert "the model takes 1,024" in proposed.stuck_reason
    assert "TROIKA_LLM_CONTEXT_TOKENS" in proposed.stuck_reason


async def test_a_server_refusing_the_steps_size_is_the_same_plain_problem(scripted_llm) -> None:
    scripted_llm.fail(400, body="the request exceeds the available context size, try increasing it")
    llm = llm_for(scripted_llm)
    try:
        proposed = await step(request(), llm)
    finally:
        await llm.close()
    assert proposed.unusable is False
    assert proposed.stuck_reason is not None
    assert "refused this step as too long for its context" in proposed.stuck_reason


async def test_an_answer_cut_off_at_the_token_limit_is_sent_back_not_taken(scripted_llm) -> None:
    def cut(request: dict) -> dict:
        arguments = '{"path": "summary.md", "content": "# Hi and then the model ran o'
        call = {"id": "c1", "type": "function",
                "function": {"name": "create_file", "arguments": arguments}}  # fmt: skip
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return scripted_llm.answer_with(request, message, "length")

    scripted_llm.reply("StepDecision", cut, {"action": "use_tools", "tool_calls": [CREATE]})
    llm = llm_for(scripted_llm, llm_max_tokens=64)
    try:
        proposed = await step(request(), llm)
    finally:
        await llm.close()
    assert [c.arguments for c in proposed.tool_calls] == [CREATE["arguments"]]
    retry = json.dumps(scripted_llm.requests[1]["messages"])
    assert "cut off at 64 tokens" in retry
