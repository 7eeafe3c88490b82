"""requests in flight

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 16:30:00.000000

Each task and subtask remembers the request that awaits its agent's answer, so an answer to a
request that was overtaken is recognised, and a task with nothing in flight is found and
repaired. Tasks that were mid-request before this version are marked as such.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY = "legacy"  # an answer is awaited, for a request made before requests were remembered


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("in_flight", sa.String(length=32), server_default="", nullable=False)
        )
    with op.batch_alter_table("subtasks") as batch:
        batch.add_column(
            sa.Column("in_flight", sa.String(length=32), server_default="", nullable=False)
        )
    op.execute(
        sa.text(
            "UPDATE tasks SET in_flight = :legacy "
            "WHERE status IN ('queued', 'planning', 'reviewing')"
        ).bindparams(legacy=LEGACY)
    )
    op.execute(
        sa.text("UPDATE subtasks SET in_flight = :legacy WHERE status = 'running'").bindparams(
            legacy=LEGACY
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("subtasks") as batch:
        batch.drop_column("in_flight")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("in_flight")
