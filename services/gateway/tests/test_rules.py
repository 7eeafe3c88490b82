"""The task rules, pure: a snapshot and a command in, the new state and the effects out.

Every transition of the table in the README's "How a task moves", every stuck rule, and
answers arriving in every status, with the liveness invariant checked after each step: a task
that is neither final nor waiting for the person has a request in flight.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from troika_gateway.pipeline.liveness import LEGACY, missing_work
from troika_gateway.pipeline.policy import decide
from troika_gateway.pipeline.rules import apply
from troika_gateway.pipeline.snapshot import (
    AgentGaveUp,
    Ask,
    Audit,
    Cancel,
    EditPlan,
    Emit,
    Execute,
    Expire,
    Fire,
    Guide,
    Limits,
    Note,
    Outcome,
    RecordFiles,
    RecordUsage,
    Remember,
    Rename,
    Repair,
    Respond,
    Review,
    Send,
    SetBudget,
    Start,
    TaskState,
)
from troika_gateway.pipeline.states import AskStatus, CallStatus, SubtaskStatus, TaskStatus
from troika_gateway.pipeline.stuck import STUCK, Stuck
from troika_shared import task_events as ev
from troika_shared.approvals import call_key
from troika_shared.catalogue import CATALOGUE
from troika_shared.messages import (
    Plan,
    PlanProduced,
    PlanRequested,
    ReviewVerdict,
    Revision,
    StepProposed,
    StepRequested,
    Subtask,
    SubtaskResult,
    TaskStopped,
    ToolCall,
    ToolOutcome,
    ToolResult,
    Usage,
)
from troika_shared.task_events import kind_of

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
LIMITS = Limits()
ONE = Plan(subtasks=(Subtask(id="a", title="A"),), summary="one")
TWO = Plan(subtasks=(Subtask(id="a", title="A"), Subtask(id="b", title="B")), summary="two")
CHAIN = Plan(
    subtasks=(Subtask(id="a", title="A"), Subtask(id="b", title="B", depends_on=("a",))),
    summary="chain",
)


class Flow:
    """A task driven through the rules, checking the invariant after every command."""

    def __init__(self, state: TaskState | None = None, limits: Limits = LIMITS) -> None:
        self.state = state or TaskState(
            id="t1", user_id="u1", objective="Write notes", status=TaskStatus.QUEUED
        )
        self.limits = limits
        self.effects: list[Any] = []
        self.last: Outcome | None = None

    def do(self, command: Any, *, now: datetime = NOW) -> Outcome:
        outcome = apply(self.state, command, limits=self.limits, now=now)
        self.last = outcome
        if outcome.refused is None:
            assert_sound(outcome.state)
            self.state = outcome.state
            self.effects = outcome.effects
        return outcome

    # what the last command did
    def events(self) -> list[str]:
        return [kind_of(e.event) for e in self.effects if isinstance(e, Emit)]

    def sent(self, kind: type) -> list[Any]:
        found = [e.message for e in self.effects if isinstance(e, (Send, Review))]
        return [m for m in found if isinstance(m, kind)]

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.effects if isinstance(e, kind)]

    # the agents' and the person's parts
    def start(self) -> PlanRequested:
        self.do(Start())
        return self.sent(PlanRequested)[0]

    def plan(self, plan: Plan = ONE, **fields: Any) -> None:
        self.do(PlanProduced(correlation_id="t1", request_id=self.state.in_flight, plan=plan,
                             **fields))  # fmt: skip

    def step_request(self, key: str) -> str:
        sub = self.state.subtask(key)
        assert sub is not None
        return sub.in_flight

    def propose(self, key: str, *calls: ToolCall, **fields: Any) -> None:
        request = self.step_request(key)
        self.do(StepProposed(correlation_id="t1", subtask_id=key, request_id=request,
                             tool_calls=calls, **fields))  # fmt: skip

    def finish(self, key: str) -> None:
        result = SubtaskResult(summary=f"{key} done", files=(f"{key}.md",))
        self.do(StepProposed(correlation_id="t1", subtask_id=key,
                             request_id=self.step_request(key), result=result))  # fmt: skip

    def respond(self, *, approve: bool = True, arguments: dict | None = None, **kw: Any) -> Outcome:
        ask = next(a for a in self.state.asks if a.status == AskStatus.PENDING)
        call = self.state.call(ask.call_key)
        assert call is not None
        return self.do(Respond(ask_id=ask.id, approve=approve,
                               arguments=call.arguments if arguments is None else arguments,
                               actor="user: u1", **kw))  # fmt: skip

    def result(self, key: str, *, ok: bool = True, files: tuple[str, ...] = ()) -> None:
        self.do(ToolResult(correlation_id="t1", subtask_id="", key=key,
                           outcome=ToolOutcome(ok=ok, output="out", error=None if ok else "boom",
                                               files=files)))  # fmt: skip

    def verdict(self, *, approved: bool = True, **fields: Any) -> None:
        self.do(ReviewVerdict(correlation_id="t1", request_id=self.state.in_flight,
                              approved=approved, **fields))  # fmt: skip


def call(n: int = 1, tool: str = "read_file", **arguments: Any) -> ToolCall:
    return ToolCall(key=f"k{n}", tool=tool, arguments=arguments or {"path": f"f{n}.md"})


def keyed(n: int, subtask: str = "a") -> ToolCall:
    """A call whose key is made as the executor makes it (from its arguments)."""
    arguments = {"path": f"f{n}.md"}
    return ToolCall(key=call_key("t1", subtask, "read_file", arguments), tool="read_file",
                    arguments=arguments)  # fmt: skip


def assert_sound(state: TaskState) -> None:
    """The liveness invariant: nothing is missing unless the task waits for the person."""
    assert missing_work(state) == [], f"{state.status}: nothing in flight"


# --- states to start from -------------------------------------------------------------------


def planning() -> Flow:
    flow = Flow()
    flow.start()
    return flow


def executing(plan: Plan = ONE) -> Flow:
    flow = planning()
    flow.plan(plan)
    return flow


def awaiting_approval() -> Flow:
    flow = executing()
    flow.propose("a", call(1))
    return flow


def awaiting_input() -> Flow:
    flow = executing()
    email = {"to": ["john@example.com"], "subject": "Meeting", "body": "At 3pm."}
    flow.propose("a", ToolCall(key="mail", tool="send_email", arguments=email))
    return flow


def reviewing() -> Flow:
    flow = executing()
    flow.finish("a")
    return flow


def needs_guidance() -> Flow:
    flow = planning()
    flow.plan(None, stuck_reason="the objective is unclear")
    return flow


def awaiting_plan_review() -> Flow:
    flow = Flow(TaskState(id="t1", user_id="u1", objective="Write notes",
                          status=TaskStatus.QUEUED, review_plan=True))  # fmt: skip
    flow.start()
    flow.plan(ONE)
    return flow


def scheduled() -> Flow:
    return Flow(TaskState(id="t1", user_id="u1", objective="o", status=TaskStatus.SCHEDULED))


def completed() -> Flow:
    flow = reviewing()
    flow.verdict()
    return flow


def cancelled() -> Flow:
    flow = executing()
    flow.do(Cancel(by="api", reason="cancelled by you"))
    return flow


STARTS = {
    "scheduled": scheduled,
    "planning": planning,
    "awaiting_plan_review": awaiting_plan_review,
    "executing": executing,
    "awaiting_approval": awaiting_approval,
    "awaiting_input": awaiting_input,
    "reviewing": reviewing,
    "needs_guidance": needs_guidance,
    "completed": completed,
    "cancelled": cancelled,
}


def test_each_starting_state_is_what_its_name_says() -> None:
    assert {name: make().state.status.value for name, make in STARTS.items()} == {
        name: name for name in STARTS
    }


# --- the transition table ------------------------------------------------------------------


def _approved(flow: Flow) -> None:
    flow.respond()


TRANSITIONS: list[tuple[str, Any, Any, str, list[str]]] = [
    # (from, setup, command, to, events)
    ("queued", None, Start(), "planning", ["plan.requested", "task.status"]),
    ("scheduled", None, Fire(schedule_id="s", due=NOW), "planning",
     ["schedule.fired", "plan.requested", "task.status"]),
    ("planning", None, "plan", "executing",
     ["plan.ready", "task.status", "step.requested"]),
    ("awaiting_plan_review", None, EditPlan(plan=TWO), "awaiting_plan_review", ["plan.edited"]),
    ("awaiting_plan_review", None, EditPlan(plan=ONE, start=True), "executing",
     ["plan.accepted", "task.status", "step.requested"]),
    ("awaiting_plan_review", None, EditPlan(plan=CHAIN, start=True), "executing",
     ["plan.edited", "plan.accepted", "task.status", "step.requested"]),
    ("planning", None, "plan-stuck", "needs_guidance", ["task.status", "task.needs_guidance"]),
    ("planning", None, "plan-unusable", "planning", ["agent.unusable_answer", "plan.requested"]),
    ("planning", None, "plan-cyclic", "planning", ["agent.unusable_answer", "plan.requested"]),
    ("planning", None, AgentGaveUp(agent="planner", reason="crashed"), "needs_guidance",
     ["task.status", "task.needs_guidance"]),
    ("executing", None, "propose", "awaiting_approval", ["approval.requested", "task.status"]),
    ("executing", None, "propose-form", "awaiting_input", ["approval.requested", "task.status"]),
    ("executing", None, "finish", "reviewing", ["subtask.done", "task.status", "review.requested"]),
    ("executing", None, "step-stuck", "needs_guidance", ["task.status", "task.needs_guidance"]),
    ("executing", None, "step-unusable", "executing", ["agent.unusable_answer", "step.requested"]),
    ("awaiting_approval", None, "approve", "executing", ["tool.approved", "task.status"]),
    ("awaiting_approval", None, "deny", "executing",
     ["tool.denied", "task.status", "step.requested"]),
    ("awaiting_approval", None, "expire", "executing",
     ["approval.expired", "tool.denied", "task.status", "step.requested"]),
    ("awaiting_input", None, "approve", "executing", ["tool.approved", "task.status"]),
    ("awaiting_approval", _approved, "result", "executing", ["tool.finished", "step.requested"]),
    ("reviewing", None, "verdict", "completed",
     ["review.verdict", "task.status", "task.completed"]),
    ("reviewing", None, "verdict-revise", "executing",
     ["review.verdict", "task.status", "step.requested"]),
    ("reviewing", None, "verdict-unusable", "reviewing",
     ["agent.unusable_answer", "review.requested"]),
    ("needs_guidance", None, Guide(action="continue", text="go on"), "planning",
     ["task.guidance", "plan.requested", "task.status"]),
    ("needs_guidance", None, Guide(action="replan", text="smaller steps"), "planning",
     ["task.guidance", "plan.requested", "task.status"]),
    ("needs_guidance", None, Guide(action="cancel"), "cancelled",
     ["task.guidance", "task.status", "task.cancelled"]),
    *[(name, None, Cancel(by="api", reason="cancelled by you"), "cancelled",
       ["task.status", "task.cancelled"])
      for name in ("scheduled", "planning", "awaiting_plan_review", "executing",
                   "awaiting_approval", "awaiting_input", "reviewing", "needs_guidance")],
]  # fmt: skip


def _act(flow: Flow, action: Any) -> None:  # noqa: PLR0912 - one arm per action
    match action:
        case "plan":
            flow.plan(CHAIN)
        case "plan-stuck":
            flow.plan(None, stuck_reason="unclear")
        case "plan-unusable":
            flow.plan(None, stuck_reason="not JSON", unusable=True)
        case "plan-cyclic":
            cyclic = Plan(subtasks=(Subtask(id="a", title="A", depends_on=("b",)),
                                    Subtask(id="b", title="B", depends_on=("a",))))  # fmt: skip
            flow.plan(cyclic)
        case "propose":
            flow.propose("a", call(1))
        case "propose-form":
            email = {"to": ["j@example.com"], "subject": "Hi", "body": "Hello"}
            flow.propose("a", ToolCall(key="mail", tool="send_email", arguments=email))
        case "finish":
            flow.finish("a")
        case "step-stuck":
            flow.propose("a", stuck_reason="cannot reach the site")
        case "step-unusable":
            flow.propose("a", stuck_reason=UNUSABLE, unusable=True)
        case "approve":
            flow.respond()
        case "deny":
            flow.respond(approve=False, reason="not that file")
        case "expire":
            flow.do(Expire(ask_id=flow.state.asks[0].id), now=NOW + timedelta(days=2))
        case "result":
            flow.result("k1")
        case "verdict":
            flow.verdict()
        case "verdict-revise":
            flow.verdict(approved=False, revisions=(Revision(subtask_id="a", problem="short"),))
        case "verdict-unusable":
            flow.verdict(approved=False, stuck_reason="not JSON", unusable=True)
        case _:
            flow.do(action)


@pytest.mark.parametrize(
    ("start", "setup", "action", "end", "events"),
    TRANSITIONS,
    ids=[
        f"{row[0]}-{row[2] if isinstance(row[2], str) else type(row[2]).__name__}"
        for row in TRANSITIONS
    ],
)
def test_each_transition_moves_the_task_and_says_so(start, setup, action, end, events) -> None:
    flow = Flow() if start == "queued" else STARTS[start]()
    if setup is not None:
        setup(flow)
    _act(flow, action)
    assert flow.last is not None
    assert flow.last.refused is None
    assert (flow.state.status.value, flow.events()) == (end, events)


def test_a_new_task_asks_the_planners_with_its_files_and_guidance() -> None:
    flow = Flow(TaskState(id="t1", user_id="u1", objective="Totals", status=TaskStatus.QUEUED,
                          files=("sales.csv",), guidance=("in euros",)))  # fmt: skip
    request = flow.start()
    assert (request.objective, request.files, request.guidance) == (
        "Totals",
        ("sales.csv",),
        ("in euros",),
    )
    assert "read_csv" in request.tool_names, "the planners see the tool catalogue"
    assert not request.tools, "by name: each agent describes them from its own catalogue"
    assert flow.state.in_flight == request.id
    assert flow.state.started_at == NOW


def test_a_plan_to_review_waits_for_the_person_and_asks_no_agent() -> None:
    flow = Flow(TaskState(id="t1", user_id="u1", objective="Write notes",
                          status=TaskStatus.QUEUED, review_plan=True))  # fmt: skip
    flow.start()
    flow.plan(TWO)
    assert flow.state.status == TaskStatus.AWAITING_PLAN_REVIEW
    assert flow.events() == ["plan.ready", "task.status"]
    assert flow.sent(StepRequested) == []
    assert [s.status for s in flow.state.subtasks] == [SubtaskStatus.PENDING] * 2
    flow.do(Repair())
    assert flow.effects == [], "waiting for the person is not missing work"


def test_the_persons_edits_are_what_the_executor_is_asked_to_do() -> None:
    flow = awaiting_plan_review()
    edited = Plan(subtasks=(
        Subtask(id="data", title="Gather the figures", description="Use the 2025 census only"),
        Subtask(id="a", title="Write the notes", depends_on=("data",)),
    ))  # fmt: skip
    flow.do(EditPlan(plan=edited, start=True))
    [step] = flow.sent(StepRequested)
    assert step.subtask_id == "data"
    assert step.plan.subtasks == edited.subtasks
    assert step.plan.summary == "one", "the summary stays unless the person changes it"
    assert step.plan.subtasks[0].description == "Use the 2025 census only"
    assert [s.key for s in flow.state.subtasks] == ["data", "a"]
    [edit] = [e.event for e in flow.effects if isinstance(e, Emit)][:1]
    assert isinstance(edit, ev.PlanEdited)
    assert [s.depends_on for s in edit.subtasks] == [[], ["data"]]


@pytest.mark.parametrize(
    ("make", "plan", "reason"),
    [
        (executing, ONE, "the plan is not waiting for your review (the task is executing)"),
        (awaiting_plan_review, Plan(subtasks=()), "the plan has no subtask"),
        (awaiting_plan_review,
         Plan(subtasks=(Subtask(id="a", title="A", depends_on=("b",)),
                        Subtask(id="b", title="B", depends_on=("a",)))),
         "the plan's dependencies go round in a circle"),
        (awaiting_plan_review, Plan(subtasks=(Subtask(id="a", title="A", depends_on=("z",)),)),
         "subtask a depends on z"),
    ],
)  # fmt: skip
def test_a_plan_edit_that_cannot_be_worked_is_refused_and_changes_nothing(
    make, plan, reason
) -> None:
    flow = make()
    before = flow.state
    outcome = flow.do(EditPlan(plan=plan, start=True))
    assert outcome.refused == reason
    assert flow.state is before


def test_a_plan_starts_only_the_subtasks_whose_dependencies_are_done() -> None:
    flow = executing(CHAIN)
    assert [s.subtask_id for s in flow.sent(StepRequested)] == ["a"]
    flow.propose("a", call(1))
    flow.respond()
    flow.result("k1")
    flow.finish("a")
    [step] = flow.sent(StepRequested)
    assert (step.subtask_id, step.dependency_results) == ("b", {"a": "a done"})


def test_the_next_step_carries_the_subtasks_calls_and_their_outcomes() -> None:
    flow = awaiting_approval()
    flow.respond()
    flow.result("k1")
    [step] = flow.sent(StepRequested)
    assert [(e.call.key, e.outcome.ok, e.outcome.output) for e in step.transcript] == [
        ("k1", True, "out")
    ]
    assert step.step == 2


def test_approving_sends_the_call_to_the_executors_and_keeps_it_on_record() -> None:
    flow = awaiting_approval()
    flow.respond(client={"ip": "127.0.0.1"})
    [execute] = flow.of(Execute)
    [audit] = flow.of(Audit)
    assert execute.call_key == "k1"
    assert (audit.action, audit.actor, audit.client) == (
        "approved",
        "user: u1",
        {"ip": "127.0.0.1"},
    )
    assert flow.state.call("k1").status == CallStatus.APPROVED  # type: ignore[union-attr]
    assert flow.state.asks[0].status == AskStatus.APPROVED


def test_edited_arguments_make_a_new_call_and_the_proposed_one_is_replaced() -> None:
    flow = awaiting_approval()
    flow.respond(arguments={"path": "other.md"})
    statuses = {c.arguments["path"]: c.status for c in flow.state.calls}
    assert statuses == {"f1.md": CallStatus.REPLACED, "other.md": CallStatus.APPROVED}
    assert [a.action for a in flow.of(Audit)] == ["edited", "approved"]


def test_an_edit_into_a_call_the_task_has_is_refused_and_changes_nothing() -> None:
    flow = executing(TWO)
    flow.propose("a", keyed(1), keyed(2))
    before = flow.state
    first = flow.state.asks[0]
    taken = flow.state.calls[1].arguments
    refused = flow.do(Respond(ask_id=first.id, approve=True, arguments=taken, actor="user: u1"))
    assert refused.refused is not None
    assert "exactly these arguments" in refused.refused
    assert flow.state is before


def test_remember_for_this_task_approves_the_tools_later_calls() -> None:
    flow = awaiting_approval()
    flow.respond(remember=True)
    assert [r.tool for r in flow.of(Remember)] == ["read_file"]
    flow.result("k1")
    flow.propose("a", call(2))
    assert flow.events()[:1] == ["tool.approved"]
    assert flow.state.status == TaskStatus.EXECUTING


_LINK = {"role": "link", "name": "Next page"}
_BUY = {"role": "button", "name": "Buy now"}


@pytest.mark.parametrize(
    ("modes", "tool", "approved_before", "expected", "arguments"),
    [
        ({}, "read_file", False, ("ask", ""), {}),
        ({"user": "allow"}, "read_file", False, ("approve", "allow for all tasks"), {}),
        ({"task": "allow"}, "read_file", False, ("approve", "allow for this task"), {}),
        ({"user": "allow", "task": "deny"}, "read_file", False, ("deny", "deny for this task"), {}),
        ({"user": "deny", "task": "allow"}, "read_file", False, ("deny", "deny for all tasks"), {}),
        ({"task": "ask_once"}, "read_file", False, ("ask", ""), {}),
        ({"task": "ask_once"}, "read_file", True, ("approve", "ask once for this task"), {}),
        ({"task": "ask", "user": "allow"}, "read_file", False, ("ask", ""), {}),
        ({"user": "allow"}, "send_email", False, ("ask", ""), {}),  # a form always asks
        ({"user": "allow"}, "browser_click", False, ("approve", "allow for all tasks"), _LINK),
        ({"user": "allow"}, "browser_click", False, ("ask", ""), _BUY),  # may submit
        ({"user": "allow"}, "browser_click", False, ("ask", ""), {"text": "Next"}),
        ({"task": "allow"}, "browser_press", False, ("ask", ""), {"key": "Enter"}),
        (
            {"task": "allow"},
            "browser_press",
            False,
            ("approve", "allow for this task"),
            {"key": "PageDown"},
        ),
        ({"task": "allow"}, "browser_download", False, ("ask", ""), {"text": "report"}),
        ({"task": "allow"}, "browser_fill", False, ("ask", ""), {"values": {"q": "x"}}),
        ({"task": "allow"}, "browser_get_text", False, ("approve", "allow for this task"), {}),
    ],
)
def test_policies_decide_calls(modes, tool, approved_before, expected, arguments) -> None:
    decided = decide(modes, CATALOGUE[tool], arguments, approved_before=approved_before)
    assert decided == expected


def test_a_policy_that_denies_tells_the_agent_and_asks_for_the_next_step() -> None:
    flow = executing()
    flow.state.policies = {"read_file": {"user": "deny"}}
    flow.propose("a", call(1))
    assert flow.events() == ["tool.denied", "step.requested"]
    assert flow.state.call("k1").error == "your policy denies read_file (deny for all tasks)"  # type: ignore[union-attr]


def test_a_tool_result_records_the_files_it_wrote() -> None:
    flow = awaiting_approval()
    flow.respond()
    flow.result("k1", files=("out/report.md",))
    assert [r.names for r in flow.of(RecordFiles)] == [("out/report.md",)]
    assert "out/report.md" in flow.state.files


def test_the_same_call_three_times_in_one_answer_is_one_question() -> None:
    flow = executing()
    flow.propose("a", call(1), call(1), call(1))
    assert flow.state.status == TaskStatus.AWAITING_APPROVAL
    assert [a.call_key for a in flow.state.asks] == ["k1"]
    assert "tool.repeated" not in flow.events()


def test_parallel_subtasks_proposing_the_same_call_do_not_pause_the_task() -> None:
    three = Plan(summary="three", subtasks=tuple(Subtask(id=k, title=k.upper())
                                                 for k in ("a", "b", "c")))  # fmt: skip
    flow = executing(three)
    for key in ("a", "b", "c"):
        flow.propose(key, keyed(1, key))
    assert flow.state.status == TaskStatus.AWAITING_APPROVAL
    assert len([a for a in flow.state.asks if a.status == AskStatus.PENDING]) == 3


def test_a_tool_result_counts_only_for_a_call_this_task_approved() -> None:
    flow = awaiting_approval()
    flow.result("k1")  # asked, not yet approved: it cannot have run
    assert flow.effects == []
    flow.respond()
    flow.result("k-of-another-task")
    assert flow.effects == []
    assert flow.state.call("k1").status == CallStatus.APPROVED  # type: ignore[union-attr]


def test_usage_is_counted_even_for_an_answer_that_was_overtaken() -> None:
    flow = executing()
    usage = (Usage(model="m", prompt_tokens=7, completion_tokens=3),)
    flow.do(PlanProduced(correlation_id="t1", request_id="an old one", plan=ONE, usage=usage))
    assert [r.agent for r in flow.of(RecordUsage)] == ["planner"]
    assert flow.events() == []
    assert flow.state.tokens == 10


def test_the_review_gets_every_result_and_the_files_as_evidence() -> None:
    flow = executing(TWO)
    flow.finish("a")
    flow.finish("b")
    [review] = flow.of(Review)
    assert review.files == ("a.md", "b.md")
    assert set(review.message.results) == {"a", "b"}
    assert review.message.round == 1


def test_completing_stops_the_task_on_the_bus_and_keeps_the_result() -> None:
    flow = reviewing()
    flow.verdict(summary="All good.")
    [stopped] = flow.sent(TaskStopped)
    assert (stopped.status, flow.state.result) == ("completed", "All good.")
    assert flow.state.finished_at == NOW


def test_a_revision_reopens_the_subtask_with_the_reviewers_note() -> None:
    flow = reviewing()
    flow.verdict(approved=False, revisions=(Revision(subtask_id="a", problem="too short"),))
    [step] = flow.sent(StepRequested)
    assert step.revision_notes == ("too short",)
    assert flow.state.revision_round == 1


def test_notes_and_renames_only_log() -> None:
    flow = executing()
    flow.do(Rename(title="Tesla"))
    assert (flow.state.title, flow.events()) == ("Tesla", ["task.renamed"])
    flow.do(Note(event=ev.TaskRerun(task_id="t2")))
    assert flow.events() == ["task.rerun"]
    assert flow.state.status == TaskStatus.EXECUTING


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "command", "reason"),
    [
        ("completed", Cancel(by="api", reason="x"), "already finished (completed)"),
        ("cancelled", Cancel(by="api", reason="x"), "already finished (cancelled)"),
        ("executing", Guide(action="continue", text="x"), "not waiting for guidance"),
        ("completed", Guide(action="continue", text="x"), "has finished"),
        ("executing", Start(), "started already"),
        ("executing", Fire(schedule_id="s", due=NOW), "not waiting for its schedule"),
        ("executing", Expire(ask_id="nope"), "answered already"),
        ("awaiting_approval", Respond(ask_id="nope", approve=True, arguments={}, actor="u"),
         "answered already"),
    ],
)  # fmt: skip
def test_commands_that_do_not_apply_are_refused_and_change_nothing(start, command, reason) -> None:
    flow = STARTS[start]()
    before = flow.state
    outcome = flow.do(command)
    assert outcome.refused is not None
    assert reason in outcome.refused
    assert (outcome.effects, flow.state) == ([], before)


def test_an_answer_twice_is_refused_the_second_time() -> None:
    flow = awaiting_approval()
    ask_id = flow.state.asks[0].id
    flow.respond()
    again = flow.do(Respond(ask_id=ask_id, approve=False, arguments={}, actor="user: u1"))
    assert again.refused == "this was answered already"


def test_an_expired_approval_cannot_be_approved() -> None:
    flow = awaiting_approval()
    ask = flow.state.asks[0]
    late = flow.do(
        Respond(ask_id=ask.id, approve=True, arguments={"path": "f1.md"}, actor="user: u1"),
        now=NOW + timedelta(days=2),
    )
    assert late.refused is not None
    assert "expired" in late.refused


@pytest.mark.parametrize("start", ["completed", "cancelled"])
@pytest.mark.parametrize("answer", ["plan", "propose", "finish", "result", "verdict"])
def test_answers_for_a_finished_task_change_nothing(start, answer) -> None:
    flow = STARTS[start]()
    before = flow.state
    stale = {
        "plan": PlanProduced(correlation_id="t1", plan=ONE),
        "propose": StepProposed(correlation_id="t1", subtask_id="a", tool_calls=(call(9),)),
        "finish": StepProposed(correlation_id="t1", subtask_id="a",
                               result=SubtaskResult(summary="x")),
        "result": ToolResult(correlation_id="t1", subtask_id="a", key="k1",
                             outcome=ToolOutcome(ok=True)),
        "verdict": ReviewVerdict(correlation_id="t1", approved=True),
    }[answer]  # fmt: skip
    outcome = flow.do(stale)
    assert (outcome.refused, outcome.effects, flow.state.status) == (None, [], before.status)


# --- stuck rules -----------------------------------------------------------------------------


def _denials(flow: Flow) -> None:
    for n in range(3):  # each call of the subtask denied
        flow.propose(flow.state.subtasks[0].key, call(n))
        flow.respond(approve=False)


def _failures(flow: Flow) -> None:
    for n in range(3):
        flow.propose("a", call(n))
        flow.respond()
        flow.result(f"k{n}", ok=False)


def _needs_person(flow: Flow) -> None:
    flow.propose("a", call(1, tool="desktop_type_text", text="hi"))
    flow.respond()
    flow.do(ToolResult(correlation_id="t1", subtask_id="a", key="k1",
                       outcome=ToolOutcome(ok=False, error="your PC did not connect",
                                           needs_person=True)))  # fmt: skip


def _rounds(flow: Flow) -> None:
    for _ in range(3):
        flow.finish("a")
        flow.verdict(approved=False, revisions=(Revision(subtask_id="a", problem="again"),))


UNUSABLE = (
    "the model's answer was not usable: invalid arguments for create_file: path: Field required"
)


def _unusable(flow: Flow) -> None:
    for _ in range(2):
        flow.propose("a", stuck_reason=UNUSABLE, unusable=True)


def _same_call(flow: Flow) -> None:
    for _ in range(3):
        flow.propose("a", call(1))
        if flow.state.status == TaskStatus.AWAITING_APPROVAL:
            flow.respond()
            flow.result("k1")


def _steps(flow: Flow) -> None:
    for n in range(2):  # the second step is the last the budget allows
        flow.propose("a", call(n))
        flow.respond()
        flow.result(f"k{n}")


def _tokens(flow: Flow) -> None:
    usage = (Usage(model="m", prompt_tokens=900, completion_tokens=200),)
    flow.propose("a", call(1), usage=usage)
    flow.respond()
    flow.result("k1")


def _cost(flow: Flow) -> None:
    usage = (Usage(model="m", cost_usd=0.6),)
    flow.propose("a", call(1), usage=usage)
    flow.respond()
    flow.result("k1")


def _person(flow: Flow) -> None:
    flow.state.person_limits, flow.state.person_spent = {"month": 0.5}, {"month": 0.0}
    _cost(flow)


def _cannot(flow: Flow) -> None:
    flow.propose("a", stuck_reason="the site needs a login")


def _gave_up(flow: Flow) -> None:
    flow.do(AgentGaveUp(agent="executor", reason="it crashed 5 times"))


STUCK_CASES = [
    (Stuck.CANNOT_PROCEED, None, _cannot, "the executor cannot proceed: the site needs a login"),
    (Stuck.GAVE_UP, None, _gave_up,
     "the executor could not handle a request: it crashed 5 times"),
    (Stuck.DENIALS, None, _denials, "3 tool calls were denied in this task"),
    (Stuck.TOOL_FAILURES, None, _failures, "3 tool calls failed in a row"),
    (Stuck.REVISION_ROUNDS, None, _rounds, "the reviewer sent work back 3 times"),
    (Stuck.UNUSABLE_ANSWERS, None, _unusable, ("the executor's answer could not be used 2 times "
     "in a row: it proposed a create_file call without its path")),
    (Stuck.SAME_CALL, None, _same_call, "the executor proposed the same read_file call 3 times"),
    (Stuck.STEP_BUDGET, {"max_steps": 2}, _steps, "the step budget of 2 steps is used up"),
    (Stuck.TOKEN_BUDGET, {"max_tokens": 1000}, _tokens,
     "the token budget of 1000 tokens is used up"),
    (Stuck.COST_BUDGET, {"max_cost_usd": 0.5}, _cost, "the cost budget of $0.50 is used up"),
    (Stuck.PERSON_BUDGET, None, _person,
     ("your monthly budget of $0.50 is used up ($0.60 spent); raise it in your profile, then "
      "continue")),
    (Stuck.NEEDS_PERSON, None, _needs_person,
     "desktop_type_text needs you: your PC did not connect"),
]  # fmt: skip


def test_every_stuck_rule_has_a_case() -> None:
    assert {case[0] for case in STUCK_CASES} == set(Stuck) == set(STUCK)


@pytest.mark.parametrize(
    ("rule", "budget", "drive", "reason"), STUCK_CASES, ids=[c[0].value for c in STUCK_CASES]
)
def test_each_stuck_rule_pauses_with_its_reason_and_evidence(rule, budget, drive, reason) -> None:
    flow = planning()
    flow.state.budget = budget
    flow.plan()
    drive(flow)
    assert (flow.state.status, flow.state.reason) == (TaskStatus.NEEDS_GUIDANCE, reason)
    [paused] = [e.event for e in flow.effects if isinstance(e, Emit)
                and isinstance(e.event, ev.TaskNeedsGuidance)]  # fmt: skip
    assert paused.evidence["rule"] == rule.value


@pytest.mark.parametrize(
    ("drive", "names_the_model"), [(_unusable, True), (_same_call, True), (_failures, False)]
)
def test_a_pause_the_small_local_model_caused_says_so(drive, names_the_model) -> None:
    flow = Flow(limits=Limits(small_model="SmolLM2-135M"))
    flow.start()
    flow.plan()
    drive(flow)
    assert flow.state.status == TaskStatus.NEEDS_GUIDANCE
    said = "the local model (SmolLM2-135M) is too small for this step" in flow.state.reason
    assert said is names_the_model, flow.state.reason
    paused = [e for e in flow.effects if isinstance(e, Emit)
              and isinstance(e.event, ev.TaskNeedsGuidance)]  # fmt: skip
    assert len(paused) == 1  # said once


def test_a_threshold_one_short_does_not_pause() -> None:
    flow = executing()
    flow.propose("a", stuck_reason="not JSON", unusable=True)
    assert flow.state.status == TaskStatus.EXECUTING
    assert flow.state.unusable_streak == 1
    flow.propose("a", call(1))
    assert flow.state.unusable_streak == 0, "a usable answer starts the count again"


def test_guidance_reaches_the_agents_and_resets_the_counts() -> None:
    flow = executing()
    _failures(flow)
    flow.do(Guide(action="continue", text="use the local copy"))
    [step] = flow.sent(StepRequested)
    assert step.guidance == ("use the local copy",)
    assert (flow.state.failure_streak, flow.state.status) == (0, TaskStatus.EXECUTING)


def test_a_pause_closes_the_questions_and_going_on_asks_the_executor_again() -> None:
    flow = executing(TWO)
    flow.propose("a", call(1))
    assert [a.status for a in flow.state.asks] == [AskStatus.PENDING]
    for _ in range(2):
        flow.propose("b", stuck_reason="not JSON", unusable=True)
    assert flow.state.status == TaskStatus.NEEDS_GUIDANCE
    assert [a.status for a in flow.state.asks] == [AskStatus.CANCELLED]
    [ask] = flow.state.asks
    arguments = flow.state.calls[0].arguments
    refused = flow.do(Respond(ask_id=ask.id, approve=True, arguments=arguments, actor="user: u1"))
    assert refused.refused == "this was withdrawn: the task paused to ask for your guidance"
    assert flow.state.calls[0].status == CallStatus.PROPOSED  # nothing runs while paused
    flow.do(Guide(action="continue", text="go on"))
    assert (flow.state.calls, flow.state.asks) == ([], [])
    assert sorted(s.subtask_id for s in flow.sent(StepRequested)) == ["a", "b"]


def test_replanning_withdraws_calls_still_waiting_and_sends_the_previous_plan() -> None:
    flow = executing(TWO)
    flow.propose("a", call(1))
    flow.propose("b", stuck_reason="blocked")
    flow.do(Guide(action="replan", text="one subtask"))
    assert flow.state.calls == []
    assert flow.state.asks == []
    [request] = flow.sent(PlanRequested)
    assert request.previous_plan == TWO


# --- answers in every status, and the watchdog -----------------------------------------------


ANSWERS = ["plan", "propose", "step-unusable", "finish", "result", "verdict"]


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("start", sorted(STARTS))
def test_any_answer_in_any_status_leaves_work_in_flight(start, answer) -> None:
    flow = STARTS[start]()
    messages = {
        "plan": PlanProduced(correlation_id="t1", plan=ONE),
        "propose": StepProposed(correlation_id="t1", subtask_id="a", tool_calls=(call(7),)),
        "step-unusable": StepProposed(correlation_id="t1", subtask_id="a", stuck_reason="?",
                                      unusable=True),
        "finish": StepProposed(correlation_id="t1", subtask_id="a",
                               result=SubtaskResult(summary="x")),
        "result": ToolResult(correlation_id="t1", subtask_id="a", key="k1",
                             outcome=ToolOutcome(ok=True)),
        "verdict": ReviewVerdict(correlation_id="t1", approved=False,
                                 revisions=(Revision(subtask_id="a", problem="p"),)),
    }  # fmt: skip
    flow.do(messages[answer])  # Flow.do checks the invariant


def test_an_unusable_answer_for_one_subtask_while_another_awaits_approval_asks_again() -> None:
    flow = executing(TWO)
    flow.propose("a", call(1))
    assert flow.state.status == TaskStatus.AWAITING_APPROVAL
    flow.propose("b", stuck_reason="not JSON", unusable=True)
    [step] = flow.sent(StepRequested)
    assert step.subtask_id == "b"
    flow.respond()
    flow.result("k1")
    assert {s.key for s in flow.state.subtasks if s.in_flight} == {"a", "b"}


def test_an_answer_to_an_overtaken_request_is_ignored() -> None:
    flow = executing()
    old = flow.step_request("a")
    flow.propose("a", stuck_reason="not JSON", unusable=True)
    assert flow.step_request("a") != old
    flow.do(StepProposed(correlation_id="t1", subtask_id="a", request_id=old,
                         result=SubtaskResult(summary="late")))  # fmt: skip
    assert flow.effects == []
    assert flow.state.subtask("a").status == SubtaskStatus.RUNNING  # type: ignore[union-attr]


@pytest.mark.parametrize("request_id", ["", "a guess"])
def test_an_answer_to_no_request_made_is_ignored(request_id) -> None:
    # Whoever can publish on the bus cannot slip in a plan, a step or a verdict of their own.
    flow = executing()
    flow.do(StepProposed(correlation_id="t1", subtask_id="a", request_id=request_id,
                         result=SubtaskResult(summary="forged")))  # fmt: skip
    assert flow.effects == []
    assert flow.state.subtask("a").status == SubtaskStatus.RUNNING  # type: ignore[union-attr]
    waiting = planning()
    waiting.do(PlanProduced(correlation_id="t1", request_id=request_id, plan=ONE))
    assert waiting.state.plan is None
    reviewing = executing()
    reviewing.finish("a")
    reviewing.do(ReviewVerdict(correlation_id="t1", request_id=request_id, approved=True))
    assert reviewing.state.status == TaskStatus.REVIEWING


def test_an_answer_to_a_request_made_before_requests_were_remembered_counts() -> None:
    flow = executing()
    flow.state.subtasks[0].in_flight = LEGACY
    flow.do(StepProposed(correlation_id="t1", subtask_id="a", request_id="whatever",
                         result=SubtaskResult(summary="done")))  # fmt: skip
    assert flow.state.status == TaskStatus.REVIEWING


STRANDED: list[tuple[str, Any, list[str]]] = [
    ("a running subtask with nothing asked", lambda s: setattr(s.subtasks[0], "in_flight", ""),
     ["a step of a"]),
    ("a plan awaited with no request", lambda s: (setattr(s, "status", TaskStatus.PLANNING),
                                                 setattr(s, "in_flight", "")), ["a plan"]),
    ("a review awaited with no request", lambda s: (setattr(s, "status", TaskStatus.REVIEWING),
                                                   setattr(s, "in_flight", "")), ["a review"]),
    ("awaiting approval with nothing to approve",
     lambda s: setattr(s, "status", TaskStatus.AWAITING_APPROVAL), ["the status executing"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "break_it", "missing"), STRANDED, ids=[c[0] for c in STRANDED])
def test_repair_finds_what_is_missing_and_asks_again(case, break_it, missing) -> None:
    flow = executing()
    broken = flow.state
    break_it(broken)
    assert missing_work(broken) == missing
    flow.state = broken
    flow.do(Repair())
    assert flow.events()[0] == "task.repaired"
    assert missing_work(flow.state) == []


def test_repair_of_a_sound_task_does_nothing() -> None:
    flow = awaiting_approval()
    outcome = flow.do(Repair())
    assert outcome.effects == []


def test_waiting_for_the_person_is_not_missing_work() -> None:
    for make in (awaiting_approval, awaiting_input, needs_guidance, scheduled, completed):
        assert missing_work(make().state) == []


def test_cancel_closes_approvals_and_stops_the_executors() -> None:
    flow = awaiting_approval()
    flow.do(Cancel(by="schedule", reason="the schedule was cancelled"))
    assert [a.status for a in flow.state.asks] == [AskStatus.CANCELLED]
    [stopped] = flow.sent(TaskStopped)
    assert stopped.status == "cancelled"
    assert flow.events() == ["task.status"]  # the schedule's end, not the person's cancel
    assert flow.state.reason == "the schedule was cancelled"


def test_rules_never_change_the_state_they_are_given() -> None:
    flow = awaiting_approval()
    before = flow.state
    copy = deepcopy(before)
    apply(before, Cancel(by="api", reason="x"), limits=LIMITS, now=NOW)
    assert before == copy
    assert before.asks[0].status == AskStatus.PENDING


def test_every_ask_has_its_form_when_the_tool_needs_details() -> None:
    flow = awaiting_input()
    [ask] = [e for e in flow.effects if isinstance(e, Ask)]
    assert ask.kind == "input"
    assert "to" in ask.prompt["form"]["properties"]
    assert ask.expires_at == NOW + timedelta(seconds=LIMITS.approval_timeout_s)


# --- budgets ---------------------------------------------------------------------------------


def _costly(cost: float) -> tuple[Usage, ...]:
    return (Usage(model="m", prompt_tokens=10, completion_tokens=10, cost_usd=cost),)


def test_a_task_paused_at_its_money_limit_goes_on_when_the_person_raises_it() -> None:
    flow = Flow(TaskState(id="t1", user_id="u1", objective="o", status=TaskStatus.QUEUED,
                          budget={"max_cost_usd": 0.01}))  # fmt: skip
    flow.start()
    flow.plan(ONE, usage=_costly(0.02))
    assert flow.state.status == TaskStatus.NEEDS_GUIDANCE
    assert flow.state.reason == "the cost budget of $0.01 is used up"
    assert flow.sent(StepRequested) == [], "no step past the budget"
    still_short = flow.do(SetBudget(budget={"max_cost_usd": 0.02}))  # spent: 0.02
    assert still_short.refused is None
    assert flow.state.reason == "the cost budget of $0.02 is used up"
    assert flow.state.status == TaskStatus.NEEDS_GUIDANCE
    flow.do(SetBudget(budget={"max_cost_usd": 1.0}))
    assert flow.state.status == TaskStatus.EXECUTING
    assert flow.events()[0] == "budget.changed"
    assert [s.subtask_id for s in flow.sent(StepRequested)] == ["a"]


def test_raising_a_task_budget_does_not_resume_a_task_paused_for_something_else() -> None:
    flow = needs_guidance()
    flow.do(SetBudget(budget={"max_cost_usd": 5.0}))
    assert flow.state.status == TaskStatus.NEEDS_GUIDANCE
    assert flow.events() == ["budget.changed"]


def test_the_persons_monthly_limit_pauses_a_running_task_before_its_next_step() -> None:
    state = TaskState(id="t1", user_id="u1", objective="o", status=TaskStatus.QUEUED,
                      person_limits={"month": 1.0}, person_spent={"month": 0.5})  # fmt: skip
    flow = Flow(state)
    flow.start()
    flow.plan(ONE, usage=_costly(0.6))
    assert flow.state.status == TaskStatus.NEEDS_GUIDANCE
    assert flow.state.reason == (
        "your monthly budget of $1.00 is used up ($1.10 spent); raise it in your profile, "
        "then continue"
    )
    assert flow.sent(StepRequested) == []
    flow.do(SetBudget(budget={"max_cost_usd": 9.0}))  # the task's own budget is not the one
    assert flow.state.status == TaskStatus.NEEDS_GUIDANCE


def test_a_run_that_starts_past_the_persons_limit_asks_no_planner() -> None:
    state = TaskState(id="t1", user_id="u1", objective="o", status=TaskStatus.SCHEDULED,
                      person_limits={"day": 2.0}, person_spent={"day": 2.5})  # fmt: skip
    flow = Flow(state)
    flow.do(Fire(schedule_id="s", due=NOW))
    assert flow.sent(PlanRequested) == []
    assert flow.state.status == TaskStatus.NEEDS_GUIDANCE
    assert flow.state.reason.startswith("your daily budget of $2.00 is used up ($2.50 spent)")
