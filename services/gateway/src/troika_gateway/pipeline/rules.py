"""The task rules: a task's state and a command in, the new state and the effects out.

Nothing here reads or writes anything: the adapter (:mod:`.store`) loads the snapshot, calls
:func:`apply` and carries out the effects after one commit. Every transition of a task, whoever
asks for it (an agent's answer, the person, a schedule, the expiry sweep, the watchdog), is a
command through :func:`apply`; the README's "How a task moves" is the table of them.

The moves a command can make are in :mod:`.change`, the plan's commands in :mod:`.planning`,
the stuck rules in :mod:`.stuck`, the liveness invariant in :mod:`.liveness` and policy
decisions in :mod:`.policy`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from troika_gateway.pipeline.change import Refused
from troika_gateway.pipeline.liveness import PLANNING, missing_work, stale
from troika_gateway.pipeline.planning import Planning
from troika_gateway.pipeline.policy import decide
from troika_gateway.pipeline.snapshot import (
    AgentGaveUp,
    Audit,
    CallState,
    Cancel,
    EditPlan,
    Expire,
    Fire,
    Guide,
    Note,
    Outcome,
    RecordFiles,
    Remember,
    Rename,
    Repair,
    Respond,
    SetBudget,
    Start,
    SubtaskState,
    TaskState,
)
from troika_gateway.pipeline.states import AskStatus, CallStatus, SubtaskStatus, TaskStatus
from troika_gateway.pipeline.stuck import TASK_BUDGETS, Stuck
from troika_shared import catalogue
from troika_shared import task_events as ev
from troika_shared.approvals import call_key
from troika_shared.messages import (
    PlanProduced,
    ReviewVerdict,
    StepProposed,
    ToolResult,
)

if TYPE_CHECKING:
    from datetime import datetime

    from troika_gateway.pipeline.snapshot import Command, Limits


__all__ = ["apply"]

_APPROVED_BEFORE = (
    CallStatus.APPROVED,
    CallStatus.RUNNING,
    CallStatus.SUCCEEDED,
    CallStatus.FAILED,
)


_WITHDRAWN = {
    TaskStatus.NEEDS_GUIDANCE: "paused to ask for your guidance",
    TaskStatus.CANCELLED: "was cancelled",
    TaskStatus.FAILED: "failed",
    TaskStatus.COMPLETED: "finished",
}
"""Why a question the person answers no longer waits, by the task's status."""


def apply(state: TaskState, command: Command, *, limits: Limits, now: datetime) -> Outcome:
    """Applies ``command`` to a copy of ``state``.

    Returns:
        The new state and the effects to carry out after it is stored; or, for a command that
        does not apply (a second answer to an approval, guidance for a task that did not ask),
        the unchanged state and the reason in ``refused``.
    """
    change = _Rules(_copy(state), limits, now)
    try:
        change.run(command)
    except Refused as refusal:
        return Outcome(state=state, refused=refusal.reason)
    return Outcome(state=change.s, effects=change.effects)


class _Rules(Planning):
    """How each command changes the task."""

    def run(self, command: Command) -> None:  # noqa: PLR0912 - one arm per command
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
            case (
                PlanProduced()
                | StepProposed()
                | ToolResult()
                | ReviewVerdict()
                | AgentGaveUp()
                | Repair()
            ) if self.s.status.final:
                pass  # an answer for a finished task changes nothing
            case _ if self.s.status.final:
                raise Refused(f"the task has finished ({self.s.status.value})")
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
            case EditPlan():
                self.edit_plan(command)
            case SetBudget():
                self.set_budget(command)
            case Repair():
                self.repair()

    # --- executing -------------------------------------------------------------------------

    def on_step(self, answer: StepProposed) -> None:
        self.record_usage("executor", answer.usage, subtask=answer.subtask_id)
        sub = self.s.subtask(answer.subtask_id)
        if (
            sub is None
            or sub.status != SubtaskStatus.RUNNING
            or not self.s.status.executing
            or stale(answer.request_id, sub.in_flight)
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
            self.agent_failed("executor", answer.stuck_reason or "", unusable=answer.unusable,
                              subtask=sub.key)  # fmt: skip
            if self.s.status.executing:  # waiting for an approval elsewhere counts too
                self.request_step(sub)
            return
        self.s.unusable_streak = 0
        self.propose(sub, answer)

    def propose(self, sub: SubtaskState, answer: StepProposed) -> None:
        for proposed in answer.tool_calls:
            known = self.s.call(proposed.key)
            if known is not None and known.status.open:
                continue  # the same call while it still waits: the same question, not a loop
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
                call.arguments,
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

    def respond(self, command: Respond) -> None:
        ask = self.s.ask(command.ask_id)
        if ask is not None and ask.status == AskStatus.CANCELLED:
            raise Refused(
                f"this was withdrawn: the task {_WITHDRAWN.get(self.s.status, 'moved on')}"
            )
        if ask is None or ask.status != AskStatus.PENDING:
            raise Refused("this was answered already")
        call = self.s.call(ask.call_key)
        if call is None or call.status != CallStatus.PROPOSED:
            raise Refused("this action is no longer waiting for a decision")
        if ask.expires_at is not None and ask.expires_at <= self.now:
            raise Refused("this approval request expired; the call was not made")
        edited_key = None
        if command.approve and command.arguments != call.arguments:
            definition = catalogue.CATALOGUE.get(call.tool)
            step = definition.key_step(call.step) if definition is not None else None
            edited_key = call_key(self.s.id, call.subtask, call.tool, command.arguments, step)
            if self.s.call(edited_key) is not None:
                raise Refused(
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
            raise Refused("this was answered already")
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
        call.images = outcome.images
        self.emit(ev.ToolFinished(tool=call.tool, key=call.key, ok=outcome.ok,
                                  output=outcome.output[:2000], error=outcome.error,
                                  files=list(outcome.files), subtask=call.subtask))  # fmt: skip
        if outcome.files:
            self.effects.append(RecordFiles(names=outcome.files))
            self.s.files = tuple(sorted({*self.s.files, *outcome.files}))
        self.s.failure_streak = 0 if outcome.ok else self.s.failure_streak + 1
        if outcome.needs_person and not outcome.ok:
            self.pause(Stuck.NEEDS_PERSON, tool=call.tool, detail=outcome.error or "")
            return
        if self.reached(Stuck.TOOL_FAILURES, self.s.failure_streak):
            self.pause(Stuck.TOOL_FAILURES, count=self.s.failure_streak, last_error=outcome.error)
            return
        if (sub := self.s.subtask(call.subtask)) is not None:
            self.settle(sub)

    # --- reviewing -------------------------------------------------------------------------

    def on_verdict(self, verdict: ReviewVerdict) -> None:
        self.record_usage("reviewer", verdict.usage)
        if self.s.status != TaskStatus.REVIEWING or stale(verdict.request_id, self.s.in_flight):
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
            raise Refused(f"the task has already finished ({self.s.status.value})")
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
            raise Refused(f"the task is not waiting for guidance (it is {self.s.status.value})")
        self.emit(ev.TaskGuidance(action=command.action, text=command.text))
        if command.action == "cancel":
            self.cancel(Cancel(by="guidance", reason="cancelled by you"))
            return
        self.s.guidance = (*self.s.guidance, command.text)
        self.resume(replan=command.action == "replan")

    def resume(self, *, replan: bool = False) -> None:
        """Goes on after a pause: from the plan (again, with ``replan``), the review, or the
        subtasks not done."""
        self.s.unusable_streak = self.s.failure_streak = self.s.denials = 0
        # calls still waiting for a decision belong to the approach being left behind
        withdrawn = {c.key for c in self.s.calls if c.status == CallStatus.PROPOSED}
        self.s.calls = [c for c in self.s.calls if c.key not in withdrawn]
        self.s.asks = [a for a in self.s.asks if a.call_key not in withdrawn]
        if replan or self.s.plan is None:
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

    def set_budget(self, command: SetBudget) -> None:
        self.s.budget = command.budget
        self.emit(ev.BudgetChanged(budget=dict(command.budget or {})))
        paused_by_budget = self.s.paused_for in {rule.value for rule in TASK_BUDGETS}
        if self.s.status == TaskStatus.NEEDS_GUIDANCE and paused_by_budget:
            if (found := self.used_up()) is not None:  # still too little: it stays paused
                rule, facts = found
                self.pause(rule, **facts)
                return
            self.resume()

    def repair(self) -> None:
        missing = missing_work(self.s)
        if not missing:
            return
        self.emit(ev.TaskRepaired(missing=missing))
        status = self.s.status
        if status in PLANNING:
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
