"""The timeline as a person reads it: by subtask, routine events folded, one agent at a time,
repeats merged, how long each subtask took."""

from __future__ import annotations

from troika_frontend.timeline import group_timeline, timeline_item, took

EVENTS = [
    ("task.created", {"objective": "Report"}, "10:00:00"),
    ("plan.requested", {}, "10:00:01"),
    ("plan.ready", {"summary": "two", "subtasks": []}, "10:00:05"),
    ("task.status", {"status": "executing", "previous": "planning"}, "10:00:05"),
    ("step.requested", {"subtask": "gather", "step": 1}, "10:00:05"),
    ("step.requested", {"subtask": "write", "step": 1}, "10:00:06"),
    ("tool.repeated", {"subtask": "gather", "tool": "web_search", "times": 2}, "10:00:10"),
    ("tool.repeated", {"subtask": "gather", "tool": "web_search", "times": 2}, "10:00:11"),
    ("tool.finished", {"subtask": "write", "tool": "create_file", "ok": True}, "10:00:20"),
    ("subtask.done", {"subtask": "gather", "result": "found"}, "10:01:15"),
    ("subtask.done", {"subtask": "write", "result": "written"}, "10:03:20"),
    ("review.verdict", {"approved": True, "summary": "good"}, "10:03:30"),
]


def _items():
    return [
        timeline_item({"seq": n, "kind": kind, "data": data,
                       "created_at": f"2026-12-06T{at}+00:00"})
        for n, (kind, data, at) in enumerate(EVENTS, 1)
    ]  # fmt: skip


def test_each_subtasks_events_are_together_where_it_began_and_routine_ones_folded() -> None:
    groups = group_timeline(_items())
    assert [(g.subtask, [i.kind for i in g.events]) for g in groups] == [
        ("", ["task.created"]),
        ("", ["plan.ready"]),
        ("gather", ["tool.repeated", "subtask.done"]),
        ("write", ["tool.finished", "subtask.done"]),
        ("", ["review.verdict"]),
    ]
    gather = groups[2]
    assert gather.events[0].times == 2, "the same event twice in a row is one, counted"
    assert (gather.took, groups[3].took) == ("1 min 10 s", "3 min 14 s")
    assert (gather.size, groups[3].size) == ("3 events", "2 events")
    [alone] = group_timeline(_items()[-3:-2])
    assert alone.size == "1 event"


def test_every_event_and_one_agent_at_a_time() -> None:
    every = group_timeline(_items(), every=True)
    assert sum(len(g.events) for g in every) == len(EVENTS) - 1  # the repeat is merged
    executor = group_timeline(_items(), agent="executor")
    assert {i.who for g in executor for i in g.events} == {"executor"}
    assert [g.subtask for g in group_timeline(_items(), agent="planner")] == [""]


def test_news_only_a_status_tells_is_never_folded() -> None:
    failed = timeline_item({"seq": 1, "kind": "task.status", "data": {"status": "failed"}})
    assert failed is not None
    assert not failed.routine


def test_durations_in_words() -> None:
    start = "2026-12-06T10:00:00+00:00"
    assert took(start, "2026-12-06T10:00:42+00:00") == "42 s"
    assert took(start, "2026-12-06T10:03:00+00:00") == "3 min"
    assert took(start, "2026-12-06T12:05:00+00:00") == "2 h 5 min"
    assert took(start, "") == ""


def test_an_unusable_answer_reads_as_a_sentence_with_the_exact_words_folded() -> None:
    raw = (
        "the model's answer was not usable: invalid arguments for create_file: path: Field required"
    )
    for data in (
        {"agent": "executor", "reason": raw, "said": "it proposed a create_file call without "
         "its path", "subtask": "write"},
        {"agent": "executor", "reason": raw},  # recorded before events said it plainly
    ):  # fmt: skip
        item = timeline_item({"seq": 1, "kind": "agent.unusable_answer", "data": data})
        assert item is not None
        assert item.body == "It proposed a create_file call without its path."
        assert item.detail == raw
        assert "Field required" not in item.title + item.body
    assert item.who == "executor"
