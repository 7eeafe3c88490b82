"""Task operations for one caller. Every query is scoped to the caller: another user's task is
indistinguishable from a task that does not exist."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import bindparam, delete, select

from troika_gateway.db.models import (
    File,
    Schedule,
    Task,
    TaskStatus,
    User,
    new_uuid,
)
from troika_gateway.errors import BudgetUsedUp, Conflict, InvalidInput, NotFound
from troika_gateway.events import append
from troika_gateway.pipeline.outbox import enqueue
from troika_gateway.pipeline.planning import plan_problem
from troika_gateway.pipeline.rows import PERSON_COLUMNS, Kept, person_budget
from troika_gateway.pipeline.snapshot import (
    Cancel,
    EditPlan,
    Guide,
    Note,
    Rename,
    SetBudget,
    Start,
)
from troika_gateway.pipeline.store import Applied
from troika_gateway.pipeline.stuck import limit_reached, limit_words
from troika_gateway.scheduling.service import ScheduleSpec, create_scheduled_task, first_run
from troika_gateway.scheduling.times import SystemClock
from troika_gateway.storage import (
    Stored,
    content_type_of,
    copy_files,
    record_file,
    safe_name,
    stream_file,
    upload_to_task,
)
from troika_gateway.tasks.queries import TaskQueries, file_view
from troika_shared import catalogue, tracing
from troika_shared import task_events as ev
from troika_shared.browser import SCREEN_NAME
from troika_shared.messages import Plan, Subtask, TaskStopped, derive_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from datetime import datetime

    from litestar.datastructures import UploadFile
    from litestar.response import Stream
    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_gateway.pipeline.snapshot import Command
    from troika_gateway.pipeline.store import TaskStore
    from troika_gateway.scheduling.times import Clock
    from troika_gateway.settings import GatewaySettings
    from troika_gateway.tasks.schemas import (
        Budget,
        FileView,
        FollowUp,
        GuidanceReply,
        PlanEdit,
        PlanStep,
        TaskCreate,
    )
    from troika_shared.task_events import TaskEventBody

__all__ = ["Tasks"]

# What a new task takes from its person, in one trip: whether its plan waits for review, the
# limits its start is checked against, and whether the desktop tools are offered.
_PERSON = select(User.review_plans, *PERSON_COLUMNS).where(User.id == bindparam("user_id"))


def _title_from(objective: str) -> str:
    first = objective.strip().splitlines()[0]
    return first if len(first) <= 80 else first[:79].rstrip() + "…"


class Tasks(TaskQueries):
    """Task operations on one database session, for one user (the reads are its base's).

    Args:
        db: The request's session.
        user_id: The caller; every query is scoped to them.
        settings: The largest file accepted, where uploads are staged.
        store: Changes tasks through the rules; keeps their files.
        clock: The time, for schedules.
    """

    def __init__(
        self,
        db: AsyncSession,
        user_id: str,
        settings: GatewaySettings,
        store: TaskStore,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(db, user_id, store.files)
        self.store = store
        self.settings = settings
        self.max_upload_bytes = settings.max_upload_bytes
        self.clock = clock or SystemClock()
        # committed changes whose commands and events go out once the request is answered
        self.to_announce: list[Applied] = []
        self.jobs_to_plan: list[tuple[str, datetime]] = []
        self.jobs_to_withdraw: list[tuple[str, datetime]] = []
        self._person: tuple[Any, ...] | None = None

    # --- writing ---------------------------------------------------------------------------

    async def _apply(
        self,
        task: Task,
        command: Command,
        *,
        person: Sequence[Any] | None = None,
        kept: Kept | None = None,
    ) -> None:
        """Applies a command to a task of this transaction (announced after the request);
        ``person`` and ``kept``: what is known of the task already (see ``apply_in``)."""
        applied = await self.store.apply_in(self.db, task, command, person=person, kept=kept)
        if applied.refused is not None:
            raise Conflict(applied.refused)
        self.to_announce.append(applied)

    def _event(self, task: Task, event: TaskEventBody) -> None:
        self.to_announce.append(Applied(events=[append(self.db, task, event)]))

    async def create(self, data: TaskCreate, uploads: Sequence[UploadFile] = ()) -> Task:
        """A new task: planning at once, or waiting for its schedule; ``uploads`` are in its
        folder before the planners hear of it, so the plan knows them.

        Raises:
            InvalidInput: The schedule is not valid (the field says which part), or a file name
                is not safe.
            PayloadTooLarge: A file is over the limit (nothing is created).
        """
        budget = msgspec.to_builtins(data.budget) if data.budget else None
        spec = None
        if data.scheduled:
            spec = ScheduleSpec(
                run_at=data.run_at, cron=data.cron, timezone=data.timezone, until=data.until,
                max_runs=data.max_runs, misfire=data.misfire, policies=data.policies,
            )  # fmt: skip
            first_run(spec, self.clock.now())  # refuses a bad schedule before anything is written
        status = TaskStatus.QUEUED if spec is None else TaskStatus.SCHEDULED
        review_plan = False  # scheduled runs start while the person may be away: no review
        if spec is None:
            await self._within_budget()
            review_plan = await self._reviews_plans(asked=data.review_plan)
        task = await self._insert(data.objective, data.title, budget, status=status,
                                  review_plan=review_plan)  # fmt: skip
        await self._attach(task, uploads)
        if spec is None:
            return await self._start(task, with_files=bool(uploads))
        schedule = await create_scheduled_task(self.db, task, spec, self.clock)
        due = schedule.next_run_at
        self._event(task, ev.TaskScheduled(schedule_id=schedule.id,
                                           run_at=due.isoformat() if due else None))  # fmt: skip
        await self.db.commit()
        if due is not None:
            self.jobs_to_plan.append((schedule.id, due))
        return task

    async def _within_budget(self) -> None:
        """Refuses a new task when one of the person's own daily or monthly limits (money or
        tokens) is used up.

        Raises:
            BudgetUsedUp: It is (the message says which, and what was used).
        """
        person = (await self._person_row())[1:]
        limits, spent = await person_budget(self.db, self.user_id, self.clock.now(), person)
        if (reached := limit_reached(limits, spent)) is None:
            return
        used_up = limit_words(*reached, when=True)
        raise BudgetUsedUp(f"{used_up}; raise it in your profile to start more tasks")

    async def set_budget(self, task_id: str, budget: Budget) -> Task:
        """Sets the task's budget; a task its budget paused goes on when the new one allows.

        Raises:
            Conflict: The task has finished.
        """
        limits = {k: v for k, v in msgspec.to_builtins(budget).items() if v is not None}
        return await self._change(task_id, SetBudget(budget=limits or None))

    async def _reviews_plans(self, *, asked: bool | None) -> bool:
        """Whether a new task's plan waits for review: as asked, else the person's default."""
        if asked is not None:
            return asked
        return bool((await self._person_row())[0])

    async def _person_row(self) -> tuple[Any, ...]:
        """The caller's :data:`_PERSON` row, read once per request."""
        if self._person is None:
            found = (await self.db.execute(_PERSON, {"user_id": self.user_id})).one_or_none()
            if found is None:  # signed in a moment ago, deleted since
                raise NotFound("user")
            self._person = tuple(found)
        return self._person

    async def _attach(self, task: Task, uploads: Sequence[UploadFile]) -> None:
        """Stores a new task's files and records them (in the open transaction); on a refused
        file its folder is removed again, and the caller's rollback forgets the task."""
        if not uploads:
            return
        try:
            stored = await self._store(task, uploads)
            for upload, name, info in stored:
                await self._record(task, name, info, upload.content_type, "upload")
        except BaseException:
            await self.file_store.delete_task(task.id)
            raise
        self._event(task, ev.FilesUploaded(names=[name for _, name, _ in stored]))

    async def _store(
        self, task: Task, uploads: Sequence[UploadFile]
    ) -> list[tuple[UploadFile, str, Stored]]:
        """Streams uploads into the task's files, in order, every name checked before the
        first is stored; returns each with its name and digest.

        Raises:
            InvalidInput: A name is not safe (nothing is stored).
            PayloadTooLarge: A file is over the limit (it is not stored; those before it are).
        """
        names = [safe_name(upload.filename or "") for upload in uploads]
        staging = self.settings.data_dir / "staging"
        limit = self.max_upload_bytes
        return [
            (upload, name, await upload_to_task(self.file_store, task.id, name, upload,
                                                staging=staging, limit=limit))
            for upload, name in zip(uploads, names, strict=True)
        ]  # fmt: skip

    async def _stop_schedule(self, task: Task) -> None:
        """A scheduled task cancelled or deleted takes its schedule with it."""
        if task.status != TaskStatus.SCHEDULED.value or task.schedule_id is None:
            return
        schedule = await self.db.get(Schedule, task.schedule_id)
        if schedule is None or schedule.status not in ("active", "paused"):
            return
        if schedule.next_run_at is not None:
            self.jobs_to_withdraw.append((schedule.id, schedule.next_run_at))
        schedule.status = "cancelled"
        schedule.next_run_at = None

    async def _start(self, task: Task, *, with_files: bool) -> Task:
        """Sends the new task to the planners (through the outbox, with the commit);
        ``with_files``: files were recorded with it."""
        await self.db.flush()
        person = (await self._person_row())[1:]
        await self._apply(task, Start(), person=person,
                          kept=Kept.new_task(task, with_files=with_files))  # fmt: skip
        await self.db.commit()
        return task

    async def _insert(  # noqa: PLR0917 - what a new task is made of
        self,
        objective: str,
        title: str,
        budget: dict[str, Any] | None,
        parent: Task | None = None,
        guidance: list[str] | None = None,
        status: TaskStatus = TaskStatus.QUEUED,
        *,
        review_plan: bool = False,
    ) -> Task:
        objective = objective.strip()
        if not objective:
            raise InvalidInput(
                "the objective is empty", [{"field": "objective", "message": "write what to do"}]
            )
        task = Task(
            id=new_uuid(),  # now, for its first event: the task and the event go in one flush
            user_id=self.user_id,
            title=title.strip() or _title_from(objective),
            objective=objective,
            status=status.value,
            budget=budget,
            parent_id=parent.id if parent else None,
            guidance=guidance or [],
            last_event_seq=0,
            review_plan=review_plan,
            trace_context=tracing.carrier() or None,  # the request that made it: the task's trace
        )
        self.db.add(task)
        self._event(task, ev.TaskCreated(title=task.title, status=task.status))
        return task

    async def _change(
        self,
        task_id: str,
        command: Command,
        before: Callable[[Task], Awaitable[None]] | None = None,
    ) -> Task:
        """Applies ``command`` to the caller's task in its own transaction.

        Raises:
            NotFound: No such task of the caller's.
            Conflict: The command does not apply to the task as it is.
        """
        applied = await self.store.change_in(
            self.db, task_id, command, user_id=self.user_id, before=before
        )
        assert applied.task is not None  # noqa: S101 - change_in raised otherwise
        return applied.task

    async def rename(self, task_id: str, title: str) -> Task:
        """Gives a task a new title."""
        clean = title.strip()
        if not clean:
            raise InvalidInput("the title is empty", [{"field": "title", "message": "is empty"}])
        return await self._change(task_id, Rename(title=clean))

    async def delete(self, task_id: str) -> None:
        """Deletes a task with its events, files and workspace."""
        task = await self.get(task_id)
        await self._stop_schedule(task)
        stopped = None
        if not TaskStatus(task.status).final:  # calls on their way must not run for it any more
            stopped = TaskStopped(id=derive_id(task.id, "stopped"), correlation_id=task.id,
                                  status="deleted")  # fmt: skip
            enqueue(self.db, stopped)
        await self.db.execute(delete(Task).where(Task.id == task.id, Task.user_id == self.user_id))
        await self.db.commit()
        if stopped is not None:
            self.to_announce.append(Applied(messages=[stopped]))
        await self.file_store.delete_task(task.id)

    async def cancel(self, task_id: str) -> Task:
        """Stops a task that has not finished: its approvals close, calls on their way to the
        executors do not run, and a scheduled task takes its schedule with it.

        Raises:
            Conflict: It has finished already.
        """
        return await self._change(
            task_id, Cancel(by="api", reason="cancelled by you"), before=self._stop_schedule
        )

    async def rerun(self, task_id: str) -> Task:
        """A fresh run of the same objective, with the files that were uploaded to it."""
        old = await self.get(task_id)
        await self._within_budget()
        new = await self._insert(old.objective, old.title, old.budget,
                                 review_plan=old.review_plan)  # fmt: skip
        await self._copy_files(old, new, only_uploads=True)
        await self._start(new, with_files=True)
        await self._change(old.id, Note(event=ev.TaskRerun(task_id=new.id)))
        return new

    async def follow_up(self, task_id: str, data: FollowUp) -> Task:
        """A follow-up that carries this task's result and files.

        Raises:
            Conflict: The task has not finished.
        """
        old = await self.get(task_id)
        if not TaskStatus(old.status).final:
            raise Conflict("a task can be continued once it has finished; cancel it first")
        await self._within_budget()
        carried = [f"The previous task's result:\n{old.result}"] if old.result else []
        review_plan = await self._reviews_plans(asked=None)
        new = await self._insert(data.objective, "", old.budget, parent=old, guidance=carried,
                                 review_plan=review_plan)  # fmt: skip
        await self._copy_files(old, new, only_uploads=False)
        await self._start(new, with_files=True)
        await self._change(old.id, Note(event=ev.TaskContinued(task_id=new.id)))
        return new

    async def guidance(self, task_id: str, reply: GuidanceReply) -> Task:
        """The person's answer to a task that paused for guidance.

        Raises:
            Conflict: The task is not waiting for guidance.
            InvalidInput: Continuing or re-planning without instructions.
        """
        if reply.action != "cancel" and not reply.text.strip():
            raise InvalidInput(
                "say what the agents should do", [{"field": "text", "message": "is empty"}]
            )
        return await self._change(task_id, Guide(action=reply.action, text=reply.text.strip()))

    async def edit_plan(self, task_id: str, edit: PlanEdit) -> Task:
        """The person's version of a plan waiting for their review; with ``start`` the task
        works it at once.

        Raises:
            InvalidInput: The plan cannot be worked (a repeated id, an unknown dependency or
                tool, a circle); the field says where.
            Conflict: The task's plan is not waiting for review.
        """
        plan = None if edit.subtasks is None else self._plan_of(edit.subtasks, edit.summary)
        if plan is not None and (problem := plan_problem(plan)) is not None:
            raise InvalidInput("the plan cannot be worked as it is",
                               [{"field": "subtasks", "message": problem}])  # fmt: skip
        return await self._change(task_id, EditPlan(plan=plan, summary=edit.summary,
                                                    start=edit.start))  # fmt: skip

    @staticmethod
    def _plan_of(steps: Sequence[PlanStep], summary: str | None) -> Plan:
        """The person's subtasks as a plan.

        Raises:
            InvalidInput: An id used twice, a dependency or tool that does not exist.
        """
        ids = [step.id for step in steps]
        problems: list[dict[str, str]] = []

        def problem(where: str, message: str) -> None:
            problems.append({"field": where, "message": message})

        for n, step in enumerate(steps):
            where = f"subtasks[{n}]"
            if ids.count(step.id) > 1:
                problem(f"{where}.id", f"{step.id} is used twice")
            if step.id in step.depends_on:
                problem(f"{where}.depends_on", "a subtask cannot wait for itself")
            if unknown := sorted(set(step.depends_on) - set(ids)):
                problem(f"{where}.depends_on", "no subtask is called " + ", ".join(unknown))
            if tools := sorted(set(step.tool_hints) - set(catalogue.CATALOGUE)):
                problem(f"{where}.tool_hints", "no tool is called " + ", ".join(tools))
        if problems:
            raise InvalidInput("the plan cannot be worked as it is", problems)
        return Plan(
            summary=(summary or "").strip(),
            subtasks=tuple(
                Subtask(id=step.id, title=step.title.strip(), description=step.description.strip(),
                        depends_on=tuple(dict.fromkeys(step.depends_on)),
                        acceptance_criteria=tuple(step.acceptance_criteria),
                        tool_hints=tuple(dict.fromkeys(step.tool_hints)))
                for step in steps
            ),
        )  # fmt: skip

    async def browser_screen(self, task_id: str) -> Stream:
        """The task's browser page as it was after its latest browser action (PNG).

        Raises:
            NotFound: No such task of the caller's, or it has no browser page.
        """
        task = await self.get(task_id)
        try:
            return await stream_file(self.file_store, task.id, SCREEN_NAME, media_type="image/png",
                                     kind="inline", cache="no-store")  # fmt: skip
        except FileNotFoundError:
            raise NotFound("browser page") from None

    async def upload(self, task_id: str, uploads: Sequence[UploadFile]) -> list[FileView]:
        """Stores uploaded files in the task's workspace (a file of the same name is replaced).

        Raises:
            InvalidInput: No file, or an unsafe name.
            PayloadTooLarge: A file is over the limit.
        """
        if not uploads:
            raise InvalidInput("no file in the upload", [{"field": "files", "message": "empty"}])
        task = await self.get(task_id)
        stored = await self._store(task, uploads)
        rows: list[File] = []

        async def record(fresh: Task) -> None:
            # Recorded here, not before: a retry after a concurrent write (the orchestrator
            # starting the task) rolls back everything of the attempt, the records too.
            rows[:] = [
                await self._record(fresh, name, info, upload.content_type, "upload")
                for upload, name, info in stored
            ]

        names = [name for _, name, _ in stored]
        await self._change(task.id, Note(event=ev.FilesUploaded(names=names)), before=record)
        return [file_view(task.id, row) for row in rows]

    async def _record(
        self, task: Task, name: str, info: Stored, declared_type: str, origin: str
    ) -> File:
        content_type = content_type_of(name, declared_type)
        return await record_file(self.db, task.id, name, info, content_type=content_type,
                                 origin=origin)  # fmt: skip

    async def _copy_files(self, old: Task, new: Task, *, only_uploads: bool) -> None:
        await copy_files(self.db, self.file_store, old.id, new.id, only_uploads=only_uploads)
        await self.db.commit()
