"""usage by subtask

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 14:30:00.000000

Each model call's subtask (the executor's steps), so a task's spending shows per subtask.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("llm_usage") as batch:
        batch.add_column(
            sa.Column("subtask", sa.String(length=64), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("llm_usage") as batch:
        batch.drop_column("subtask")
