"""The one way a task changes: load its snapshot, apply a command through the rules, write the
result and its effects in one transaction, and announce it after the commit.

Every writer of task state (the orchestrator, the API's routes, the expiry sweep, the scheduler,
the watchdog) goes through :meth:`TaskStore.change` (or :meth:`TaskStore.apply_in` inside a
larger transaction of its own). A concurrent writer shows as a write conflict (the task's
version moved on, or the next event number was taken): the change is rolled back and applied
again to a fresh snapshot, so no caller keeps a retry loop of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import msgspec
import structlog
from sqlalchemy import delete, func, select

from troika_gateway.credentials import load_secrets
from troika_gateway.db.engine import WRITE_CONFLICTS
from troika_gateway.db.models import (
    AuditEntry,
    File,
    Interaction,
    LlmUsage,
    ProcessedMessage,
    Subtask,
    Task,
    TaskEvent,
    ToolCall,
    new_uuid,
)
from troika_gateway.errors import Conflict, NotFound
from troika_gateway.events import append_event, publish_events
from troika_gateway.interactions.policies import all_modes, set_policy
from troika_gateway.pipeline import rules
from troika_gateway.pipeline.outbox import enqueue
from troika_gateway.pipeline.snapshot import (
    Ask,
    AskState,
    Audit,
    CallState,
    Emit,
    Execute,
    Limits,
    RecordFiles,
    RecordUsage,
    Remember,
    Respond,
    Review,
    Send,
    SubtaskState,
    TaskState,
)
from troika_gateway.pipeline.states import AskStatus, CallStatus, SubtaskStatus, TaskStatus
from troika_gateway.storage import Workspace
from troika_shared import catalogue
from troika_shared.approvals import sign_approval
from troika_shared.messages import Message, Plan, ToolExecute
from troika_shared.messages import Subtask as PlannedSubtask
from troika_shared.messages import ToolCall as ProposedCall
from troika_shared.task_events import body, kind_of
from troika_shared.vault import seal_call_secrets

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_gateway.pipeline.outbox import Publisher
    from troika_gateway.pipeline.snapshot import Command, Effect
    from troika_gateway.settings import GatewaySettings

__all__ = ["Applied", "TaskStore", "limits_of"]

log = structlog.get_logger("troika.gateway.store")
_COUNTERS = (
    "steps",
    "dispatches",
    "revision_round",
    "unusable_streak",
    "failure_streak",
    "denials",
    "in_flight",
    "started_at",
    "finished_at",
)
_ATTEMPTS = 5  # a conflict means another writer just committed to the task: simply reapply


def limits_of(settings: GatewaySettings) -> Limits:
    """The rules' thresholds from the gateway's settings."""
    return Limits(
        stuck_denials=settings.stuck_denials,
        stuck_tool_failures=settings.stuck_tool_failures,
        stuck_revision_rounds=settings.stuck_revision_rounds,
        stuck_unusable_answers=settings.stuck_unusable_answers,
        stuck_same_call=settings.stuck_same_call,
        max_steps=settings.max_steps,
        approval_timeout_s=settings.approval_timeout_s,
    )


@dataclass
class Applied:
    """What one change wrote: the task row, its new events and commands (announced after the
    commit), or why the command was refused."""

    task: Task | None = None
    refused: str | None = None
    events: list[TaskEvent] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    state: TaskState | None = None


@dataclass
class _Rows:
    """The rows a snapshot was read from, to write the new state back to."""

    task: Task
    subtasks: list[Subtask]
    calls: dict[str, ToolCall]
    asks: dict[str, Interaction]


class TaskStore:
    """Changes tasks through the rules.

    Args:
        settings: Thresholds, the data directory and the keys that seal approved calls.
        publisher: Publishes committed commands and events at once.
        writes: Held around each transaction where the database takes one writer at a time.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        publisher: Publisher,
        writes: asyncio.Lock | None = None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.limits = limits_of(settings)
        self.writes: contextlib.AbstractAsyncContextManager[Any] = (
            writes or contextlib.nullcontext()
        )

    # --- the whole change ------------------------------------------------------------------

    async def change(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        task_id: str,
        command: Command,
        *,
        message_id: str | None = None,
    ) -> Applied:
        """Applies ``command`` to the task in a transaction of its own and announces it.

        ``message_id``: the bus message that carries the command, applied once however often
        it is delivered.

        Raises:
            Conflict: The task kept changing under it (after several fresh tries).
        """
        for attempt in range(_ATTEMPTS):
            async with self.writes, sessionmaker() as db:
                try:
                    applied = await self._once(
                        db, task_id, command, message_id=message_id, seen_before=attempt > 0
                    )
                except WRITE_CONFLICTS as exc:
                    log.debug("task.write_conflict", task_id=task_id, error=str(exc))
                    await db.rollback()
                    if attempt == _ATTEMPTS - 1:
                        raise Conflict("the task kept changing; try again") from None
                    continue
            await self.announce(applied)
            return applied
        raise AssertionError("unreachable")  # pragma: no cover

    async def change_in(
        self,
        db: AsyncSession,
        task_id: str,
        command: Command,
        *,
        user_id: str | None = None,
        before: Callable[[Task], Awaitable[None]] | None = None,
    ) -> Applied:
        """Like :meth:`change`, on a request's own session (scoped to ``user_id``); ``before``
        writes what else belongs to the change (a schedule stopped, files recorded) in the
        same transaction, and is done again with it after a conflict.

        Raises:
            NotFound: No such task (of the user's).
            Conflict: The command does not apply (``refused`` says why), or the task kept
                changing under it.
        """
        for attempt in range(_ATTEMPTS):
            try:
                async with self.writes:
                    applied = await self._once(db, task_id, command, user_id=user_id, before=before)
            except WRITE_CONFLICTS:
                await db.rollback()
                if attempt == _ATTEMPTS - 1:
                    raise Conflict("the task kept changing; try again") from None
                continue
            if applied.task is None:
                raise NotFound("task")
            if applied.refused is not None:
                raise Conflict(applied.refused)
            await self.announce(applied)
            return applied
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        db: AsyncSession,
        task_id: str,
        command: Command,
        *,
        message_id: str | None = None,
        user_id: str | None = None,
        before: Callable[[Task], Awaitable[None]] | None = None,
        seen_before: bool = False,
    ) -> Applied:
        # A redelivery is rare: its id is looked up only after the first try met a conflict
        # (the id's row is unique, so applying a message twice cannot commit).
        redelivered = (
            message_id is not None
            and seen_before
            and await db.get(ProcessedMessage, message_id) is not None
        )
        if redelivered:
            return Applied()  # applied already
        query = select(Task).where(Task.id == task_id)
        if user_id is not None:
            query = query.where(Task.user_id == user_id)
        task = await db.scalar(query.execution_options(populate_existing=True))
        if task is not None and before is not None:
            await before(task)
        applied = Applied() if task is None else await self.apply_in(db, task, command)
        if applied.refused is not None:
            await db.rollback()
            return applied
        if message_id is not None:  # added last: nothing waits to be flushed before the reads
            db.add(ProcessedMessage(id=message_id))
        await db.commit()
        return applied

    async def announce(self, applied: Applied) -> None:
        """Publishes a committed change's commands and events (after the commit: a crash in
        between leaves the commands to the relay, and the events to a re-read)."""
        if applied.messages:
            await self.publisher.publish(applied.messages)
        if applied.events:
            await publish_events(self.publisher.bus, applied.events)

    # --- inside a transaction --------------------------------------------------------------

    async def apply_in(self, db: AsyncSession, task: Task, command: Command) -> Applied:
        """Applies ``command`` to ``task`` in the caller's transaction (the caller commits, then
        calls :meth:`announce`)."""
        state, rows = await self._load(db, task)
        now = datetime.now(UTC)
        outcome = rules.apply(state, command, limits=self.limits, now=now)
        if outcome.refused is not None:
            return Applied(task=task, refused=outcome.refused, state=state)
        applied = Applied(task=task, state=outcome.state)
        await self._write(db, rows, old=state, new=outcome.state, command=command, now=now)
        for effect in outcome.effects:
            await self._carry_out(db, rows, outcome.state, effect, applied)
        return applied

    async def snapshot(self, db: AsyncSession, task: Task) -> TaskState:
        """The task's state as the rules see it."""
        state, _ = await self._load(db, task)
        return state

    async def _load(self, db: AsyncSession, task: Task) -> tuple[TaskState, _Rows]:
        subtasks = list(
            await db.scalars(
                select(Subtask).where(Subtask.task_id == task.id).order_by(Subtask.position)
            )
        )
        calls = list(
            await db.scalars(
                select(ToolCall)
                .where(ToolCall.task_id == task.id)
                .order_by(ToolCall.created_at, ToolCall.id)
            )
        )
        asks = list(
            await db.scalars(
                select(Interaction).where(
                    Interaction.task_id == task.id, Interaction.status == AskStatus.PENDING
                )
            )
        )
        files = tuple(await db.scalars(select(File.name).where(File.task_id == task.id)))
        budget = task.budget or {}
        tokens, cost = 0, 0.0
        if budget.get("max_tokens") or budget.get("max_cost_usd"):
            tokens, cost = (
                await db.execute(
                    select(
                        func.coalesce(
                            func.sum(LlmUsage.prompt_tokens + LlmUsage.completion_tokens), 0
                        ),
                        func.coalesce(func.sum(LlmUsage.cost_usd), 0.0),
                    ).where(LlmUsage.task_id == task.id)
                )
            ).one()
        key_of = {c.id: c.key for c in calls}
        state = TaskState(
            id=task.id,
            user_id=task.user_id,
            objective=task.objective,
            status=TaskStatus(task.status),
            title=task.title,
            reason=task.status_reason,
            plan=msgspec.convert(task.plan, Plan) if task.plan else None,
            review=task.review,
            result=task.result,
            budget=task.budget,
            guidance=tuple(task.guidance),
            steps=task.steps,
            dispatches=task.dispatches,
            revision_round=task.revision_round,
            unusable_streak=task.unusable_streak,
            failure_streak=task.failure_streak,
            denials=task.denials,
            in_flight=task.in_flight,
            started_at=task.started_at,
            finished_at=task.finished_at,
            subtasks=[_subtask_state(row) for row in subtasks],
            calls=[_call_state(row) for row in calls],
            asks=[
                AskState(
                    id=row.id,
                    call_key=key_of.get(row.tool_call_id or "", ""),
                    kind="input" if row.kind == "input" else "approval",
                    expires_at=row.expires_at,
                )
                for row in asks
            ],
            files=tuple(sorted(files)),
            tokens=int(tokens),
            cost_usd=float(cost),
            policies=await all_modes(db, task.user_id, task.id),
        )
        rows = _Rows(
            task=task,
            subtasks=subtasks,
            calls={c.key: c for c in calls},
            asks={a.id: a for a in asks},
        )
        return state, rows

    async def _write(  # noqa: PLR0912 - one block per kind of row
        self,
        db: AsyncSession,
        rows: _Rows,
        *,
        old: TaskState,
        new: TaskState,
        command: Command,
        now: datetime,
    ) -> None:
        task = rows.task
        _set(task, "status", new.status.value)
        _set(task, "title", new.title)
        _set(task, "status_reason", new.reason)
        if new.plan is not old.plan:
            task.plan = msgspec.to_builtins(new.plan) if new.plan is not None else None
        if new.review is not old.review:
            task.review = new.review
        _set(task, "result", new.result)
        if new.guidance != old.guidance:
            task.guidance = list(new.guidance)
        for name in _COUNTERS:
            _set(task, name, getattr(new, name))
        if [s.planned for s in new.subtasks] != [s.planned for s in old.subtasks]:
            await db.execute(delete(Subtask).where(Subtask.task_id == task.id))
            for sub in new.subtasks:
                db.add(_subtask_row(task.id, sub))
        else:
            for sub_row, sub in zip(rows.subtasks, new.subtasks, strict=True):
                _set(sub_row, "status", sub.status.value)
                _set(sub_row, "steps", sub.steps)
                _set(sub_row, "result", sub.result)
                _set(sub_row, "in_flight", sub.in_flight)
                if list(sub.result_files) != sub_row.result_files:
                    sub_row.result_files = list(sub.result_files)
                if list(sub.revision_notes) != sub_row.revision_notes:
                    sub_row.revision_notes = list(sub.revision_notes)
        kept = {c.key for c in new.calls}
        new_calls = False
        for key, withdrawn in list(rows.calls.items()):
            if key not in kept:
                await db.delete(withdrawn)  # its pending approval goes with it
                del rows.calls[key]
        for call in new.calls:
            known = rows.calls.get(call.key)
            if known is None:
                row = ToolCall(id=new_uuid(), task_id=task.id, subtask_key=call.subtask,
                               key=call.key, tool=call.tool, arguments=call.arguments,
                               step=call.step, status=call.status.value,
                               proposals=call.proposals)  # fmt: skip
                db.add(row)
                rows.calls[call.key] = row
                new_calls = True
                continue
            _set(known, "status", call.status.value)
            _set(known, "proposals", call.proposals)
            _set(known, "output", call.output)
            _set(known, "error", call.error)
        if new_calls:
            await db.flush()  # approvals and audit entries refer to them
        for ask in new.asks:
            ask_row = rows.asks.get(ask.id)
            if ask_row is None or ask.status == AskStatus.PENDING:
                continue  # a new one is written by its Ask effect
            ask_row.status = ask.status.value
            ask_row.responded_at = now
            if isinstance(command, Respond) and command.ask_id == ask.id:
                ask_row.response = command.response
                ask_row.responded_by = command.responded_by[:255]

    async def _carry_out(
        self,
        db: AsyncSession,
        rows: _Rows,
        state: TaskState,
        effect: Effect,
        applied: Applied,
    ) -> None:
        task = rows.task
        match effect:
            case Emit(event=event):
                applied.events.append(append_event(db, task, kind_of(event), body(event)))
            case Send(message=message):
                enqueue(db, message)
                applied.messages.append(message)
            case Execute():
                message = await self._execute(db, state, effect)
                enqueue(db, message)
                applied.messages.append(message)
            case Review(message=message, files=files):
                evidence = await anyio.to_thread.run_sync(
                    _evidence, self.settings.data_dir, task.id, list(files),
                    self.settings.evidence_chars,
                )  # fmt: skip
                message = msgspec.structs.replace(message, evidence=evidence)
                enqueue(db, message)
                applied.messages.append(message)
            case Ask():
                db.add(
                    Interaction(
                        id=effect.id,
                        user_id=task.user_id,
                        task_id=task.id,
                        tool_call_id=rows.calls[effect.call_key].id,
                        kind=effect.kind,
                        prompt=effect.prompt,
                        expires_at=effect.expires_at,
                    )
                )
            case Audit():
                call = rows.calls[effect.call_key]
                db.add(
                    AuditEntry(
                        user_id=task.user_id,
                        task_id=task.id,
                        tool_call_id=call.id,
                        interaction_id=effect.ask_id,
                        action=effect.action,
                        actor=effect.actor[:255],
                        tool=call.tool,
                        arguments=call.arguments,
                        reason=effect.reason,
                        client=effect.client,
                        at=datetime.now(UTC),
                    )
                )
            case Remember(tool=tool):
                definition = catalogue.CATALOGUE.get(tool)
                if definition is not None:
                    await set_policy(db, user_id=task.user_id, scope=task.id,
                                     definition=definition, mode="ask_once")  # fmt: skip
            case RecordUsage(agent=agent, usage=usage):
                for one in usage:
                    db.add(LlmUsage(task_id=task.id, agent=agent, model=one.model,
                                    prompt_tokens=one.prompt_tokens,
                                    completion_tokens=one.completion_tokens,
                                    latency_ms=one.latency_ms, cost_usd=one.cost_usd))  # fmt: skip
            case RecordFiles(names=names):
                await self._record_files(db, task, names)

    async def _execute(self, db: AsyncSession, state: TaskState, effect: Execute) -> ToolExecute:
        """The approved call's execution, sealed, with the person's credentials its tool needs
        sealed for this call alone."""
        call = state.call(effect.call_key)
        assert call is not None  # noqa: S101 - the rules approve calls the task has
        proposed = ProposedCall(key=call.key, tool=call.tool, arguments=call.arguments)
        seal_key = self.settings.seal_key()
        return ToolExecute(
            id=effect.id,
            correlation_id=state.id,
            user_id=state.user_id,
            subtask_id=call.subtask,
            call=proposed,
            approval=sign_approval(seal_key, state.id, proposed) if seal_key else "",
            secrets=await self._call_secrets(db, state, proposed),
        )

    async def _call_secrets(self, db: AsyncSession, state: TaskState, call: ProposedCall) -> str:
        definition = catalogue.CATALOGUE.get(call.tool)
        key = self.settings.call_secrets_key()
        if definition is None or definition.credentials is None or key is None:
            return ""
        secrets = await load_secrets(db, self.settings, state.user_id, definition.credentials)
        if secrets is None:
            return ""  # the tool says plainly that the person has not set them up
        return seal_call_secrets(key, state.id, call.key, {definition.credentials: secrets})

    async def _record_files(self, db: AsyncSession, task: Task, names: tuple[str, ...]) -> None:
        """Lists the files a tool wrote among the task's files (so they can be downloaded)."""
        for name in names:
            info = await anyio.to_thread.run_sync(_describe, self.settings.data_dir, task.id, name)
            if info is None:
                continue
            size, digest = info
            row = await db.scalar(select(File).where(File.task_id == task.id, File.name == name))
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if row is None:
                db.add(File(task_id=task.id, name=name, content_type=content_type, size=size,
                            sha256=digest, origin="agent"))  # fmt: skip
            else:
                row.size, row.sha256, row.updated_at = size, digest, datetime.now(UTC)


def _set(row: object, name: str, value: object) -> None:
    """Sets an attribute only when it changes (an unchanged row is not written)."""
    if getattr(row, name) != value:
        setattr(row, name, value)


def _subtask_state(row: Subtask) -> SubtaskState:
    planned = PlannedSubtask(
        id=row.key,
        title=row.title,
        description=row.description,
        depends_on=tuple(row.depends_on),
        priority=row.priority,
        acceptance_criteria=tuple(row.acceptance_criteria),
        tool_hints=tuple(row.tool_hints),
    )
    return SubtaskState(
        key=row.key,
        planned=planned,
        position=row.position,
        status=SubtaskStatus(row.status),
        steps=row.steps,
        result=row.result,
        result_files=tuple(row.result_files),
        revision_notes=tuple(row.revision_notes),
        in_flight=row.in_flight,
    )


def _subtask_row(task_id: str, sub: SubtaskState) -> Subtask:
    planned = sub.planned
    return Subtask(
        task_id=task_id,
        key=sub.key,
        position=sub.position,
        title=planned.title,
        description=planned.description,
        depends_on=list(planned.depends_on),
        priority=planned.priority,
        acceptance_criteria=list(planned.acceptance_criteria),
        tool_hints=list(planned.tool_hints),
        status=sub.status.value,
        steps=sub.steps,
        result=sub.result,
        result_files=list(sub.result_files),
        revision_notes=list(sub.revision_notes),
        in_flight=sub.in_flight,
    )


def _call_state(row: ToolCall) -> CallState:
    return CallState(
        key=row.key,
        subtask=row.subtask_key,
        tool=row.tool,
        arguments=row.arguments,
        step=row.step,
        status=CallStatus(row.status),
        proposals=row.proposals,
        output=row.output,
        error=row.error,
    )


def _describe(data_dir: Path, task_id: str, name: str) -> tuple[int, str] | None:
    root = Workspace(data_dir, task_id).root
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _evidence(data_dir: Path, task_id: str, names: list[str], limit: int) -> dict[str, str]:
    root = Workspace(data_dir, task_id).root
    evidence: dict[str, str] = {}
    for name in names:
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            evidence[name] = "(the file does not exist)"
            continue
        with path.open("rb") as handle:
            raw = handle.read(limit * 4)
        text = raw.decode("utf-8", errors="replace")
        evidence[name] = text if len(text) <= limit else text[:limit] + "\n[truncated]"
    return evidence
