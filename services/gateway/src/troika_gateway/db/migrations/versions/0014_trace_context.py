"""trace context

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 14:00:00.000000

The trace each task's work joins, and the trace each outbox message is published in (W3C
trace-context headers; empty while tracing is off).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("trace_context", _JSON, nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("trace_context", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("trace_context")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("trace_context")
