"""Subject and stream names."""

from __future__ import annotations

import pytest

from troika_shared.messages import (
    DeadLettered,
    DesktopAction,
    PlanProduced,
    PlanRequested,
    TaskEvent,
    TaskEvents,
    ToolCall,
    ToolExecute,
)
from troika_shared.subjects import Retention, StreamKey, Topology


def test_each_message_has_its_subject() -> None:
    topology = Topology("troika")
    call = ToolCall(key="k", tool="t")
    assert topology.subject_for(PlanRequested(objective="o")) == "troika.plan.requested"
    assert topology.subject_for(PlanProduced()) == "troika.plan.produced"
    assert (
        topology.subject_for(ToolExecute(user_id="u", subtask_id="s", call=call))
        == "troika.tool.execute"
    )
    event = TaskEvent(correlation_id="t7", user_id="u3", seq=1, kind="k")
    assert topology.subject_for(event) == "troika.events.u3.t7"
    events = TaskEvents(correlation_id="t7", user_id="u3", events=())
    assert topology.subject_for(events) == "troika.events.u3.t7"
    action = DesktopAction(
        user_id="u3", subtask_id="s", device_id="d9", device_name="laptop", call=call, seal="x"
    )
    assert topology.subject_for(action) == "troika.desktop.u3.d9.action"
    letter = DeadLettered(
        subject="x", stream="TROIKA_PLANNER", stream_seq=1, deliveries=1, service="p", reason="r"
    )
    assert topology.subject_for(letter) == "troika.dead.TROIKA_PLANNER"


def test_every_command_is_stored_by_exactly_one_stream_and_events_by_none() -> None:
    topology = Topology("p1")
    streams = topology.streams()
    call = ToolCall(key="k", tool="t")
    samples = [
        PlanRequested(objective="o"),
        PlanProduced(),
        ToolExecute(user_id="u", subtask_id="s", call=call),
        DesktopAction(
            user_id="u", subtask_id="s", device_id="d", device_name="pc", call=call, seal="x"
        ),
    ]

    def matches(pattern: str, subject: str) -> bool:
        p, s = pattern.split("."), subject.split(".")
        if p[-1] == ">":
            return len(s) >= len(p) and all(a in ("*", b) for a, b in zip(p[:-1], s, strict=False))
        return len(p) == len(s) and all(a in ("*", b) for a, b in zip(p, s, strict=True))

    def owners(message: object) -> list[str]:
        subject = topology.subject_for(message)
        return [spec.name for spec in streams if any(matches(p, subject) for p in spec.subjects)]

    for message in samples:
        assert len(owners(message)) == 1, (message, owners(message))
    # the database keeps the event log: the live views' notices are not stored again
    assert owners(TaskEvent(correlation_id="t", user_id="u", seq=1, kind="k")) == []
    assert owners(TaskEvents(correlation_id="t", user_id="u", events=())) == []


def test_agent_inboxes_are_work_queues_and_the_stops_are_not() -> None:
    topology = Topology("troika")
    for key in (StreamKey.PLANNER, StreamKey.EXECUTOR, StreamKey.REVIEWER, StreamKey.RESULTS):
        assert topology.stream(key).retention is Retention.WORK_QUEUE
    assert topology.stream(StreamKey.STOPPED).retention is Retention.LIMITS
    assert topology.stream(StreamKey.PLANNER).name == "TROIKA_PLANNER"
    assert Topology("a-b").stream_name(StreamKey.DEAD) == "A_B_DEAD"


@pytest.mark.parametrize("prefix", ["", "a.b", "a b", "a*", "a>", "1abc", "x" * 33])
def test_prefixes_that_would_break_subjects_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid bus prefix"):
        Topology(prefix)
