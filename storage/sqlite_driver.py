"""SQLAlchemy's aiosqlite adapter, statements run on the event loop unless they must wait.

aiosqlite runs every call of the sqlite3 module in a thread of its own, and SQLAlchemy's
adapter makes four such calls per statement (open a cursor, execute, fetch the rows, close the
cursor) and one more to roll back every connection given back to the pool, even after a commit.
Each trip costs a future, a thread wake-up and a wake-up of the event loop (about 30 us of CPU):
some 35 trips per clerk's question, a tenth of the bot's CPU. Here a statement is one trip
(cursor, execute, rows and close together in the thread), and the rollback on return is left
out when the connection is known to be outside a transaction (sqlite3's `in_transaction`, read
in the thread after every statement, commit and rollback).

Most statements need no trip at all (issue #19, fourth round): a statement that cannot wait
on another connection's lock runs at once on the event loop's thread (the sqlite3 connection is
still used by one thread at a time): every statement of a transaction that holds the write
lock (after `BEGIN IMMEDIATE`), and any other one first tried with SQLite's busy timeout set to
zero; only when that attempt finds the file locked (another process writing) is it sent to the
thread to wait there, as before. A trip costs more than its future: the loop waits for the GIL
while the thread works. Commits run on the loop too, and so cannot stall it on a disk flush:
the connections do not checkpoint the WAL on commit (`PRAGMA wal_autocheckpoint=0`, set by
storage/db.py); every `CHECKPOINT_EVERY`-th commit of an engine goes to the thread with a
passive checkpoint after it (the flush happens there).

Behaviour is the adapter's own otherwise (errors, rows, rowcount, lastrowid, description);
`create_engine` (storage/db.py) uses it for every SQLite URL. It relies on two internals of
aiosqlite 0.22 (`Connection._execute`, `Connection._conn`; SQLAlchemy's adapter itself uses its
queue), so an upgrade of aiosqlite must pass tests/reliability/test_storage.py.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["BUSY_TIMEOUT_MS", "CHECKPOINT_EVERY", "OneTripDBAPI", "one_trip_dbapi"]

T = TypeVar("T")

# Commits of one engine between two checkpoints of the WAL (each in aiosqlite's thread). A
# question's commit adds a few pages, so the WAL stays around SQLite's default of 1,000 pages.
CHECKPOINT_EVERY = 100
# How long a statement sent to the thread waits for another connection's lock.
BUSY_TIMEOUT_MS = 15_000


def _busy(error: BaseException) -> bool:
    """SQLITE_BUSY (or SQLITE_LOCKED): another connection holds the lock this statement needs."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "database is locked" in str(error)


def _takes_write_lock(operation: Any) -> bool:
    """`BEGIN IMMEDIATE` / `BEGIN EXCLUSIVE`: once it succeeded the connection holds the
    file's write lock until its commit or rollback."""
    head = str(operation).lstrip()[:16].upper()
    return head.startswith(("BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"))


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statements each take one trip to aiosqlite's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        # No sqlite3 cursor is opened here (the base class spends a trip on it): each
        # statement opens and closes its own in the thread.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None  # nothing stays open in the thread; the description is kept already

    def close(self) -> None:
        self._rows.clear()

    def _statement(self, operation: Any, parameters: Any) -> Callable[[], Any]:
        connection = self._connection

        def run() -> tuple[Any, int, int | None, list[Any], bool]:
            sqlite = connection._conn
            cursor = sqlite.cursor()
            try:
                if parameters is None:
                    cursor.execute(operation)
                else:
                    cursor.execute(operation, parameters)
                description = cursor.description
                rows = cursor.fetchall() if description else []
                return description, cursor.rowcount, cursor.lastrowid, rows, sqlite.in_transaction
            finally:
                cursor.close()

        return run

    def _many(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Callable[[], Any]:
        connection = self._connection

        def run() -> tuple[Any, int, int | None, list[Any], bool]:
            sqlite = connection._conn
            cursor = sqlite.cursor()
            try:
                cursor.executemany(operation, seq_of_parameters)
                return None, cursor.rowcount, cursor.lastrowid, [], sqlite.in_transaction
            finally:
                cursor.close()

        return run

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._run(self._statement(operation, parameters), _takes_write_lock(operation))

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        self._run(self._many(operation, seq_of_parameters), False)

    def _run(self, run: Callable[[], Any], locks: bool) -> None:
        adapted: OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        try:
            # Awaited even when it runs here: SQLAlchemy's AsyncConnection.execute insists on
            # one switch to the event loop's side (a greenlet switch, no trip).
            outcome = await_(self._outcome(run))
        except Exception as error:
            adapted._maybe_in_transaction = True  # whatever happened, a rollback is sent
            adapted._handle_exception(error)
        description, rowcount, lastrowid, rows, in_transaction = outcome
        adapted._maybe_in_transaction = in_transaction
        adapted._write_locked = in_transaction and (adapted._write_locked or locks)
        self._description, self._rowcount, self._lastrowid = description, rowcount, lastrowid
        self._rows = deque(rows)

    async def _outcome(self, run: Callable[[], T]) -> T:
        adapted: OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        outcome = adapted.here(run)
        if outcome is not None:
            return outcome
        async with adapted._execute_mutex:  # it must wait for a lock: in the thread
            adapted._maybe_in_transaction = True  # until the thread says otherwise
            return await self._connection._execute(run)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """The adapter's connection with `OneTripCursor`s; commits and rollbacks on the loop (a
    rollback only when there is a transaction), a checkpoint now and then in the thread."""

    __slots__ = ("_maybe_in_transaction", "_write_locked")

    _cursor_cls = OneTripCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._maybe_in_transaction = True  # unknown yet: a rollback would be sent
        self._write_locked = False  # after BEGIN IMMEDIATE, until the commit or rollback

    def here(self, run: Callable[[], T]) -> T | None:
        """`run()` on the loop's thread, or None when it would wait for another connection's
        lock (or the thread is busy with this connection): then it must go to the thread."""
        if self._execute_mutex.locked():
            return None
        if self._write_locked:
            return run()  # the write lock is ours: nothing to wait for
        sqlite = self._connection._conn
        sqlite.execute("PRAGMA busy_timeout=0")
        try:
            return run()
        except sqlite3.OperationalError as error:
            if _busy(error):
                return None
            raise
        finally:
            sqlite.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def commit(self) -> None:
        self._write_locked = False
        dbapi: OneTripDBAPI = self.dbapi
        dbapi.commits += 1
        try:
            if dbapi.commits % CHECKPOINT_EVERY == 0 or self._execute_mutex.locked():
                await_(self._connection._execute(self._commit_and_checkpoint))
            else:
                self._connection._conn.commit()
        except Exception as error:
            self._maybe_in_transaction = True
            self._handle_exception(error)
        self._maybe_in_transaction = False

    def _commit_and_checkpoint(self) -> None:
        sqlite = self._connection._conn
        sqlite.commit()
        sqlite.execute("PRAGMA wal_checkpoint(PASSIVE)").close()

    def rollback(self) -> None:
        self._write_locked = False
        if not self._maybe_in_transaction:
            return
        try:
            if self._execute_mutex.locked():
                await_(self._connection.rollback())
            else:
                self._connection._conn.rollback()  # never waits: it only lets go
        except Exception as error:
            self._handle_exception(error)
        self._maybe_in_transaction = False


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module handed to SQLAlchemy (`create_async_engine(..., module=...)`), one per
    engine: it counts the engine's commits (for the checkpoints)."""

    commits = 0

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        if kw.get("async_creator_fn") is not None:
            connection = kw.pop("async_creator_fn")(*arg, **kw)
        else:
            kw.pop("async_creator_fn", None)
            connection = self.aiosqlite.connect(*arg, **kw)
            connection._thread.daemon = True  # as SQLAlchemy's adapter does
        return OneTripConnection(self, await_(connection))


def one_trip_dbapi() -> OneTripDBAPI:
    import sqlite3

    import aiosqlite

    return OneTripDBAPI(aiosqlite, sqlite3)
