"""SQLAlchemy's aiosqlite adapter with one trip to the connection's thread per statement.

aiosqlite runs every call of the sqlite3 module in a thread of its own, and SQLAlchemy's
adapter makes four such calls per statement (open a cursor, execute, fetch the rows, close the
cursor) and one more to roll back every connection given back to the pool, even after a commit.
Each trip costs a future, a thread wake-up and a wake-up of the event loop (about 30 us of CPU):
some 35 trips per clerk's question, a tenth of the bot's CPU. Here a statement is one trip
(cursor, execute, rows and close together in the thread), and the rollback on return is left
out when the connection is known to be outside a transaction (sqlite3's `in_transaction`, read
in the thread after every statement, commit and rollback).

Behaviour is the adapter's own otherwise (errors, rows, rowcount, lastrowid, description);
`create_engine` (storage/db.py) uses it for every SQLite URL. It relies on two internals of
aiosqlite 0.22 (`Connection._execute`, `Connection._conn`; SQLAlchemy's adapter itself uses its
queue), so an upgrade of aiosqlite must pass tests/reliability/test_storage.py.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["OneTripDBAPI", "one_trip_dbapi"]


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

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
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

        adapted: OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        async with adapted._execute_mutex:
            adapted._maybe_in_transaction = True  # until the thread says otherwise
            description, rowcount, lastrowid, rows, in_transaction = await connection._execute(run)
            adapted._maybe_in_transaction = in_transaction
        self._description, self._rowcount, self._lastrowid = description, rowcount, lastrowid
        self._rows = deque(rows)
        return None

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        connection = self._connection

        def run() -> tuple[int, int | None, bool]:
            sqlite = connection._conn
            cursor = sqlite.cursor()
            try:
                cursor.executemany(operation, seq_of_parameters)
                return cursor.rowcount, cursor.lastrowid, sqlite.in_transaction
            finally:
                cursor.close()

        adapted: OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        async with adapted._execute_mutex:
            adapted._maybe_in_transaction = True
            rowcount, lastrowid, in_transaction = await connection._execute(run)
            adapted._maybe_in_transaction = in_transaction
        self._description, self._rowcount, self._lastrowid = None, rowcount, lastrowid
        self._rows = deque()
        return None


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """The adapter's connection with `OneTripCursor`s, and no rollback trip when there is no
    transaction to roll back (the pool's reset after every commit)."""

    __slots__ = ("_maybe_in_transaction",)

    _cursor_cls = OneTripCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._maybe_in_transaction = True  # unknown yet: a rollback would be sent

    def commit(self) -> None:
        self._maybe_in_transaction = True
        super().commit()
        self._maybe_in_transaction = False

    def rollback(self) -> None:
        if not self._maybe_in_transaction:
            return
        super().rollback()
        self._maybe_in_transaction = False


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module handed to SQLAlchemy (`create_async_engine(..., module=...)`)."""

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
