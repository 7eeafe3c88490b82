"""What crosses the bus exactly once: the outbox of messages a change committed, and the
messages whose effects are committed already."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from troika_gateway.db.models.base import Base
from troika_gateway.db.types import JSONDocument, UTCDateTime
from troika_shared.messages import utcnow

__all__ = ["Outbox", "ProcessedMessage"]


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
