"""What the pages show for the gateway's JSON: approval cards, forms, the timeline."""

from __future__ import annotations

import pytest

from troika_frontend.approval_views import (
    Approval,
    Argument,
    approval_of,
    evidence_of,
    form_values,
    group_approvals,
)
from troika_frontend.session import local_path
from troika_frontend.timeline import timeline_item
from troika_frontend.views import (
    limits_body,
    repeats_of,
    schedule_of,
    step_of,
    task_item_of,
)
from troika_shared.catalogue import CATALOGUE

HOSTILE = "<script>alert(1)</script>"


def _interaction(tool: str, arguments: dict, *, form: bool = False) -> dict:
    definition = CATALOGUE[tool]
    prompt = {
        "tool": tool,
        "risk": definition.risk,
        "description": definition.description,
        "arguments": arguments,
        "subtask": "mail",
    }
    if form:
        prompt["form"] = definition.form(arguments)
    return {
        "id": "i1",
        "task_id": "t1",
        "kind": "input" if form else "approval",
        "status": "pending",
        "prompt": prompt,
        "created_at": "2026-11-27T10:00:00+00:00",
        "expires_at": "2026-11-28T10:00:00+00:00",
    }


def test_an_approval_card_shows_every_argument_in_full_with_long_ones_folded() -> None:
    content = "x" * 5000
    card = approval_of(_interaction("create_file", {"path": "a.md", "content": content}), "T")
    assert card.tool == "create_file"
    assert card.risk_color == "amber"  # write
    assert {a.name: (a.value, a.long) for a in card.arguments} == {
        "path": ("a.md", False),
        "content": (content, True),
    }
    assert '"content": "xxx' in card.arguments_json
    assert card.fields == []


def test_what_the_agents_saw_is_named_in_words_and_shown_as_json() -> None:
    seen = evidence_of({
        "rule": "same_call",
        "tool": "create_file",
        "arguments": {"path": "notes.md", "lines": [1, None, True]},
        "last_error": "x" * 300,
    })  # fmt: skip
    assert seen == [
        Argument("Tool", "create_file", long=False),
        Argument(
            "Its arguments",
            '{\n  "lines": [\n    1,\n    null,\n    true\n  ],\n  "path": "notes.md"\n}',
            long=False,
        ),
        Argument("The last error", "x" * 300, long=True),
    ]


def test_a_tools_form_becomes_fields_with_the_agents_values_filled_in() -> None:
    proposed = {"to": ["a@example.com", "b@example.com"], "subject": "Totals", "body": "Hi"}
    card = approval_of(_interaction("send_email", proposed, form=True))
    fields = {f.name: f for f in card.fields}
    assert list(fields) == ["to", "cc", "bcc", "subject", "body", "html_body", "attachments"]
    assert (fields["to"].kind, fields["to"].value, fields["to"].required) == (
        "list",
        "a@example.com, b@example.com",
        True,
    )
    assert (fields["body"].kind, fields["body"].value) == ("multiline", "Hi")
    assert (fields["cc"].required, fields["cc"].value) == (False, "")
    assert fields["html_body"].kind == "multiline"

    submitted = {
        "interaction_id": "i1",
        "to": " c@example.com ,d@example.com,",
        "cc": "",
        "bcc": "",
        "subject": "Totals (edited)",
        "body": "Hi",
        "html_body": "",
        "attachments": "totals.xlsx",
    }
    assert form_values(card, submitted) == {
        "to": ["c@example.com", "d@example.com"],
        "cc": [],
        "bcc": [],
        "subject": "Totals (edited)",
        "body": "Hi",
        "attachments": ["totals.xlsx"],
    }


def test_a_number_field_with_words_in_it_is_refused_by_name() -> None:
    card = approval_of(_interaction("send_email", {"to": ["a@example.com"]}, form=True))
    card.fields[0].kind = "number"
    with pytest.raises(ValueError, match="To must be a number"):
        form_values(card, {"to": "many"})


def test_timeline_items_keep_agent_text_as_text_and_fence_tool_output() -> None:
    verdict = timeline_item(
        {
            "seq": 7,
            "kind": "review.verdict",
            "at": "2026-11-27T10:00:00Z",
            "data": {
                "approved": False,
                "summary": HOSTILE,
                "revisions": [{"subtask": "a", "problem": "too short"}],
            },
        }
    )
    assert verdict is not None
    assert (verdict.seq, verdict.who, verdict.color) == (7, "reviewer", "orange")
    assert HOSTILE in verdict.body
    assert "- **a**: too short" in verdict.body

    output = "a ``` b"
    finished = timeline_item(
        {
            "seq": 8,
            "kind": "tool.finished",
            "data": {"tool": "read_file", "ok": True, "output": output},
        }
    )
    assert finished is not None
    assert finished.body == "````text\na ``` b\n````"  # a fence longer than any inside

    approved = timeline_item(
        {"seq": 9, "kind": "tool.approved", "data": {"tool": "read_file", "by": "user:0f3a"}}
    )
    assert approved is not None
    assert approved.title == "read_file approved (by you)"
    unknown = timeline_item({"seq": 10, "kind": "something.new", "data": {}})
    assert unknown is not None
    assert unknown.title == "something new"


def test_a_scheduled_task_row_counts_down_to_the_second_only_within_a_day() -> None:
    task = {
        "id": "t",
        "title": "",
        "objective": "Morning note",
        "status": "scheduled",
        "created_at": "2026-11-27T10:00:00+00:00",
        "updated_at": "2026-11-27T10:00:00+00:00",
    }
    assert task_item_of(task, "2999-01-01T09:00:00+00:00").soon is False
    row = task_item_of(task, "2000-01-01T09:00:00+00:00")
    assert (row.soon, row.title, row.status_label, row.color) == (
        True,
        "Morning note",
        "scheduled",
        "blue",
    )


def test_a_history_row_says_how_long_its_task_ran_and_what_it_cost() -> None:
    task = {"id": "t", "objective": "Total the sales", "status": "completed",
            "started_at": "2026-12-06T09:00:00+00:00", "finished_at": "2026-12-06T09:03:05+00:00",
            "cost_usd": 0.00031}  # fmt: skip
    row = task_item_of(task)
    assert (row.took, row.cost) == ("3 min 5 s", "$0.0003")
    running = task_item_of({**task, "status": "executing", "finished_at": None})
    assert running.took == ""  # not finished: no duration yet
    listed_elsewhere = task_item_of({k: v for k, v in task.items() if k != "cost_usd"})
    assert listed_elsewhere.cost == ""  # lists without a cost say nothing, never "$0"


def test_a_schedule_says_how_it_repeats_and_links_to_its_runs() -> None:
    daily = {"id": "s1", "kind": "repeating", "description": "At 08:00", "timezone": "Asia/Kolkata",
             "status": "active", "runs": 1, "title": "Water the plants",
             "last_run": {"fired_at": "2026-12-06T02:30:00+00:00", "task_id": "t7"}}  # fmt: skip
    once = {"id": "s2", "kind": "once", "description": "once", "timezone": "UTC", "runs": 0}
    assert repeats_of(daily) == "At 08:00, Asia/Kolkata"
    assert repeats_of(once) == ""  # its start time says it all
    row = schedule_of(daily)
    assert (row.runs_words, row.last_task_id) == ("1 run", "t7")
    assert (schedule_of(once).runs_words, schedule_of(once).last_task_id) == ("0 runs", "")
    task = {"id": "t8", "objective": "Water", "status": "scheduled", "schedule_id": "s1",
            "status_reason": "runs at 2999-01-01T02:30:00+00:00"}  # fmt: skip
    row = task_item_of(task, "2999-01-01T02:30:00+00:00", repeats_of(daily))
    assert (row.repeats, row.reason) == ("At 08:00, Asia/Kolkata", "")  # no ISO time shown


def test_times_travel_as_iso_with_their_offset_for_the_browser_to_show_in_its_zone() -> None:
    def at(value: object) -> str:
        item = timeline_item({"seq": 1, "kind": "task.created", "at": value, "data": {}})
        assert item is not None
        return item.at

    assert at("2026-11-27T10:00:00Z") == "2026-11-27T10:00:00+00:00"
    assert at("2026-11-27T11:30:00+01:30") == "2026-11-27T10:00:00+00:00"
    assert at("2026-11-27T10:00:00") == "2026-11-27T10:00:00+00:00"  # a bare time is UTC
    assert at("yesterday") == ""  # nothing rather than "Invalid date"


def test_what_a_browser_will_type_is_a_form_with_the_password_masked() -> None:
    proposed = {"values": {"Username": "ada", "Password": ""}}
    card = approval_of(_interaction("browser_fill", proposed, form=True))
    fields = {f.name: (f.kind, f.value) for f in card.fields}
    assert fields == {"Username": ("text", "ada"), "Password": ("password", "")}
    typed = form_values(card, {"Username": "ada", "Password": "s3cret"})
    assert typed == {"Username": "ada", "Password": "s3cret"}


@pytest.mark.parametrize(
    ("task_status", "shown"),
    [("needs_guidance", "paused"), ("cancelled", "cancelled"), ("failed", "stopped"),
     ("executing", "running")],
)  # fmt: skip
def test_an_unfinished_subtask_of_a_stopped_task_does_not_say_running(task_status, shown) -> None:
    running = {"key": "a", "title": "Count", "status": "running"}
    done = {"key": "b", "title": "Write", "status": "done"}
    assert step_of(running, task_status).status == shown
    assert step_of(done, task_status).status == "done"


def test_a_subtask_shows_what_its_model_calls_cost_once_it_made_one() -> None:
    fresh = {"key": "a", "title": "Count", "status": "pending", "cost": {"calls": 0}}
    assert step_of(fresh).spent == ""
    spent = {"calls": 3, "prompt_tokens": 1200, "completion_tokens": 345, "cost_usd": 0.00123}
    assert step_of({**fresh, "cost": spent}).spent == "$0.0012 · 3 model calls · 1,545 tokens"
    one = {"calls": 1, "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.0}
    assert step_of({**fresh, "cost": one}).spent == "$0.0000 · 1 model call · 15 tokens"


def test_waiting_actions_are_grouped_by_task_and_approve_all_lists_what_it_approves() -> None:
    def waiting(n: int, task: str, title: str, tool: str = "create_file") -> Approval:
        return approval_of(
            {"id": f"i{n}", "task_id": task, "kind": "approval",
             "prompt": {"tool": tool, "arguments": {"path": f"f{n}.md", "content": "x" * 100}}},
            title,
        )  # fmt: skip

    groups = group_approvals(
        [waiting(1, "t1", "Notes"), waiting(2, "t2", ""), waiting(3, "t1", "Notes")]
    )
    assert [(g.task_id, g.task_title, [i.id for i in g.actions]) for g in groups] == [
        ("t1", "Notes", ["i1", "i3"]),
        ("t2", "A task without a name", ["i2"]),
    ]
    assert groups[0].approvable[0].startswith("create_file — path: f1.md, content: xxx")
    assert len(groups[0].approvable[0]) < 160
    assert [i.same_as for i in groups[0].actions] == ["", ""]  # different files


def test_the_same_call_from_parallel_subtasks_is_flagged_on_each_card() -> None:
    def asked(n: int, subtask: str, path: str) -> Approval:
        prompt = {"tool": "create_file", "subtask": subtask, "arguments": {"path": path}}
        return approval_of({"id": f"i{n}", "task_id": "t1", "kind": "approval", "prompt": prompt})

    [group] = group_approvals(
        [asked(1, "a", "notes.md"), asked(2, "b", "notes.md"), asked(3, "c", "other.md")]
    )
    assert [i.same_as for i in group.actions] == ["b", "a", ""]


@pytest.mark.parametrize(
    ("asked", "goes_to"),
    [
        ("/approvals", "/approvals"),
        ("/tasks/3f2a", "/tasks/3f2a"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
    ],
)
def test_after_signing_in_only_a_page_of_the_app_is_returned_to(asked, goes_to) -> None:
    assert local_path(asked) == goes_to


def test_limits_are_read_as_people_type_them_or_refused_in_words() -> None:
    typed = {"daily": "$2.50", "monthly": "", "daily_tokens": "250k", "monthly_tokens": "2,000,000"}
    assert limits_body(typed) == {
        "daily_budget_usd": 2.5,
        "monthly_budget_usd": None,
        "daily_budget_tokens": 250_000,
        "monthly_budget_tokens": 2_000_000,
    }
    assert limits_body({"daily_tokens": "1.5M"})["daily_budget_tokens"] == 1_500_000
    assert limits_body({"monthly": "abc"}) == (
        "The monthly limit must be an amount in dollars, like 5."
    )
    assert limits_body({"daily": "0"}) == "The daily limit must be more than nothing."
    assert limits_body({"daily_tokens": "lots"}) == (
        "The daily token limit must be a number of tokens, like 200000 or 200k."
    )
    assert limits_body({"monthly_tokens": "0"}) == (
        "The monthly token limit must be at least one token."
    )
