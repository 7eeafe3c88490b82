"""The one way a task changes: load its snapshot, apply a command through the rules, write the
result and its effects in one transaction, and announce it after the commit.

Every writer of task state (the orchestrator, the API's routes, the expiry sweep, the scheduler,
the watchdog) goes through :meth:`TaskStore.change` (or :meth:`TaskStore.apply_in` inside a
larger transaction of its own). A change locks its task's row first, so changes of one task
take turns; what still gets in the way (a writer that did not lock, the server aborting a
transaction, a dropped connection) is rolled back and applied again to a fresh snapshot, so no
caller keeps a retry loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import DBAPIError

from troika_gateway.db.engine import WRITE_CONFLICTS, lock_for_writing, worth_retrying
from troika_gateway.db.models import ProcessedMessage, Task, User, table_of
from troika_gateway.errors import Conflict, NotFound
from troika_gateway.events import publish_events
from troika_gateway.pipeline import rules
from troika_gateway.pipeline.effects import Applied, Effects
from troika_gateway.pipeline.rows import PERSON_COLUMNS, Kept, kept_after, load, write
from troika_gateway.pipeline.snapshot import Limits, Repair, TaskState
from troika_shared import tracing
from troika_shared.files import LocalStore

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_gateway.pipeline.outbox import Publisher
    from troika_gateway.pipeline.snapshot import Command
    from troika_gateway.settings import GatewaySettings
    from troika_shared.files import FileStore


__all__ = ["Applied", "TaskStore", "limits_of"]

log = structlog.get_logger("troika.gateway.store")
_ATTEMPTS = 5  # a conflict means another writer just committed to the task: simply reapply
# Built once (see rows.py). The task's row is locked first (PostgreSQL; SQLite has one writer
# at a time anyway): changes of one task, e.g. the answers of two parallel subtasks, then wait
# for each other instead of racing to the same next command and deadlocking; a change read
# again reads the task as it is now.
_TASK = (
    select(Task, *PERSON_COLUMNS)  # and its person's limits, in the same trip
    .join(User, User.id == Task.user_id)
    .where(Task.id == bindparam("task_id"))
    .with_for_update(of=Task)
    .execution_options(populate_existing=True)
)
_USERS_TASK = _TASK.where(Task.user_id == bindparam("user_id"))
_PROCESSED = table_of(ProcessedMessage)
_KEPT = 256  # tasks whose rows a process keeps as it last wrote them (those at work now)


def _processed(message_id: str) -> dict[str, Any]:
    return {"id": message_id, "processed_at": datetime.now(UTC)}


def command_name(command: Command) -> str:
    """A command's name for traces: ``StepAnswered`` → ``step_answered``."""
    return _snake_case(type(command).__name__)


@functools.cache
def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def limits_of(settings: GatewaySettings) -> Limits:
    """The rules' thresholds from the gateway's settings."""
    small = settings.llm_model if settings.llm_provider == "local" else ""
    fields = settings.model_dump(include=set(Limits.__struct_fields__))
    return Limits(**fields, small_model=small or "")


class TaskStore:
    """Changes tasks through the rules.

    Args:
        settings: Thresholds, the data directory and the keys that seal approved calls.
        publisher: Publishes committed commands and events at once.
        writes: Held around each transaction where the database takes one writer at a time.
        files: Where the tasks' files are (unset: the data directory's ``workspaces`` folder).
    """

    def __init__(
        self,
        settings: GatewaySettings,
        publisher: Publisher,
        writes: asyncio.Lock | None = None,
        files: FileStore | None = None,
    ) -> None:
        self.settings = settings
        self.files = files or LocalStore(settings.data_dir / "workspaces")
        self.effects = Effects(settings, self.files)
        self.publisher = publisher
        self.limits = limits_of(settings)
        self.writes: contextlib.AbstractAsyncContextManager[Any] = (
            writes or contextlib.nullcontext()
        )
        self._kept: OrderedDict[str, Kept] = OrderedDict()

    def _keep(self, kept: Kept | None, task_id: str) -> None:
        """Keeps a committed change's rows for the task's next change (the latest few tasks)."""
        if kept is None:
            return
        self._kept[task_id] = kept
        self._kept.move_to_end(task_id)
        while len(self._kept) > _KEPT:
            self._kept.popitem(last=False)

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
                except (*WRITE_CONFLICTS, DBAPIError) as exc:
                    if not worth_retrying(exc):
                        raise
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
            except (*WRITE_CONFLICTS, DBAPIError) as exc:
                if not worth_retrying(exc):
                    raise
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
        await lock_for_writing(db)
        if user_id is None:
            found = await db.execute(_TASK, {"task_id": task_id})
        else:
            found = await db.execute(_USERS_TASK, {"task_id": task_id, "user_id": user_id})
        row = found.one_or_none()
        task, person = (None, None) if row is None else (row[0], tuple(row[1:]))
        if task is not None and before is not None:
            self._kept.pop(task.id, None)  # what it writes (files, a schedule) is read fresh
            await before(task)
        if task is None:
            applied = Applied()
            if message_id is not None:
                await db.execute(insert(_PROCESSED), _processed(message_id))
        else:
            applied = await self.apply_in(db, task, command, person=person, message_id=message_id)
        if applied.refused is not None:
            await db.rollback()
            return applied
        await db.commit()
        if applied.task is not None:
            self._keep(applied.kept, applied.task.id)
        return applied

    async def announce(self, applied: Applied) -> None:
        """Publishes a committed change's commands and events (after the commit: a crash in
        between leaves the commands to the relay, and the events to a re-read), together: they
        go to NATS in one write instead of the events waiting for the commands' confirmation."""
        sending = []
        if applied.messages:
            sending.append(self.publisher.publish(applied.messages, applied.trace))
        if applied.events:
            sending.append(publish_events(self.publisher.bus, applied.events))
        await asyncio.gather(*sending)

    # --- inside a transaction --------------------------------------------------------------

    async def apply_in(
        self,
        db: AsyncSession,
        task: Task,
        command: Command,
        *,
        person: Sequence[Any] | None = None,
        message_id: str | None = None,
        kept: Kept | None = None,
    ) -> Applied:
        """Applies ``command`` to ``task`` in the caller's transaction (the caller commits, then
        calls :meth:`announce`); ``person``: the values of :data:`~.rows.PERSON_COLUMNS`, if read
        already; ``message_id``: the bus message that carries the command, recorded as applied
        with the change's other rows; ``kept``: the task's other rows, where the caller knows
        them (a task it has just inserted: see :meth:`Kept.new_task`)."""
        name = f"task {command_name(command)}"
        with tracing.task_span(name, task.id, task.trace_context) as span:
            # The watchdog's repair reads the database as it is, whatever wrote it.
            if kept is None and not isinstance(command, Repair):
                kept = self._kept.get(task.id)
            state, rows = await load(db, task, command, kept, person)
            now = datetime.now(UTC)
            outcome = rules.apply(state, command, limits=self.limits, now=now)
            if outcome.refused is not None:
                span.set_attribute("troika.refused", outcome.refused)
                return Applied(task=task, refused=outcome.refused)
            applied = Applied(task=task, trace=tracing.carrier())
            if task.trace_context is None and applied.trace:
                task.trace_context = applied.trace  # a task from before tracing was on
            # Written together at the end (the task's row updated once; on PostgreSQL, one
            # statement: see .batch), not a little before each query on the way.
            with db.no_autoflush:
                await write(db, rows, old=state, new=outcome.state, command=command, now=now,
                            batch=applied.batch)  # fmt: skip
                for effect in outcome.effects:
                    await self.effects.carry_out(db, rows, outcome.state, effect, applied)
                if message_id is not None:
                    applied.insert(_PROCESSED, _processed(message_id))
                await applied.write(db)
            applied.kept = kept_after(rows, outcome.state)  # the version is the flushed one
            span.set_attribute("troika.task.status", outcome.state.status.value)
            return applied

    async def snapshot(self, db: AsyncSession, task: Task) -> TaskState:
        """The task's state as the rules see it, read from the database (what this process
        kept of it is not used: the watchdog looks here for what anything wrote)."""
        state, _ = await load(db, task)
        return state
