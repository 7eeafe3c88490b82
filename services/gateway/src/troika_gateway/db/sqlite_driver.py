"""SQLite through aiosqlite, one trip to its thread per statement.

aiosqlite runs every call on a thread of its own and wakes the event loop with each answer.
SQLAlchemy's adapter makes four such trips per statement (open a cursor, execute, fetch the
rows, close the cursor), each a hand-over between threads and a wake-up of the loop. Here a
statement, its rows and the cursor's close are one function run on aiosqlite's thread: one trip.
Transactions, errors and the connection's life stay aiosqlite's and SQLAlchemy's.

Pass :func:`dbapi` as ``module`` to ``create_async_engine`` for a ``sqlite+aiosqlite`` URL.
"""

# ruff: noqa: SLF001 - an adapter of aiosqlite and SQLAlchemy's adapter, by their inner parts,
# as SQLAlchemy's own adapter is

from __future__ import annotations

import collections
import sqlite3
from typing import TYPE_CHECKING, Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection

__all__ = ["dbapi"]

_Answer = tuple[Any, list[Any], int, int | None]
"""A statement's description, rows, row count and last row id."""


def _run(connection: aiosqlite.Connection, operation: str, parameters: Any) -> _Answer:  # noqa: ANN401 - DB-API parameters
    """On aiosqlite's thread: the statement, its rows, and the cursor closed."""
    cursor = connection._conn.cursor()  # the sqlite3 connection this thread owns
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_many(
    connection: aiosqlite.Connection, operation: str, parameters: Sequence[Any]
) -> _Answer:
    cursor = connection._conn.cursor()
    try:
        cursor.executemany(operation, parameters)
        return cursor.description, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement runs, fetches and closes in one trip to aiosqlite's thread;
    the rows are kept here, as SQLAlchemy's adapter keeps them."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # No cursor is opened ahead of the statement: each statement opens and closes its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:  # noqa: ANN401 - the DB-API description
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return  # the cursor closed with its statement

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> None:  # noqa: ANN401
        async with self._adapt_connection._execute_mutex:
            answer = await self._connection._execute(_run, self._connection, operation, parameters)
            self._description, rows, self._rowcount, self._lastrowid = answer
            self._rows = collections.deque(rows)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:  # noqa: ANN401
        async with self._adapt_connection._execute_mutex:
            answer = await self._connection._execute(
                _run_many, self._connection, operation, seq_of_parameters
            )
            self._description, _, self._rowcount, self._lastrowid = answer
            self._rows = collections.deque()


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    _cursor_cls = _OneTripCursor


class _OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _OneTripConnection:  # noqa: ANN401
        adapted = super().connect(*arg, **kw)
        return _OneTripConnection(self, adapted._connection)


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DB-API module for ``create_async_engine(..., module=dbapi())``."""
    return _OneTripDBAPI(aiosqlite, sqlite3)
