"""SQLite for SQLAlchemy's asyncio engine, with far fewer hand-overs between threads.

aiosqlite runs every call on a thread of its own and wakes the event loop with each answer;
SQLAlchemy's adapter makes four such trips per statement (open a cursor, execute, fetch the
rows, close the cursor). Measured on a two-core machine, a trivial statement cost about 150 µs
of CPU that way and about 40 µs run directly: the hand-overs, not SQLite, were most of the work.
Two ways out, chosen per engine (:func:`dbapi`):

* **One trip** (the default): a statement, its rows and the cursor's close are one function
  run on aiosqlite's thread. The loop never waits on the file, whatever the query.
* **On the loop**: the statement runs where SQLAlchemy asks for it, on the event loop's
  thread, with its rows fetched and its cursor closed at once: every statement, for a process
  whose statements are all small and keyed (the worker's: one task's rows, a batch of outbox
  marks), or the writes and commits only (the gateway's, whose reads a request may make as
  large as it likes, e.g. a search of a long history; those go to the thread). Waiting for
  another writer must not block the loop, so the connection's busy timeout is zero: a
  statement that finds the database locked fails at once and, if it was its transaction's
  first write (nothing written yet, so nothing lost), the transaction is rolled back and the
  statement tried again after an asynchronous pause, until the engine's ``timeout`` (seconds).
  Other connections of the process, the lock's holder among them, go on meanwhile. A commit
  that finds the database locked is tried again the same way.

Either way aiosqlite opens and closes the connection, and transactions and errors stay
SQLAlchemy's. Pass ``dbapi(...)`` as ``module`` to ``create_async_engine`` for a
``sqlite+aiosqlite`` URL.
"""

# ruff: noqa: SLF001 - an adapter of aiosqlite and SQLAlchemy's adapter, by their inner parts,
# as SQLAlchemy's own adapter is

from __future__ import annotations

import asyncio
import collections
import sqlite3
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection, AsyncIODBAPIConnection

__all__ = ["OnLoop", "dbapi", "in_transaction"]

_T = TypeVar("_T")
_Answer = tuple[Any, list[Any], int, int | None]
"""A statement's description, rows, row count and last row id."""

_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_FIRST_PAUSE_S = 0.001
_LONGEST_PAUSE_S = 0.05
_DEFAULT_TIMEOUT_S = 5.0  # sqlite3's own default
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN")


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` says another connection holds the lock it needed."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _BUSY


def _run(connection: sqlite3.Connection, operation: str, parameters: Any) -> _Answer:  # noqa: ANN401 - DB-API parameters
    """The statement, its rows, and the cursor closed."""
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_many(connection: sqlite3.Connection, operation: str, parameters: Sequence[Any]) -> _Answer:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return cursor.description, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _on_thread(
    owner: aiosqlite.Connection,
    run: Callable[[sqlite3.Connection, str, Any], _Answer],
    operation: str,
    parameters: Any,  # noqa: ANN401 - DB-API parameters
) -> _Answer:
    """On aiosqlite's thread: the statement on the sqlite3 connection that thread owns."""
    return run(owner._conn, operation, parameters)


class _OneStatementCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement runs, fetches and closes at once; the rows are kept here, as
    SQLAlchemy's adapter keeps them."""

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

    def _keep(self, answer: _Answer) -> None:
        self._description, rows, self._rowcount, self._lastrowid = answer
        self._rows = collections.deque(rows)


class _OneTripCursor(_OneStatementCursor):
    """Each statement one trip to aiosqlite's thread."""

    __slots__ = ()

    async def _execute_async(self, operation: Any, parameters: Any) -> None:  # noqa: ANN401
        async with self._adapt_connection._execute_mutex:
            owner = self._connection
            self._keep(await owner._execute(_on_thread, owner, _run, operation, parameters))

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:  # noqa: ANN401
        async with self._adapt_connection._execute_mutex:
            owner = self._connection
            self._keep(
                await owner._execute(_on_thread, owner, _run_many, operation, seq_of_parameters)
            )


class _InLoopCursor(_OneStatementCursor):
    """Each statement run on the event loop's thread (see :class:`_InLoopConnection`)."""

    __slots__ = ()

    _adapt_connection: _InLoopConnection

    async def _execute_async(self, operation: Any, parameters: Any) -> None:  # noqa: ANN401
        self._keep(await self._adapt_connection.statement(_run, operation, parameters))

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:  # noqa: ANN401
        self._keep(await self._adapt_connection.statement(_run_many, operation, seq_of_parameters))


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    _cursor_cls = _OneTripCursor


class _InLoopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_busy_timeout_s", "_reads_on_thread")

    _cursor_cls = _InLoopCursor

    def __init__(
        self,
        dbapi: Any,  # noqa: ANN401 - SQLAlchemy's adapted DB-API module
        connection: AsyncIODBAPIConnection,
        busy_timeout_s: float,
        *,
        reads_on_thread: bool,
    ) -> None:
        super().__init__(dbapi, connection)
        self._busy_timeout_s = busy_timeout_s
        self._reads_on_thread = reads_on_thread

    @property
    def _sqlite(self) -> sqlite3.Connection:
        owner: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        return owner._conn

    async def statement(
        self,
        run: Callable[[sqlite3.Connection, str, Any], _Answer],
        operation: str,
        parameters: Any,  # noqa: ANN401 - DB-API parameters
    ) -> _Answer:
        """Runs a statement now (a read on aiosqlite's thread, where reads go there); waits out
        another writer's lock without blocking the loop."""
        connection = self._sqlite
        began = connection.in_transaction
        if self._reads_on_thread and not _writes(operation):
            owner = self._connection

            async def attempt() -> _Answer:
                answer: _Answer = await owner._execute(
                    _on_thread, owner, run, operation, parameters
                )
                return answer
        else:

            async def attempt() -> _Answer:
                return run(connection, operation, parameters)

        try:
            return await attempt()
        except sqlite3.OperationalError as exc:
            if began or not _busy(exc):
                raise  # a write after the first holds the lock already: not a wait
        return await self._when_free(attempt, reset=True)

    async def _when_free(self, attempt: Callable[[], Awaitable[_T]], *, reset: bool) -> _T:
        """Tries ``attempt``, which found the database locked, again after a pause that grows,
        until the busy timeout; ``reset`` first rolls back the transaction the failed try
        began (nothing was written in it), so that nothing is held while it waits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_timeout_s
        pause = _FIRST_PAUSE_S
        while True:
            if reset and self._sqlite.in_transaction:
                self._sqlite.rollback()
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE_S)
            try:
                return await attempt()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or loop.time() >= deadline:
                    raise

    def commit(self) -> None:
        if not self._connection._connection:
            return
        sqlite = self._sqlite

        async def commit_again() -> None:
            sqlite.commit()

        try:
            sqlite.commit()
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                self._handle_exception(exc)
            try:
                await_(self._when_free(commit_again, reset=False))
            except Exception as error:  # noqa: BLE001 - handed to SQLAlchemy, which raises it
                self._handle_exception(error)
        except Exception as error:  # noqa: BLE001 - handed to SQLAlchemy, which raises it
            self._handle_exception(error)

    def rollback(self) -> None:
        if not self._connection._connection:
            return
        try:
            self._sqlite.rollback()
        except Exception as error:  # noqa: BLE001 - handed to SQLAlchemy, which raises it
            self._handle_exception(error)


class _OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _OneTripConnection:  # noqa: ANN401
        adapted = super().connect(*arg, **kw)
        return _OneTripConnection(self, adapted._connection)


class _InLoopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def __init__(self, *, reads_on_thread: bool) -> None:
        super().__init__(aiosqlite, sqlite3)
        self._reads_on_thread = reads_on_thread

    def connect(self, *arg: Any, **kw: Any) -> _InLoopConnection:  # noqa: ANN401
        busy_timeout_s = float(kw.pop("timeout", _DEFAULT_TIMEOUT_S))
        adapted = super().connect(*arg, timeout=0, **kw)
        return _InLoopConnection(
            self, adapted._connection, busy_timeout_s, reads_on_thread=self._reads_on_thread
        )


OnLoop = Literal["none", "writes", "all"]
"""Which SQLite statements run on the event loop's thread: none (each one trip to
aiosqlite's), the writes and commits (reads, whose size a request may decide, go to the
thread), or all of them."""


def _writes(operation: str) -> bool:
    return operation.lstrip()[:7].upper().startswith(_WRITES)


def in_transaction(driver_connection: object) -> bool:
    """Whether SQLite has a transaction open on a connection (its first write, or an explicit
    ``BEGIN``, opens one; reads alone do not), given SQLAlchemy's ``driver_connection``."""
    sqlite: Any = getattr(driver_connection, "_conn", driver_connection)  # aiosqlite's or not
    return bool(sqlite.in_transaction)


def dbapi(*, on_loop: OnLoop = "none") -> AsyncAdapt_aiosqlite_dbapi:
    """The DB-API module for ``create_async_engine(..., module=dbapi())`` (see
    :data:`OnLoop`)."""
    if on_loop == "none":
        return _OneTripDBAPI(aiosqlite, sqlite3)
    return _InLoopDBAPI(reads_on_thread=on_loop == "writes")
