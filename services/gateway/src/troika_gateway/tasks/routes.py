"""The task endpoints: ``/tasks/…``."""

from __future__ import annotations

# Litestar reads handler and provider annotations at run time: their types are real imports.
from collections.abc import AsyncIterator  # noqa: TC003
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, MultipartBody, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: TC002

from troika_gateway.auth.middleware import Principal  # noqa: TC001
from troika_gateway.db.models import TaskStatus
from troika_gateway.errors import InvalidInput
from troika_gateway.openapi import BEARER
from troika_gateway.tasks.previews import FilePreview
from troika_gateway.tasks.queries import summary_of
from troika_gateway.tasks.schemas import (
    Budget,
    EventPage,
    FileView,
    FollowUp,
    GuidanceReply,
    PlanEdit,
    TaskCreate,
    TaskDetail,
    TaskPage,
    TaskRename,
    TaskSort,
    TaskStats,
    TaskSummary,
)
from troika_gateway.tasks.service import Tasks

__all__ = ["TaskController"]

_JSON_LIMIT = 1 << 20
_MAX_FILES_PER_UPLOAD = 20


async def provide_tasks(
    request: Request[Principal, Any, State], db: NamedDependency[AsyncSession], state: State
) -> AsyncIterator[Tasks]:
    """Task operations for the caller; events they record are published after the request."""
    tasks = Tasks(db, request.user.user_id, state.settings, state.store, state.clock)
    yield tasks
    for schedule_id, due in tasks.jobs_to_withdraw:
        await state.jobs.withdraw(schedule_id, due)
    for schedule_id, due in tasks.jobs_to_plan:
        await state.jobs.plan(schedule_id, due)
    for applied in tasks.to_announce:
        await state.store.announce(applied)


@dataclass
class FilesUpload:
    """One or more files, each in a form field named ``files``."""

    files: list[UploadFile]


@dataclass
class TaskWithFiles:
    """A new task and its files: ``task`` holds what ``POST /tasks`` takes, as JSON text, and
    each file is a form field named ``files``."""

    task: str
    files: list[UploadFile]


def _task_of(text: str) -> TaskCreate:
    """The ``task`` field of a multipart creation, read like the JSON body of ``POST /tasks``.

    Raises:
        InvalidInput: It is not JSON, or not a task (the field in error is named).
    """
    try:
        return msgspec.json.decode(text, type=TaskCreate)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        field = where.strip("`.") or "task"
        raise InvalidInput(
            "the task does not match the expected schema", [{"field": field, "message": message}]
        ) from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(
            "the task field is not JSON", [{"field": "task", "message": str(exc)}]
        ) from None


class TaskController(Controller):
    """Tasks, their control, files and event log."""

    path = "/tasks"
    tags = ["tasks"]  # noqa: RUF012 - Litestar reads it as a class attribute
    dependencies = {"tasks": Provide(provide_tasks)}  # noqa: RUF012 - as above
    security = BEARER

    @post("/", request_max_body_size=_JSON_LIMIT)
    async def create(
        self, data: JSONBody[TaskCreate], tasks: NamedDependency[Tasks]
    ) -> TaskSummary:
        """Creates a task; it starts ``planning``, or waits as ``scheduled`` with ``run_at`` or
        ``cron`` (see ``GET /schedules``). A task that starts with files is made with
        ``POST /tasks/with-files``, so that its plan knows them."""
        return summary_of(await tasks.create(data))

    @post("/with-files", status_code=201)
    async def create_with_files(
        self, data: MultipartBody[TaskWithFiles], tasks: NamedDependency[Tasks]
    ) -> TaskSummary:
        """Creates a task with files in its folder from the start: the form field ``task`` is
        the JSON ``POST /tasks`` takes, and each file a field ``files`` (at most 20). A refused
        task or file creates nothing."""
        task = _task_of(data.task)
        if len(data.files) > _MAX_FILES_PER_UPLOAD:
            raise InvalidInput(f"upload at most {_MAX_FILES_PER_UPLOAD} files at a time")
        return summary_of(await tasks.create(task, data.files))

    @get("/")
    async def list_tasks(
        self,
        tasks: NamedDependency[Tasks],
        *,
        status: Annotated[
            list[TaskStatus] | None,
            QueryParameter(description="only tasks in these statuses (repeatable)"),
        ] = None,
        q: Annotated[
            str, QueryParameter(description="text in the title or objective", max_length=200)
        ] = "",
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
        sort: Annotated[
            TaskSort,
            QueryParameter(
                description="newest (default), oldest, cost (most first) or "
                "duration (longest first, unfinished last)"
            ),
        ] = TaskSort.NEWEST,
        schedule: Annotated[
            str,
            QueryParameter(description="only the runs of this schedule", max_length=64),
        ] = "",
    ) -> TaskPage:
        """The caller's tasks, newest first unless ``sort`` says otherwise."""
        statuses = [s.value for s in status or []]
        return await tasks.page(
            statuses=statuses, query=q, limit=limit, offset=offset, sort=sort, schedule=schedule
        )

    @get("/stats")
    async def stats(self, tasks: NamedDependency[Tasks]) -> TaskStats:
        """How many of the caller's tasks completed, run, wait, failed, were cancelled or are
        scheduled, and their estimated cost in all."""
        return await tasks.stats()

    @get("/{task_id:str}")
    async def detail(self, task_id: FromPath[str], tasks: NamedDependency[Tasks]) -> TaskDetail:
        """The task with its plan, subtasks, results, review, files and cost."""
        return await tasks.detail(task_id)

    @put("/{task_id:str}", request_max_body_size=_JSON_LIMIT)
    async def rename(
        self, task_id: FromPath[str], data: JSONBody[TaskRename], tasks: NamedDependency[Tasks]
    ) -> TaskSummary:
        """Renames the task."""
        return summary_of(await tasks.rename(task_id, data.title))

    @delete("/{task_id:str}", status_code=204)
    async def remove(self, task_id: FromPath[str], tasks: NamedDependency[Tasks]) -> None:
        """Deletes the task, its event log and its files."""
        await tasks.delete(task_id)

    @post("/{task_id:str}/cancel", status_code=200)
    async def cancel(self, task_id: FromPath[str], tasks: NamedDependency[Tasks]) -> TaskSummary:
        """Stops the task; nothing further is executed."""
        return summary_of(await tasks.cancel(task_id))

    @post("/{task_id:str}/rerun", status_code=201)
    async def rerun(self, task_id: FromPath[str], tasks: NamedDependency[Tasks]) -> TaskSummary:
        """Starts a fresh run of the same objective (a new task) with the same uploads."""
        return summary_of(await tasks.rerun(task_id))

    @post("/{task_id:str}/continue", status_code=201, request_max_body_size=_JSON_LIMIT)
    async def follow_up(
        self, task_id: FromPath[str], data: JSONBody[FollowUp], tasks: NamedDependency[Tasks]
    ) -> TaskSummary:
        """Starts a follow-up task that carries this one's result and files."""
        return summary_of(await tasks.follow_up(task_id, data))

    @post("/{task_id:str}/guidance", status_code=200, request_max_body_size=_JSON_LIMIT)
    async def guidance(
        self, task_id: FromPath[str], data: JSONBody[GuidanceReply], tasks: NamedDependency[Tasks]
    ) -> TaskSummary:
        """Answers a task that paused for guidance: continue, re-plan, or cancel."""
        return summary_of(await tasks.guidance(task_id, data))

    @put("/{task_id:str}/plan", request_max_body_size=_JSON_LIMIT)
    async def edit_plan(
        self, task_id: FromPath[str], data: JSONBody[PlanEdit], tasks: NamedDependency[Tasks]
    ) -> TaskDetail:
        """Changes the plan of a task that waits for its review (``awaiting_plan_review``):
        the subtasks in order, with their dependencies; with ``"start": true`` the task works
        this plan at once. 422 for a plan that cannot be worked, 409 when the plan is not
        waiting for review."""
        task = await tasks.edit_plan(task_id, data)
        return await tasks.detail(task.id)

    @put("/{task_id:str}/budget", request_max_body_size=_JSON_LIMIT)
    async def set_budget(
        self, task_id: FromPath[str], data: JSONBody[Budget], tasks: NamedDependency[Tasks]
    ) -> TaskSummary:
        """Sets the task's budget (``max_steps``, ``max_tokens``, ``max_cost_usd``; each left
        out has no limit). A task paused because its budget was used up goes on at once when
        the new one allows; 409 for a task that has finished."""
        return summary_of(await tasks.set_budget(task_id, data))

    @get("/{task_id:str}/events")
    async def events(
        self,
        task_id: FromPath[str],
        tasks: NamedDependency[Tasks],
        after: Annotated[
            int, QueryParameter(ge=0, le=2**53, description="return events after this seq")
        ] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 500,
    ) -> EventPage:
        """The task's event log from sequence number ``after`` on."""
        return await tasks.events(task_id, after, limit)

    @get("/{task_id:str}/files")
    async def files(self, task_id: FromPath[str], tasks: NamedDependency[Tasks]) -> list[FileView]:
        """The files in the task's workspace."""
        await tasks.get(task_id)
        return await tasks.files(task_id)

    @post("/{task_id:str}/files", status_code=201)
    async def upload(
        self,
        task_id: FromPath[str],
        data: MultipartBody[FilesUpload],
        tasks: NamedDependency[Tasks],
    ) -> list[FileView]:
        """Uploads files to the task's workspace (a file of the same name is replaced)."""
        if len(data.files) > _MAX_FILES_PER_UPLOAD:
            raise InvalidInput(f"upload at most {_MAX_FILES_PER_UPLOAD} files at a time")
        return await tasks.upload(task_id, data.files)

    @get("/{task_id:str}/browser/screen", media_type="image/png")
    async def browser_screen(self, task_id: FromPath[str], tasks: NamedDependency[Tasks]) -> Stream:
        """The task's browser page as it was after its latest browser action (PNG), as the
        person sees it beside a browser action waiting for approval; 404 when the task has no
        page."""
        return await tasks.browser_screen(task_id)

    @get("/{task_id:str}/previews/{name:path}")
    async def preview(
        self,
        task_id: FromPath[str],
        name: FromPath[str],
        tasks: NamedDependency[Tasks],
        sheet: Annotated[
            str | None,
            QueryParameter(
                description="an Excel workbook's sheet (the first by default)", max_length=100
            ),
        ] = None,
    ) -> FilePreview:
        """What a file looks like: CSV and Excel as a table (the first 50 rows and 20
        columns), Markdown and other text as text (the first 256 KiB), JSON indented; an image
        says so (fetch it from ``/files``); other files say why nothing is shown."""
        return await tasks.preview(task_id, name.lstrip("/"), sheet)

    @get("/{task_id:str}/files/{name:path}")
    async def download(
        self, task_id: FromPath[str], name: FromPath[str], tasks: NamedDependency[Tasks]
    ) -> Stream:
        """Downloads a file (as an attachment); files the agents wrote may be in folders."""
        return await tasks.download(task_id, name.lstrip("/"))
