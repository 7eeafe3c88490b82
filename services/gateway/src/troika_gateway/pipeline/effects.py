"""Carrying out what the rules asked for, in the change's transaction: outbox messages (an
approved call sealed, a review with its evidence), events, approvals, the audit trail, usage and
the files tools wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from troika_gateway.credentials import load_secrets
from troika_gateway.db.models import (
    AuditEntry,
    File,
    Interaction,
    LlmUsage,
    Outbox,
    Task,
    TaskEvent,
    table_of,
)
from troika_gateway.desktop.dispatch import is_desktop, to_desktop
from troika_gateway.events import EVENTS, event_row, next_event
from troika_gateway.interactions.policies import set_policy
from troika_gateway.pipeline.batch import Batch, Upsert
from troika_gateway.pipeline.outbox import outbox_row
from troika_gateway.pipeline.rows import Kept
from troika_gateway.pipeline.snapshot import (
    Ask,
    Audit,
    Emit,
    Execute,
    RecordFiles,
    RecordUsage,
    Remember,
    Review,
    Send,
    TaskState,
)
from troika_gateway.social.accounts import call_account
from troika_gateway.storage import content_type_of, describe, read_text_start
from troika_shared import catalogue
from troika_shared.approvals import sign_approval
from troika_shared.messages import (
    Message,
    PlanRequested,
    ReviewRequested,
    StepRequested,
    ToolExecute,
)
from troika_shared.messages import ToolCall as ProposedCall
from troika_shared.social import PLATFORMS
from troika_shared.task_events import DesktopWaiting, body, kind_of
from troika_shared.vault import seal_call_secrets

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_gateway.pipeline.rows import Rows
    from troika_gateway.pipeline.snapshot import Effect
    from troika_gateway.settings import GatewaySettings
    from troika_shared.files import FileStore


__all__ = ["Applied", "Effects"]


@dataclass
class Applied:
    """What one change wrote: the task row, its new events and commands (announced after the
    commit), or why the command was refused.

    ``batch`` holds the rows the change writes at its end, its events and outbox messages
    among them, none of them read back within the change (see :class:`.batch.Batch`).
    """

    task: Task | None = None
    refused: str | None = None
    events: list[TaskEvent] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    trace: dict[str, str] = field(default_factory=dict)  # the change's span, its messages' trace
    batch: Batch = field(default_factory=Batch)
    kept: Kept | None = None  # the task's rows as written, kept for its next change once committed

    def insert(self, table: Table, row: dict[str, Any]) -> None:
        """Adds a row to insert at the change's end (each table's rows with the same keys)."""
        self.batch.insert(table, row)

    def send(self, message: Message) -> None:
        """Queues ``message`` in the outbox, announced after the commit."""
        self.insert(_OUTBOX, outbox_row(message, self.trace))
        self.messages.append(message)

    async def write(self, db: AsyncSession) -> None:
        """Writes what the session holds, the task's row, the change's events and the rest of
        its batch (see :meth:`.batch.Batch.write`)."""
        for event in self.events:
            self.batch.insert(EVENTS, event_row(event))
        await self.batch.write(db, self.task)


_OUTBOX = table_of(Outbox)
_ASKS = table_of(Interaction)
_AUDIT = table_of(AuditEntry)
_USAGE = table_of(LlmUsage)
# A file written again keeps its row (its id, origin and first time), with what it holds now.
_RECORD_FILE = Upsert(
    table_of(File), key=("task_id", "name"), sets=("content_type", "size", "sha256", "updated_at")
)


class Effects:
    """Carries out effects.

    Args:
        settings: The evidence size and the keys that seal approved calls.
        files: Where the tasks' files are.
    """

    def __init__(self, settings: GatewaySettings, files: FileStore) -> None:
        self.settings = settings
        self.files = files

    async def carry_out(
        self,
        db: AsyncSession,
        rows: Rows,
        state: TaskState,
        effect: Effect,
        applied: Applied,
    ) -> None:
        task = rows.task
        match effect:
            case Emit(event=event):
                applied.events.append(next_event(task, kind_of(event), body(event)))
            case Send(message=message):
                applied.send(self._offered(rows, message))
            case Execute():
                message, waiting = await self._execute(db, state, effect)
                applied.send(message)
                if waiting is not None:
                    applied.events.append(next_event(task, kind_of(waiting), body(waiting)))
            case Review(message=message, files=files):
                applied.send(await self._with_evidence(task.id, message, files))
            case Ask():
                applied.insert(_ASKS, {
                    "id": effect.id, "user_id": task.user_id, "task_id": task.id,
                    "tool_call_id": rows.call_ids[effect.call_key], "kind": effect.kind,
                    "prompt": effect.prompt, "expires_at": effect.expires_at,
                })  # fmt: skip
            case Audit():
                call = state.call(effect.call_key)
                assert call is not None  # noqa: S101 - the rules audit calls the task has
                applied.insert(_AUDIT, {
                    "user_id": task.user_id,
                    "task_id": task.id,
                    "tool_call_id": rows.call_ids[effect.call_key],
                    "interaction_id": effect.ask_id,
                    "action": effect.action,
                    "actor": effect.actor[:255],
                    "tool": call.tool,
                    "arguments": call.arguments,
                    "reason": effect.reason,
                    "client": effect.client,
                    "at": datetime.now(UTC),
                })  # fmt: skip
            case Remember(tool=tool):
                definition = catalogue.CATALOGUE.get(tool)
                if definition is not None:
                    await set_policy(db, user_id=task.user_id, scope=task.id,
                                     definition=definition, mode="ask_once")  # fmt: skip
            case RecordUsage(agent=agent, usage=usage, subtask=subtask):
                for one in usage:
                    applied.insert(_USAGE, {
                        "task_id": task.id, "agent": agent, "subtask": subtask,
                        "model": one.model, "prompt_tokens": one.prompt_tokens,
                        "completion_tokens": one.completion_tokens,
                        "latency_ms": one.latency_ms, "cost_usd": one.cost_usd,
                    })  # fmt: skip
            case RecordFiles(names=names):
                await self._record_files(rows, names, applied)

    @staticmethod
    def _offered(rows: Rows, message: Message) -> Message:
        """A plan or step request with the tools the person's task may use: the desktop tools
        only while they have a PC paired."""
        if not isinstance(message, (PlanRequested, StepRequested)) or rows.desktop:
            return message
        return msgspec.structs.replace(message, tool_names=catalogue.names(desktop=False))

    async def _execute(
        self, db: AsyncSession, state: TaskState, effect: Execute
    ) -> tuple[Message, DesktopWaiting | None]:
        """The approved call's execution, sealed, with the person's credentials its tool needs
        sealed for this call alone; a desktop call goes to the person's PC instead (with the
        event to announce if that PC is offline now)."""
        call = state.call(effect.call_key)
        assert call is not None  # noqa: S101 - the rules approve calls the task has
        proposed = ProposedCall(key=call.key, tool=call.tool, arguments=call.arguments)
        if is_desktop(call.tool):
            return await to_desktop(
                db, self.settings, message_id=effect.id, task_id=state.id,
                user_id=state.user_id, subtask_id=call.subtask, call=proposed,
            )  # fmt: skip
        seal_key = self.settings.seal_key()
        return ToolExecute(
            id=effect.id,
            correlation_id=state.id,
            user_id=state.user_id,
            subtask_id=call.subtask,
            call=proposed,
            approval=sign_approval(seal_key, state.id, proposed) if seal_key else "",
            secrets=await self._call_secrets(db, state, proposed),
        ), None

    async def _call_secrets(self, db: AsyncSession, state: TaskState, call: ProposedCall) -> str:
        definition = catalogue.CATALOGUE.get(call.tool)
        key = self.settings.call_secrets_key()
        if definition is None or definition.credentials is None or key is None:
            return ""
        if definition.credentials in PLATFORMS:  # the account the person approved, renewed
            account = await call_account(
                db, self.settings, state.user_id, definition.credentials,
                arguments=call.arguments, task_id=state.id,
            )  # fmt: skip
            if account is None:
                return ""  # the tool says plainly that no account is connected
            return seal_call_secrets(key, state.id, call.key, {definition.credentials: account})
        secrets = await load_secrets(db, self.settings, state.user_id, definition.credentials)
        if secrets is None:
            return ""  # the tool says plainly that the person has not set them up
        return seal_call_secrets(key, state.id, call.key, {definition.credentials: secrets})

    async def _with_evidence(
        self, task_id: str, message: ReviewRequested, names: Sequence[str]
    ) -> ReviewRequested:
        """The review request with the start of each file the reviewer is to check, as text,
        and which of them are missing or empty."""
        limit = self.settings.evidence_chars
        evidence: dict[str, str] = {}
        missing: list[str] = []
        empty: list[str] = []
        for name in names:
            text = await read_text_start(self.files, task_id, name, limit)
            if text is None:
                missing.append(name)
                evidence[name] = "(the file does not exist)"
            elif not text.strip():
                empty.append(name)
                evidence[name] = "(the file is empty)"
            else:
                evidence[name] = text
        return msgspec.structs.replace(message, evidence=evidence, missing_files=tuple(missing),
                                       empty_files=tuple(empty))  # fmt: skip

    async def _record_files(self, rows: Rows, names: tuple[str, ...], applied: Applied) -> None:
        """Lists the files a tool wrote among the task's files (so they can be downloaded); one
        that is not there is not recorded, though the state names it."""
        task_id = rows.task.id
        for name in dict.fromkeys(names):
            stored = await describe(self.files, task_id, name)
            if stored is None:
                rows.files_as_recorded = False
                continue
            applied.batch.upsert(_RECORD_FILE, {
                "task_id": task_id, "name": name, "content_type": content_type_of(name),
                "size": stored.size, "sha256": stored.sha256, "origin": "agent",
                "updated_at": datetime.now(UTC),
            })  # fmt: skip
