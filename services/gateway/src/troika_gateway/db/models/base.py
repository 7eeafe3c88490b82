"""The declarative base the tables share, and how their rows are named."""

from __future__ import annotations

import uuid

from sqlalchemy import MetaData, String, Table
from sqlalchemy.orm import DeclarativeBase

__all__ = ["ID", "NAMING", "Base", "new_uuid", "table_of"]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(32)
"""A row id's column type: 32 hex characters (:func:`new_uuid`)."""


def new_uuid() -> str:
    """A new row id: 32 hex characters."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (so migrations can refer to them)."""

    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """A model's table, for plain statements that skip the ORM's bookkeeping (rows only ever
    inserted; a change's subtasks, calls and approvals)."""
    return Base.metadata.tables[model.__tablename__]
