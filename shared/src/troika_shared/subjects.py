"""Subject and stream names: where each message travels and which stream keeps it.

Every name hangs off one *prefix* (``troika`` by default), so several deployments, or several test
runs, can share one NATS server without seeing each other's messages. Commands and answers travel on
``<prefix>.<type>`` (``troika.plan.requested``); events for a user's live view on
``<prefix>.events.<user>.<task>``; desktop actions on ``<prefix>.desktop.<user>.<device>.action``;
messages
given up on on ``<prefix>.dead.<stream>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from troika_shared.messages import (
    DeadLettered,
    DesktopAction,
    DesktopResult,
    Message,
    PlanProduced,
    PlanRequested,
    ReviewRequested,
    ReviewVerdict,
    StepProposed,
    StepRequested,
    TaskEvent,
    TaskStopped,
    ToolExecute,
    ToolResult,
)

__all__ = ["PREFIX_PATTERN", "Retention", "StreamKey", "StreamSpec", "Topology"]

PREFIX_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
"""A prefix is a single subject token that is also valid in stream and service names."""

_DAY = 24 * 3600.0


class StreamKey(StrEnum):
    """The streams Troika uses, by role."""

    PLANNER = "PLANNER"
    EXECUTOR = "EXECUTOR"
    REVIEWER = "REVIEWER"
    RESULTS = "RESULTS"
    DESKTOP = "DESKTOP"
    EVENTS = "EVENTS"
    DEAD = "DEAD"
    STOPPED = "STOPPED"


class Retention(StrEnum):
    """How a stream keeps messages: until acknowledged once, or for a time."""

    WORK_QUEUE = "workqueue"
    LIMITS = "limits"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream as it is created on the server."""

    key: StreamKey
    name: str
    subjects: tuple[str, ...]
    retention: Retention
    max_age_s: float = 0.0
    description: str = ""
    max_msgs_per_subject: int = -1


# Which stream stores each command and answer: the agents' inboxes are work queues (each
# message is handled by one replica and removed once acknowledged); the orchestrator's inbox
# gathers every answer.
_ROUTES: dict[type[Message], StreamKey] = {
    PlanRequested: StreamKey.PLANNER,
    StepRequested: StreamKey.EXECUTOR,
    ToolExecute: StreamKey.EXECUTOR,
    ReviewRequested: StreamKey.REVIEWER,
    PlanProduced: StreamKey.RESULTS,
    StepProposed: StreamKey.RESULTS,
    ToolResult: StreamKey.RESULTS,
    ReviewVerdict: StreamKey.RESULTS,
    DesktopResult: StreamKey.RESULTS,
}


class Topology:
    """Subject and stream names under one prefix.

    Args:
        prefix: The first subject token; also the stream-name and service-name prefix.

    Raises:
        ValueError: The prefix is not a single token of letters, digits, ``_`` and ``-``.
    """

    def __init__(self, prefix: str = "troika") -> None:
        if not PREFIX_PATTERN.fullmatch(prefix):
            raise ValueError(f"invalid bus prefix {prefix!r}: use letters, digits, '_' and '-'")
        self.prefix = prefix

    def subject_for(self, message: Message) -> str:
        """The subject a message is published on."""
        match message:
            case TaskEvent(user_id=user, correlation_id=task):
                return self.event_subject(user, task)
            case DesktopAction(user_id=user, device_id=device):
                return self.desktop_subject(user, device)
            case DeadLettered(stream=stream):
                return f"{self.prefix}.dead.{stream}"
            case TaskStopped(correlation_id=task):
                return self.stopped_subject(task)
            case _:
                return f"{self.prefix}.{message.type}"

    def stopped_subject(self, task_id: str = "*") -> str:
        """Where a task's final status is kept for the executors."""
        return f"{self.prefix}.task.stopped.{task_id}"

    def event_subject(self, user_id: str, task_id: str = "*") -> str:
        """Events of one task of a user (``task_id="*"``: all of the user's tasks)."""
        return f"{self.prefix}.events.{user_id}.{task_id}"

    def desktop_subject(self, user_id: str = "*", device_id: str = "*") -> str:
        """Desktop actions for one of a user's PCs (``"*"``: every user's, every PC)."""
        return f"{self.prefix}.desktop.{user_id}.{device_id}.action"

    def sessions_ended_subject(self, user_id: str) -> str:
        """Where every gateway process hears that sessions of a user ended (a logout, a new
        password), so its live feeds of them close at once (core NATS, not stored)."""
        return f"{self.prefix}.sessions.{user_id}.ended"

    def device_control_subject(self, user_id: str, device_id: str) -> str:
        """Where the gateway process holding a PC's connection hears that the PC was revoked
        or connected elsewhere (core NATS, not stored)."""
        return f"{self.prefix}.device.{user_id}.{device_id}.control"

    def stream_name(self, key: StreamKey) -> str:
        """The server-side name of a stream, e.g. ``TROIKA_PLANNER``."""
        return f"{self.prefix.upper().replace('-', '_')}_{key.value}"

    def service_name(self, service: str) -> str:
        """The name a service announces itself under for discovery, e.g. ``troika-planner``."""
        return f"{self.prefix}-{service}"

    def streams(self) -> tuple[StreamSpec, ...]:
        """Every stream, as it should exist on the server."""
        work: dict[StreamKey, list[str]] = {}
        for message_type, key in _ROUTES.items():
            tag = message_type.__struct_config__.tag
            work.setdefault(key, []).append(f"{self.prefix}.{tag}")
        specs = [
            StreamSpec(
                key=key,
                name=self.stream_name(key),
                subjects=tuple(subjects),
                retention=Retention.WORK_QUEUE,
                description=f"Troika {key.value.lower()} inbox",
            )
            for key, subjects in work.items()
        ]
        specs += [
            StreamSpec(
                key=StreamKey.DESKTOP,
                name=self.stream_name(StreamKey.DESKTOP),
                subjects=(self.desktop_subject(),),
                retention=Retention.WORK_QUEUE,
                max_age_s=_DAY,
                description="Troika desktop actions awaiting each user's PC",
            ),
            StreamSpec(
                key=StreamKey.EVENTS,
                name=self.stream_name(StreamKey.EVENTS),
                subjects=(f"{self.prefix}.events.>",),
                retention=Retention.LIMITS,
                max_age_s=_DAY,
                description="Troika task events for live views (the database keeps the log)",
            ),
            StreamSpec(
                key=StreamKey.STOPPED,
                name=self.stream_name(StreamKey.STOPPED),
                subjects=(self.stopped_subject(),),
                retention=Retention.LIMITS,
                max_age_s=30 * _DAY,
                max_msgs_per_subject=1,
                description="Troika tasks that stopped: their queued calls must not run",
            ),
            StreamSpec(
                key=StreamKey.DEAD,
                name=self.stream_name(StreamKey.DEAD),
                subjects=(f"{self.prefix}.dead.>",),
                retention=Retention.LIMITS,
                max_age_s=14 * _DAY,
                description="Troika messages that were given up on",
            ),
        ]
        return tuple(specs)

    def stream(self, key: StreamKey) -> StreamSpec:
        """One stream's spec."""
        return next(spec for spec in self.streams() if spec.key is key)
