"""SQLite through the gateway's engine: each statement one trip to aiosqlite's thread, with
everything a statement gives back (rows, counts, ids, errors, transactions) as before."""

from __future__ import annotations

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from troika_gateway.db.engine import create_engine

METADATA = MetaData()
NOTES = Table(
    "notes",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
    Column("size", Integer, nullable=False, default=0),
)


@pytest.fixture
async def engine(tmp_path):
    made = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}")
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


async def test_a_statement_with_its_rows_is_one_trip_to_the_thread(engine, trips) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("select 1"))  # the pool's connection is ready
        trips.clear()
        rows = (await connection.execute(text("select 1 union all select 2"))).all()
        assert [tuple(row) for row in rows] == [(1,), (2,)]
        assert len(trips) == 1, trips


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
