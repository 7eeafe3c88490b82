"""The wire format: what other services (and older or newer versions of them) read."""

from __future__ import annotations

import msgspec
import pytest

from troika_shared import catalogue
from troika_shared import messages as m

SAMPLES: list[m.Message] = [
    m.PlanRequested(correlation_id="task-1", objective="Summarise AI news", files=("notes.csv",)),
    m.PlanProduced(
        correlation_id="task-1",
        plan=m.Plan(
            subtasks=(
                m.Subtask(id="s1", title="Search", tool_hints=("web_search",)),
                m.Subtask(id="s2", title="Write", depends_on=("s1",)),
            ),
            summary="two steps",
        ),
        usage=(m.Usage(model="gpt-4o-mini", prompt_tokens=120, completion_tokens=40),),
    ),
    m.StepRequested(
        correlation_id="task-1",
        objective="o",
        plan=m.Plan(),
        subtask_id="s1",
        transcript=(
            m.TranscriptEntry(
                call=m.ToolCall(key="k1", tool="create_file", arguments={"path": "a.txt"}),
                outcome=m.ToolOutcome(ok=True, output="written", files=("a.txt",)),
            ),
        ),
    ),
    m.StepProposed(
        correlation_id="task-1",
        subtask_id="s1",
        tool_calls=(m.ToolCall(key="k2", tool="read_file", arguments={"path": "a.txt"}),),
    ),
    m.ToolExecute(
        correlation_id="task-1", user_id="u1", subtask_id="s1", call=m.ToolCall(key="k", tool="t")
    ),
    m.ToolResult(
        correlation_id="task-1",
        subtask_id="s1",
        key="k",
        outcome=m.ToolOutcome(ok=False, error="x"),
    ),
    m.ReviewRequested(
        correlation_id="task-1",
        objective="o",
        plan=m.Plan(),
        results={"s1": m.SubtaskResult(summary="done")},
    ),
    m.ReviewVerdict(
        correlation_id="task-1",
        approved=False,
        revisions=(m.Revision(subtask_id="s1", problem="the file is empty"),),
    ),
    m.DesktopAction(
        correlation_id="task-1",
        user_id="u1",
        subtask_id="s3",
        device_id="d1",
        device_name="laptop",
        call=m.ToolCall(key="k", tool="t"),
        seal="00ff",
    ),
    m.DesktopResult(
        correlation_id="task-1",
        user_id="u1",
        subtask_id="s3",
        key="k",
        outcome=m.ToolOutcome(ok=True),
    ),
    m.TaskEvent(correlation_id="task-1", user_id="u1", seq=7, kind="plan.ready", data={"n": 2}),
    m.TaskEvents(
        correlation_id="task-1",
        user_id="u1",
        events=(
            m.LoggedEvent(seq=8, kind="plan.ready", data={"n": 2}, at=m.utcnow()),
            m.LoggedEvent(seq=9, kind="step.requested", at=m.utcnow()),
        ),
    ),
    m.DeadLettered(
        subject="troika.plan.requested",
        stream="TROIKA_PLANNER",
        stream_seq=3,
        deliveries=1,
        service="planner",
        reason="bad",
        payload=b"\x00\xff not json",
    ),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda message: message.type)
def test_every_message_survives_the_wire_unchanged(message: m.Message) -> None:
    assert m.decode(m.encode(message)) == message


def test_wire_tags_are_stable() -> None:
    # Renaming a tag breaks every deployed service that still sends or expects the old one.
    assert [message.type for message in SAMPLES] == [
        "plan.requested",
        "plan.produced",
        "step.requested",
        "step.proposed",
        "tool.execute",
        "tool.result",
        "review.requested",
        "review.verdict",
        "desktop.action",
        "desktop.result",
        "task.event",
        "task.events",
        "dead.lettered",
    ]
    assert b'"type":"plan.requested"' in m.encode(SAMPLES[0])


def test_a_newer_senders_extra_fields_are_ignored() -> None:
    payload = msgspec.json.encode(
        {
            "type": "plan.requested",
            "id": "abc",
            "correlation_id": "task-9",
            "objective": "o",
            "added_in_a_later_version": {"anything": [1, 2]},
        }
    )
    message = m.decode(payload)
    assert isinstance(message, m.PlanRequested)
    assert (message.id, message.correlation_id, message.objective) == ("abc", "task-9", "o")


def test_an_older_senders_message_gets_defaults_for_new_fields() -> None:
    message = m.decode(b'{"type":"plan.requested","objective":"o"}')
    assert isinstance(message, m.PlanRequested)
    assert message.files == ()
    assert message.guidance == ()
    assert len(message.id) == 32


def test_requests_name_their_tools_and_each_agent_describes_them_itself() -> None:
    request = m.StepRequested(
        objective="o",
        plan=m.Plan(),
        subtask_id="s1",
        tool_names=("read_csv", "a_tool_of_a_newer_version", "create_file"),
    )
    sent = m.encode(request)
    assert len(sent) < 1000, "the specs and their schemas stay out of every request"
    received = m.decode(sent)
    assert isinstance(received, m.StepRequested)
    tools = catalogue.offered(received)
    assert [tool.name for tool in tools] == ["read_csv", "create_file"], "an unknown one left out"
    assert tools[1].parameters["properties"]["path"], "with the schema of its arguments"


def test_specs_an_older_gateway_sent_in_full_are_used_as_sent() -> None:
    spec = m.ToolSpec(name="read_csv", description="as an older gateway described it")
    older = m.decode(m.encode(m.PlanRequested(objective="o", tools=(spec,))))
    assert isinstance(older, m.PlanRequested)
    assert catalogue.offered(older) == (spec,)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[]",
        b'{"objective":"o"}',
        b'{"type":"no.such.type"}',
        b'{"type":"plan.requested"}',
    ],
    ids=["empty", "not-json", "array", "untagged", "unknown-type", "missing-field"],
)
def test_malformed_payloads_are_rejected(payload: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        m.decode(payload)


def test_times_are_timezone_aware_utc() -> None:
    offset = m.PlanRequested(objective="o").occurred_at.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 0


def test_derived_ids_are_stable_and_distinct() -> None:
    assert m.derive_id("a", "plan.produced") == m.derive_id("a", "plan.produced")
    assert m.derive_id("a", "plan.produced") != m.derive_id("b", "plan.produced")
    assert m.derive_id("a", "x", 0) != m.derive_id("a", "x", 1)
    assert m.new_id() != m.new_id()


def test_messages_are_immutable() -> None:
    message = m.PlanRequested(objective="o")
    with pytest.raises(AttributeError):
        message.objective = "changed"  # type: ignore[misc]
