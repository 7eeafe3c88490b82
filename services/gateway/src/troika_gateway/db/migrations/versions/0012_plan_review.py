"""plan review

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 10:30:00.000000

A task may wait for the person to review its plan; an account may ask for that by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("review_plan", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("review_plans", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("review_plans")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("review_plan")
