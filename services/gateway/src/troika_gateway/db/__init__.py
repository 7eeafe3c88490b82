"""The gateway's database: models, engine and migrations. Only the gateway touches it."""

from troika_gateway.db.engine import create_engine, create_sessionmaker
from troika_gateway.db.migrate import upgrade

__all__ = ["create_engine", "create_sessionmaker", "upgrade"]
