"""Exceptions raised by the storage layer, and the translation of driver errors into them.

Services catch :class:`StorageUnavailable` (the database is briefly down, restarting, unreachable,
locked or out of connections) and answer "try again in a moment"; every other exception is a bug
or a misconfiguration and should crash loudly.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar

from sqlalchemy import exc as sa_exc

__all__ = [
    "InvalidDatabaseURL",
    "MigrationError",
    "StorageError",
    "StorageUnavailable",
    "guarded",
    "is_transient",
    "translate_errors",
]


class StorageError(Exception):
    """Base class of the storage layer's own exceptions."""


class StorageUnavailable(StorageError):
    """The database cannot be reached right now; retrying later may succeed.

    The original driver exception is chained as ``__cause__``.
    """


class InvalidDatabaseURL(StorageError, ValueError):
    """``DATABASE_URL`` (or a URL passed in code) is malformed or names an unsupported driver."""


class MigrationError(StorageError):
    """A schema migration left the database in an inconsistent state."""


# SQLSTATE codes / classes that mean "the server is unreachable or not accepting work right now".
_TRANSIENT_SQLSTATE_PREFIXES = (
    "08",  # connection exception
    "53",  # insufficient resources (too many connections, out of memory, disk full)
    "57P01",  # admin shutdown
    "57P02",  # crash shutdown
    "57P03",  # cannot connect now (server starting up / shutting down / in recovery)
    "57P05",  # idle session timeout
)

# SQLite reports nearly everything as OperationalError; these messages are programming errors.
_SQLITE_PERMANENT = re.compile(
    r"no such (table|column|function|index)|syntax error|has no column|already exists",
    re.IGNORECASE,
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` followed by the exceptions it wraps (``.orig``, ``__cause__``, ``__context__``)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 16:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        for nxt in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return seen


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` means the database is unavailable (rather than a bug in the query)."""
    if isinstance(exc, StorageUnavailable):
        return True
    for item in _chain(exc):
        if isinstance(item, sa_exc.DBAPIError) and item.connection_invalidated:
            return True
        if isinstance(item, sa_exc.DisconnectionError | sa_exc.TimeoutError):
            return True  # pool checkout timed out / disconnect detected
        if isinstance(item, sa_exc.InterfaceError):
            return True  # connection closed / broken underneath us
        if isinstance(item, sa_exc.OperationalError) and not _SQLITE_PERMANENT.search(str(item)):
            return True  # sqlite: locked/busy/unable to open/disk I/O; psycopg: connection issues
        if isinstance(item, OSError):  # ConnectionRefusedError, TimeoutError, socket.gaierror...
            return True
        sqlstate = getattr(item, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
            return True
        if type(item).__module__.startswith("asyncpg") and type(item).__name__ in {
            "ConnectionDoesNotExistError",
            "ConnectionFailureError",
            "ClientCannotConnectError",
            "CannotConnectNowError",
            "TooManyConnectionsError",
        }:
            return True
    return False


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"database unavailable ({type(exc).__name__}: {text[:200]})"


class translate_errors:  # used like a function: ``with translate_errors(): ...``
    """Context manager turning transient driver errors into :class:`StorageUnavailable`."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc is None or isinstance(exc, StorageUnavailable):
            return False
        if isinstance(exc, Exception) and is_transient(exc):
            raise StorageUnavailable(_describe(exc)) from exc
        return False


P = ParamSpec("P")
R = TypeVar("R")


def guarded(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Decorator for async repository methods: transient errors become StorageUnavailable."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with translate_errors():
            return await fn(*args, **kwargs)

    return wrapper
