"""The SQLite adapter with one trip per statement (storage/sqlite_driver.py) behaves like
SQLAlchemy's own: rows, counts, ids, errors, and a transaction never left open in the pool."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage.db import create_engine
from storage.sqlite_driver import OneTripConnection


class Trips:
    """Counts the calls that go to aiosqlite's thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = aiosqlite.Connection._execute

        async def counted(connection: aiosqlite.Connection, fn: object, *a: object, **k: object):
            self.count += 1
            return await original(connection, fn, *a, **k)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)


async def test_statements_return_what_the_adapter_returned(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
    try:
        async with engine.begin() as conn:
            raw = await conn.get_raw_connection()
            assert isinstance(raw.dbapi_connection, OneTripConnection)
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
            inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('a'), ('b')"))
            assert inserted.rowcount == 2
            returned = await conn.execute(text("INSERT INTO t (name) VALUES ('c') RETURNING id"))
            assert returned.scalar_one() == 3
            updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id < 3"))
            assert updated.rowcount == 2
            rows = await conn.execute(text("SELECT id, name FROM t ORDER BY id"))
            assert list(rows.keys()) == ["id", "name"]
            assert [tuple(r) for r in rows] == [(1, "a!"), (2, "b!"), (3, "c")]
            many = await conn.execute(
                text("INSERT INTO t (name) VALUES (:name)"), [{"name": "d"}, {"name": "e"}]
            )
            assert many.rowcount == 2
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 5
    finally:
        await engine.dispose()


async def test_a_failed_transaction_is_rolled_back_and_a_committed_one_costs_no_rollback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}", pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
            await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        trips = Trips(monkeypatch)
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (name) VALUES ('b')"))
                await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        # The same pooled connection: nothing of the failed transaction stayed, and it is not
        # left inside a transaction (another connection can write).
        other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
        try:
            async with other.begin() as conn:
                await conn.execute(text("INSERT INTO t (name) VALUES ('z')"))
        finally:
            await other.dispose()
        async with engine.connect() as conn:
            names = (await conn.execute(text("SELECT name FROM t ORDER BY name"))).scalars()
            assert list(names) == ["a", "z"]
        # BEGIN, the statement, COMMIT: three trips, and no rollback once it is given back.
        before = trips.count
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES ('c')"))
        assert trips.count - before == 3
    finally:
        await engine.dispose()
