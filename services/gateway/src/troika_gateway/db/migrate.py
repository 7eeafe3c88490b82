"""Applying migrations: the gateway brings its database to the newest schema on start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["alembic_config", "upgrade"]

_MIGRATION_LOCK = 0x7472_6F69_6B61  # any constant: gateways migrating at once take turns


def alembic_config(url: str = "") -> Config:
    """An Alembic configuration that finds the migrations inside this package."""
    config = Config()
    config.set_main_option("script_location", "troika_gateway.db:migrations")
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade(engine: AsyncEngine) -> None:
    """Brings the database to the newest revision (a no-op when it is there already)."""

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(run)
