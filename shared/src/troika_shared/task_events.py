"""The bodies of a task's events, typed: one struct per kind, tagged by ``kind``.

A task's event log is what every client shows (the web app's timeline, ``troika task``, the
test kit). The gateway stores and serves each event as ``{"seq", "kind", "data", "created_at"}``,
where ``data`` is the encoded body of one of these structs without its tag; the union is
published in the gateway's OpenAPI schema. Like bus messages, bodies only ever gain fields
with defaults.

    event = decode_event("tool.approved", {"tool": "create_file", "key": "…", "by": "user: …"})
    assert isinstance(event, ToolApproved)
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec

__all__ = [
    "AgentUnusableAnswer",
    "AnyTaskEvent",
    "ApprovalExpired",
    "ApprovalRequested",
    "BudgetChanged",
    "DesktopWaiting",
    "FilesUploaded",
    "PlanAccepted",
    "PlanEdited",
    "PlanReady",
    "PlanRequested",
    "PlannedSubtask",
    "ReviewRequested",
    "ReviewVerdict",
    "RevisionNote",
    "ScheduleFired",
    "SchedulePaused",
    "ScheduleResumed",
    "ScheduleSkipped",
    "StepRequested",
    "SubtaskDone",
    "TaskCancelled",
    "TaskCompleted",
    "TaskContinued",
    "TaskCreated",
    "TaskEventBody",
    "TaskGuidance",
    "TaskNeedsGuidance",
    "TaskPlanning",
    "TaskRenamed",
    "TaskRepaired",
    "TaskRerun",
    "TaskScheduled",
    "TaskStatusChanged",
    "ToolApproved",
    "ToolDenied",
    "ToolFinished",
    "ToolRepeated",
    "body",
    "decode_event",
    "kind_of",
]


class TaskEventBody(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """The base of every event body; the tag is the event's ``kind``."""


class TaskCreated(TaskEventBody, frozen=True, kw_only=True, tag="task.created"):
    """A task was made."""

    title: str = ""
    status: str = ""


class TaskScheduled(TaskEventBody, frozen=True, kw_only=True, tag="task.scheduled"):
    """The task waits for its schedule."""

    schedule_id: str | None = None
    run_at: str | None = None


class FilesUploaded(TaskEventBody, frozen=True, kw_only=True, tag="files.uploaded"):
    """The person added files to the task's folder."""

    names: list[str] = msgspec.field(default_factory=list)


class TaskRenamed(TaskEventBody, frozen=True, kw_only=True, tag="task.renamed"):
    """The task has a new title."""

    title: str = ""


class TaskCancelled(TaskEventBody, frozen=True, kw_only=True, tag="task.cancelled"):
    """The task was cancelled; ``by`` says from where (the API, a guidance answer, a schedule)."""

    previous: str = ""
    reason: str = ""
    by: str = ""


class TaskGuidance(TaskEventBody, frozen=True, kw_only=True, tag="task.guidance"):
    """The person answered a task that asked for guidance."""

    action: str = ""
    text: str = ""


class TaskRerun(TaskEventBody, frozen=True, kw_only=True, tag="task.rerun"):
    """A fresh run of this task's objective was started."""

    task_id: str = ""


class TaskContinued(TaskEventBody, frozen=True, kw_only=True, tag="task.continued"):
    """A follow-up task carries this one's result."""

    task_id: str = ""


class TaskStatusChanged(TaskEventBody, frozen=True, kw_only=True, tag="task.status"):
    """The task moved to another status."""

    status: str = ""
    previous: str = ""
    reason: str = ""


class TaskNeedsGuidance(TaskEventBody, frozen=True, kw_only=True, tag="task.needs_guidance"):
    """The agents are stuck: the task waits for the person, saying why and with the evidence."""

    reason: str = ""
    evidence: dict[str, Any] = msgspec.field(default_factory=dict)


class TaskPlanning(TaskEventBody, frozen=True, kw_only=True, tag="task.planning"):
    """The planners were asked (kept for logs written before plan requests said so)."""

    status: str = "planning"


class PlanRequested(TaskEventBody, frozen=True, kw_only=True, tag="plan.requested"):
    """The planners were asked for a plan (again, when ``replan``)."""

    replan: bool = False


class PlannedSubtask(msgspec.Struct, frozen=True, kw_only=True):
    """A subtask as a plan announces it."""

    id: str
    title: str = ""
    depends_on: list[str] = msgspec.field(default_factory=list)


class PlanReady(TaskEventBody, frozen=True, kw_only=True, tag="plan.ready"):
    """A plan arrived."""

    summary: str = ""
    subtasks: list[PlannedSubtask] = msgspec.field(default_factory=list)


class BudgetChanged(TaskEventBody, frozen=True, kw_only=True, tag="budget.changed"):
    """The person set the task's budget (``max_steps``, ``max_tokens``, ``max_cost_usd``)."""

    budget: dict[str, Any] = msgspec.field(default_factory=dict)


class PlanEdited(TaskEventBody, frozen=True, kw_only=True, tag="plan.edited"):
    """The person changed the plan while reviewing it."""

    summary: str = ""
    subtasks: list[PlannedSubtask] = msgspec.field(default_factory=list)


class PlanAccepted(TaskEventBody, frozen=True, kw_only=True, tag="plan.accepted"):
    """The person accepted the plan: its subtasks are worked now."""

    subtasks: int = 0


class AgentUnusableAnswer(TaskEventBody, frozen=True, kw_only=True, tag="agent.unusable_answer"):
    """An agent's answer could not be used; it is asked again. ``said`` is why, in plain words;
    ``reason`` the exact words the agent was told."""

    agent: str = ""
    reason: str = ""
    streak: int = 0
    said: str = ""
    subtask: str = ""


class StepRequested(TaskEventBody, frozen=True, kw_only=True, tag="step.requested"):
    """The executors were asked for a subtask's next step."""

    subtask: str = ""
    step: int = 0


class SubtaskDone(TaskEventBody, frozen=True, kw_only=True, tag="subtask.done"):
    """A subtask finished."""

    subtask: str = ""
    result: str = ""
    files: list[str] = msgspec.field(default_factory=list)


class ToolRepeated(TaskEventBody, frozen=True, kw_only=True, tag="tool.repeated"):
    """The executor proposed a call the task has already."""

    subtask: str = ""
    tool: str = ""
    times: int = 0


class ApprovalRequested(TaskEventBody, frozen=True, kw_only=True, tag="approval.requested"):
    """A call waits for the person's approval (``form``: and for their details)."""

    interaction_id: str = ""
    form: bool = False
    subtask: str = ""
    tool: str = ""
    arguments: dict[str, Any] = msgspec.field(default_factory=dict)
    expires_at: str | None = None


class ToolApproved(TaskEventBody, frozen=True, kw_only=True, tag="tool.approved"):
    """A call was approved, by the person or a rule of theirs."""

    tool: str = ""
    key: str = ""
    by: str = ""
    subtask: str = ""


class ToolDenied(TaskEventBody, frozen=True, kw_only=True, tag="tool.denied"):
    """A call was denied; the agent hears ``reason``."""

    tool: str = ""
    key: str = ""
    reason: str = ""
    by: str = ""
    subtask: str = ""


class ApprovalExpired(TaskEventBody, frozen=True, kw_only=True, tag="approval.expired"):
    """Nobody answered an approval in time."""

    interaction_id: str = ""
    tool: str = ""


class ToolFinished(TaskEventBody, frozen=True, kw_only=True, tag="tool.finished"):
    """An approved call ran."""

    tool: str = ""
    key: str = ""
    ok: bool = False
    output: str = ""
    error: str | None = None
    files: list[str] = msgspec.field(default_factory=list)
    subtask: str = ""


class DesktopWaiting(TaskEventBody, frozen=True, kw_only=True, tag="desktop.waiting"):
    """An approved desktop action waits for the person's PC to connect."""

    tool: str = ""
    key: str = ""
    device: str = ""


class ReviewRequested(TaskEventBody, frozen=True, kw_only=True, tag="review.requested"):
    """The reviewers were asked to check the results."""

    round: int = 1


class RevisionNote(msgspec.Struct, frozen=True, kw_only=True):
    """A subtask sent back, and why."""

    subtask: str
    problem: str = ""


class ReviewVerdict(TaskEventBody, frozen=True, kw_only=True, tag="review.verdict"):
    """The reviewer's verdict."""

    approved: bool = False
    summary: str = ""
    revisions: list[RevisionNote] = msgspec.field(default_factory=list)


class TaskCompleted(TaskEventBody, frozen=True, kw_only=True, tag="task.completed"):
    """The task is done; ``result`` is its outcome in words."""

    result: str = ""


class TaskRepaired(TaskEventBody, frozen=True, kw_only=True, tag="task.repaired"):
    """The worker found the task with nothing in flight and asked again for what was missing."""

    missing: list[str] = msgspec.field(default_factory=list)


class ScheduleFired(TaskEventBody, frozen=True, kw_only=True, tag="schedule.fired"):
    """The schedule started this run (``late``: its time passed while nothing ran)."""

    schedule_id: str = ""
    due: str = ""
    late: bool = False
    reason: str = ""


class ScheduleSkipped(TaskEventBody, frozen=True, kw_only=True, tag="schedule.skipped"):
    """A fire time passed while nothing ran, and the schedule skips missed runs."""

    schedule_id: str = ""
    due: str = ""
    reason: str = ""


class SchedulePaused(TaskEventBody, frozen=True, kw_only=True, tag="schedule.paused"):
    """The schedule is paused."""

    schedule_id: str = ""


class ScheduleResumed(TaskEventBody, frozen=True, kw_only=True, tag="schedule.resumed"):
    """The schedule runs again."""

    run_at: str = ""


AnyTaskEvent = (
    TaskCreated
    | TaskScheduled
    | FilesUploaded
    | TaskRenamed
    | TaskCancelled
    | TaskGuidance
    | TaskRerun
    | TaskContinued
    | TaskStatusChanged
    | TaskNeedsGuidance
    | TaskPlanning
    | PlanRequested
    | PlanReady
    | PlanEdited
    | PlanAccepted
    | BudgetChanged
    | AgentUnusableAnswer
    | StepRequested
    | SubtaskDone
    | ToolRepeated
    | ApprovalRequested
    | ToolApproved
    | ToolDenied
    | ApprovalExpired
    | ToolFinished
    | DesktopWaiting
    | ReviewRequested
    | ReviewVerdict
    | TaskCompleted
    | TaskRepaired
    | ScheduleFired
    | ScheduleSkipped
    | SchedulePaused
    | ScheduleResumed
)

_KINDS: dict[str, type[TaskEventBody]] = {
    str(cls.__struct_config__.tag): cls for cls in typing.get_args(AnyTaskEvent)
}


def kind_of(event: TaskEventBody) -> str:
    """The event's kind, e.g. ``"tool.approved"``."""
    return str(type(event).__struct_config__.tag)


def body(event: TaskEventBody) -> dict[str, Any]:
    """The event's ``data`` as stored and served: its fields, without the tag."""
    data: dict[str, Any] = msgspec.to_builtins(event)
    data.pop("kind", None)
    return data


def decode_event(kind: str, data: dict[str, Any]) -> TaskEventBody | None:
    """The typed body of a stored event; ``None`` for a kind this version does not know.

    Raises:
        msgspec.ValidationError: The data does not fit the kind.
    """
    cls = _KINDS.get(kind)
    if cls is None:
        return None
    return msgspec.convert(data, cls)
