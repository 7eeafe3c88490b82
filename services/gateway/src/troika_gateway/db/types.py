"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, Dialect, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB

__all__ = ["JSONDocument", "UTCDateTime"]

JSONDocument = JSON().with_variant(JSONB(), "postgresql")
"""JSON; JSONB on PostgreSQL."""


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime everywhere (SQLite keeps no zone, so it is restored on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: give a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: object, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        assert isinstance(value, datetime)  # noqa: S101 - the column's type
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
