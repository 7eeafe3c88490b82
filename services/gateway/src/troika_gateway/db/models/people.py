"""A person's rows: their account, sessions, photo, tool policies, credentials, social
accounts and paired PCs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from troika_gateway.db.models.base import ID, Base, new_uuid
from troika_gateway.db.types import JSONDocument, UTCDateTime
from troika_shared.messages import utcnow

__all__ = [
    "Credential",
    "Device",
    "PairingCode",
    "RetiredRefreshToken",
    "Session",
    "SocialAccount",
    "ToolPolicy",
    "User",
    "UserPhoto",
]


class User(Base):
    """An account."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
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

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
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


class ToolPolicy(Base):
    """How one tool's calls are decided: for all of a user's tasks (``scope`` ``"user"``), or
    for one task (``scope`` is its id). ``mode``: ``ask`` (every call), ``ask_once`` (the first
    call in a task; later ones are approved), ``allow`` (never asks) or ``deny`` (never runs)."""

    __tablename__ = "tool_policies"
    __table_args__ = (UniqueConstraint("user_id", "scope", "tool"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
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

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
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

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
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

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
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

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_uuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
