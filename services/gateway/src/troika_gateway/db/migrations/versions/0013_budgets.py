"""budgets

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 11:30:00.000000

A person's own daily and monthly money limits, and the rule a paused task stopped for (raising
the task's budget resumes a task its budget stopped).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("paused_for", sa.String(length=32), server_default="", nullable=False)
        )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("daily_budget_usd", sa.Float(), nullable=True))
        batch.add_column(sa.Column("monthly_budget_usd", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("monthly_budget_usd")
        batch.drop_column("daily_budget_usd")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("paused_for")
