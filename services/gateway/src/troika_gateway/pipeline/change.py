"""What a change to a task can do: announce, ask the agents, ask the person, approve, deny,
pause. The rules (:mod:`.rules`) decide which of these each command calls for; every move here
changes the state and adds its effects, in order, and nothing else."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from troika_gateway.pipeline.liveness import has_open_calls, waiting_status
from troika_gateway.pipeline.snapshot import (
    Ask,
    AskState,
    Audit,
    CallState,
    Effect,
    Emit,
    Execute,
    RecordUsage,
    Review,
    Send,
    SubtaskState,
    TaskState,
)
from troika_gateway.pipeline.states import AskStatus, CallStatus, SubtaskStatus, TaskStatus
from troika_gateway.pipeline.stuck import (
    MODEL_FAULTS,
    STUCK,
    Stuck,
    in_tokens,
    limit_reached,
    limit_words,
)
from troika_shared import catalogue
from troika_shared import task_events as ev
from troika_shared.messages import (
    PlanRequested,
    ReviewRequested,
    StepRequested,
    SubtaskResult,
    TaskStopped,
    ToolOutcome,
    TranscriptEntry,
    Usage,
    derive_id,
)
from troika_shared.messages import ToolCall as ProposedCall
from troika_shared.promises import promised_files
from troika_shared.unusable import in_words

if TYPE_CHECKING:
    from datetime import datetime

    from troika_gateway.pipeline.snapshot import Limits
    from troika_shared.catalogue import ToolDefinition


__all__ = ["Change", "Refused"]


class Refused(Exception):
    """The command does not apply to the task as it is (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Change:
    """One command's work on a task's state; collects the effects in order."""

    def __init__(self, state: TaskState, limits: Limits, now: datetime) -> None:
        self.s = state
        self.limits = limits
        self.now = now
        self.effects: list[Effect] = []

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
        if status != TaskStatus.NEEDS_GUIDANCE:
            self.s.paused_for = ""
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
        if self.limits.small_model and rule in MODEL_FAULTS:
            reason += (
                f" — the local model ({self.limits.small_model}) is too small for this step; "
                "set TROIKA_LLM_BASE_URL and TROIKA_LLM_API_KEY to a capable model"
            )
        evidence = {k: v for k, v in facts.items() if k not in ("count", "limit", "detail", "said")}
        # A paused task runs nothing until the person has guided it, so questions about calls
        # are closed now (their cards and the badge go at once); going on asks the executor
        # again, and it proposes what it still needs.
        for ask in self.s.asks:
            if ask.status == AskStatus.PENDING:
                ask.status = AskStatus.CANCELLED
        self.set_status(TaskStatus.NEEDS_GUIDANCE, reason)
        self.s.paused_for = rule.value
        self.emit(ev.TaskNeedsGuidance(reason=reason, evidence={"rule": rule.value, **evidence}))

    def reached(self, rule: Stuck, count: int) -> bool:
        threshold = STUCK[rule][0]
        assert threshold is not None  # noqa: S101 - only rules with a threshold are counted
        limit: int = getattr(self.limits, threshold)
        return count >= limit

    def record_usage(self, agent: str, usage: tuple[Usage, ...], subtask: str = "") -> None:
        if not usage:
            return
        self.effects.append(RecordUsage(agent=agent, usage=usage, subtask=subtask))
        tokens = sum(u.prompt_tokens + u.completion_tokens for u in usage)
        self.s.tokens += tokens
        cost = sum(u.cost_usd for u in usage)
        self.s.cost_usd += cost
        for key in self.s.person_spent:
            self.s.person_spent[key] += tokens if in_tokens(key) else cost

    def used_up(self) -> tuple[Stuck, dict[str, Any]] | None:
        """The budget the task has used up, with the facts its reason names (``None``: none)."""
        budget = self.s.budget or {}
        max_steps = budget.get("max_steps") or self.limits.max_steps
        if self.s.steps >= max_steps:
            return Stuck.STEP_BUDGET, {"limit": max_steps}
        if (tokens := budget.get("max_tokens")) and self.s.tokens >= tokens:
            return Stuck.TOKEN_BUDGET, {"limit": tokens}
        if (cost := budget.get("max_cost_usd")) and self.s.cost_usd >= cost:
            return Stuck.COST_BUDGET, {"limit": cost}
        return self.person_used_up()

    def person_used_up(self) -> tuple[Stuck, dict[str, Any]] | None:
        """The person's own daily or monthly limit (money or tokens), when their tasks have
        reached it."""
        if (reached := limit_reached(self.s.person_limits, self.s.person_spent)) is None:
            return None
        key, limit, spent = reached
        used_up = limit_words(key, limit, spent)
        return Stuck.PERSON_BUDGET, {"used_up": used_up, "period": key, "spent": spent}

    def over_budget(self, *, person_only: bool = False) -> bool:
        """Pauses the task when a budget is used up (checked before each step, so a task never
        overshoots by more than one); ``True`` if it did."""
        found = self.person_used_up() if person_only else self.used_up()
        if found is None:
            return False
        rule, facts = found
        self.pause(rule, **facts)
        return True

    def agent_failed(self, agent: str, reason: str, *, unusable: bool, subtask: str = "") -> None:
        if not unusable:
            self.pause(Stuck.CANNOT_PROCEED, agent=agent, detail=reason)
            return
        self.s.unusable_streak += 1
        streak, said = self.s.unusable_streak, in_words(reason)
        self.emit(ev.AgentUnusableAnswer(agent=agent, reason=reason, streak=streak, said=said,
                                         subtask=subtask))  # fmt: skip
        if self.reached(Stuck.UNUSABLE_ANSWERS, streak):
            self.pause(Stuck.UNUSABLE_ANSWERS, agent=agent, count=streak, said=said,
                       last_error=reason)  # fmt: skip

    def request_plan(self, *, replan: bool) -> None:
        if self.over_budget(person_only=True):  # a plan costs too: not past the person's limit
            return
        message = PlanRequested(
            id=self.next_id("plan"),
            correlation_id=self.s.id,
            occurred_at=self.now,
            objective=self.s.objective,
            files=self.s.files,
            guidance=self.s.guidance,
            previous_plan=self.s.plan if replan else None,
            tool_names=catalogue.names(),
        )
        self.send(message)
        self.s.in_flight = message.id
        self.emit(ev.PlanRequested(replan=replan))
        self.set_status(TaskStatus.PLANNING)

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
            tool_names=catalogue.names(),
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
                    ok=c.status == CallStatus.SUCCEEDED,
                    output=c.output,
                    error=c.error,
                    images=c.images,
                ),
            )
            for c in self.s.calls
            if c.subtask == sub.key and c.status.settled
        )

    def ask(self, sub: SubtaskState, call: CallState, definition: ToolDefinition | None) -> None:
        """Shows the call to the person: all of its arguments, and a form where it needs one."""
        prompt: dict[str, Any] = {
            "tool": call.tool,
            "risk": definition.risk_of(call.arguments) if definition else "external",
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
            self.set_status(waiting_status(self.s))

    def settle(self, sub: SubtaskState) -> None:
        """When none of the subtask's calls is open any more, asks for its next step."""
        if (
            sub.status == SubtaskStatus.RUNNING
            and self.s.status.executing
            and not sub.in_flight
            and not has_open_calls(self.s, sub)
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
        self.emit(ev.ToolApproved(tool=call.tool, key=call.key, by=actor, subtask=call.subtask))

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
        self.emit(ev.ToolDenied(tool=call.tool, key=call.key, reason=error, by=actor,
                                subtask=call.subtask))  # fmt: skip
        if self.reached(Stuck.DENIALS, self.s.denials):
            self.pause(Stuck.DENIALS, count=self.s.denials, last=error)
            return True
        return False

    def request_review(self) -> None:
        results = {
            s.key: SubtaskResult(summary=s.result, files=s.result_files) for s in self.s.subtasks
        }
        files = tuple(
            sorted({name for s in self.s.subtasks
                    for name in promised_files(s.planned, results[s.key])})
        )  # fmt: skip
        assert self.s.plan is not None  # noqa: S101 - a review follows a plan
        message = ReviewRequested(
            id=self.next_id("review"),
            correlation_id=self.s.id,
            occurred_at=self.now,
            objective=self.s.objective,
            plan=self.s.plan,
            results=results,
            round=self.s.revision_round + 1,
            guidance=self.s.guidance,
        )
        self.effects.append(Review(message=message, files=files))
        self.s.in_flight = message.id
        self.set_status(TaskStatus.REVIEWING)
        self.emit(ev.ReviewRequested(round=self.s.revision_round + 1))
