"""SQLite through the gateway's engine, each statement one trip to aiosqlite's thread or (the
worker's) none, with everything a statement gives back (rows, counts, ids, errors,
transactions) as before, and a wait for another writer's lock that leaves the loop free."""

from __future__ import annotations

import asyncio

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from troika_gateway.db.engine import create_engine, create_sessionmaker, lock_for_writing
from troika_gateway.db.sqlite_driver import dbapi

METADATA = MetaData()
NOTES = Table(
    "notes",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
    Column("size", Integer, nullable=False, default=0),
)


@pytest.fixture(params=["none", "writes", "all"])
def on_loop(request) -> str:
    """Which statements run on the event loop: none, the writes (the API's), all (the
    worker's)."""
    return request.param


@pytest.fixture
async def engine(tmp_path, on_loop):
    made = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}", statements_on_loop=on_loop)
    async with made.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    yield made
    await made.dispose()


@pytest.fixture
def trips(monkeypatch):
    """How many calls went to aiosqlite's thread."""
    counted: list[str] = []
    real = aiosqlite.Connection._execute

    async def counting(self, fn, *args, **kwargs):
        counted.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return counted


async def test_a_statement_with_its_rows_is_one_trip_to_the_thread_or_none_at_all(
    engine, on_loop, trips
) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("select 1"))  # the pool's connection is ready
        trips.clear()
        rows = (await connection.execute(text("select 1 union all select 2"))).all()
        assert [tuple(row) for row in rows] == [(1,), (2,)]
        await connection.execute(insert(NOTES), [{"name": "a"}, {"name": "b"}])
        # the read and the write each go to the thread, the read alone, or neither
        assert len(trips) == {"none": 2, "writes": 1, "all": 0}[on_loop], trips


async def test_rows_counts_ids_and_the_pragmas_are_what_sqlite_says(engine) -> None:
    async with engine.begin() as connection:
        first = await connection.execute(insert(NOTES).values(name="a", size=1))
        assert first.inserted_primary_key == (1,)
        many = await connection.execute(
            insert(NOTES), [{"name": "b", "size": 2}, {"name": "c", "size": 3}]
        )
        assert many.rowcount == 2
        changed = await connection.execute(update(NOTES).where(NOTES.c.size > 1).values(size=9))
        assert changed.rowcount == 2
        rows = (await connection.execute(select(NOTES.c.name, NOTES.c.size))).all()
        assert sorted(map(tuple, rows)) == [("a", 1), ("b", 9), ("c", 9)]
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"


async def test_an_error_is_sqlalchemys_and_its_transaction_rolls_back(engine) -> None:
    async def the_same_name_twice() -> None:
        async with engine.begin() as connection:
            await connection.execute(insert(NOTES).values(name="same"))
            await connection.execute(insert(NOTES).values(name="same"))

    with pytest.raises(IntegrityError):
        await the_same_name_twice()
    async with engine.connect() as connection:
        assert (await connection.execute(select(NOTES))).all() == []
        # the connection goes on working after the error
        await connection.execute(insert(NOTES).values(name="after"))
        await connection.commit()
        assert (await connection.execute(select(NOTES.c.name))).scalars().all() == ["after"]


async def test_a_writer_waits_for_another_without_holding_up_the_loop(engine) -> None:
    """Two writers of one process: the second finds the database locked, and waits while the
    first, on the same event loop, finishes and commits."""
    first_wrote = asyncio.Event()
    second_waiting = asyncio.Event()

    async def first() -> None:
        async with engine.begin() as connection:
            await connection.execute(insert(NOTES).values(name="first"))
            first_wrote.set()
            await second_waiting.wait()  # the loop runs on while the second waits
            await asyncio.sleep(0.05)

    async def second() -> None:
        await first_wrote.wait()
        async with engine.begin() as connection:
            second_waiting.set()
            await connection.execute(insert(NOTES).values(name="second"))

    await asyncio.wait_for(asyncio.gather(first(), second()), timeout=10)
    async with engine.connect() as connection:
        names = (await connection.execute(select(NOTES.c.name).order_by(NOTES.c.id))).scalars()
        assert names.all() == ["first", "second"]


async def test_a_lock_held_past_the_timeout_fails_the_waiting_statement(tmp_path, on_loop) -> None:
    made = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}",
        module=dbapi(on_loop=on_loop),
        connect_args={"timeout": 0.2},
    )
    async with made.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    try:
        async with made.connect() as holder:
            await holder.execute(insert(NOTES).values(name="held"))  # the lock, kept
            loop = asyncio.get_running_loop()
            started = loop.time()
            ticks = 0

            async def ticking() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(ticking())
            with pytest.raises(OperationalError, match="database is locked"):
                async with made.begin() as waiter:
                    await waiter.execute(insert(NOTES).values(name="waiting"))
            ticker.cancel()
            assert loop.time() - started >= 0.2
            assert ticks >= 5  # the loop went on while the statement waited
            await holder.commit()
        async with made.connect() as connection:
            names = (await connection.execute(select(NOTES.c.name))).scalars().all()
            assert names == ["held"]
    finally:
        await made.dispose()


async def test_a_change_that_takes_the_write_lock_first_loses_no_other_change(engine) -> None:
    """Two changes of one row read it and write it back: the second, taking the lock after the
    first, reads what the first wrote instead of what was there before."""
    sessions = create_sessionmaker(engine)
    async with engine.begin() as connection:
        await connection.execute(insert(NOTES).values(name="counter", size=0))
    first_read = asyncio.Event()

    async def add_one(*, first: bool) -> None:
        if not first:
            await first_read.wait()
        async with sessions() as db:
            await lock_for_writing(db)
            size = (await db.execute(select(NOTES.c.size))).scalar_one()
            if first:
                first_read.set()
                await asyncio.sleep(0.1)  # the second tries meanwhile
            await db.execute(update(NOTES).values(size=size + 1))
            await db.commit()

    await asyncio.wait_for(asyncio.gather(add_one(first=True), add_one(first=False)), timeout=10)
    async with engine.connect() as connection:
        assert (await connection.execute(select(NOTES.c.size))).scalar_one() == 2
