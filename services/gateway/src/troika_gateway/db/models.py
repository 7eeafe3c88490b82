"""The gateway's tables. Every row of user data is reachable from its owner's ``user_id``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from troika_gateway.db.types import JSONDocument, UTCDateTime
from troika_gateway.pipeline.states import TaskStatus
from troika_shared.messages import utcnow

__all__ = [
    "AuditEntry",
    "Base",
    "Credential",
    "Device",
    "File",
    "Interaction",
    "LlmUsage",
    "Outbox",
    "PairingCode",
    "ProcessedMessage",
    "Schedule",
    "ScheduleRun",
    "Session",
    "SocialAccount",
    "Subtask",
    "Task",
    "TaskEvent",
    "TaskStatus",
    "ToolCall",
    "ToolPolicy",
    "User",
    "new_uuid",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_uuid() -> str:
    """A new row id: 32 hex characters."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (so migrations can refer to them)."""

    metadata = MetaData(naming_convention=NAMING)


_ID = String(32)


class User(Base):
    """An account."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    photo_content_type: Mapped[str | None] = mapped_column(String(64), default=None)
    photo_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # new tasks wait for the person to review their plan unless the composer says otherwise
    review_plans: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # the person's own money limits for all their tasks, in USD (none: no limit)
    daily_budget_usd: Mapped[float | None] = mapped_column(Float, default=None)
    monthly_budget_usd: Mapped[float | None] = mapped_column(Float, default=None)
    # the most tokens all their tasks may use in a day / a calendar month (UTC); none: no limit
    daily_budget_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    monthly_budget_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class UserPhoto(Base):
    """A profile photo, kept in the database so every gateway replica, on any host, serves it
    (it is small: ``TROIKA_MAX_PHOTO_BYTES``)."""

    __tablename__ = "user_photos"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    content_type: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Session(Base):
    """A signed-in client: its refresh token (hashed) and whether it was revoked.

    Access tokens name their session, so revoking it (logout, password change) refuses them too.
    """

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    refresh_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    client_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")


class RetiredRefreshToken(Base):
    """A refresh token a session has rotated away from (hashed). Shown again, it means the token
    was copied: whoever holds it, the session ends (OAuth 2.0 Security BCP, refresh-token
    reuse). Kept as long as the token could still have been used: the refresh lifetime."""

    __tablename__ = "retired_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    retired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Task(Base):
    """An objective and everything that happens to it. ``version`` guards concurrent writers."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_user_created", "user_id", "created_at"),
        Index("ix_tasks_user_status", "user_id", "status"),
    )

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
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

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
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

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
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

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
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


class ToolPolicy(Base):
    """How one tool's calls are decided: for all of a user's tasks (``scope`` ``"user"``), or
    for one task (``scope`` is its id). ``mode``: ``ask`` (every call), ``ask_once`` (the first
    call in a task; later ones are approved), ``allow`` (never asks) or ``deny`` (never runs)."""

    __tablename__ = "tool_policies"
    __table_args__ = (UniqueConstraint("user_id", "scope", "tool"),)

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(32))
    tool: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Credential(Base):
    """A person's credentials for one kind of tool (``smtp``): the secret part encrypted (see
    :mod:`troika_shared.vault`, bound to the owner and kind), the rest readable for display."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("user_id", "kind"),)

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    sealed: Mapped[str] = mapped_column(Text)
    shown: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SocialAccount(Base):
    """A person's account on a social platform, connected for the posting tools: its tokens
    encrypted (see :mod:`troika_shared.vault`, bound to the owner and the row), who it is and
    when its token expires readable, for display and refresh."""

    __tablename__ = "social_accounts"
    __table_args__ = (UniqueConstraint("user_id", "platform", "account_id"),)

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    username: Mapped[str] = mapped_column(String(200), default="")
    sealed: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    renewable: Mapped[bool] = mapped_column(Boolean, default=False)
    problem: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Device(Base):
    """A PC paired with the person's account, where ``troika-desktop`` runs their approved
    desktop actions. Its credential is kept hashed; a revoked PC is refused at once and for
    good. ``connected`` and ``last_seen_at`` tell whether it holds a connection now."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(64), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    connection_id: Mapped[str] = mapped_column(String(32), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class PairingCode(Base):
    """A one-time code that pairs a PC with the person's account, kept hashed; it works once,
    for a few minutes."""

    __tablename__ = "pairing_codes"

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


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

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
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

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
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

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_uuid)
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


class Outbox(Base):
    """A message committed with the state change that caused it, published after the commit.

    A crash between commit and publish leaves the row unpublished; the relay publishes it on
    its next sweep, and JetStream drops the copy if the first publish did get through.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unpublished", "published_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    task_id: Mapped[str | None] = mapped_column(String(32), default=None)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # the trace the message travels in (W3C headers), published with it
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONDocument, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ProcessedMessage(Base):
    """A bus message whose effects are committed: a redelivered copy is acknowledged, not redone."""

    __tablename__ = "processed_messages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
