"""person token limits

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 15:00:00.000000

A person's own daily and monthly token limits for all their tasks, beside the money ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("daily_budget_tokens", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("monthly_budget_tokens", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("monthly_budget_tokens")
        batch.drop_column("daily_budget_tokens")
