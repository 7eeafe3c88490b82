"""A task's rows: the task, its subtasks, events, tool calls, approvals, audit trail, files and
model usage, and the schedules that start tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from troika_gateway.db.models.base import ID, Base, new_uuid
from troika_gateway.db.types import JSONDocument, UTCDateTime
from troika_gateway.pipeline.states import TaskStatus
from troika_shared.messages import utcnow

__all__ = [
    "AuditEntry",
    "File",
    "Interaction",
    "LlmUsage",
    "Schedule",
    "ScheduleRun",
    "Subtask",
    "Task",
    "TaskEvent",
    "ToolCall",
]


class Task(Base):
    """An objective and everything that happens to it. ``version`` guards concurrent writers."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_user_created", "user_id", "created_at"),
        Index("ix_tasks_user_status", "user_id", "status"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    objective: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), default=TaskStatus.QUEUED.value)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[str] = mapped_column(Text, default="")
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, default=None)
    review: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, default=None)
    budget: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, default=None)
    guidance: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="SET NULL"), default=None
    )
    schedule_id: Mapped[str | None] = mapped_column(
        ForeignKey("schedules.id", ondelete="SET NULL"), default=None
    )
    revision_round: Mapped[int] = mapped_column(Integer, default=0)
    # each plan waits for the person's review (``awaiting_plan_review``) before it is worked
    review_plan: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # the stuck rule that paused it, while it waits for guidance ("" otherwise)
    paused_for: Mapped[str] = mapped_column(String(32), default="", server_default="")
    # the trace the task's work joins (W3C headers: ``traceparent``), when tracing is on
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONDocument, default=None)
    steps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dispatches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    unusable_streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failure_streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    denials: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # the plan or review request awaiting its answer ("" when none is)
    in_flight: Mapped[str] = mapped_column(String(32), default="", server_default="")
    last_event_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    subtasks: Mapped[list[Subtask]] = relationship(
        back_populates="task", cascade="all, delete-orphan", order_by="Subtask.position"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's declaration


class Subtask(Base):
    """One subtask of a task's plan."""

    __tablename__ = "subtasks"
    __table_args__ = (UniqueConstraint("task_id", "key"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    depends_on: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    priority: Mapped[int] = mapped_column(Integer, default=3)
    acceptance_criteria: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    tool_hints: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    result: Mapped[str] = mapped_column(Text, default="")
    result_files: Mapped[list[str]] = mapped_column(JSONDocument, default=list, server_default="[]")
    steps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    revision_notes: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    # the step request awaiting its answer ("" when none is)
    in_flight: Mapped[str] = mapped_column(String(32), default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    task: Mapped[Task] = relationship(back_populates="subtasks")


class TaskEvent(Base):
    """One entry of a task's event log; ``seq`` numbers a task's events 1, 2, 3…"""

    __tablename__ = "task_events"
    __table_args__ = (UniqueConstraint("task_id", "seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ToolCall(Base):
    """A proposed tool call: ``proposed → approved|denied → running → succeeded|failed``."""

    __tablename__ = "tool_calls"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    subtask_key: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64), unique=True)
    tool: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    step: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    proposals: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    output: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    images: Mapped[list[str]] = mapped_column(JSONDocument, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Interaction(Base):
    """Something waiting for the person: an approval, an input form, or a request for guidance."""

    __tablename__ = "interactions"
    __table_args__ = (Index("ix_interactions_user_status", "user_id", "status"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    tool_call_id: Mapped[str | None] = mapped_column(
        ForeignKey("tool_calls.id", ondelete="CASCADE"), default=None
    )
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    prompt: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, default=None)
    responded_by: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class AuditEntry(Base):
    """One decision about a tool call, kept for good: who or what decided, when, exactly which
    arguments, and from which client."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_task_at", "task_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    tool_call_id: Mapped[str | None] = mapped_column(String(32), default=None)
    interaction_id: Mapped[str | None] = mapped_column(String(32), default=None)
    action: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(255))
    tool: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")
    client: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class File(Base):
    """A file in a task's workspace (uploaded, or written by a tool)."""

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("task_id", "name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(16), default="upload")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Schedule(Base):
    """When a task runs: once at ``run_at``, or on a ``cron`` expression in ``timezone``.

    Each firing makes a task linked back through ``Task.schedule_id``.
    """

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    objective: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(String(200))
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cron: Mapped[str | None] = mapped_column(String(120), default=None)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    max_runs: Mapped[int | None] = mapped_column(Integer, default=None)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    misfire_policy: Mapped[str] = mapped_column(String(16), default="run_once")
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    status: Mapped[str] = mapped_column(String(16), default="active")
    policy: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    budget: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ScheduleRun(Base):
    """One fire time of a schedule and what came of it: ``ran``, ``ran_late`` (missed while
    nothing was running, run once after) or ``skipped``. Unique per schedule and fire time, so
    a firing happens once however many workers try."""

    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("schedule_id", "due_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    task_id: Mapped[str | None] = mapped_column(String(32), default=None)
    outcome: Mapped[str] = mapped_column(String(16))


class LlmUsage(Base):
    """One LLM call: model, tokens, latency and estimated cost, counted on its task."""

    __tablename__ = "llm_usage"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    agent: Mapped[str] = mapped_column(String(16))
    # the subtask the call worked on (the executor's steps; "" for the plan and the review)
    subtask: Mapped[str] = mapped_column(String(64), default="", server_default="")
    model: Mapped[str] = mapped_column(String(128))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    estimated: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
