"""Reading a user's tasks: lists, detail, the event log and files. Every query is scoped to the
caller: another user's task is indistinguishable from a task that does not exist."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Float, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.functions import FunctionElement

from troika_gateway.db.models import (
    File,
    LlmUsage,
    Task,
    TaskEvent,
    User,
)
from troika_gateway.errors import NotFound
from troika_gateway.pipeline.rows import spending
from troika_gateway.storage import file_name, stream_file
from troika_gateway.tasks.previews import (
    EXCEL_MAX_BYTES,
    TEXT_MAX_BYTES,
    FilePreview,
    UnknownSheet,
    needs_whole_file,
    preview_of,
)
from troika_gateway.tasks.schemas import (
    Cost,
    EventPage,
    EventView,
    FileView,
    SubtaskView,
    TaskDetail,
    TaskListItem,
    TaskPage,
    TaskSort,
    TaskStats,
    TaskSummary,
)
from troika_shared.files.reading import read_start

if TYPE_CHECKING:
    from collections.abc import Sequence

    from litestar.response import Stream
    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_shared.files import FileStore


__all__ = ["TaskQueries", "file_view", "summary_of"]

_RUNNING = ("queued", "planning", "executing", "reviewing")
_WAITING = ("awaiting_plan_review", "awaiting_approval", "awaiting_input", "needs_guidance")


class elapsed_seconds(FunctionElement[float]):  # noqa: N801 - used as an SQL function
    """Seconds from the second datetime column to the first, in SQL (NULL if either is)."""

    type = Float()
    inherit_cache = True
    name = "elapsed_seconds"


@compiles(elapsed_seconds, "sqlite")
def _elapsed_sqlite(element: elapsed_seconds, compiler: Any, **kw: Any) -> str:  # noqa: ANN401
    end, start = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@compiles(elapsed_seconds)
def _elapsed(element: elapsed_seconds, compiler: Any, **kw: Any) -> str:  # noqa: ANN401
    end, start = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


_Summary = TypeVar("_Summary", bound=TaskSummary)


def summary_of(
    task: Task,
    kind: type[_Summary] = TaskSummary,  # type: ignore[assignment]
    **more: Any,  # noqa: ANN401 - the fields ``kind`` adds
) -> _Summary:
    """A task as it appears in lists (``kind``: a view that adds ``more`` fields to it)."""
    return kind(
        **more,
        id=task.id,
        title=task.title,
        objective=task.objective,
        status=task.status,
        status_reason=task.status_reason,
        parent_id=task.parent_id,
        schedule_id=task.schedule_id,
        created_at=task.created_at,
        updated_at=task.updated_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        last_event_seq=task.last_event_seq,
        review_plan=task.review_plan,
    )


def file_view(task_id: str, row: File) -> FileView:
    return FileView(
        name=row.name,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        origin=row.origin,
        created_at=row.created_at,
        updated_at=row.updated_at,
        url=f"/tasks/{task_id}/files/{row.name}",
    )


class TaskQueries:
    """Reads for one user.

    Args:
        db: The request's session.
        user_id: The caller; every query is scoped to them.
        file_store: Where the tasks' files are.
    """

    def __init__(self, db: AsyncSession, user_id: str, file_store: FileStore) -> None:
        self.db = db
        self.user_id = user_id
        self.file_store = file_store

    async def get(self, task_id: str) -> Task:
        """The caller's task.

        Raises:
            NotFound: No such task, or not the caller's.
        """
        task = await self.db.scalar(
            select(Task).where(Task.id == task_id, Task.user_id == self.user_id)
        )
        if task is None:
            raise NotFound("task")
        return task

    async def page(
        self,
        *,
        statuses: Sequence[str],
        query: str,
        limit: int,
        offset: int,
        sort: TaskSort = TaskSort.NEWEST,
        schedule: str = "",
    ) -> TaskPage:
        """The caller's tasks, filtered by status, text and schedule, in the order asked for."""
        where: list[Any] = [Task.user_id == self.user_id]
        if statuses:
            where.append(Task.status.in_(statuses))
        if schedule:
            where.append(Task.schedule_id == schedule)
        if text := query.strip():
            pattern = (
                "%"
                + text.lower().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
                + "%"
            )
            where.append(
                or_(
                    func.lower(Task.title).like(pattern, escape="\\"),
                    func.lower(Task.objective).like(pattern, escape="\\"),
                )
            )
        total = await self.db.scalar(select(func.count()).select_from(Task).where(*where)) or 0
        # each listed task's spend, summed over its own usage rows (indexed by task)
        cost = (
            select(func.coalesce(func.sum(LlmUsage.cost_usd), 0.0))
            .where(LlmUsage.task_id == Task.id)
            .scalar_subquery()
        )
        statement = select(Task, cost).where(*where)
        newest = (Task.created_at.desc(), Task.id.desc())
        if sort == TaskSort.OLDEST:
            statement = statement.order_by(Task.created_at.asc(), Task.id.asc())
        elif sort == TaskSort.COST:
            statement = statement.order_by(cost.desc(), *newest)
        elif sort == TaskSort.DURATION:
            took = elapsed_seconds(Task.finished_at, Task.started_at)
            statement = statement.order_by(took.desc().nulls_last(), *newest)
        else:
            statement = statement.order_by(*newest)
        rows = await self.db.execute(statement.limit(limit).offset(offset))
        items = [
            summary_of(task, TaskListItem, cost_usd=float(spent_usd)) for task, spent_usd in rows
        ]
        return TaskPage(items=items, total=total, limit=limit, offset=offset)

    async def stats(self) -> TaskStats:
        """How many of the caller's tasks stand where, and what they cost in all."""
        rows = await self.db.execute(
            select(Task.status, func.count())
            .where(Task.user_id == self.user_id)
            .group_by(Task.status)
        )
        counts: dict[str, int] = dict(rows.all())
        spent = await self.db.scalar(
            select(func.coalesce(func.sum(LlmUsage.cost_usd), 0.0))
            .select_from(LlmUsage)
            .join(Task, Task.id == LlmUsage.task_id)
            .where(Task.user_id == self.user_id)
        )
        user = await self.db.get(User, self.user_id)
        period = await spending(self.db, self.user_id, datetime.now(UTC))
        return TaskStats(
            spent_today_usd=period["day"],
            spent_this_month_usd=period["month"],
            daily_budget_usd=user.daily_budget_usd if user else None,
            monthly_budget_usd=user.monthly_budget_usd if user else None,
            tokens_today=int(period["day_tokens"]),
            tokens_this_month=int(period["month_tokens"]),
            daily_budget_tokens=user.daily_budget_tokens if user else None,
            monthly_budget_tokens=user.monthly_budget_tokens if user else None,
            total=sum(counts.values()),
            completed=counts.get("completed", 0),
            running=sum(counts.get(s, 0) for s in _RUNNING),
            waiting=sum(counts.get(s, 0) for s in _WAITING),
            failed=counts.get("failed", 0),
            cancelled=counts.get("cancelled", 0),
            scheduled=counts.get("scheduled", 0),
            cost_usd=float(spent or 0.0),
        )

    async def detail(self, task_id: str) -> TaskDetail:
        """Everything about one task."""
        task = await self.db.scalar(
            select(Task)
            .where(Task.id == task_id, Task.user_id == self.user_id)
            .options(selectinload(Task.subtasks))
        )
        if task is None:
            raise NotFound("task")
        per_agent: dict[str, Cost] = {}
        per_subtask: dict[str, Cost] = {}
        for agent, subtask, calls, prompt, completion, cost in await self.db.execute(
            select(
                LlmUsage.agent,
                LlmUsage.subtask,
                func.count(LlmUsage.id),
                func.coalesce(func.sum(LlmUsage.prompt_tokens), 0),
                func.coalesce(func.sum(LlmUsage.completion_tokens), 0),
                func.coalesce(func.sum(LlmUsage.cost_usd), 0.0),
            )
            .where(LlmUsage.task_id == task.id)
            .group_by(LlmUsage.agent, LlmUsage.subtask)
        ):
            spent = Cost(calls=int(calls), prompt_tokens=int(prompt),
                         completion_tokens=int(completion), cost_usd=float(cost))  # fmt: skip
            _add(per_agent.setdefault(str(agent), Cost()), spent)
            if subtask:
                _add(per_subtask.setdefault(str(subtask), Cost()), spent)
        every = per_agent.values()
        return summary_of(
            task,
            TaskDetail,
            result=task.result,
            plan=task.plan,
            review=task.review,
            budget=task.budget,
            guidance=list(task.guidance),
            subtasks=[
                SubtaskView(
                    key=s.key,
                    title=s.title,
                    description=s.description,
                    depends_on=list(s.depends_on),
                    priority=s.priority,
                    acceptance_criteria=list(s.acceptance_criteria),
                    tool_hints=list(s.tool_hints),
                    status=s.status,
                    result=s.result,
                    cost=per_subtask.get(s.key, Cost()),
                )
                for s in task.subtasks
            ],
            files=await self.files(task.id),
            cost=Cost(
                calls=sum(c.calls for c in every),
                prompt_tokens=sum(c.prompt_tokens for c in every),
                completion_tokens=sum(c.completion_tokens for c in every),
                cost_usd=sum(c.cost_usd for c in every),
            ),
            cost_by_agent=per_agent,
        )

    async def events(self, task_id: str, after: int, limit: int) -> EventPage:
        """The task's events with ``seq > after``, oldest first."""
        task = await self.get(task_id)
        rows = await self.db.scalars(
            select(TaskEvent)
            .where(TaskEvent.task_id == task.id, TaskEvent.seq > after)
            .order_by(TaskEvent.seq)
            .limit(limit)
        )
        events = [
            EventView(seq=e.seq, kind=e.kind, data=e.data, created_at=e.created_at) for e in rows
        ]
        return EventPage(
            task_id=task.id, events=events, last_seq=events[-1].seq if events else after
        )

    async def files(self, task_id: str) -> list[FileView]:
        """The files in the task's workspace."""
        rows = await self.db.scalars(
            select(File).where(File.task_id == task_id).order_by(File.name)
        )
        return [file_view(task_id, row) for row in rows]

    async def download(self, task_id: str, name: str) -> Stream:
        """One file of the task, streamed as an attachment.

        Raises:
            NotFound: No such task or file.
            InvalidInput: The name is not one a file can have.
        """
        task = await self.get(task_id)
        stored = file_name(name)
        row = await self.db.scalar(select(File).where(File.task_id == task.id, File.name == stored))
        if row is None:
            raise NotFound("file")
        try:
            return await stream_file(self.file_store, task.id, stored, media_type=row.content_type)
        except FileNotFoundError:
            raise NotFound("file") from None

    async def preview(self, task_id: str, name: str, sheet: str | None = None) -> FilePreview:
        """What one file of the task looks like (the start of it; a workbook's ``sheet``).

        Raises:
            NotFound: No such task, file, or sheet.
            InvalidInput: The name is not one a file can have.
        """
        task = await self.get(task_id)
        stored = file_name(name)
        row = await self.db.scalar(select(File).where(File.task_id == task.id, File.name == stored))
        if row is None:
            raise NotFound("file")
        limit = EXCEL_MAX_BYTES if needs_whole_file(stored) else TEXT_MAX_BYTES
        try:
            data = await read_start(self.file_store, task.id, stored, limit + 1)
        except FileNotFoundError:
            raise NotFound("file") from None
        more = len(data) > limit
        try:  # a workbook takes a while to read: not on the event loop
            return await asyncio.to_thread(preview_of, stored, row.content_type, row.size,
                                           data[:limit], more=more, sheet=sheet)  # fmt: skip
        except UnknownSheet:
            raise NotFound("sheet") from None


def _add(total: Cost, more: Cost) -> None:
    total.calls += more.calls
    total.prompt_tokens += more.prompt_tokens
    total.completion_tokens += more.completion_tokens
    total.cost_usd += more.cost_usd
