"""The task rules: a task's state and a command in, the new state and the effects out.

Nothing here reads or writes anything: the adapter (:mod:`.store`) loads the snapshot, calls
:func:`apply` and carries out the effects after one commit. Every transition of a task, whoever
asks for it (an agent's answer, the person, a schedule, the expiry sweep, the watchdog), is a
command through :func:`apply`; the README's "How a task moves" is the table of them.

The stuck rules (:data:`STUCK`) pause a task for the person instead of letting the agents guess,
and :func:`missing_work` states the liveness invariant: a task that is neither final nor
waiting for the person always has a request in flight.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from troika_gateway.pipeline.snapshot import (
    AgentGaveUp,
    Ask,
    AskState,
    Audit,
    CallState,
    Cancel,
    Effect,
    Emit,
    Execute,
    Expire,
    Fire,
    Guide,
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
    Start,
    SubtaskState,
    TaskState,
)
from troika_gateway.pipeline.states import AskStatus, CallStatus, SubtaskStatus, TaskStatus
from troika_shared import catalogue
from troika_shared import task_events as ev
from troika_shared.approvals import call_key
from troika_shared.messages import (
    Plan,
    PlanProduced,
    PlanRequested,
    ReviewRequested,
    ReviewVerdict,
    StepProposed,
    StepRequested,
    SubtaskResult,
    TaskStopped,
    ToolOutcome,
    ToolResult,
    TranscriptEntry,
    Usage,
    derive_id,
)
from troika_shared.messages import ToolCall as ProposedCall

if TYPE_CHECKING:
    from datetime import datetime

    from troika_gateway.pipeline.snapshot import Command, Limits
    from troika_shared.catalogue import ToolDefinition

__all__ = ["LEGACY", "STUCK", "Stuck", "apply", "decide", "missing_work"]

LEGACY = "legacy"
"""``in_flight`` of a request made before requests were remembered: any answer is current."""


class Stuck(StrEnum):
    """Why a task pauses for the person."""

    CANNOT_PROCEED = "cannot_proceed"
    GAVE_UP = "gave_up"
    DENIALS = "denials"
    TOOL_FAILURES = "tool_failures"
    REVISION_ROUNDS = "revision_rounds"
    UNUSABLE_ANSWERS = "unusable_answers"
    SAME_CALL = "same_call"
    STEP_BUDGET = "step_budget"
    TOKEN_BUDGET = "token_budget"  # noqa: S105 - the name of a rule, not a secret
    COST_BUDGET = "cost_budget"


STUCK: dict[Stuck, tuple[str | None, str]] = {
    # rule: (the threshold in Limits, or None where the agent or the budget says; the reason)
    Stuck.CANNOT_PROCEED: (None, "the {agent} cannot proceed: {detail}"),
    Stuck.GAVE_UP: (None, "the {agent} could not handle a request: {detail}"),
    Stuck.DENIALS: ("stuck_denials", "{count} tool calls were denied in this task"),
    Stuck.TOOL_FAILURES: ("stuck_tool_failures", "{count} tool calls failed in a row"),
    Stuck.REVISION_ROUNDS: ("stuck_revision_rounds", "the reviewer sent work back {count} times"),
    Stuck.UNUSABLE_ANSWERS: (
        "stuck_unusable_answers",
        "the {agent} gave {count} unusable answers in a row",
    ),
    Stuck.SAME_CALL: (
        "stuck_same_call",
        "the executor proposed the same {tool} call {count} times",
    ),
    Stuck.STEP_BUDGET: (None, "the step budget of {limit} steps is used up"),
    Stuck.TOKEN_BUDGET: (None, "the token budget of {limit} tokens is used up"),
    Stuck.COST_BUDGET: (None, "the cost budget of ${limit:.2f} is used up"),
}

_PLANNING = (TaskStatus.QUEUED, TaskStatus.PLANNING)
_APPROVED_BEFORE = (
    CallStatus.APPROVED,
    CallStatus.RUNNING,
    CallStatus.SUCCEEDED,
    CallStatus.FAILED,
)


def apply(state: TaskState, command: Command, *, limits: Limits, now: datetime) -> Outcome:
    """Applies ``command`` to a copy of ``state``.

    Returns:
        The new state and the effects to carry out after it is stored; or, for a command that
        does not apply (a second answer to an approval, guidance for a task that did not ask),
        the unchanged state and the reason in ``refused``.
    """
    change = _Change(_copy(state), limits, now)
    try:
        change.run(command)
    except _Refused as refusal:
        return Outcome(state=state, refused=refusal.reason)
    return Outcome(state=change.s, effects=change.effects)


def decide(
    modes: dict[str, str], definition: ToolDefinition | None, *, approved_before: bool
) -> tuple[Literal["ask", "approve", "deny"], str]:
    """How a proposed call is decided under its tool's policies ``{"user": …, "task": …}``.

    ``deny`` at either level wins; then the task's own policy, then the user's, then ``ask``.
    ``ask_once`` approves once a call of the tool was approved in the task; a tool with an
    input form always asks. Returns the outcome and the rule that decided it.
    """
    for level in ("task", "user"):
        if modes.get(level) == "deny":
            return "deny", f"deny {_where(level)}"
    if definition is None or definition.needs_input:
        return "ask", ""
    level = "task" if "task" in modes else "user"
    mode = modes.get(level, "ask")
    if mode == "allow":
        return "approve", f"allow {_where(level)}"
    if mode == "ask_once" and approved_before:
        return "approve", f"ask once {_where(level)}"
    return "ask", ""


def missing_work(state: TaskState) -> list[str]:
    """What a task that is neither final nor waiting for the person lacks in flight (nothing,
    when the invariant holds): each item names a request to make again, or a wrong status."""
    status = state.status
    if status.final or status in (TaskStatus.SCHEDULED, TaskStatus.NEEDS_GUIDANCE):
        return []
    if status in _PLANNING:
        return [] if state.in_flight else ["a plan"]
    if status == TaskStatus.REVIEWING:
        return [] if state.in_flight else ["a review"]
    missing: list[str] = []
    expected = _waiting_status(state)
    if status != expected:
        missing.append(f"the status {expected.value}")
    done = {s.key for s in state.subtasks if s.status == SubtaskStatus.DONE}
    if len(done) == len(state.subtasks):
        return [*missing, "a review"]
    missing.extend(
        f"a step of {sub.key}"
        for sub in state.subtasks
        if (sub.status == SubtaskStatus.RUNNING and not sub.in_flight and not _open(state, sub))
        or (sub.status == SubtaskStatus.PENDING and set(sub.depends_on) <= done)
    )
    return missing


# --- the change ----------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Change:
    """One command's work on a task's state; collects the effects in order."""

    def __init__(self, state: TaskState, limits: Limits, now: datetime) -> None:
        self.s = state
        self.limits = limits
        self.now = now
        self.effects: list[Effect] = []

    def run(self, command: Command) -> None:  # noqa: PLR0912 - one arm per command
        final = self.s.status.final
        match command:
            case Note(event=event):
                self.emit(event)
            case Rename(title=title):
                self.s.title = title
                self.emit(ev.TaskRenamed(title=title))
            case Start():
                self.start()
            case Fire():
                self.fire(command)
            case Cancel():
                self.cancel(command)
            case Expire():
                self.expire(command)
            case _ if final:
                if not isinstance(command, (PlanProduced, StepProposed, ToolResult, ReviewVerdict,
                                            AgentGaveUp, Repair)):  # fmt: skip
                    raise _Refused(f"the task has finished ({self.s.status.value})")
            case PlanProduced():
                self.on_plan(command)
            case StepProposed():
                self.on_step(command)
            case ToolResult():
                self.on_tool_result(command)
            case ReviewVerdict():
                self.on_verdict(command)
            case AgentGaveUp(agent=agent, reason=reason):
                self.pause(Stuck.GAVE_UP, agent=agent, detail=reason)
            case Respond():
                self.respond(command)
            case Guide():
                self.guide(command)
            case Repair():
                self.repair()

    # --- small pieces ----------------------------------------------------------------------

    def emit(self, event: ev.TaskEventBody) -> None:
        self.effects.append(Emit(event=event))

    def send(self, message: Any) -> None:  # noqa: ANN401 - any bus message
        self.effects.append(Send(message=message))

    def next_id(self, kind: str) -> str:
        self.s.dispatches += 1
        return derive_id(self.s.id, kind, self.s.dispatches)

    def set_status(self, status: TaskStatus, reason: str = "") -> None:
        previous = self.s.status
        self.s.status = status
        self.s.reason = reason
        if status.final:
            self.s.finished_at = self.now
            self.s.in_flight = ""
            # one per task on the bus: a call already on its way to an executor must not run
            stopped = TaskStopped(id=derive_id(self.s.id, "stopped"), correlation_id=self.s.id,
                                  occurred_at=self.now, status=status.value)  # fmt: skip
            self.send(stopped)
        if previous != status:
            self.emit(ev.TaskStatusChanged(status=status.value, previous=previous.value,
                                           reason=reason))  # fmt: skip

    def pause(self, rule: Stuck, **facts: Any) -> None:  # noqa: ANN401 - the reason's facts
        """Stops to ask the person, saying why in plain words (the facts are the evidence)."""
        reason = STUCK[rule][1].format(**facts)
        evidence = {k: v for k, v in facts.items() if k not in ("count", "limit", "detail")}
        self.set_status(TaskStatus.NEEDS_GUIDANCE, reason)
        self.emit(ev.TaskNeedsGuidance(reason=reason, evidence={"rule": rule.value, **evidence}))

    def reached(self, rule: Stuck, count: int) -> bool:
        threshold = STUCK[rule][0]
        assert threshold is not None  # noqa: S101 - only rules with a threshold are counted
        limit: int = getattr(self.limits, threshold)
        return count >= limit

    def record_usage(self, agent: str, usage: tuple[Usage, ...]) -> None:
        if not usage:
            return
        self.effects.append(RecordUsage(agent=agent, usage=usage))
        self.s.tokens += sum(u.prompt_tokens + u.completion_tokens for u in usage)
        self.s.cost_usd += sum(u.cost_usd for u in usage)

    def over_budget(self) -> bool:
        """Pauses the task when a budget is used up; ``True`` if it did."""
        budget = self.s.budget or {}
        max_steps = budget.get("max_steps") or self.limits.max_steps
        if self.s.steps >= max_steps:
            self.pause(Stuck.STEP_BUDGET, limit=max_steps)
            return True
        if (tokens := budget.get("max_tokens")) and self.s.tokens >= tokens:
            self.pause(Stuck.TOKEN_BUDGET, limit=tokens)
            return True
        if (cost := budget.get("max_cost_usd")) and self.s.cost_usd >= cost:
            self.pause(Stuck.COST_BUDGET, limit=cost)
            return True
        return False

    def agent_failed(self, agent: str, reason: str, *, unusable: bool) -> None:
        if not unusable:
            self.pause(Stuck.CANNOT_PROCEED, agent=agent, detail=reason)
            return
        self.s.unusable_streak += 1
        streak = self.s.unusable_streak
        self.emit(ev.AgentUnusableAnswer(agent=agent, reason=reason, streak=streak))
        if self.reached(Stuck.UNUSABLE_ANSWERS, streak):
            self.pause(Stuck.UNUSABLE_ANSWERS, agent=agent, count=streak, last_error=reason)

    # --- planning --------------------------------------------------------------------------

    def start(self) -> None:
        if self.s.status not in (TaskStatus.QUEUED, TaskStatus.SCHEDULED):
            raise _Refused(f"the task has started already ({self.s.status.value})")
        self.s.started_at = self.s.started_at or self.now
        self.request_plan(replan=False)

    def fire(self, command: Fire) -> None:
        if self.s.status != TaskStatus.SCHEDULED:
            raise _Refused(f"the task is not waiting for its schedule ({self.s.status.value})")
        reason = "the time passed while Troika was not running; it runs once now"
        fired = ev.ScheduleFired(
            schedule_id=command.schedule_id,
            due=command.due.isoformat(),
            late=command.late,
            reason=reason if command.late else "",
        )
        self.emit(fired)
        self.s.started_at = self.now
        self.request_plan(replan=False)

    def request_plan(self, *, replan: bool) -> None:
        message = PlanRequested(
            id=self.next_id("plan"),
            correlation_id=self.s.id,
            occurred_at=self.now,
            objective=self.s.objective,
            files=self.s.files,
            guidance=self.s.guidance,
            previous_plan=self.s.plan if replan else None,
            tools=catalogue.specs(),
        )
        self.send(message)
        self.s.in_flight = message.id
        self.emit(ev.PlanRequested(replan=replan))
        self.set_status(TaskStatus.PLANNING)

    def on_plan(self, answer: PlanProduced) -> None:
        self.record_usage("planner", answer.usage)
        if self.s.status not in _PLANNING or _stale(answer.request_id, self.s.in_flight):
            return  # an answer to a request that was overtaken (a re-plan, a pause)
        self.s.in_flight = ""
        problem = _plan_problem(answer.plan) if answer.plan is not None else None
        if answer.plan is None or problem is not None:
            reason = problem or answer.stuck_reason or ""
            self.agent_failed("planner", reason, unusable=answer.unusable or problem is not None)
            if self.s.status in _PLANNING:
                self.request_plan(replan=self.s.plan is not None)
            return
        plan = answer.plan
        self.s.unusable_streak = 0
        self.s.plan = plan
        self.s.subtasks = [
            SubtaskState(key=planned.id, planned=planned, position=position)
            for position, planned in enumerate(_in_order(plan))
        ]
        self.emit(
            ev.PlanReady(
                summary=plan.summary,
                subtasks=[
                    ev.PlannedSubtask(id=s.id, title=s.title, depends_on=list(s.depends_on))
                    for s in plan.subtasks
                ],
            )
        )
        self.set_status(TaskStatus.EXECUTING)
        self.dispatch()

    # --- executing -------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Starts every subtask whose dependencies are done; reviews when all are done."""
        done = {s.key for s in self.s.subtasks if s.status == SubtaskStatus.DONE}
        if len(done) == len(self.s.subtasks):
            self.request_review()
            return
        for sub in self.s.subtasks:
            ready = sub.status == SubtaskStatus.PENDING and set(sub.depends_on) <= done
            if ready and not self.request_step(sub):
                return

    def request_step(self, sub: SubtaskState) -> bool:
        """Asks the executors for the subtask's next step; ``False`` if a budget stopped it."""
        if self.over_budget():
            return False
        self.s.steps += 1
        sub.steps += 1
        sub.status = SubtaskStatus.RUNNING
        assert self.s.plan is not None  # noqa: S101 - subtasks come from a plan
        by_key = {s.key: s for s in self.s.subtasks}
        message = StepRequested(
            id=self.next_id("step"),
            correlation_id=self.s.id,
            occurred_at=self.now,
            objective=self.s.objective,
            plan=self.s.plan,
            subtask_id=sub.key,
            step=sub.steps,
            files=self.s.files,
            dependency_results={d: by_key[d].result for d in sub.depends_on if d in by_key},
            transcript=self.transcript(sub),
            tools=catalogue.specs(),
            guidance=self.s.guidance,
            revision_notes=sub.revision_notes,
        )
        sub.in_flight = message.id
        self.send(message)
        self.emit(ev.StepRequested(subtask=sub.key, step=sub.steps))
        return True

    def transcript(self, sub: SubtaskState) -> tuple[TranscriptEntry, ...]:
        return tuple(
            TranscriptEntry(
                call=ProposedCall(key=c.key, tool=c.tool, arguments=c.arguments),
                outcome=ToolOutcome(
                    ok=c.status == CallStatus.SUCCEEDED, output=c.output, error=c.error
                ),
            )
            for c in self.s.calls
            if c.subtask == sub.key and c.status.settled
        )

    def on_step(self, answer: StepProposed) -> None:
        self.record_usage("executor", answer.usage)
        sub = self.s.subtask(answer.subtask_id)
        if (
            sub is None
            or sub.status != SubtaskStatus.RUNNING
            or not self.s.status.executing
            or _stale(answer.request_id, sub.in_flight)
        ):
            return
        sub.in_flight = ""
        if answer.result is not None:
            self.s.unusable_streak = 0
            sub.status = SubtaskStatus.DONE
            sub.result = answer.result.summary
            sub.result_files = answer.result.files
            self.emit(ev.SubtaskDone(subtask=sub.key, result=sub.result,
                                     files=list(sub.result_files)))  # fmt: skip
            self.dispatch()
            return
        if not answer.tool_calls:
            self.agent_failed("executor", answer.stuck_reason or "", unusable=answer.unusable)
            if self.s.status.executing:  # waiting for an approval elsewhere counts too
                self.request_step(sub)
            return
        self.s.unusable_streak = 0
        self.propose(sub, answer)

    def propose(self, sub: SubtaskState, answer: StepProposed) -> None:
        for proposed in answer.tool_calls:
            known = self.s.call(proposed.key)
            if known is not None:
                known.proposals += 1
                self.emit(ev.ToolRepeated(subtask=sub.key, tool=known.tool,
                                          times=known.proposals))  # fmt: skip
                if self.reached(Stuck.SAME_CALL, known.proposals):
                    self.pause(Stuck.SAME_CALL, tool=known.tool, count=known.proposals,
                               arguments=known.arguments)  # fmt: skip
                    return
                continue
            call = CallState(key=proposed.key, subtask=sub.key, tool=proposed.tool,
                             arguments=proposed.arguments, step=sub.steps)  # fmt: skip
            self.s.calls.append(call)
            definition = catalogue.CATALOGUE.get(call.tool)
            outcome, rule = decide(
                self.s.policies.get(call.tool, {}),
                definition,
                approved_before=any(
                    c.tool == call.tool and c.key != call.key and c.status in _APPROVED_BEFORE
                    for c in self.s.calls
                ),
            )
            if outcome == "approve":
                self.approve(call, actor=f"policy: {rule}")
            elif outcome == "deny":
                error = f"your policy denies {call.tool} ({rule})"
                if self.deny(call, actor=f"policy: {rule}", error=error):
                    return
            else:
                self.ask(sub, call, definition)
        self.set_waiting()
        self.settle(sub)

    def ask(self, sub: SubtaskState, call: CallState, definition: ToolDefinition | None) -> None:
        """Shows the call to the person: all of its arguments, and a form where it needs one."""
        prompt: dict[str, Any] = {
            "tool": call.tool,
            "risk": definition.risk if definition else "external",
            "description": definition.description if definition else "",
            "arguments": call.arguments,
            "subtask": sub.key,
        }
        kind: Literal["approval", "input"] = "approval"
        if definition is not None and definition.needs_input:
            kind = "input"
            prompt["form"] = definition.form(call.arguments)
        expires_at = self.now + timedelta(seconds=self.limits.approval_timeout_s)
        ask_id = self.next_id("ask")
        self.s.asks.append(AskState(id=ask_id, call_key=call.key, kind=kind, expires_at=expires_at))
        self.effects.append(
            Ask(id=ask_id, call_key=call.key, kind=kind, prompt=prompt, expires_at=expires_at)
        )
        self.emit(ev.ApprovalRequested(interaction_id=ask_id, form=kind == "input",
                                       subtask=sub.key, tool=call.tool, arguments=call.arguments,
                                       expires_at=expires_at.isoformat()))  # fmt: skip

    def set_waiting(self) -> None:
        """``awaiting_input`` while a form waits, ``awaiting_approval`` while only approvals
        do, ``executing`` when nothing does; a task paused for guidance stays paused."""
        if self.s.status.executing:
            self.set_status(_waiting_status(self.s))

    def settle(self, sub: SubtaskState) -> None:
        """When none of the subtask's calls is open any more, asks for its next step."""
        if (
            sub.status == SubtaskStatus.RUNNING
            and self.s.status.executing
            and not sub.in_flight
            and not _open(self.s, sub)
        ):
            self.request_step(sub)

    def approve(
        self,
        call: CallState,
        *,
        actor: str,
        client: dict[str, str] | None = None,
        ask_id: str | None = None,
    ) -> None:
        call.status = CallStatus.APPROVED
        self.effects.append(Execute(id=self.next_id("execute"), call_key=call.key))
        self.effects.append(Audit(call_key=call.key, action="approved", actor=actor,
                                  client=client or {}, ask_id=ask_id))  # fmt: skip
        self.emit(ev.ToolApproved(tool=call.tool, key=call.key, by=actor))

    def deny(
        self,
        call: CallState,
        *,
        actor: str,
        error: str,
        reason: str = "",
        action: str = "denied",
        client: dict[str, str] | None = None,
        ask_id: str | None = None,
    ) -> bool:
        """Denies the call (the agent sees ``error``); ``True`` if that paused the task."""
        call.status = CallStatus.DENIED
        call.error = error
        self.s.denials += 1
        self.effects.append(Audit(call_key=call.key, action=action, actor=actor, reason=reason,
                                  client=client or {}, ask_id=ask_id))  # fmt: skip
        self.emit(ev.ToolDenied(tool=call.tool, key=call.key, reason=error, by=actor))
        if self.reached(Stuck.DENIALS, self.s.denials):
            self.pause(Stuck.DENIALS, count=self.s.denials, last=error)
            return True
        return False

    def respond(self, command: Respond) -> None:
        ask = self.s.ask(command.ask_id)
        if ask is None or ask.status != AskStatus.PENDING:
            raise _Refused("this was answered already")
        call = self.s.call(ask.call_key)
        if call is None or call.status != CallStatus.PROPOSED:
            raise _Refused("this action is no longer waiting for a decision")
        if ask.expires_at is not None and ask.expires_at <= self.now:
            raise _Refused("this approval request expired; the call was not made")
        edited_key = None
        if command.approve and command.arguments != call.arguments:
            edited_key = call_key(self.s.id, call.subtask, call.tool, command.arguments)
            if self.s.call(edited_key) is not None:
                raise _Refused(
                    f"this task has a {call.tool} call with exactly these arguments already; "
                    "deny this one, or change the arguments"
                )
        ask.status = AskStatus.APPROVED if command.approve else AskStatus.DENIED
        client, actor = command.client, command.actor
        if not command.approve:
            why = command.reason
            error = f"the person denied this call{': ' + why if why else ''}"
            if self.deny(call, actor=actor, error=error, reason=why, client=client,
                         ask_id=ask.id):  # fmt: skip
                return
        elif edited_key is not None:
            edited = CallState(key=edited_key, subtask=call.subtask, tool=call.tool,
                               arguments=command.arguments, step=call.step)  # fmt: skip
            self.s.calls.append(edited)
            call.status = CallStatus.REPLACED
            call.error = "the person changed the arguments before approving"
            self.effects.append(Audit(call_key=call.key, action="edited", actor=actor,
                                      client=client, ask_id=ask.id))  # fmt: skip
            self.approve(edited, actor=actor, client=client, ask_id=ask.id)
        else:
            self.approve(call, actor=actor, client=client, ask_id=ask.id)
        if command.approve and command.remember:
            self.effects.append(Remember(tool=call.tool))
            self.s.policies.setdefault(call.tool, {})["task"] = "ask_once"
        self.set_waiting()
        if (sub := self.s.subtask(call.subtask)) is not None:
            self.settle(sub)

    def expire(self, command: Expire) -> None:
        ask = self.s.ask(command.ask_id)
        if ask is None or ask.status != AskStatus.PENDING:
            raise _Refused("this was answered already")
        ask.status = AskStatus.EXPIRED
        call = self.s.call(ask.call_key)
        if self.s.status.final or call is None or call.status != CallStatus.PROPOSED:
            return
        self.emit(ev.ApprovalExpired(interaction_id=ask.id, tool=call.tool))
        hours = self.limits.approval_timeout_s / 3600
        error = f"nobody answered the approval request within {hours:g} h; the call was not made"
        if self.deny(call, actor="system: approval timeout", error=error, action="expired",
                     ask_id=ask.id):  # fmt: skip
            return
        self.set_waiting()
        if (sub := self.s.subtask(call.subtask)) is not None:
            self.settle(sub)

    def on_tool_result(self, result: ToolResult) -> None:
        call = self.s.call(result.key)
        if call is None or call.status not in (CallStatus.APPROVED, CallStatus.RUNNING):
            return
        outcome = result.outcome
        call.status = CallStatus.SUCCEEDED if outcome.ok else CallStatus.FAILED
        call.output = outcome.output
        call.error = outcome.error
        self.emit(ev.ToolFinished(tool=call.tool, key=call.key, ok=outcome.ok,
                                  output=outcome.output[:2000], error=outcome.error,
                                  files=list(outcome.files)))  # fmt: skip
        if outcome.files:
            self.effects.append(RecordFiles(names=outcome.files))
            self.s.files = tuple(sorted({*self.s.files, *outcome.files}))
        self.s.failure_streak = 0 if outcome.ok else self.s.failure_streak + 1
        if self.reached(Stuck.TOOL_FAILURES, self.s.failure_streak):
            self.pause(Stuck.TOOL_FAILURES, count=self.s.failure_streak, last_error=outcome.error)
            return
        if (sub := self.s.subtask(call.subtask)) is not None:
            self.settle(sub)

    # --- reviewing -------------------------------------------------------------------------

    def request_review(self) -> None:
        files = tuple(sorted({name for s in self.s.subtasks for name in s.result_files}))
        assert self.s.plan is not None  # noqa: S101 - a review follows a plan
        message = ReviewRequested(
            id=self.next_id("review"),
            correlation_id=self.s.id,
            occurred_at=self.now,
            objective=self.s.objective,
            plan=self.s.plan,
            results={
                s.key: SubtaskResult(summary=s.result, files=s.result_files)
                for s in self.s.subtasks
            },
            round=self.s.revision_round + 1,
            guidance=self.s.guidance,
        )
        self.effects.append(Review(message=message, files=files))
        self.s.in_flight = message.id
        self.set_status(TaskStatus.REVIEWING)
        self.emit(ev.ReviewRequested(round=self.s.revision_round + 1))

    def on_verdict(self, verdict: ReviewVerdict) -> None:
        self.record_usage("reviewer", verdict.usage)
        if self.s.status != TaskStatus.REVIEWING or _stale(verdict.request_id, self.s.in_flight):
            return
        self.s.in_flight = ""
        if verdict.stuck_reason is not None:
            self.agent_failed("reviewer", verdict.stuck_reason, unusable=verdict.unusable)
            if self.s.status == TaskStatus.REVIEWING:
                self.request_review()
            return
        self.s.unusable_streak = 0
        notes = [
            ev.RevisionNote(subtask=r.subtask_id, problem=r.problem) for r in verdict.revisions
        ]
        self.emit(ev.ReviewVerdict(approved=verdict.approved, summary=verdict.summary,
                                   revisions=notes))  # fmt: skip
        self.s.review = {
            "approved": verdict.approved,
            "summary": verdict.summary,
            "round": self.s.revision_round + 1,
            "revisions": [msgspec.to_builtins(note) for note in notes],
        }
        if verdict.approved:
            self.s.result = verdict.summary or "\n\n".join(
                f"{s.planned.title}: {s.result}" for s in self.s.subtasks
            )
            self.set_status(TaskStatus.COMPLETED)
            self.emit(ev.TaskCompleted(result=self.s.result))
            return
        self.s.revision_round += 1
        if self.reached(Stuck.REVISION_ROUNDS, self.s.revision_round):
            self.pause(Stuck.REVISION_ROUNDS, count=self.s.revision_round,
                       last_review=verdict.summary)  # fmt: skip
            return
        for revision in verdict.revisions:
            if (sub := self.s.subtask(revision.subtask_id)) is not None:
                sub.status = SubtaskStatus.PENDING
                sub.revision_notes = (*sub.revision_notes, revision.problem)
        self.set_status(TaskStatus.EXECUTING)
        self.dispatch()

    # --- the person ------------------------------------------------------------------------

    def cancel(self, command: Cancel) -> None:
        if self.s.status.final:
            raise _Refused(f"the task has already finished ({self.s.status.value})")
        previous = self.s.status
        for ask in self.s.asks:
            if ask.status == AskStatus.PENDING:
                ask.status = AskStatus.CANCELLED
        self.set_status(TaskStatus.CANCELLED, command.reason)
        if command.by != "schedule":  # the person's own cancel is on record as such
            self.emit(ev.TaskCancelled(previous=previous.value, reason=command.reason,
                                       by=command.by))  # fmt: skip

    def guide(self, command: Guide) -> None:
        if self.s.status != TaskStatus.NEEDS_GUIDANCE:
            raise _Refused(f"the task is not waiting for guidance (it is {self.s.status.value})")
        self.emit(ev.TaskGuidance(action=command.action, text=command.text))
        if command.action == "cancel":
            self.cancel(Cancel(by="guidance", reason="cancelled by you"))
            return
        self.s.guidance = (*self.s.guidance, command.text)
        self.s.unusable_streak = self.s.failure_streak = self.s.denials = 0
        # calls still waiting for a decision belong to the approach being left behind
        withdrawn = {c.key for c in self.s.calls if c.status == CallStatus.PROPOSED}
        self.s.calls = [c for c in self.s.calls if c.key not in withdrawn]
        self.s.asks = [a for a in self.s.asks if a.call_key not in withdrawn]
        if command.action == "replan" or self.s.plan is None:
            self.s.revision_round = 0
            self.request_plan(replan=self.s.plan is not None)
            return
        if all(s.status == SubtaskStatus.DONE for s in self.s.subtasks):
            self.request_review()
            return
        self.set_status(TaskStatus.EXECUTING)
        for sub in self.s.subtasks:
            if sub.status == SubtaskStatus.RUNNING:
                sub.status = SubtaskStatus.PENDING
                sub.in_flight = ""
        self.dispatch()

    def repair(self) -> None:
        missing = missing_work(self.s)
        if not missing:
            return
        self.emit(ev.TaskRepaired(missing=missing))
        status = self.s.status
        if status in _PLANNING:
            self.request_plan(replan=self.s.plan is not None)
            return
        if status == TaskStatus.REVIEWING:
            self.request_review()
            return
        self.set_waiting()
        for sub in self.s.subtasks:
            if sub.status == SubtaskStatus.RUNNING and not sub.in_flight:
                self.settle(sub)
        if self.s.status.executing:
            self.dispatch()


# --- pure helpers --------------------------------------------------------------------------


def _copy(state: TaskState) -> TaskState:
    """A copy the rules may change (the parts they change are copied, the rest shared)."""
    replace = msgspec.structs.replace
    return replace(
        state,
        subtasks=[replace(s) for s in state.subtasks],
        calls=[replace(c) for c in state.calls],
        asks=[replace(a) for a in state.asks],
        policies={tool: dict(modes) for tool, modes in state.policies.items()},
    )


def _stale(request_id: str, in_flight: str) -> bool:
    """Whether an answer is not for the request the task awaits. Answers name their request;
    without a name (an older agent), any answer counts while one is awaited."""
    if not in_flight:
        return True
    return bool(request_id) and in_flight not in (LEGACY, request_id)


def _open(state: TaskState, sub: SubtaskState) -> bool:
    return any(c.subtask == sub.key and c.status.open for c in state.calls)


def _waiting_status(state: TaskState) -> TaskStatus:
    kinds = {a.kind for a in state.asks if a.status == AskStatus.PENDING}
    if "input" in kinds:
        return TaskStatus.AWAITING_INPUT
    if kinds:
        return TaskStatus.AWAITING_APPROVAL
    return TaskStatus.EXECUTING


def _where(level: str) -> str:
    return "for all tasks" if level == "user" else "for this task"


def _plan_problem(plan: Plan) -> str | None:
    """Why a plan cannot be worked (repeated ids, unknown dependencies, a cycle), if it can't."""
    ids = [s.id for s in plan.subtasks]
    if len(set(ids)) != len(ids):
        return "the plan repeats a subtask id"
    for sub in plan.subtasks:
        unknown = set(sub.depends_on) - set(ids)
        if unknown or sub.id in sub.depends_on:
            return f"subtask {sub.id} depends on {', '.join(sorted(unknown)) or 'itself'}"
    try:
        TopologicalSorter({s.id: set(s.depends_on) for s in plan.subtasks}).prepare()
    except CycleError:
        return "the plan's dependencies go round in a circle"
    return None


def _in_order(plan: Plan) -> list[Any]:
    by_id = {s.id: s for s in plan.subtasks}
    order = TopologicalSorter({s.id: set(s.depends_on) for s in plan.subtasks}).static_order()
    return [by_id[sid] for sid in order]
