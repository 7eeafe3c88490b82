"""What the task endpoints take and return."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct, field

from troika_gateway.openapi import EVENT_DATA

__all__ = [
    "Budget",
    "Cost",
    "EventPage",
    "EventView",
    "FileView",
    "FollowUp",
    "GuidanceReply",
    "PlanEdit",
    "PlanStep",
    "SubtaskView",
    "TaskCreate",
    "TaskDetail",
    "TaskListItem",
    "TaskPage",
    "TaskRename",
    "TaskSort",
    "TaskStats",
    "TaskSummary",
]

Objective = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=20_000,
        description="What the agents should achieve, in plain words.",
        examples=["Research the latest news about Tesla and create a summary"],
    ),
]
Title = Annotated[str, Meta(max_length=200)]


class Budget(Struct, forbid_unknown_fields=True, kw_only=True):
    """Limits that pause the task for guidance when reached."""

    max_steps: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    max_tokens: Annotated[int, Meta(ge=1, le=100_000_000)] | None = None
    max_cost_usd: Annotated[float, Meta(gt=0, le=10_000)] | None = None


PolicyMode = Literal["ask", "ask_once", "allow", "deny"]


class TaskCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """A new task: now, later (``run_at``) or repeating (``cron``).

    Attributes:
        run_at: When to run it once: an ISO time with an offset, or a local time with
            ``timezone``. It waits as ``scheduled`` until then.
        cron: A cron expression (5 fields, or 6 with seconds first) read in ``timezone``:
            each time makes a new task linked to the schedule.
        timezone: An IANA time zone such as ``Europe/Berlin`` (default UTC).
        until: A repeating schedule's last possible run time.
        max_runs: How many times a repeating schedule runs at most.
        misfire: A run missed because nothing was running: ``run_once`` when back, or ``skip``.
        policies: How the scheduled runs decide tool calls (``allow`` runs them without asking);
            tools not named keep your policy for all tasks as it is now.
        review_plan: The plan waits as ``awaiting_plan_review`` until you accept it (``PUT
            /tasks/{id}/plan``); unset: your profile's ``review_plans``. Scheduled runs start
            without waiting.
    """

    objective: Objective
    title: Title = ""
    budget: Budget | None = None
    run_at: datetime | None = None
    cron: Annotated[str, Meta(min_length=9, max_length=120)] | None = None
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    until: datetime | None = None
    max_runs: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    misfire: Literal["run_once", "skip"] = "run_once"
    policies: Annotated[dict[str, PolicyMode], Meta(max_length=100)] | None = None
    review_plan: bool | None = None

    @property
    def scheduled(self) -> bool:
        """Whether the task waits for a schedule instead of starting now."""
        return self.run_at is not None or self.cron is not None


SubtaskId = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")]
Line = Annotated[str, Meta(min_length=1, max_length=500)]
ToolName = Annotated[str, Meta(min_length=1, max_length=64)]


class PlanStep(Struct, forbid_unknown_fields=True, kw_only=True):
    """One subtask of a plan as the person edits it.

    Attributes:
        id: Its name in the plan (letters, digits, ``_.-``); others name it in ``depends_on``.
        depends_on: The ids of the subtasks that must be done first.
        tool_hints: Tools the executor is offered first for it (names from ``GET /tools``).
    """

    id: SubtaskId
    title: Annotated[str, Meta(min_length=1, max_length=200)]
    description: Annotated[str, Meta(max_length=4000)] = ""
    depends_on: Annotated[list[SubtaskId], Meta(max_length=30)] = field(default_factory=list)
    acceptance_criteria: Annotated[list[Line], Meta(max_length=10)] = field(default_factory=list)
    tool_hints: Annotated[list[ToolName], Meta(max_length=20)] = field(default_factory=list)


class PlanEdit(Struct, forbid_unknown_fields=True, kw_only=True):
    """The plan as the person wants it worked, in order (``subtasks`` left out: the plan as it
    is); ``start``: accept it and begin."""

    subtasks: Annotated[list[PlanStep], Meta(min_length=1, max_length=30)] | None = None
    summary: Annotated[str, Meta(max_length=2000)] | None = None
    start: bool = False


class TaskRename(Struct, forbid_unknown_fields=True):
    """A task's new title."""

    title: Annotated[str, Meta(min_length=1, max_length=200)]


class FollowUp(Struct, forbid_unknown_fields=True):
    """A follow-up task that starts from this one's result and files."""

    objective: Objective


class GuidanceReply(Struct, forbid_unknown_fields=True, kw_only=True):
    """The person's answer to a task that asked for guidance."""

    action: Literal["continue", "replan", "cancel"] = "continue"
    text: Annotated[str, Meta(max_length=10_000)] = ""


class TaskSummary(Struct, kw_only=True):
    """A task in a list."""

    id: str
    title: str
    objective: str
    status: str
    status_reason: str
    parent_id: str | None
    schedule_id: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_event_seq: int
    review_plan: bool = False


class Cost(Struct, kw_only=True):
    """What LLM calls cost so far."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class SubtaskView(Struct, kw_only=True):
    """One subtask of the plan and how far it got."""

    key: str
    title: str
    description: str
    depends_on: list[str]
    priority: int
    acceptance_criteria: list[str]
    tool_hints: list[str]
    status: str
    result: str
    cost: Cost = field(default_factory=Cost)
    """What the executor's model calls for this subtask cost so far."""


class FileView(Struct, kw_only=True):
    """A file in the task's workspace."""

    name: str
    content_type: str
    size: int
    sha256: str
    origin: str
    created_at: datetime
    updated_at: datetime
    url: str


class TaskDetail(TaskSummary, kw_only=True):
    """Everything about one task."""

    result: str
    plan: dict[str, Any] | None
    review: dict[str, Any] | None
    budget: dict[str, Any] | None
    guidance: list[str]
    subtasks: list[SubtaskView]
    files: list[FileView]
    cost: Cost
    cost_by_agent: dict[str, Cost] = field(default_factory=dict)
    """What each agent's LLM calls (``planner``, ``executor``, ``reviewer``) cost so far."""


class TaskListItem(TaskSummary, kw_only=True):
    """A task in the history: with what its model calls cost so far (estimated, US dollars)."""

    cost_usd: float = 0.0


class TaskPage(Struct, kw_only=True):
    """One page of tasks, newest first."""

    items: list[TaskListItem]
    total: int
    limit: int
    offset: int


class EventView(Struct, kw_only=True):
    """One entry of a task's event log."""

    seq: int
    kind: str
    data: Annotated[dict[str, Any], EVENT_DATA]
    created_at: datetime


class EventPage(Struct, kw_only=True):
    """Events after a sequence number; ask again with ``after=last_seq`` for more."""

    task_id: str
    events: list[EventView]
    last_seq: int


class TaskSort(StrEnum):
    """How a list of tasks is ordered."""

    NEWEST = "newest"
    OLDEST = "oldest"
    COST = "cost"  # the most expensive first
    DURATION = "duration"  # the longest run first; tasks that have not finished last


class TaskStats(Struct, kw_only=True):
    """How the caller's tasks stand, all of them."""

    total: int
    completed: int
    running: int
    waiting: int
    failed: int
    cancelled: int
    scheduled: int
    cost_usd: float
    spent_today_usd: float = 0.0
    spent_this_month_usd: float = 0.0
    daily_budget_usd: float | None = None
    """Your own limit for all your tasks in a day (UTC), if you set one in your profile."""
    monthly_budget_usd: float | None = None
    tokens_today: int = 0
    """Tokens all your tasks used today (UTC)."""
    tokens_this_month: int = 0
    daily_budget_tokens: int | None = None
    """Your own token limit for all your tasks in a day (UTC), if you set one."""
    monthly_budget_tokens: int | None = None
