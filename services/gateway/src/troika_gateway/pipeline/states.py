"""The statuses of a task and of its parts, as enums (stored as their string values)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AskStatus", "CallStatus", "SubtaskStatus", "TaskStatus"]


class TaskStatus(StrEnum):
    """A task's place in its life cycle (see "How a task moves" in the README)."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    PLANNING = "planning"
    AWAITING_PLAN_REVIEW = "awaiting_plan_review"
    EXECUTING = "executing"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_INPUT = "awaiting_input"
    REVIEWING = "reviewing"
    NEEDS_GUIDANCE = "needs_guidance"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """Whether the task can change no more."""
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)

    @property
    def executing(self) -> bool:
        """Whether subtasks are being worked (some calls may wait for the person)."""
        return self in (
            TaskStatus.EXECUTING,
            TaskStatus.AWAITING_APPROVAL,
            TaskStatus.AWAITING_INPUT,
        )


class SubtaskStatus(StrEnum):
    """A subtask: waiting for its dependencies or its turn, being worked, or finished."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"


class CallStatus(StrEnum):
    """A proposed tool call: ``proposed → approved|denied → running → succeeded|failed``;
    ``replaced`` when the person approved it with other arguments (a new call)."""

    PROPOSED = "proposed"
    APPROVED = "approved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"
    REPLACED = "replaced"

    @property
    def open(self) -> bool:
        """Whether the call still waits for a decision or an outcome."""
        return self in (CallStatus.PROPOSED, CallStatus.APPROVED, CallStatus.RUNNING)

    @property
    def settled(self) -> bool:
        """Whether the agent can read the call's outcome (it ran, failed or was refused)."""
        return self in (CallStatus.SUCCEEDED, CallStatus.FAILED, CallStatus.DENIED)


class AskStatus(StrEnum):
    """Something put to the person: waiting, or how it ended."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
