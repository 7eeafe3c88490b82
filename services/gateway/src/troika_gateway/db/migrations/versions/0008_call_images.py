"""call images

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 02:10:00.000000

A tool call remembers the screenshots it took (their names in the short-lived screenshot area),
so the executor's next step can show the latest one to a model that reads images.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tool_calls") as batch:
        batch.add_column(
            sa.Column(
                "images",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                server_default="[]",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("tool_calls") as batch:
        batch.drop_column("images")
