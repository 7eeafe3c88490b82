"""What the task rules read and write: a task's state, the commands that change it, and the
effects a change asks for. Plain data, no I/O: the adapter (:mod:`.store`) loads a snapshot
from the database, the rules (:mod:`.rules`) decide, the adapter writes and carries out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from troika_gateway.pipeline.states import (
    AskStatus,
    CallStatus,
    SubtaskStatus,
    TaskStatus,
)
from troika_shared.messages import (
    Message,
    Plan,
    PlanProduced,
    ReviewRequested,
    ReviewVerdict,
    StepProposed,
    ToolResult,
    Usage,
)
from troika_shared.messages import Subtask as PlannedSubtask
from troika_shared.task_events import TaskEventBody

__all__ = [
    "AgentGaveUp",
    "Ask",
    "AskState",
    "Audit",
    "CallState",
    "Cancel",
    "Command",
    "EditPlan",
    "Effect",
    "Emit",
    "Execute",
    "Expire",
    "Fire",
    "Guide",
    "Limits",
    "Note",
    "Outcome",
    "RecordFiles",
    "RecordUsage",
    "Remember",
    "Rename",
    "Repair",
    "Respond",
    "Review",
    "Send",
    "SetBudget",
    "Start",
    "SubtaskState",
    "TaskState",
]


# --- state ---------------------------------------------------------------------------------


class SubtaskState(msgspec.Struct, kw_only=True):
    """A subtask of the task's plan. ``planned`` is the plan's own entry (title, criteria…)."""

    key: str
    planned: PlannedSubtask
    position: int = 0
    status: SubtaskStatus = SubtaskStatus.PENDING
    steps: int = 0
    result: str = ""
    result_files: tuple[str, ...] = ()
    revision_notes: tuple[str, ...] = ()
    in_flight: str = ""

    @property
    def depends_on(self) -> tuple[str, ...]:
        """The subtasks that must be done first."""
        return self.planned.depends_on


class CallState(msgspec.Struct, kw_only=True):
    """A tool call the executor proposed, identified by its idempotency key."""

    key: str
    subtask: str
    tool: str
    arguments: dict[str, Any]
    step: int = 1
    status: CallStatus = CallStatus.PROPOSED
    proposals: int = 1
    output: str = ""
    error: str | None = None
    images: tuple[str, ...] = ()


class AskState(msgspec.Struct, kw_only=True):
    """An approval or input form waiting for the person (or answered in this change)."""

    id: str
    call_key: str
    kind: Literal["approval", "input"] = "approval"
    status: AskStatus = AskStatus.PENDING
    expires_at: datetime | None = None


class TaskState(msgspec.Struct, kw_only=True):
    """Everything the rules need to know about one task.

    ``files`` are the files in its folder (as recorded), ``tokens`` / ``cost_usd`` what its
    LLM calls have cost so far (loaded when a budget limits them), ``policies`` its tools'
    rules ``{tool: {"user": mode, "task": mode}}``; ``asks`` holds the pending ones only.
    """

    id: str
    user_id: str
    objective: str
    status: TaskStatus
    title: str = ""
    reason: str = ""
    plan: Plan | None = None
    review: dict[str, Any] | None = None
    result: str = ""
    budget: dict[str, Any] | None = None
    guidance: tuple[str, ...] = ()
    steps: int = 0
    dispatches: int = 0
    revision_round: int = 0
    unusable_streak: int = 0
    failure_streak: int = 0
    denials: int = 0
    in_flight: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    subtasks: list[SubtaskState] = msgspec.field(default_factory=list)
    calls: list[CallState] = msgspec.field(default_factory=list)
    asks: list[AskState] = msgspec.field(default_factory=list)
    files: tuple[str, ...] = ()
    tokens: int = 0
    cost_usd: float = 0.0
    policies: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)
    review_plan: bool = False
    """The person reviews each plan before it is worked (``awaiting_plan_review``)."""
    paused_for: str = ""
    """The stuck rule that paused the task (while it waits for guidance)."""
    person_limits: dict[str, float] = msgspec.field(default_factory=dict)
    """The person's own money limits in USD: ``{"day": …, "month": …}`` (those they set)."""
    person_spent: dict[str, float] = msgspec.field(default_factory=dict)
    """What the person's tasks have cost today and this month (UTC), for the limits they set."""

    def subtask(self, key: str) -> SubtaskState | None:
        """The subtask ``key``, if the plan has it."""
        return next((s for s in self.subtasks if s.key == key), None)

    def call(self, key: str) -> CallState | None:
        """The call with idempotency key ``key``, if the task has it."""
        return next((c for c in self.calls if c.key == key), None)

    def ask(self, ask_id: str) -> AskState | None:
        """The pending ask ``ask_id``."""
        return next((a for a in self.asks if a.id == ask_id), None)


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """The stuck thresholds and the approval timeout (from the gateway's settings)."""

    stuck_denials: int = 3
    stuck_tool_failures: int = 3
    stuck_revision_rounds: int = 3
    stuck_unusable_answers: int = 2
    stuck_same_call: int = 3
    max_steps: int = 50
    approval_timeout_s: float = 24 * 3600.0
    small_model: str = ""  # the embedded local model's name: pauses it causes say so


# --- commands ------------------------------------------------------------------------------


class Start(msgspec.Struct, frozen=True, kw_only=True):
    """A new task (or a rerun, or a follow-up) goes to the planners."""


class Fire(msgspec.Struct, frozen=True, kw_only=True):
    """A schedule starts this run."""

    schedule_id: str
    due: datetime
    late: bool = False


class AgentGaveUp(msgspec.Struct, frozen=True, kw_only=True):
    """No agent could handle a request of the task (it was dead-lettered)."""

    agent: str
    reason: str


class Respond(msgspec.Struct, frozen=True, kw_only=True):
    """The person's answer to an approval or form. ``arguments`` are the arguments to run with
    (checked against the tool's schema already); ``remember``: approve the tool's later calls
    in this task without asking."""

    ask_id: str
    approve: bool
    arguments: dict[str, Any]
    reason: str = ""
    actor: str
    client: dict[str, str] = msgspec.field(default_factory=dict)
    remember: bool = False
    response: dict[str, Any] = msgspec.field(default_factory=dict)
    responded_by: str = ""


class Expire(msgspec.Struct, frozen=True, kw_only=True):
    """An ask nobody answered in time."""

    ask_id: str


class Cancel(msgspec.Struct, frozen=True, kw_only=True):
    """Stop the task. ``by`` names the way it came (``api``, ``guidance``, ``schedule``)."""

    by: str
    reason: str


class Guide(msgspec.Struct, frozen=True, kw_only=True):
    """The person's answer to a task that asked for guidance."""

    action: Literal["continue", "replan", "cancel"]
    text: str = ""


class EditPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The person's version of a plan waiting for their review (``None``: the subtasks as
    they are; ``summary`` ``None``: the summary as it is); ``start``: work it now."""

    plan: Plan | None = None
    summary: str | None = None
    start: bool = False


class SetBudget(msgspec.Struct, frozen=True, kw_only=True):
    """The task's budget (``max_steps``, ``max_tokens``, ``max_cost_usd``), as the person sets
    it; a task paused because the old one was used up goes on."""

    budget: dict[str, Any] | None


class Repair(msgspec.Struct, frozen=True, kw_only=True):
    """Re-request whatever the task is missing (from the worker's watchdog)."""


class Note(msgspec.Struct, frozen=True, kw_only=True):
    """Only log an event (a rerun, an upload)."""

    event: TaskEventBody


class Rename(msgspec.Struct, frozen=True, kw_only=True):
    """Give the task a new title."""

    title: str


Command = (
    Start
    | Fire
    | PlanProduced
    | StepProposed
    | ToolResult
    | ReviewVerdict
    | AgentGaveUp
    | Respond
    | Expire
    | Cancel
    | Guide
    | EditPlan
    | SetBudget
    | Repair
    | Note
    | Rename
)


# --- effects -------------------------------------------------------------------------------


class Send(msgspec.Struct, frozen=True, kw_only=True):
    """Put a message in the outbox; it is published after the commit."""

    message: Message


class Execute(msgspec.Struct, frozen=True, kw_only=True):
    """Send an approved call to the executors, sealed, with the credentials its tool needs."""

    id: str
    call_key: str


class Review(msgspec.Struct, frozen=True, kw_only=True):
    """Send the review request, with the content of ``files`` as evidence."""

    message: ReviewRequested
    files: tuple[str, ...] = ()


class Emit(msgspec.Struct, frozen=True, kw_only=True):
    """Append an event to the task's log (announced live after the commit)."""

    event: TaskEventBody


class Ask(msgspec.Struct, frozen=True, kw_only=True):
    """Put a call to the person: an approval, or a form where the tool needs their details."""

    id: str
    call_key: str
    kind: Literal["approval", "input"]
    prompt: dict[str, Any]
    expires_at: datetime


class Audit(msgspec.Struct, frozen=True, kw_only=True):
    """Keep a decision about a call on record."""

    call_key: str
    action: str
    actor: str
    reason: str = ""
    client: dict[str, str] = msgspec.field(default_factory=dict)
    ask_id: str | None = None


class Remember(msgspec.Struct, frozen=True, kw_only=True):
    """Approve the tool's later calls in this task without asking."""

    tool: str


class RecordUsage(msgspec.Struct, frozen=True, kw_only=True):
    """Count an agent's LLM calls on the task (and on the subtask they worked on)."""

    agent: str
    usage: tuple[Usage, ...]
    subtask: str = ""


class RecordFiles(msgspec.Struct, frozen=True, kw_only=True):
    """List the files a tool wrote among the task's files."""

    names: tuple[str, ...]


Effect = Send | Execute | Review | Emit | Ask | Audit | Remember | RecordUsage | RecordFiles


class Outcome(msgspec.Struct, kw_only=True):
    """What a command did: the new state and the effects to carry out, or why it was refused
    (``refused``: the state is unchanged and there are no effects)."""

    state: TaskState
    effects: list[Effect] = msgspec.field(default_factory=list)
    refused: str | None = None
