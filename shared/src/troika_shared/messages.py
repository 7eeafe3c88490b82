"""The messages Troika's services exchange over the bus.

Every message is a frozen msgspec struct tagged with a stable wire name (``type``). Rules that keep
the wire compatible across versions: new fields always get defaults, existing fields never change
type, and unknown fields are ignored, so an older service can read a newer message.

A message's ``id`` is its identity on the bus: it becomes the JetStream ``Nats-Msg-Id`` (a
re-published copy is dropped as a duplicate) and handlers are idempotent on it. Messages produced
in answer to another take a :func:`derive_id` of their cause, so a handler that runs twice after a
redelivery publishes the same ids again, and the copies are dropped. Answers also carry their
request's ``occurred_at`` as ``requested_at``, so the orchestrator can time each round trip.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

__all__ = [
    "AnyMessage",
    "DeadLettered",
    "DesktopAction",
    "DesktopResult",
    "LoggedEvent",
    "Message",
    "Plan",
    "PlanProduced",
    "PlanRequested",
    "ReviewRequested",
    "ReviewVerdict",
    "Revision",
    "StepProposed",
    "StepRequested",
    "Subtask",
    "SubtaskResult",
    "TaskEvent",
    "TaskEvents",
    "TaskStopped",
    "ToolCall",
    "ToolExecute",
    "ToolOutcome",
    "ToolResult",
    "ToolSpec",
    "TranscriptEntry",
    "Usage",
    "decode",
    "derive_id",
    "encode",
    "new_id",
    "utcnow",
]

_DERIVED = uuid.UUID("6c1b3f0e-6f1d-4e35-9a52-54726f696b61")


def new_id() -> str:
    """A fresh, random message id (32 hex characters)."""
    return uuid.uuid4().hex


def derive_id(cause: str, *parts: str | int) -> str:
    """A stable id for a message caused by another.

    Args:
        cause: The id of the message being answered.
        parts: What distinguishes this answer from the cause's other answers (a type, an index).

    Returns:
        The same 32 hex characters for the same cause and parts, every time.
    """
    name = "/".join([cause, *map(str, parts)])
    return uuid.uuid5(_DERIVED, name).hex


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """The base of every bus message.

    Attributes:
        id: The message's identity; the JetStream de-duplication id.
        correlation_id: The task the message belongs to (empty for messages about no task).
        occurred_at: When the message was created (UTC).
    """

    id: str = msgspec.field(default_factory=new_id)
    correlation_id: str = ""
    occurred_at: datetime = msgspec.field(default_factory=utcnow)

    @property
    def type(self) -> str:
        """The message's wire tag, e.g. ``"plan.requested"``."""
        tag = type(self).__struct_config__.tag
        assert isinstance(tag, str)  # noqa: S101 - every concrete message sets a string tag
        return tag


# --- the parts messages are made of --------------------------------------------------------


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """What one LLM call cost."""

    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0


class ToolSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A tool as the agents see it: its name, what it does and the JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    risk: Literal["read", "write", "external"] = "read"
    needs_input: bool = False


class Subtask(msgspec.Struct, frozen=True, kw_only=True):
    """One unit of a plan."""

    id: str
    title: str
    description: str = ""
    depends_on: tuple[str, ...] = ()
    priority: int = 3
    acceptance_criteria: tuple[str, ...] = ()
    tool_hints: tuple[str, ...] = ()


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """The planner's answer: subtasks with their dependencies."""

    subtasks: tuple[Subtask, ...] = ()
    summary: str = ""


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """A tool call an agent proposes; ``key`` is its idempotency key."""

    key: str
    tool: str
    arguments: dict[str, Any] = msgspec.field(default_factory=dict)


class ToolOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What running (or refusing) a tool call produced."""

    ok: bool
    output: str = ""
    error: str | None = None
    files: tuple[str, ...] = ()
    needs_person: bool = False
    """The call cannot go on without the person (their PC stayed offline): the task pauses
    for guidance with ``error`` as the reason instead of letting the agent try again."""
    images: tuple[str, ...] = ()
    """Screenshots the call took, by name in the task's short-lived screenshot area (see
    :func:`troika_shared.desktop.shot_path`), for a model that sees images."""


class TranscriptEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One tool call of a subtask and its outcome, for the executor's next step."""

    call: ToolCall
    outcome: ToolOutcome


class SubtaskResult(msgspec.Struct, frozen=True, kw_only=True):
    """The executor's account of a finished subtask."""

    summary: str
    files: tuple[str, ...] = ()


class Revision(msgspec.Struct, frozen=True, kw_only=True):
    """A subtask the reviewer sends back, and why."""

    subtask_id: str
    problem: str


# --- commands to the agents and their answers ----------------------------------------------


class PlanRequested(Message, kw_only=True, frozen=True, tag="plan.requested"):
    """Asks the planner for a plan.

    Attributes:
        tool_names: The tools the task may use; each agent describes them from its own catalogue
            (:func:`troika_shared.catalogue.offered`), so a request stays small.
        tools: The tools' specs in full, as older gateways sent them (read when present).
    """

    objective: str
    files: tuple[str, ...] = ()
    guidance: tuple[str, ...] = ()
    previous_plan: Plan | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_names: tuple[str, ...] = ()


class PlanProduced(Message, kw_only=True, frozen=True, tag="plan.produced"):
    """The planner's answer: a plan, or why it cannot make one."""

    plan: Plan | None = None
    stuck_reason: str | None = None
    unusable: bool = False
    usage: tuple[Usage, ...] = ()
    requested_at: datetime | None = None
    request_id: str = ""


class StepRequested(Message, kw_only=True, frozen=True, tag="step.requested"):
    """Asks the executor for the next step of one subtask; carries all it needs (the tools by
    name, as in :class:`PlanRequested`)."""

    objective: str
    plan: Plan
    subtask_id: str
    step: int = 1
    files: tuple[str, ...] = ()
    dependency_results: dict[str, str] = msgspec.field(default_factory=dict)
    transcript: tuple[TranscriptEntry, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    guidance: tuple[str, ...] = ()
    revision_notes: tuple[str, ...] = ()
    tool_names: tuple[str, ...] = ()


class StepProposed(Message, kw_only=True, frozen=True, tag="step.proposed"):
    """The executor's answer: tool calls to approve, the subtask's result, or why it is stuck."""

    subtask_id: str
    tool_calls: tuple[ToolCall, ...] = ()
    result: SubtaskResult | None = None
    stuck_reason: str | None = None
    unusable: bool = False
    usage: tuple[Usage, ...] = ()
    requested_at: datetime | None = None
    request_id: str = ""


class ToolExecute(Message, kw_only=True, frozen=True, tag="tool.execute"):
    """Runs one approved tool call; ``approval`` is the gateway's seal on exactly this call,
    ``secrets`` the person's credentials the tool needs, encrypted for this call alone (see
    :mod:`troika_shared.vault`)."""

    user_id: str
    subtask_id: str
    call: ToolCall
    approval: str = ""
    secrets: str = ""


class ToolResult(Message, kw_only=True, frozen=True, tag="tool.result"):
    """The outcome of one tool call."""

    subtask_id: str
    key: str
    outcome: ToolOutcome
    requested_at: datetime | None = None


class ReviewRequested(Message, kw_only=True, frozen=True, tag="review.requested"):
    """Asks the reviewer to check the results against the plan's acceptance criteria."""

    objective: str
    plan: Plan
    results: dict[str, SubtaskResult] = msgspec.field(default_factory=dict)
    evidence: dict[str, str] = msgspec.field(default_factory=dict)
    round: int = 1
    guidance: tuple[str, ...] = ()
    missing_files: tuple[str, ...] = ()
    """Files the subtasks promised (:func:`troika_shared.promises.promised_files`) that the
    task's folder does not have."""
    empty_files: tuple[str, ...] = ()
    """Files the subtasks promised that are empty."""


class ReviewVerdict(Message, kw_only=True, frozen=True, tag="review.verdict"):
    """The reviewer's answer: approve, or the subtasks to revise."""

    approved: bool
    summary: str = ""
    revisions: tuple[Revision, ...] = ()
    stuck_reason: str | None = None
    unusable: bool = False
    usage: tuple[Usage, ...] = ()
    requested_at: datetime | None = None
    request_id: str = ""


class DesktopAction(Message, kw_only=True, frozen=True, tag="desktop.action"):
    """An approved GUI action for the ``troika-desktop`` agent on one of the person's PCs.

    It waits on the bus until that PC is connected; ``seal`` is made with the PC's own key
    (see :mod:`troika_shared.desktop`), so the PC can check it was approved for it, as is.
    """

    user_id: str
    subtask_id: str
    device_id: str
    device_name: str
    call: ToolCall
    seal: str


class DesktopResult(Message, kw_only=True, frozen=True, tag="desktop.result"):
    """The outcome of one desktop action, as the PC (or the gateway, for an action that could
    not reach it) reports it."""

    user_id: str
    subtask_id: str
    device_id: str = ""
    key: str
    outcome: ToolOutcome
    requested_at: datetime | None = None


class TaskStopped(Message, kw_only=True, frozen=True, tag="task.stopped"):
    """A task reached a final status: whatever is still queued for it must not act any more.

    One per task is kept on the bus (the last), where the executors look before running a
    call, so a call that was already on its way when the person cancelled never runs.
    """

    status: str


class TaskEvent(Message, kw_only=True, frozen=True, tag="task.event"):
    """One entry of a task's event log, pushed to the user's live view (as gateways before
    :class:`TaskEvents` sent them; still read)."""

    user_id: str
    seq: int
    kind: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class LoggedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a task's event log: its number, kind, body and time."""

    seq: int
    kind: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    at: datetime


class TaskEvents(Message, kw_only=True, frozen=True, tag="task.events"):
    """The entries one change added to a task's event log, in order, pushed to the user's live
    view in one message (``correlation_id`` is the task)."""

    user_id: str
    events: tuple[LoggedEvent, ...]


class DeadLettered(Message, kw_only=True, frozen=True, tag="dead.lettered"):
    """A message that was given up on, kept for an operator to inspect.

    Attributes:
        subject: The subject the message arrived on.
        stream: The stream it was stored in.
        stream_seq: Its sequence number in that stream.
        deliveries: How many times it was delivered.
        service: The service that gave up.
        reason: Why, in plain language.
        payload: The message's raw bytes, exactly as received.
    """

    subject: str
    stream: str
    stream_seq: int
    deliveries: int
    service: str
    reason: str
    payload: bytes = b""


AnyMessage = (
    PlanRequested
    | PlanProduced
    | StepRequested
    | StepProposed
    | ToolExecute
    | ToolResult
    | ReviewRequested
    | ReviewVerdict
    | DesktopAction
    | DesktopResult
    | TaskStopped
    | TaskEvent
    | TaskEvents
    | DeadLettered
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyMessage)


def encode(message: Message) -> bytes:
    """Serialises a message to its JSON wire form."""
    return _encoder.encode(message)


def decode(payload: bytes) -> AnyMessage:
    """Parses a wire payload into its message type.

    Raises:
        msgspec.DecodeError: The payload is not JSON, or not a known message (``ValidationError``
            is a subclass).
    """
    message: AnyMessage = _decoder.decode(payload)
    return message
