"""social accounts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 01:00:00.000000

The accounts people connect for the posting tools, their tokens encrypted.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import troika_gateway.db.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "social_accounts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("expires_at", troika_gateway.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("renewable", sa.Boolean(), nullable=False),
        sa.Column("problem", sa.String(length=500), nullable=False),
        sa.Column("created_at", troika_gateway.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", troika_gateway.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_social_accounts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_accounts")),
        sa.UniqueConstraint(
            "user_id",
            "platform",
            "account_id",
            name=op.f("uq_social_accounts_user_id_platform_account_id"),
        ),
    )
    op.create_index(
        op.f("ix_social_accounts_user_id"), "social_accounts", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_social_accounts_user_id"), table_name="social_accounts")
    op.drop_table("social_accounts")
