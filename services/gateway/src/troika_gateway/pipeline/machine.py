"""The task state machine.

``queued → planning → executing ⇄ awaiting_approval → reviewing → completed``, with
``needs_guidance`` when the agents are stuck, and ``failed``/``cancelled`` from anywhere. Each
method applies one change to a task loaded in a session, appends its events and enqueues the
next commands in the outbox; the caller commits once, so state, events and commands land
together or not at all.
"""

from __future__ import annotations

import hashlib
import mimetypes
from datetime import UTC, datetime, timedelta
from functools import partial
from graphlib import TopologicalSorter
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import msgspec
from sqlalchemy import delete, func, select

from troika_gateway.credentials import load_secrets
from troika_gateway.db.models import (
    AuditEntry,
    File,
    Interaction,
    LlmUsage,
    Subtask,
    Task,
    TaskEvent,
    TaskStatus,
    ToolCall,
    new_uuid,
)
from troika_gateway.events import append_event
from troika_gateway.interactions import policies
from troika_gateway.pipeline.outbox import enqueue, enqueue_stopped
from troika_gateway.storage import Workspace
from troika_shared import catalogue
from troika_shared.approvals import call_key, sign_approval
from troika_shared.messages import (
    Plan,
    PlanProduced,
    PlanRequested,
    ReviewRequested,
    ReviewVerdict,
    StepProposed,
    StepRequested,
    SubtaskResult,
    ToolExecute,
    ToolOutcome,
    ToolResult,
    TranscriptEntry,
    Usage,
    derive_id,
)
from troika_shared.messages import Subtask as PlannedSubtask
from troika_shared.messages import ToolCall as ProposedCall
from troika_shared.vault import seal_call_secrets

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_gateway.settings import GatewaySettings
    from troika_shared.catalogue import ToolDefinition

__all__ = ["Machine", "SameCallExists"]


class SameCallExists(Exception):
    """An edit would make a call this task has already (one key, one action)."""

    def __init__(self, tool: str) -> None:
        super().__init__(
            f"this task has a {tool} call with exactly these arguments already; "
            "deny this one, or change the arguments"
        )


ACTIVE = {"pending", "running"}
_RUNNING = {
    TaskStatus.EXECUTING.value,
    TaskStatus.AWAITING_APPROVAL.value,
    TaskStatus.AWAITING_INPUT.value,
}
SETTLED_CALLS = {"succeeded", "failed", "denied"}
OPEN_CALLS = {"proposed", "approved", "running"}


class Machine:
    """Task transitions on one session.

    Args:
        db: The session; the caller commits.
        settings: Thresholds and the data directory.
    """

    def __init__(self, db: AsyncSession, settings: GatewaySettings) -> None:
        self.db = db
        self.settings = settings
        self.events: list[TaskEvent] = []

    # --- small pieces ----------------------------------------------------------------------

    def event(self, task: Task, kind: str, **data: object) -> None:
        """Appends an event to the task's log."""
        self.events.append(append_event(self.db, task, kind, dict(data)))

    def _next_id(self, task: Task, kind: str) -> str:
        task.dispatches += 1
        return derive_id(task.id, kind, task.dispatches)

    def set_status(self, task: Task, status: TaskStatus, reason: str = "") -> None:
        """Moves the task to ``status`` (announced as ``task.status``; a final one stops it)."""
        previous = task.status
        task.status = status.value
        task.status_reason = reason
        if status.final:
            task.finished_at = datetime.now(UTC)
            enqueue_stopped(self.db, task.id, status.value)
        if previous != status.value:
            self.event(task, "task.status", status=status.value, previous=previous, reason=reason)

    @staticmethod
    def plan_of(task: Task) -> Plan:
        """The task's current plan."""
        return msgspec.convert(task.plan or {}, Plan)

    async def subtasks(self, task: Task) -> list[Subtask]:
        """The task's subtasks in plan order."""
        rows = await self.db.scalars(
            select(Subtask).where(Subtask.task_id == task.id).order_by(Subtask.position)
        )
        return list(rows)

    async def record_usage(self, task: Task, agent: str, usages: tuple[Usage, ...]) -> None:
        """Counts an agent's LLM calls on the task."""
        for usage in usages:
            self.db.add(
                LlmUsage(
                    task_id=task.id,
                    agent=agent,
                    model=usage.model,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    latency_ms=usage.latency_ms,
                    cost_usd=usage.cost_usd,
                )
            )
        await self.db.flush()

    async def over_budget(self, task: Task) -> str | None:
        """Why the task has reached a budget, if it has."""
        budget = task.budget or {}
        max_steps = budget.get("max_steps") or self.settings.max_steps
        if task.steps >= max_steps:
            return f"the step budget of {max_steps} steps is used up"
        if budget.get("max_tokens") or budget.get("max_cost_usd"):
            tokens, cost = (
                await self.db.execute(
                    select(
                        func.coalesce(
                            func.sum(LlmUsage.prompt_tokens + LlmUsage.completion_tokens), 0
                        ),
                        func.coalesce(func.sum(LlmUsage.cost_usd), 0.0),
                    ).where(LlmUsage.task_id == task.id)
                )
            ).one()
            if budget.get("max_tokens") and tokens >= budget["max_tokens"]:
                return f"the token budget of {budget['max_tokens']} tokens is used up"
            if budget.get("max_cost_usd") and cost >= budget["max_cost_usd"]:
                return f"the cost budget of ${budget['max_cost_usd']:.2f} is used up"
        return None

    def pause(self, task: Task, reason: str, **evidence: object) -> None:
        """Stops the task to ask the person for guidance, saying why in plain words."""
        self.set_status(task, TaskStatus.NEEDS_GUIDANCE, reason)
        self.event(task, "task.needs_guidance", reason=reason, evidence=evidence)

    # --- planning --------------------------------------------------------------------------

    async def request_plan(self, task: Task, *, replan: bool = False) -> None:
        """Asks the planners for a plan (again, with the previous one, when re-planning)."""
        files = await anyio.to_thread.run_sync(_workspace_files, self.settings.data_dir, task.id)
        message = PlanRequested(
            id=self._next_id(task, "plan"),
            correlation_id=task.id,
            objective=task.objective,
            files=tuple(files),
            guidance=tuple(task.guidance),
            previous_plan=self.plan_of(task) if replan and task.plan else None,
            tools=catalogue.specs(),
        )
        enqueue(self.db, message)
        self.event(task, "plan.requested", replan=replan)

    async def on_plan(self, task: Task, message: PlanProduced) -> None:
        """A plan arrived: store it and start the subtasks that are ready."""
        await self.record_usage(task, "planner", message.usage)
        # The relay marks a task planning after it publishes, so an answer can beat the mark.
        planning = (TaskStatus.QUEUED.value, TaskStatus.PLANNING.value)
        if task.status not in planning:
            return  # an answer to a plan request that was overtaken (a re-plan, a pause)
        if message.plan is None:
            await self._agent_failed(
                task, "planner", message.stuck_reason or "", unusable=message.unusable
            )
            if task.status in planning:
                await self.request_plan(task)
            return
        task.unusable_streak = 0
        task.plan = msgspec.to_builtins(message.plan)
        await self.db.execute(delete(Subtask).where(Subtask.task_id == task.id))
        for position, planned in enumerate(_in_order(message.plan)):
            self.db.add(_subtask_row(task.id, position, planned))
        await self.db.flush()
        self.event(
            task,
            "plan.ready",
            summary=message.plan.summary,
            subtasks=[
                {"id": s.id, "title": s.title, "depends_on": list(s.depends_on)}
                for s in message.plan.subtasks
            ],
        )
        self.set_status(task, TaskStatus.EXECUTING)
        await self.dispatch(task)

    async def _agent_failed(self, task: Task, agent: str, reason: str, *, unusable: bool) -> None:
        if not unusable:
            self.pause(task, f"the {agent} cannot proceed: {reason}", agent=agent)
            return
        task.unusable_streak += 1
        self.event(
            task, "agent.unusable_answer", agent=agent, reason=reason, streak=task.unusable_streak
        )
        if task.unusable_streak >= self.settings.stuck_unusable_answers:
            self.pause(
                task,
                f"the {agent} gave {task.unusable_streak} unusable answers in a row",
                agent=agent,
                last_error=reason,
            )

    # --- executing -------------------------------------------------------------------------

    async def dispatch(self, task: Task) -> None:
        """Starts every subtask whose dependencies are done; reviews when all are done."""
        subtasks = await self.subtasks(task)
        done = {s.key for s in subtasks if s.status == "done"}
        if len(done) == len(subtasks):
            await self.request_review(task)
            return
        for subtask in subtasks:
            ready = subtask.status == "pending" and set(subtask.depends_on) <= done
            if ready and not await self.request_step(task, subtask, subtasks):
                return

    async def request_step(
        self, task: Task, subtask: Subtask, subtasks: list[Subtask] | None = None
    ) -> bool:
        """Asks the executors for the subtask's next step; ``False`` if a budget stopped it."""
        if reason := await self.over_budget(task):
            self.pause(task, reason)
            return False
        subtasks = subtasks or await self.subtasks(task)
        task.steps += 1
        subtask.steps += 1
        subtask.status = "running"
        by_key = {s.key: s for s in subtasks}
        files = await anyio.to_thread.run_sync(_workspace_files, self.settings.data_dir, task.id)
        message = StepRequested(
            id=self._next_id(task, "step"),
            correlation_id=task.id,
            objective=task.objective,
            plan=self.plan_of(task),
            subtask_id=subtask.key,
            step=subtask.steps,
            files=tuple(files),
            dependency_results={
                dep: by_key[dep].result for dep in subtask.depends_on if dep in by_key
            },
            transcript=await self._transcript(task, subtask),
            tools=catalogue.specs(),
            guidance=tuple(task.guidance),
            revision_notes=tuple(subtask.revision_notes),
        )
        enqueue(self.db, message)
        self.event(task, "step.requested", subtask=subtask.key, step=subtask.steps)
        return True

    async def _transcript(self, task: Task, subtask: Subtask) -> tuple[TranscriptEntry, ...]:
        calls = await self.db.scalars(
            select(ToolCall)
            .where(
                ToolCall.task_id == task.id,
                ToolCall.subtask_key == subtask.key,
                ToolCall.status.in_(SETTLED_CALLS),
            )
            .order_by(ToolCall.created_at, ToolCall.id)
        )
        return tuple(
            TranscriptEntry(
                call=ProposedCall(key=call.key, tool=call.tool, arguments=call.arguments),
                outcome=ToolOutcome(
                    ok=call.status == "succeeded", output=call.output, error=call.error
                ),
            )
            for call in calls
        )

    async def on_step(self, task: Task, message: StepProposed) -> None:
        """The executor's next step for a subtask: calls to approve, its result, or stuck."""
        await self.record_usage(task, "executor", message.usage)
        subtask = await self._subtask(task, message.subtask_id)
        if subtask is None or subtask.status != "running":
            return
        if message.result is not None:
            task.unusable_streak = 0
            subtask.status = "done"
            subtask.result = message.result.summary
            subtask.result_files = list(message.result.files)
            self.event(
                task,
                "subtask.done",
                subtask=subtask.key,
                result=message.result.summary,
                files=list(message.result.files),
            )
            await self.dispatch(task)
            return
        if not message.tool_calls:
            await self._agent_failed(
                task, "executor", message.stuck_reason or "", unusable=message.unusable
            )
            if task.status == TaskStatus.EXECUTING.value:
                await self.request_step(task, subtask)
            return
        task.unusable_streak = 0
        await self._propose(task, subtask, message)

    async def _propose(self, task: Task, subtask: Subtask, message: StepProposed) -> None:
        asked = False
        for call in message.tool_calls:
            row = await self.db.scalar(select(ToolCall).where(ToolCall.key == call.key))
            if row is not None:
                row.proposals += 1
                self.event(
                    task, "tool.repeated", subtask=subtask.key, tool=call.tool, times=row.proposals
                )
                if row.proposals >= self.settings.stuck_same_call:
                    self.pause(
                        task,
                        f"the executor proposed the same {call.tool} call {row.proposals} times",
                        tool=call.tool,
                        arguments=call.arguments,
                    )
                    return
                continue
            row = ToolCall(
                task_id=task.id,
                subtask_key=subtask.key,
                key=call.key,
                tool=call.tool,
                arguments=call.arguments,
                step=subtask.steps,
                status="proposed",
            )
            self.db.add(row)
            await self.db.flush()
            definition = catalogue.CATALOGUE.get(call.tool)
            decision = await policies.decide(
                self.db,
                user_id=task.user_id,
                task_id=task.id,
                definition=definition,
                tool=call.tool,
                approved_before=partial(self._approved_before, task, call.tool, exclude=row.id),
            )
            if decision.outcome == "approve":
                await self.approve(task, row, actor=f"policy: {decision.rule}")
            elif decision.outcome == "deny":
                error = f"your policy denies {call.tool} ({decision.rule})"
                if self.deny(task, row, actor=f"policy: {decision.rule}", error=error):
                    return
            else:
                asked = True
                self._ask(task, subtask, row, definition)
        if asked:
            await self._set_waiting(task)
        elif task.status == TaskStatus.EXECUTING.value:
            await self._settled(task, subtask)  # every call was decided by a rule, or repeated

    def _ask(
        self, task: Task, subtask: Subtask, row: ToolCall, definition: ToolDefinition | None
    ) -> None:
        """Shows the call to the person: all of its arguments, and a form where it needs one."""
        prompt: dict[str, Any] = {
            "tool": row.tool,
            "risk": definition.risk if definition else "external",
            "description": definition.description if definition else "",
            "arguments": row.arguments,
            "subtask": subtask.key,
        }
        kind = "approval"
        if definition is not None and definition.needs_input:
            kind = "input"
            prompt["form"] = definition.form(row.arguments)
        expires_at = datetime.now(UTC) + timedelta(seconds=self.settings.approval_timeout_s)
        interaction = Interaction(
            id=new_uuid(),
            user_id=task.user_id,
            task_id=task.id,
            tool_call_id=row.id,
            kind=kind,
            prompt=prompt,
            expires_at=expires_at,
        )
        self.db.add(interaction)
        self.event(
            task,
            "approval.requested",
            interaction_id=interaction.id,
            form=kind == "input",
            subtask=subtask.key,
            tool=row.tool,
            arguments=row.arguments,
            expires_at=expires_at.isoformat(),
        )

    async def _set_waiting(self, task: Task) -> None:
        """``awaiting_input`` while a form waits, ``awaiting_approval`` while only approvals do,
        ``executing`` when nothing does; a task paused for guidance stays paused."""
        if task.status not in _RUNNING:
            return
        kinds = set(
            await self.db.scalars(
                select(Interaction.kind).where(
                    Interaction.task_id == task.id, Interaction.status == "pending"
                )
            )
        )
        for interaction in self.db.new:
            if isinstance(interaction, Interaction) and interaction.task_id == task.id:
                kinds.add(interaction.kind)
        if "input" in kinds:
            self.set_status(task, TaskStatus.AWAITING_INPUT)
        elif kinds:
            self.set_status(task, TaskStatus.AWAITING_APPROVAL)
        else:
            self.set_status(task, TaskStatus.EXECUTING)

    async def _approved_before(self, task: Task, tool: str, exclude: str) -> bool:
        approved = await self.db.scalar(
            select(func.count())
            .select_from(ToolCall)
            .where(
                ToolCall.task_id == task.id,
                ToolCall.tool == tool,
                ToolCall.id != exclude,
                ToolCall.status.in_(("approved", "running", "succeeded", "failed")),
            )
        )
        return bool(approved)

    async def approve(
        self,
        task: Task,
        call: ToolCall,
        *,
        actor: str,
        client: dict[str, str] | None = None,
        interaction_id: str | None = None,
    ) -> None:
        """Approves the call: its execution goes out sealed (with the person's credentials the
        tool needs, sealed for this call alone), and the decision is on record."""
        call.status = "approved"
        proposed = ProposedCall(key=call.key, tool=call.tool, arguments=call.arguments)
        seal_key = self.settings.seal_key()
        secrets = await self._call_secrets(task, proposed)
        enqueue(
            self.db,
            ToolExecute(
                id=self._next_id(task, "execute"),
                correlation_id=task.id,
                user_id=task.user_id,
                subtask_id=call.subtask_key,
                call=proposed,
                approval=sign_approval(seal_key, task.id, proposed) if seal_key else "",
                secrets=secrets,
            ),
        )
        self.audit(task, call, "approved", actor, client=client, interaction_id=interaction_id)
        self.event(task, "tool.approved", tool=call.tool, key=call.key, by=actor)

    async def _call_secrets(self, task: Task, call: ProposedCall) -> str:
        """The person's credentials for the call's tool, sealed for this call ("" if none)."""
        definition = catalogue.CATALOGUE.get(call.tool)
        key = self.settings.call_secrets_key()
        if definition is None or definition.credentials is None or key is None:
            return ""
        secrets = await load_secrets(self.db, self.settings, task.user_id, definition.credentials)
        if secrets is None:
            return ""  # the tool says plainly that the person has not set them up
        return seal_call_secrets(key, task.id, call.key, {definition.credentials: secrets})

    def deny(
        self,
        task: Task,
        call: ToolCall,
        *,
        actor: str,
        error: str,
        reason: str = "",
        action: str = "denied",
        client: dict[str, str] | None = None,
        interaction_id: str | None = None,
    ) -> bool:
        """Denies the call (the agent sees ``error``); ``True`` if that paused the task."""
        call.status = "denied"
        call.error = error
        task.denials += 1
        self.audit(task, call, action, actor, reason=reason, client=client,
                   interaction_id=interaction_id)  # fmt: skip
        self.event(task, "tool.denied", tool=call.tool, key=call.key, reason=error, by=actor)
        if task.denials >= self.settings.stuck_denials:
            self.pause(task, f"{task.denials} tool calls were denied in this task", last=error)
            return True
        return False

    def audit(
        self,
        task: Task,
        call: ToolCall,
        action: str,
        actor: str,
        *,
        reason: str = "",
        client: dict[str, str] | None = None,
        interaction_id: str | None = None,
    ) -> None:
        """Records a decision about a call: who or what, exactly which arguments, from where."""
        self.db.add(
            AuditEntry(
                user_id=task.user_id,
                task_id=task.id,
                tool_call_id=call.id,
                interaction_id=interaction_id,
                action=action,
                actor=actor[:255],
                tool=call.tool,
                arguments=call.arguments,
                reason=reason,
                client=client or {},
                at=datetime.now(UTC),
            )
        )

    async def respond(
        self,
        task: Task,
        call: ToolCall,
        interaction: Interaction,
        *,
        approve: bool,
        reason: str,
        arguments: dict[str, Any],
        actor: str,
        client: dict[str, str],
    ) -> None:
        """The person's answer to a proposed call: approve (as proposed, or with the arguments
        they edited or filled in: a new call with its own key), or deny with a reason."""
        subtask = await self._subtask(task, call.subtask_key)
        if not approve:
            error = f"the person denied this call{': ' + reason if reason else ''}"
            if self.deny(task, call, actor=actor, error=error, reason=reason, client=client,
                         interaction_id=interaction.id):  # fmt: skip
                return
        elif arguments != call.arguments:
            key = call_key(task.id, call.subtask_key, call.tool, arguments)
            if await self.db.scalar(select(ToolCall.id).where(ToolCall.key == key)):
                raise SameCallExists(call.tool)
            edited = ToolCall(
                task_id=task.id,
                subtask_key=call.subtask_key,
                key=key,
                tool=call.tool,
                arguments=arguments,
                step=call.step,
                status="proposed",
            )
            self.db.add(edited)
            await self.db.flush()
            call.status = "replaced"
            call.error = "the person changed the arguments before approving"
            self.audit(task, call, "edited", actor, client=client, interaction_id=interaction.id)
            await self.approve(
                task, edited, actor=actor, client=client, interaction_id=interaction.id
            )
        else:
            await self.approve(
                task, call, actor=actor, client=client, interaction_id=interaction.id
            )
        await self._set_waiting(task)
        if subtask is not None and task.status == TaskStatus.EXECUTING.value:
            await self._settled(task, subtask)

    async def expire(self, task: Task, call: ToolCall, interaction: Interaction) -> None:
        """An approval nobody answered in time: the call is denied, and the agent is told."""
        interaction.status = "expired"
        interaction.responded_at = datetime.now(UTC)
        hours = self.settings.approval_timeout_s / 3600
        error = f"nobody answered the approval request within {hours:g} h; the call was not made"
        self.event(task, "approval.expired", interaction_id=interaction.id, tool=call.tool)
        if self.deny(task, call, actor="system: approval timeout", error=error, action="expired",
                     interaction_id=interaction.id):  # fmt: skip
            return
        await self._set_waiting(task)
        subtask = await self._subtask(task, call.subtask_key)
        if subtask is not None and task.status == TaskStatus.EXECUTING.value:
            await self._settled(task, subtask)

    async def on_tool_result(self, task: Task, message: ToolResult) -> None:
        """An approved call ran."""
        call = await self.db.scalar(select(ToolCall).where(ToolCall.key == message.key))
        if call is None or call.status not in ("approved", "running"):
            return
        outcome = message.outcome
        call.status = "succeeded" if outcome.ok else "failed"
        call.output = outcome.output
        call.error = outcome.error
        self.event(
            task,
            "tool.finished",
            tool=call.tool,
            key=call.key,
            ok=outcome.ok,
            output=outcome.output[:2000],
            error=outcome.error,
            files=list(outcome.files),
        )
        await self._record_files(task, outcome.files)
        task.failure_streak = 0 if outcome.ok else task.failure_streak + 1
        if task.failure_streak >= self.settings.stuck_tool_failures:
            self.pause(
                task, f"{task.failure_streak} tool calls failed in a row", last_error=outcome.error
            )
            return
        subtask = await self._subtask(task, call.subtask_key)
        if subtask is not None:
            await self._settled(task, subtask)

    async def _record_files(self, task: Task, names: tuple[str, ...]) -> None:
        """Lists the files a tool wrote among the task's files (so they can be downloaded)."""
        for name in names:
            info = await anyio.to_thread.run_sync(_describe, self.settings.data_dir, task.id, name)
            if info is None:
                continue
            size, digest = info
            row = await self.db.scalar(
                select(File).where(File.task_id == task.id, File.name == name)
            )
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if row is None:
                self.db.add(File(task_id=task.id, name=name, content_type=content_type, size=size,
                                 sha256=digest, origin="agent"))  # fmt: skip
            else:
                row.size, row.sha256, row.updated_at = size, digest, datetime.now(UTC)

    async def _settled(self, task: Task, subtask: Subtask) -> None:
        """When none of the subtask's calls is open any more, asks for its next step."""
        open_calls = await self.db.scalar(
            select(func.count())
            .select_from(ToolCall)
            .where(
                ToolCall.task_id == task.id,
                ToolCall.subtask_key == subtask.key,
                ToolCall.status.in_(OPEN_CALLS),
            )
        )
        if (
            not open_calls
            and subtask.status == "running"
            and task.status
            in (
                TaskStatus.EXECUTING.value,
                TaskStatus.AWAITING_APPROVAL.value,
                TaskStatus.AWAITING_INPUT.value,
            )
        ):
            await self.request_step(task, subtask)

    async def _subtask(self, task: Task, key: str) -> Subtask | None:
        return await self.db.scalar(
            select(Subtask).where(Subtask.task_id == task.id, Subtask.key == key)
        )

    # --- reviewing -------------------------------------------------------------------------

    async def request_review(self, task: Task) -> None:
        """Asks the reviewers to check every result against the plan."""
        subtasks = await self.subtasks(task)
        files = sorted({name for s in subtasks for name in s.result_files})
        evidence = await anyio.to_thread.run_sync(
            _evidence, self.settings.data_dir, task.id, files, self.settings.evidence_chars
        )
        message = ReviewRequested(
            id=self._next_id(task, "review"),
            correlation_id=task.id,
            objective=task.objective,
            plan=self.plan_of(task),
            results={
                s.key: SubtaskResult(summary=s.result, files=tuple(s.result_files))
                for s in subtasks
            },
            evidence=evidence,
            round=task.revision_round + 1,
            guidance=tuple(task.guidance),
        )
        enqueue(self.db, message)
        self.set_status(task, TaskStatus.REVIEWING)
        self.event(task, "review.requested", round=task.revision_round + 1)

    async def on_verdict(self, task: Task, message: ReviewVerdict) -> None:
        """The reviewer approved, or sent subtasks back."""
        await self.record_usage(task, "reviewer", message.usage)
        if message.stuck_reason is not None:
            await self._agent_failed(
                task, "reviewer", message.stuck_reason, unusable=message.unusable
            )
            if task.status == TaskStatus.REVIEWING.value:
                await self.request_review(task)
            return
        task.unusable_streak = 0
        self.event(
            task,
            "review.verdict",
            approved=message.approved,
            summary=message.summary,
            revisions=[{"subtask": r.subtask_id, "problem": r.problem} for r in message.revisions],
        )
        task.review = {
            "approved": message.approved,
            "summary": message.summary,
            "round": task.revision_round + 1,
            "revisions": [
                {"subtask": r.subtask_id, "problem": r.problem} for r in message.revisions
            ],
        }
        if message.approved:
            subtasks = await self.subtasks(task)
            task.result = message.summary or "\n\n".join(f"{s.title}: {s.result}" for s in subtasks)
            self.set_status(task, TaskStatus.COMPLETED)
            self.event(task, "task.completed", result=task.result)
            return
        task.revision_round += 1
        if task.revision_round >= self.settings.stuck_revision_rounds:
            self.pause(
                task,
                f"the reviewer sent work back {task.revision_round} times",
                last_review=message.summary,
            )
            return
        for revision in message.revisions:
            subtask = await self._subtask(task, revision.subtask_id)
            if subtask is not None:
                subtask.status = "pending"
                subtask.revision_notes = [*subtask.revision_notes, revision.problem]
        self.set_status(task, TaskStatus.EXECUTING)
        await self.dispatch(task)

    # --- the person's guidance -----------------------------------------------------------

    async def resume(self, task: Task, action: str) -> None:
        """Goes on after guidance: continue where it stopped, or plan again."""
        task.unusable_streak = task.failure_streak = task.denials = 0
        # calls still waiting for a decision belong to the approach being left behind
        await self.db.execute(
            delete(ToolCall).where(ToolCall.task_id == task.id, ToolCall.status == "proposed")
        )
        if action == "replan" or not task.plan:
            task.revision_round = 0
            self.set_status(task, TaskStatus.PLANNING)
            await self.request_plan(task, replan=bool(task.plan))
            return
        subtasks = await self.subtasks(task)
        if all(s.status == "done" for s in subtasks):
            await self.request_review(task)
            return
        self.set_status(task, TaskStatus.EXECUTING)
        for subtask in subtasks:
            if subtask.status == "running":
                subtask.status = "pending"
        await self.dispatch(task)


def _in_order(plan: Plan) -> list[PlannedSubtask]:
    by_id = {s.id: s for s in plan.subtasks}
    order = TopologicalSorter({s.id: set(s.depends_on) for s in plan.subtasks}).static_order()
    return [by_id[sid] for sid in order]


def _subtask_row(task_id: str, position: int, planned: PlannedSubtask) -> Subtask:
    return Subtask(
        task_id=task_id,
        key=planned.id,
        position=position,
        title=planned.title,
        description=planned.description,
        depends_on=list(planned.depends_on),
        priority=planned.priority,
        acceptance_criteria=list(planned.acceptance_criteria),
        tool_hints=list(planned.tool_hints),
        status="pending",
    )


def _workspace_files(data_dir: Path, task_id: str) -> list[str]:
    root = Workspace(data_dir, task_id).root
    if not root.is_dir():
        return []
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _describe(data_dir: Path, task_id: str, name: str) -> tuple[int, str] | None:
    root = Workspace(data_dir, task_id).root
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def _evidence(data_dir: Path, task_id: str, names: list[str], limit: int) -> dict[str, str]:
    root = Workspace(data_dir, task_id).root
    evidence: dict[str, str] = {}
    for name in names:
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            evidence[name] = "(the file does not exist)"
            continue
        raw = path.read_bytes()[: limit * 4]
        text = raw.decode("utf-8", errors="replace")
        evidence[name] = text if len(text) <= limit else text[:limit] + "\n[truncated]"
    return evidence
