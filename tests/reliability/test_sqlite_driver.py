"""The SQLite adapter (storage/sqlite_driver.py) behaves like SQLAlchemy's own: rows, counts,
ids, errors, and a transaction never left open in the pool; statements run on the event loop
unless they must wait for another connection's lock, and then wait in the thread, never on the
loop."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage.db import create_engine
from storage.sqlite_driver import CHECKPOINT_EVERY, OneTripConnection


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
        # BEGIN, the statement, COMMIT: no trip to the thread, and no rollback after it.
        before = trips.count
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES ('c')"))
        assert trips.count - before == 0
    finally:
        await engine.dispose()


async def test_a_statement_that_must_wait_for_a_lock_waits_in_the_thread_not_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the write lock: our BEGIN IMMEDIATE waits in aiosqlite's thread
    (busy timeout) while the event loop goes on, and takes the lock once it is free."""
    path = tmp_path / "x.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"))
        other = sqlite3.connect(path, isolation_level=None)  # "another process"
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t (name) VALUES ('theirs')")
        trips = Trips(monkeypatch)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        async def ours() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (name) VALUES ('ours')"))

        ticker = asyncio.create_task(tick())
        writer = asyncio.create_task(ours())
        await asyncio.sleep(0.3)
        assert not writer.done() and ticks >= 10  # waiting, and the loop is not blocked
        other.execute("COMMIT")
        other.close()
        async with asyncio.timeout(10):
            await writer
        ticker.cancel()
        assert trips.count >= 1  # the wait was in the thread
        async with engine.connect() as conn:
            names = (await conn.execute(text("SELECT name FROM t ORDER BY id"))).scalars()
            assert list(names) == ["theirs", "ours"]
    finally:
        await engine.dispose()


async def test_the_wal_is_checkpointed_in_the_thread_every_so_many_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"))
        setup = sqlite3.connect(path)
        setup.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the table into the file
        setup.close()

        def in_the_file() -> int:
            """Rows in the database file itself (a reader that ignores the WAL)."""
            reader = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
            try:
                return int(reader.execute("SELECT count(*) FROM t").fetchone()[0])
            finally:
                reader.close()

        trips = Trips(monkeypatch)
        commits = 0
        while trips.count == 0:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (name) VALUES ('x')"))
            commits += 1
            if trips.count == 0:
                assert in_the_file() < commits  # the WAL holds the last commits
            assert commits <= CHECKPOINT_EVERY
        assert trips.count == 1  # the one commit that checkpoints, in the thread
        assert in_the_file() == commits  # the WAL was copied back into the file
    finally:
        await engine.dispose()
