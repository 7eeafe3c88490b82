"""Engine and sessions for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.util import await_

from troika_gateway.db.sqlite_driver import OnLoop, dbapi, in_transaction

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = [
    "WRITE_CONFLICTS",
    "connection_lost",
    "create_engine",
    "create_sessionmaker",
    "dead_client_settings",
    "lock_for_writing",
    "worth_retrying",
]

WRITE_CONFLICTS = (StaleDataError, IntegrityError)
"""What a task's writer meets when another writer committed to the same task first: the task's
version moved on, or the other took the next event number or message id. Roll back, load the
task again and reapply."""


# PostgreSQL ended the transaction to let another go on: a deadlock, a serialization failure
_ABORTED_FOR_ANOTHER = frozenset({"40P01", "40001"})


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is the database dropping a connection (a restart, a terminated backend):
    the pool has replaced it, and the work can simply be tried again."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def worth_retrying(exc: BaseException) -> bool:
    """Whether a transaction that failed with ``exc`` can simply be run again from the start:
    another writer got there first (see :data:`WRITE_CONFLICTS`), the server aborted it in
    favour of another, or the connection was lost."""
    if isinstance(exc, WRITE_CONFLICTS) or connection_lost(exc):
        return True
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _ABORTED_FOR_ANOTHER


def create_engine(
    url: str,
    *,
    pre_ping: bool = True,
    dead_client_s: float = 60.0,
    statements_on_loop: OnLoop = "none",
) -> AsyncEngine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and a busy timeout.

    ``pre_ping``: a pooled PostgreSQL connection is tested before each use (see
    :func:`_test_before_use`), so a server restart costs no request. A process that retries its
    work on a lost connection anyway (the worker) does without: a dropped connection fails one
    attempt and the pool replaces it.

    ``dead_client_s``: PostgreSQL ends a session whose client has stopped answering for this
    long — its transaction left idle, what the server sent it unacknowledged, or its keepalives
    unanswered — so a process whose host is cut off mid-transaction does not hold its rows
    locked against the other replicas until TCP gives up, many minutes later.

    ``statements_on_loop``: which SQLite statements run on the event loop's thread instead of
    aiosqlite's (:data:`~troika_gateway.db.sqlite_driver.OnLoop`): all of them for a process
    whose statements are all small and keyed (the worker), the writes for one that also serves
    reads of any size (the API).
    """
    if url.startswith("sqlite"):
        # one trip to aiosqlite's thread per statement instead of four, or none (sqlite_driver)
        aiosqlite = url.startswith("sqlite+aiosqlite")
        driver = {"module": dbapi(on_loop=statements_on_loop)} if aiosqlite else {}
        engine = create_async_engine(url, connect_args={"timeout": 30}, **driver)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _: object) -> None:  # noqa: ANN401 - a DB-API object
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    engine = create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        connect_args={"server_settings": dead_client_settings(dead_client_s)},
    )
    if pre_ping:
        _test_before_use(engine)
    return engine


def _test_before_use(engine: AsyncEngine) -> None:
    """Tests each pooled PostgreSQL connection as it is taken, with an empty statement: one
    round trip (SQLAlchemy's own ``pool_pre_ping`` wraps it in a transaction for the sake of
    PgBouncer's transaction mode, three round trips before every request). A connection that
    fails it is thrown away and the pool takes another, or opens a new one."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping(_dbapi: object, _record: object, connection: Any) -> None:  # noqa: ANN401 - the pool's proxy
        try:
            await_(connection.driver_connection.fetchrow(";"))
        except Exception as exc:  # closed by the server, or broken: whatever it raised
            raise DisconnectionError(f"a pooled connection was lost: {exc}") from exc


def dead_client_settings(seconds: float) -> dict[str, str]:
    """The PostgreSQL session settings that end a session ``seconds`` after its client stopped
    answering: idle in a transaction, sent data unacknowledged (``tcp_user_timeout``), or
    silent (three keepalives unanswered)."""
    milliseconds = str(round(seconds * 1000))
    return {
        "idle_in_transaction_session_timeout": milliseconds,
        "tcp_user_timeout": milliseconds,
        "tcp_keepalives_idle": str(max(1, round(seconds / 2))),
        "tcp_keepalives_interval": str(max(1, round(seconds / 6))),
        "tcp_keepalives_count": "3",
    }


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


_IMMEDIATE = text("BEGIN IMMEDIATE")


async def lock_for_writing(db: AsyncSession) -> None:
    """On SQLite, takes the database's write lock now, before a change reads what it will
    write (SQLite's counterpart of PostgreSQL's ``SELECT … FOR UPDATE``): two processes
    changing one task then take turns instead of both reading it, one of them failing its
    version check and reading it again. Nothing on PostgreSQL, or where the session's
    transaction has written already."""
    connection = await db.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = await connection.get_raw_connection()
    if not in_transaction(raw.driver_connection):
        await connection.execute(_IMMEDIATE)
