"""The liveness invariant: a task that is neither final nor waiting for the person always has a
request in flight; and whether an answer is for the request a task awaits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from troika_gateway.pipeline.states import AskStatus, SubtaskStatus, TaskStatus

if TYPE_CHECKING:
    from troika_gateway.pipeline.snapshot import SubtaskState, TaskState

__all__ = ["LEGACY", "PLANNING", "has_open_calls", "missing_work", "stale", "waiting_status"]

LEGACY = "legacy"
"""``in_flight`` of a request made before requests were remembered: any answer is current."""

PLANNING = (TaskStatus.QUEUED, TaskStatus.PLANNING)
"""Statuses in which a plan is awaited."""

_THE_PERSONS_TURN = (
    TaskStatus.SCHEDULED,
    TaskStatus.AWAITING_PLAN_REVIEW,
    TaskStatus.NEEDS_GUIDANCE,
)


def missing_work(state: TaskState) -> list[str]:
    """What a task that is neither final nor waiting for the person lacks in flight (nothing,
    when the invariant holds): each item names a request to make again, or a wrong status."""
    status = state.status
    if status.final or status in _THE_PERSONS_TURN:
        return []
    if status in PLANNING:
        return [] if state.in_flight else ["a plan"]
    if status == TaskStatus.REVIEWING:
        return [] if state.in_flight else ["a review"]
    missing: list[str] = []
    expected = waiting_status(state)
    if status != expected:
        missing.append(f"the status {expected.value}")
    done = {s.key for s in state.subtasks if s.status == SubtaskStatus.DONE}
    if len(done) == len(state.subtasks):
        return [*missing, "a review"]
    missing.extend(
        f"a step of {sub.key}"
        for sub in state.subtasks
        if (
            sub.status == SubtaskStatus.RUNNING
            and not sub.in_flight
            and not has_open_calls(state, sub)
        )
        or (sub.status == SubtaskStatus.PENDING and set(sub.depends_on) <= done)
    )
    return missing


def stale(request_id: str, in_flight: str) -> bool:
    """Whether an answer is not for the request the task awaits. An answer counts only when it
    names that request (each request's id is derived from the task and how many requests went
    before), so nothing else on the bus can slip one in; only a request made before requests
    were remembered (:data:`LEGACY`) takes any answer."""
    if not in_flight:
        return True
    return in_flight not in (LEGACY, request_id)


def has_open_calls(state: TaskState, sub: SubtaskState) -> bool:
    return any(c.subtask == sub.key and c.status.open for c in state.calls)


def waiting_status(state: TaskState) -> TaskStatus:
    kinds = {a.kind for a in state.asks if a.status == AskStatus.PENDING}
    if "input" in kinds:
        return TaskStatus.AWAITING_INPUT
    if kinds:
        return TaskStatus.AWAITING_APPROVAL
    return TaskStatus.EXECUTING
