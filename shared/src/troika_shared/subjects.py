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
    TaskEvents,
    TaskStopped,
    ToolExecute,
    ToolResult,
)

__all__ = ["AGENTS", "PREFIX_PATTERN", "Permissions", "Retention", "StreamKey", "StreamSpec",
           "Topology"]  # fmt: skip

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


@dataclass(frozen=True, slots=True)
class Permissions:
    """What one NATS user may publish and subscribe to (everything else is refused); replies
    to requests it received are allowed besides."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Agent:
    stream: StreamKey
    answers: tuple[type[Message], ...]
    reads_stops: bool = False


AGENTS: dict[str, _Agent] = {
    "planner": _Agent(StreamKey.PLANNER, (PlanProduced,)),
    "executor": _Agent(StreamKey.EXECUTOR, (StepProposed, ToolResult), reads_stops=True),
    "reviewer": _Agent(StreamKey.REVIEWER, (ReviewVerdict,)),
}
"""The agent services: the stream each consumes and the answers it sends."""


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
            case (
                TaskEvent(user_id=user, correlation_id=task)
                | TaskEvents(user_id=user, correlation_id=task)
            ):
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

    def stream_name(self, key: StreamKey | str) -> str:
        """The server-side name of a stream, e.g. ``TROIKA_PLANNER`` (a retired one's by its
        old key)."""
        return f"{self.prefix.upper().replace('-', '_')}_{key}"

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

    def retired_streams(self) -> tuple[str, ...]:
        """Streams that earlier versions made and nothing reads now: the task events' (the
        database keeps the log; live views hear events without the server storing them)."""
        return (self.stream_name("EVENTS"),)

    def stream(self, key: StreamKey) -> StreamSpec:
        """One stream's spec."""
        return next(spec for spec in self.streams() if spec.key is key)

    def inbox_prefix(self, service: str) -> str:
        """Where a service's replies come back (its JetStream deliveries included): a prefix of
        its own, so that no other service may listen there."""
        return f"_INBOX_{self.prefix}_{service}"

    def agent_permissions(self, agent: str) -> Permissions:
        """The least an agent service needs: create the streams (never change them), consume
        its own work queue, send its own answers and dead letters, answer discovery pings,
        and (the executor) look up whether a task stopped. It cannot read another queue, the
        live events or anyone's replies, nor send another agent's answers or any command."""
        role = AGENTS[agent]
        own = self.stream_name(role.stream)
        api = "$JS.API"
        publish = [
            f"{api}.INFO",
            *(f"{api}.STREAM.{verb}.{spec.name}" for spec in self.streams()
              for verb in ("CREATE", "INFO")),
            f"{api}.CONSUMER.CREATE.{own}", f"{api}.CONSUMER.CREATE.{own}.>",
            f"{api}.CONSUMER.DURABLE.CREATE.{own}.>", f"{api}.CONSUMER.INFO.{own}.>",
            f"{api}.CONSUMER.MSG.NEXT.{own}.>", f"$JS.ACK.{own}.>",
            *(f"{self.prefix}.{answer.__struct_config__.tag}" for answer in role.answers),
            f"{self.prefix}.dead.{own}",
        ]  # fmt: skip
        if role.reads_stops:
            stops = self.stream_name(StreamKey.STOPPED)
            publish += [f"{api}.STREAM.MSG.GET.{stops}", f"{api}.DIRECT.GET.{stops}.>"]
        name = self.service_name(agent)
        subscribe = [
            f"{self.inbox_prefix(agent)}.>",
            "$SRV.PING", "$SRV.INFO", "$SRV.STATS",
            f"$SRV.*.{name}", f"$SRV.*.{name}.>",
        ]  # fmt: skip
        return Permissions(tuple(publish), tuple(subscribe))
