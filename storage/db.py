"""Engine creation, URL validation and Alembic migrations run from code.

Supported URLs (``DATABASE_URL``)::

    sqlite+aiosqlite:///./data/bot.sqlite3          (default; relative to the working directory)
    sqlite+aiosqlite:////var/lib/bot/bot.sqlite3     (absolute path: four slashes)
    postgresql+asyncpg://user:password@host:5432/dbname

``sqlite://...``, ``postgres://...`` and ``postgresql://...`` are accepted and mapped to the async
drivers. For PostgreSQL the libpq-style query parameters ``options=-c key=value ...`` (e.g. a
``search_path``) and ``sslmode=`` are understood as well.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_

from storage.errors import InvalidDatabaseURL, MigrationError, translate_errors
from storage.sqlite_driver import BUSY_TIMEOUT_MS, one_trip_dbapi

__all__ = [
    "MIGRATIONS_DIR",
    "READ_ONLY_OPTION",
    "alembic_config",
    "create_engine",
    "current_revision",
    "default_database_url",
    "downgrade_schema",
    "head_revision",
    "upgrade_schema",
    "validate_database_url",
    "with_server_settings",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_SQLITE_PATH = Path("data") / "bot.sqlite3"
EXAMPLES = (
    "sqlite+aiosqlite:///./data/bot.sqlite3 or postgresql+asyncpg://user:password@host:5432/dbname"
)
# Execution option: the transaction only reads (SQLite: deferred BEGIN; PostgreSQL: READ ONLY).
READ_ONLY_OPTION = "storage_read_only"
# Arbitrary constant: serialises concurrent `upgrade_schema` calls of several instances.
_MIGRATION_LOCK_KEY = 7_240_015_001

_DRIVER_ALIASES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


# --------------------------------------------------------------------------- URLs


def _mask(raw: str) -> str:
    """Hide a password in a URL-like string that could not be parsed."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", raw)


def validate_database_url(url: str | URL, *, name: str = "DATABASE_URL") -> URL:
    """Parse and normalise a database URL, or raise :class:`InvalidDatabaseURL`.

    The message names the variable, shows the URL with its password hidden, says what is wrong
    and gives examples. Returns a URL with an async driver (``sqlite+aiosqlite`` or
    ``postgresql+asyncpg``).
    """
    if isinstance(url, URL):
        parsed = url
        shown = url.render_as_string(hide_password=True)
    else:
        if not isinstance(url, str):
            raise InvalidDatabaseURL(f"{name} must be a string, not {type(url).__name__}")
        raw = url.strip()
        shown = _mask(raw)
        if not raw:
            raise InvalidDatabaseURL(f"{name} is empty; expected e.g. {EXAMPLES}")
        try:
            parsed = make_url(raw)
        except (ArgumentError, ValueError) as exc:
            reason = "bad port number" if "int()" in str(exc) else "cannot parse it"
            raise InvalidDatabaseURL(
                f"{name}={shown!r} is not a valid database URL ({reason}); expected e.g. {EXAMPLES}"
            ) from None

    driver = _DRIVER_ALIASES.get(parsed.drivername.lower())
    if driver is None:
        raise InvalidDatabaseURL(
            f"{name}={shown!r}: unsupported database driver {parsed.drivername!r}; "
            f"use sqlite+aiosqlite or postgresql+asyncpg, e.g. {EXAMPLES}"
        )
    parsed = parsed.set(drivername=driver)

    if driver.startswith("postgresql"):
        if not parsed.database:
            raise InvalidDatabaseURL(
                f"{name}={shown!r}: the database name is missing (…/dbname at the end); "
                f"expected e.g. {EXAMPLES}"
            )
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise InvalidDatabaseURL(f"{name}={shown!r}: port {parsed.port} is out of range")
        query = dict(parsed.query)
        if "options" in query:
            _parse_pg_options(query["options"], name=name, shown=shown)
        sslmode = query.get("sslmode")
        if sslmode is not None and (not isinstance(sslmode, str) or sslmode not in _SSLMODES):
            raise InvalidDatabaseURL(
                f"{name}={shown!r}: sslmode must be one of {', '.join(sorted(_SSLMODES))}"
            )
    return parsed


def _parse_pg_options(
    value: str | tuple[str, ...], *, name: str = "DATABASE_URL", shown: str = ""
) -> dict[str, str]:
    """``-c search_path=x -capplication_name=y --timezone=UTC`` -> server settings dict."""
    raw = " ".join(value) if isinstance(value, tuple) else value
    try:
        tokens = shlex.split(raw)
    except ValueError as exc:
        raise InvalidDatabaseURL(f"{name}={shown!r}: bad options={raw!r} ({exc})") from None
    settings: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "-c" and i + 1 < len(tokens):
            i += 1
            pair = tokens[i]
        elif token.startswith(("-c", "--")) and len(token) > 2:
            pair = token[2:]
        else:
            pair = ""
        key, sep, val = pair.partition("=")
        if not sep or not key:
            raise InvalidDatabaseURL(
                f"{name}={shown!r}: options={raw!r} must look like '-c key=value -c key2=value2'"
            )
        settings[key.replace("-", "_")] = val
        i += 1
    return settings


def with_server_settings(url: str | URL, **settings: str) -> str:
    """Return ``url`` (PostgreSQL) with ``options=-c key=value ...`` added, as a string.

    ``with_server_settings(url, search_path="t_123")`` makes every connection of an engine made by
    :func:`create_engine` use that schema; the URL can be handed to a subprocess as DATABASE_URL.
    """
    parsed = validate_database_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise InvalidDatabaseURL("server settings only apply to PostgreSQL URLs")
    current = parsed.query.get("options")
    merged = _parse_pg_options(current) if current else {}
    merged.update(settings)
    for key, val in merged.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key) or re.search(r"[\s\\'\"]", val):
            raise InvalidDatabaseURL(f"unsupported server setting {key}={val!r}")
    options = " ".join(f"-c {key}={val}" for key, val in merged.items())
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


def default_database_url() -> str:
    """``sqlite+aiosqlite:///<cwd>/data/bot.sqlite3`` (absolute), creating ``./data`` if needed."""
    path = DEFAULT_SQLITE_PATH.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


# --------------------------------------------------------------------------- engines


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_engine(
    url: str | URL | None = None, *, echo: bool = False, **kwargs: Any
) -> AsyncEngine:
    """Create an :class:`AsyncEngine` for ``url`` (default: :func:`default_database_url`).

    SQLite: foreign keys on, WAL journal, busy timeout, and SQLAlchemy-controlled ``BEGIN`` (so
    SAVEPOINTs and transactional DDL behave): ``BEGIN IMMEDIATE``, or deferred for read-only
    units of work. The parent folder of the file is created.
    PostgreSQL (asyncpg): ping after idling, bounded pool, connect timeout, UTC time zone.
    Always ``hide_parameters=True``: bound values never appear in errors or logs.
    Extra keyword arguments go to :func:`create_async_engine` (``connect_args`` are merged).
    """
    parsed = validate_database_url(default_database_url() if url is None else url)
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}) or {})
    # Error messages and tracebacks (which reach the logs) must not carry bound parameters:
    # they hold clerks' questions, names and channel ids.
    kwargs["hide_parameters"] = True

    if parsed.drivername.startswith("sqlite"):
        path = _sqlite_file(parsed)
        if path is not None:
            path.expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        # No pre-ping: a file has no server that could have gone away meanwhile. One trip to
        # aiosqlite's thread per statement (storage/sqlite_driver.py).
        kwargs.setdefault("module", one_trip_dbapi())
        # Statements run on the event loop's thread when they need not wait for a lock
        # (storage/sqlite_driver.py); the connection is still used by one thread at a time.
        connect_args.setdefault("check_same_thread", False)
        engine = create_async_engine(parsed, echo=echo, connect_args=connect_args, **kwargs)
        _install_sqlite_hooks(engine)
        return engine

    query = dict(parsed.query)
    server_settings: dict[str, str] = {"application_name": "euprava-bot", "timezone": "UTC"}
    raw_options = query.pop("options", None)
    if raw_options:
        server_settings.update(_parse_pg_options(raw_options))
    sslmode = query.pop("sslmode", None)
    if sslmode is not None and "ssl" not in query:
        query["ssl"] = sslmode
    parsed = parsed.set(query=query)
    server_settings.update(connect_args.pop("server_settings", {}) or {})
    connect_args = {"timeout": 10, "server_settings": server_settings, **connect_args}

    # Recover transparently after the server restarts: a connection that waited in the pool
    # is pinged before use (_install_postgresql_hooks: not one used a moment ago).
    options: dict[str, Any] = {}
    if "poolclass" not in kwargs:
        options.update(
            pool_size=5,
            max_overflow=10,
            pool_timeout=10,  # waiting for a pooled connection; then StorageUnavailable
            pool_recycle=1800,
        )
    options.update(kwargs)
    engine = create_async_engine(parsed, echo=echo, connect_args=connect_args, **options)
    _install_postgresql_hooks(engine)
    return engine


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (see "Enabling Non-Legacy SQLite Transactional Modes").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Commits run on the event loop; the WAL is checkpointed (flushed to disk) in
            # aiosqlite's thread every CHECKPOINT_EVERY commits instead (storage/sqlite_driver.py).
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # BEGIN IMMEDIATE takes the write lock up front, so a second writer waits (busy
        # timeout) instead of failing at once with SQLITE_BUSY when a transaction that has
        # read starts writing after another one committed (Rails and Django do the same).
        # Read-only units of work use a plain (deferred) BEGIN and never block.
        options = connection.get_execution_options()
        read_only = options.get(READ_ONLY_OPTION, False)
        mode = options.get("sqlite_begin") or ("DEFERRED" if read_only else "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


# A pooled connection checked in longer ago than this is pinged before it is handed out.
PING_AFTER_IDLE = 1.0
_LAST_USED = "storage_last_used"  # connection record info key (monotonic seconds)


def _install_postgresql_hooks(engine: AsyncEngine) -> None:
    engine.sync_engine.dialect.do_ping = _ping  # type: ignore[method-assign]
    pool = engine.sync_engine.pool

    # Pre-ping, but only after idling: the pool's own pre-ping costs a round trip at every
    # checkout, two or three per clerk's question, for connections that were in use
    # milliseconds before. A connection that idled (the server may have restarted since, or
    # dropped it) is pinged as before, and a dead one replaced (DisconnectionError: the pool
    # connects anew). One that dies while in use fails its unit of work (StorageUnavailable),
    # as one dying mid-transaction always did, and SQLAlchemy then recycles the whole pool.
    @event.listens_for(pool, "connect")
    def _on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get(_LAST_USED)
        if last is not None and time.monotonic() - last < PING_AFTER_IDLE:
            return
        try:
            _ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError("pooled connection did not answer its ping") from error

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # storage.uow's read-only units of work begin with BEGIN READ ONLY (asyncpg's
        # `postgresql_readonly`); other read-only connections say so here.
        options = connection.get_execution_options()
        if options.get(READ_ONLY_OPTION, False) and not options.get("postgresql_readonly"):
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")


def _ping(dbapi_connection: Any) -> bool:
    """The ping of an idle pooled connection, in one round trip. asyncpg's adapter wraps its `;`
    in a transaction of its own (BEGIN, `;`, ROLLBACK: for pgbouncer's transaction mode, which
    we do not use), three round trips per checkout, several per clerk's question. A failure is
    raised as the adapter raises it, so the pool still replaces a dead connection."""
    try:
        await_(dbapi_connection._connection.fetchrow(";"))
    except Exception as error:
        dbapi_connection._handle_exception(error)
    return True


# --------------------------------------------------------------------------- migrations


def alembic_config() -> Config:
    """Alembic configuration built in code (no alembic.ini), pointing at storage/migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return cfg


def head_revision() -> str | None:
    """The newest revision id in storage/migrations/versions."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade_schema(
    target: str | URL | AsyncEngine | None = None, revision: str = "head"
) -> None:
    """Apply Alembic migrations up to ``revision`` (default head).

    ``target`` is a URL (an engine is created and disposed) or an existing engine (needed for
    in-memory SQLite). Safe to call from several instances at once on PostgreSQL (advisory lock).
    Raises StorageUnavailable when the database cannot be reached.
    """
    await _run_alembic(target, lambda cfg: command.upgrade(cfg, revision))


async def downgrade_schema(target: str | URL | AsyncEngine | None, revision: str) -> None:
    """Revert migrations down to ``revision`` (``"base"`` removes every table)."""
    await _run_alembic(target, lambda cfg: command.downgrade(cfg, revision))


async def current_revision(target: str | URL | AsyncEngine | None = None) -> str | None:
    """The revision the database is at (None for an empty database)."""
    result: list[str | None] = []

    def read(cfg: Config) -> None:
        conn = cfg.attributes["connection"]
        result.append(MigrationContext.configure(conn).get_current_revision())

    await _run_alembic(target, read, lock=False)
    return result[0]


async def _run_alembic(
    target: str | URL | AsyncEngine | None,
    action: Callable[[Config], None],
    *,
    lock: bool = True,
) -> None:
    if isinstance(target, AsyncEngine):
        engine, owned = target, False
    else:
        engine, owned = create_engine(target), True
    try:
        with translate_errors():
            async with _alembic_lock(), engine.connect() as conn:
                sqlite = conn.dialect.name == "sqlite"
                if sqlite:
                    # Batch migrations copy and drop tables; with foreign keys on, dropping a
                    # parent table would cascade-delete child rows. The pragma is ignored inside
                    # a transaction, so set it on the driver connection before BEGIN.
                    await _sqlite_pragma(conn, "PRAGMA foreign_keys=OFF")
                try:
                    await conn.run_sync(_run_in_transaction, action, lock)
                finally:
                    if sqlite:
                        try:
                            await _sqlite_pragma(conn, "PRAGMA foreign_keys=ON")
                        except Exception:
                            await conn.invalidate()  # never pool a connection without FKs
                            raise
    finally:
        if owned:
            await engine.dispose()


_ALEMBIC_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _alembic_lock() -> asyncio.Lock:
    """Alembic keeps the running migration in module globals (``alembic.context``/``op``):
    two migrations interleaved on one event loop would clobber each other. Serialise them."""
    loop = asyncio.get_running_loop()
    lock = _ALEMBIC_LOCKS.get(loop)
    if lock is None:
        lock = _ALEMBIC_LOCKS[loop] = asyncio.Lock()
    return lock


async def _sqlite_pragma(conn: AsyncConnection, pragma: str) -> None:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if driver is None:  # pragma: no cover - defensive
        raise MigrationError("no driver connection")
    cursor = await driver.execute(pragma)
    await cursor.close()


def _run_in_transaction(conn: Connection, action: Callable[[Config], None], lock: bool) -> None:
    if conn.dialect.name == "sqlite":
        # Another process migrating holds the write lock: wait for it (busy timeout) rather
        # than read a stale alembic_version and fail later.
        conn.execution_options(sqlite_begin="IMMEDIATE")
    with conn.begin():
        if lock and conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})"))
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        action(cfg)
        if conn.dialect.name == "sqlite":
            problems = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise MigrationError(f"foreign key violations after migration: {problems[:5]}")
