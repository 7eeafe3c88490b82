"""The page-text check the browser tests' screenshots make."""

from __future__ import annotations

import pytest

from troika_testkit.page_text import raw_text


@pytest.mark.parametrize(
    "text",
    [
        "Status: awaiting_approval",
        "policy: ask_once",
        "1 validation error for StepDecision",
        "see https://errors.pydantic.dev/2.9/v/missing",
        "Expected `str` of length >= 3",
        "What they saw: {'path': 'notes.md'}",
        "ValueError: bad",
        "<pages.Thing object at 0x7f00aa>",
        "<failed_attempts> …",
        "limit: None",
        "runs at 2026-12-04T08:00:00+00:00",
        "last run 2026-12-04T08:00:00.123456Z",
        "starts 2026-12-04T08:00:00",
        "path: Field required",
        "String should have at least 3 characters",
        "value is not a valid email address",
        "Value error, the plan has no subtasks",
        "Object missing required field `path`",
        "Stuck: agent.unusable_answer",
        "after step.requested",
        "policy: ASK_ONCE",
        "status TaskStatus.COMPLETED",
        "<Stuck.SAME_CALL: 'same_call'>",
        "files ['a.md', 'b.md']",
        "StepDecision(action='finish')",
        "took undefined s",
        "at Invalid Date",
        "shows [object Object]",
    ],
)
def test_what_is_not_for_people_is_found(text: str) -> None:
    assert raw_text(text) != []


@pytest.mark.parametrize(
    "text",
    [
        "awaiting approval — create_file waits for your approval",
        "Saved to my_notes.md and out/data_2025.csv",
        "Write to ada_l@example.com, see https://example.com/some_path",
        '{\n  "path": "notes.md"\n}',
        "Set TROIKA_LLM_BASE_URL to a capable model",
        "Nobody answered; nothing ran.",
        "Starts 2026-12-04 08:00:00 (your time)",
        'The answer was {"total": null}',
        "Plan ready: step requested from the executor. Task completed.",
        "Read notes.md, then report.csv at example.com",
        "Set OPENAI_API_KEY or TROIKA_LLM_API_KEY",
        "Total (north + south) is 22; NASA and the USA agree.",
    ],
)
def test_words_for_people_pass(text: str) -> None:
    assert raw_text(text) == []
