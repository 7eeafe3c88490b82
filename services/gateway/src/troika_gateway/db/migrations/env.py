"""Alembic environment: runs on the connection the gateway hands over, or on its own for the CLI."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from alembic import context

from troika_gateway.db.engine import create_engine
from troika_gateway.db.models import Base

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("TROIKA_DATABASE_URL", "")
    if not url:
        raise SystemExit("set TROIKA_DATABASE_URL (or sqlalchemy.url) to the database to migrate")
    asyncio.run(_run_with_own_engine(url))


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")
main()
