"""Unit of work (one transaction per use case) and the Database object the app wires up.

db = Database.from_url(settings.database_url)     # or Database.from_url() for the default
await db.upgrade()                                 # migrations to head, at start-up
async with db.uow() as uow:
    user, _ = await uow.users.get_or_create("telegram", "42", display_name="Ana")
    if await uow.processed_updates.claim("telegram", update_id):
        await uow.questions.add(user_id=user.id, text=..., decision="answer", ...)
    await uow.commit()                             # nothing is saved without this
await db.dispose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import URL, CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.selectable import CTE

from storage.carrying import CARRIER
from storage.clock import CLOCK_OPTION, Clock, utcnow
from storage.db import READ_ONLY_OPTION, create_engine, current_revision, upgrade_schema
from storage.errors import StorageUnavailable, is_transient, translate_errors
from storage.models import User
from storage.repositories import (
    FeedbackRepository,
    OutboxRepository,
    ProcessedUpdateRepository,
    QuestionRepository,
    Repository,
    UserRepository,
)

__all__ = ["Database", "UnitOfWork"]

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Repository)

# Called with the ids of the users whose rows a committed unit of work changed or deleted; an
# awaitable it returns (telling other instances) is awaited before `commit` returns.
UsersChanged = Callable[[frozenset[int]], Awaitable[None] | None]


@dataclass(frozen=True)
class Carried:
    """Small writes that ride along with the next writing transaction of this process
    (`Database.carry`): `take` hands over what waits (None: nothing), `write` writes it in the
    transaction before its commit, `give_back` returns it when that commit does not happen,
    `written` says it is in the database once the commit is done."""

    take: Callable[[], Any]
    write: Callable[[UnitOfWork, Any], Awaitable[None]]
    give_back: Callable[[Any], None]
    written: Callable[[Any], None]
    # The same write as a data-modifying CTE and its parameters, to ride inside the one
    # statement of an autocommit unit of work (storage.carrying); None: it cannot.
    fold: Callable[[UnitOfWork, Any], tuple[CTE, dict[str, Any]]] | None = None


@lru_cache(maxsize=64)
def _with_cte(statement: Insert, cte: CTE) -> Insert:
    """`statement` carrying `cte` (both built once: the combination is built once too)."""
    return statement.add_cte(cte)
_CHANGED_USERS = "storage_changed_users"  # session.info key
_CHANGED_TABLES = "storage_changed_tables"  # session.info key

# Called after a commit that added, changed or deleted rows of a watched table (through the ORM).
TableChanged = Callable[[], Awaitable[None] | None]


@event.listens_for(Session, "after_flush")
def _note_changed_users(session: Session, _flush: UOWTransaction) -> None:
    """Remember which users' rows this session wrote (after_flush still sees the pre-flush
    dirty and deleted sets); `UnitOfWork.commit` tells the listeners once the commit is done.
    Every change of a user goes through the ORM (roles, language, municipality, deletion,
    blocked marks), so caches of users (bot.services.users) learn of all of them here."""
    for row in (*session.dirty, *session.deleted):
        if isinstance(row, User) and row.id is not None:
            session.info.setdefault(_CHANGED_USERS, set()).add(row.id)
    for row in (*session.new, *session.dirty, *session.deleted):
        table = getattr(row, "__tablename__", None)
        if table is not None:
            session.info.setdefault(_CHANGED_TABLES, set()).add(table)


async def _told(result: Awaitable[None] | None) -> None:
    """A change listener's result: awaited when it is an awaitable (telling other instances)."""
    if result is not None:
        await result


class WriterQueue:
    """One writing transaction at a time per process, first come first served (SQLite).

    SQLite has one write lock per file. Without this, writers that find it taken sleep in
    SQLite's busy handler (1, 2, 5 ... 100 ms steps) and wake late, so under load the lock sits
    idle while the queue grows. Waiting here instead, a writer starts the moment the previous
    one ends. Other processes on the same file are still handled by the busy timeout.

    An urgent writer goes to the front: the inbox writing down that updates were answered
    must not wait behind a burst's questions, or a kill meanwhile repeats those answers.
    """

    def __init__(self, timeout: float = 30.0) -> None:
        self._busy = False
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._owner: asyncio.Task[Any] | None = None
        self._timeout = timeout

    async def acquire(self, *, urgent: bool = False) -> None:
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            # It would wait for itself forever; SQLite would fail it after the busy timeout.
            raise RuntimeError("a writing unit of work inside another one in the same task")
        if not self._busy and not self._waiting:
            self._busy = True
        else:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if urgent:
                self._waiting.appendleft(turn)
            else:
                self._waiting.append(turn)
            try:
                # Bounded like SQLite's own busy timeout: a writer that never lets go must
                # turn into "try again later", not freeze every other write of the process.
                async with asyncio.timeout(self._timeout):
                    await turn
            except BaseException as error:
                if turn.done() and not turn.cancelled():
                    self._hand_on()  # the turn came as we gave up: pass it on
                else:
                    turn.cancel()
                    with contextlib.suppress(ValueError):
                        self._waiting.remove(turn)
                if isinstance(error, TimeoutError):
                    log.error("storage.writer_queue_timeout owner=%r", self._owner)
                    raise StorageUnavailable(
                        "database busy: no write turn within the timeout"
                    ) from None
                raise
        self._owner = task

    def release(self) -> None:
        self._owner = None
        self._hand_on()

    def _hand_on(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # still busy: the turn passes straight to this writer
                return
        self._busy = False


class UnitOfWork:
    """``async with uow:`` opens a session and its repositories; ``await uow.commit()`` saves.

    Leaving the block without commit (or with an exception) rolls back. A transient database
    error escaping the block is re-raised as ``StorageUnavailable``. Not reentrant; after the
    block ends the same object may be entered again (a new session).
    """

    users: UserRepository
    questions: QuestionRepository
    feedback: FeedbackRepository
    processed_updates: ProcessedUpdateRepository
    outbox: OutboxRepository

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        writers: WriterQueue | None = None,
        clock: Clock = utcnow,
        users_changed: list[UsersChanged] | None = None,
        urgent: bool = False,
        database: Database | None = None,
        autocommit: bool = False,
    ) -> None:
        self._session_factory = session_factory
        self._writers = writers
        self._urgent = urgent
        # Each statement committed by itself (PostgreSQL, `Database.uow(one_write=True)`).
        self._autocommit = autocommit
        self._carried_in = False  # its one statement carried the waiting writes
        self._users_changed = users_changed
        self._session: AsyncSession | None = None
        self.clock = clock
        # A writing unit of work of this database: it carries `Database.carry`'s writes.
        self._database = database

    @property
    def session(self) -> AsyncSession:
        """The open session (for repositories added later); only inside ``async with``."""
        if self._session is None:
            raise RuntimeError("UnitOfWork is not active: use `async with uow:`")
        return self._session

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("UnitOfWork is already active (not reentrant)")
        if self._writers is not None:
            await self._writers.acquire(urgent=self._urgent)
        if self._database is not None:
            self._database.writing += 1
        session = self._session_factory()
        self._session = session
        self._carried_in = False
        if self._autocommit and self._database is not None:
            session.info[CARRIER] = self._carry_in
        self.users = UserRepository(session, self.clock)
        self.questions = QuestionRepository(session, self.clock)
        self.feedback = FeedbackRepository(session, self.clock)
        self.processed_updates = ProcessedUpdateRepository(session, self.clock)
        self.outbox = OutboxRepository(session, self.clock)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is None:  # pragma: no cover - defensive
            return
        cleanup_error: BaseException | None = None
        try:
            # close() rolls back whatever was not committed and detaches the rows without
            # expiring them (an explicit rollback() would expire them), so rows read or written
            # in the block stay readable after it.
            # Shielded: a task cancelled while its transaction ends must still give the
            # connection back rolled back; an interrupted close could leave SQLite's write lock
            # held by a connection nobody owns until the garbage collector finds it.
            await asyncio.shield(session.close())
        except Exception as error:  # connection may be gone
            cleanup_error = error
        finally:
            if self._writers is not None:
                self._writers.release()
            if self._database is not None:
                self._database.written()
        if exc is not None:
            if cleanup_error is not None:
                log.debug("rollback after error failed", exc_info=cleanup_error)
            if (
                isinstance(exc, Exception)
                and not isinstance(exc, StorageUnavailable)
                and is_transient(exc)
            ):
                raise StorageUnavailable(f"database unavailable ({type(exc).__name__})") from exc
            return
        if cleanup_error is not None:
            with translate_errors():
                raise cleanup_error

    def repository(self, repository_class: type[R]) -> R:
        """A feature's repository over this unit of work's session (no need to list every
        repository here: `uow.repository(TrainingRepository)`)."""
        return repository_class(self.session, self.clock)

    async def _carry_in(
        self, connection: AsyncConnection, statement: Insert, parameters: dict[str, Any]
    ) -> CursorResult[Any]:
        """The one statement of an autocommit unit of work, with the waiting writes that can
        ride inside it (storage.carrying): committed together, or given back together."""
        assert self._database is not None
        waiting = self._database.take_foldable()
        if waiting is None:
            return await connection.execute(statement, parameters)
        carry, taken = waiting
        assert carry.fold is not None
        cte, extra = carry.fold(self, taken)
        try:
            with translate_errors():
                result = await connection.execute(
                    _with_cte(statement, cte), {**parameters, **extra}
                )
        except BaseException:
            carry.give_back(taken)
            raise
        carry.written(taken)
        self._carried_in = True
        return result

    async def commit(self) -> None:
        session = self.session
        carried = (
            self._database.take_carried()
            if self._database is not None and not self._carried_in
            else []
        )
        try:
            for carry, taken in carried:
                await carry.write(self, taken)
            with translate_errors():
                await session.commit()
        except BaseException as error:
            for carry, taken in carried:
                carry.give_back(taken)
            if not (self._autocommit and carried and isinstance(error, StorageUnavailable)):
                raise
            # Autocommit: this unit of work's own write is in the database already; only the
            # carried writes failed, and they go with the next transaction (or a flush).
            log.warning("storage.carried_write_failed error=%s", error)
            carried = []
        for carry, taken in carried:
            carry.written(taken)
        tables = session.info.pop(_CHANGED_TABLES, None)
        if tables and self._database is not None:
            for table in tables:
                for on_table in self._database.table_listeners(table):
                    await _told(on_table())
        changed = session.info.pop(_CHANGED_USERS, None)
        if changed and self._users_changed:
            ids = frozenset(changed)
            for listener in self._users_changed:
                await _told(listener(ids))

    async def rollback(self) -> None:
        with translate_errors():
            await self.session.rollback()
        self.session.info.pop(_CHANGED_USERS, None)
        self.session.info.pop(_CHANGED_TABLES, None)

    async def flush(self) -> None:
        with translate_errors():
            await self.session.flush()


class Database:
    """Engine + session factory. One per process; ``uow()`` per use case; ``dispose()`` at exit.

    ``clock`` is the program's one business clock (`storage.clock`): repositories and the
    timestamp column defaults stamp rows by it, and services built on this database read "now"
    from ``database.clock``, so what is stored and what decides "due" never disagree.
    """

    def __init__(self, engine: AsyncEngine, *, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        # The clock rides on the engine as an execution option, so column defaults see it too.
        clocked = engine.execution_options(**{CLOCK_OPTION: clock})
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            clocked, expire_on_commit=False, autoflush=True
        )
        read_only: dict[str, Any] = {READ_ONLY_OPTION: True}
        if engine.dialect.name == "postgresql":
            read_only["postgresql_readonly"] = True  # BEGIN READ ONLY: one statement, not two
        self._read_only_engine = clocked.execution_options(**read_only)
        self.read_only_sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self._read_only_engine, expire_on_commit=False
        )
        # PostgreSQL: units of work of one write (`uow(one_write=True)`) in autocommit, so the
        # statement commits by itself: no BEGIN and COMMIT round trips (two of a question's
        # three on its connection). SQLite keeps its ordinary writing transaction.
        self._autocommit_sessionmaker: async_sessionmaker[AsyncSession] | None = None
        if engine.dialect.name == "postgresql":
            self._autocommit_sessionmaker = async_sessionmaker(
                clocked.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
                autoflush=True,
            )
        self._writers = WriterQueue() if engine.dialect.name == "sqlite" else None
        self._users_changed: list[UsersChanged] = []
        self._table_changed: dict[str, list[TableChanged]] = {}
        # PostgreSQL: urgent bookkeeping gets a connection of its own, never queued behind a
        # burst's handlers for the shared pool (SQLite puts it first in the writer queue).
        self.source_url: str | URL | None = None  # as given to from_url (options included)
        self._urgent_engine: AsyncEngine | None = None
        self._urgent_sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._urgent_autocommit_sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._carried: list[Carried] = []
        self.writing = 0  # writing units of work open now (each carries `_carried`'s writes)
        self._written = asyncio.Event()  # set whenever one of them ends

    def carry(self, carried: Carried) -> Callable[[], None]:
        """Let the next writing transaction of this process (whichever use case opens it) write
        `carried`'s waiting items just before it commits, instead of a transaction of their
        own: the inbox's done marks ride along with the next question. Returns the function
        that stops it. A transaction that does not commit gives the items back."""
        self._carried.append(carried)
        return lambda: self._carried.remove(carried) if carried in self._carried else None

    def take_carried(self) -> list[tuple[Carried, Any]]:
        """What waits to be carried, handed over to the committing unit of work."""
        taken = []
        for carried in self._carried:
            items = carried.take()
            if items:
                taken.append((carried, items))
        return taken

    def take_foldable(self) -> tuple[Carried, Any] | None:
        """The first waiting writes that can ride inside a statement (`Carried.fold`)."""
        for carried in self._carried:
            if carried.fold is not None:
                items = carried.take()
                if items:
                    return carried, items
        return None

    def written(self) -> None:
        """A writing unit of work ended (committed or not)."""
        self.writing -= 1
        event, self._written = self._written, asyncio.Event()
        event.set()

    async def wait_written(self, timeout: float) -> None:
        """Until a writing unit of work ends, or `timeout` seconds."""
        event = self._written
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()

    def on_users_changed(self, listener: UsersChanged) -> None:
        """Call ``listener(user_ids)`` after every commit of this process that changed or
        deleted those users' rows (not for commits of other processes). A listener that
        returns an awaitable is awaited before the commit returns; it must not raise."""
        self._users_changed.append(listener)

    def on_table_changed(self, table: str, listener: TableChanged) -> None:
        """Call ``listener()`` after every commit of this process that added, changed or
        deleted rows of ``table`` through the ORM (not for commits of other processes, nor for
        Core statements). An awaitable it returns is awaited before the commit returns; it
        must not raise."""
        self._table_changed.setdefault(table, []).append(listener)

    def table_listeners(self, table: str) -> list[TableChanged]:
        return self._table_changed.get(table, [])

    @classmethod
    def from_url(
        cls, url: str | URL | None = None, *, clock: Clock = utcnow, **engine_options: Any
    ) -> Database:
        """Validate ``url`` (None -> the default SQLite file) and create the engine."""
        database = cls(create_engine(url, **engine_options), clock=clock)
        database.source_url = url
        return database

    @property
    def url(self) -> URL:
        return self.engine.url

    @property
    def dialect_name(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def uow(
        self, *, read_only: bool = False, urgent: bool = False, one_write: bool = False
    ) -> UnitOfWork:
        """A new unit of work. Keep it short: no network calls (Telegram sends) inside it.

        ``read_only=True`` for queries only (stats, lists): on SQLite it does not take the write
        lock, so it never waits for writers; on PostgreSQL the transaction is READ ONLY.
        ``urgent=True``: on SQLite this writer goes before those already waiting (for short
        bookkeeping that must not lag behind a burst).
        ``one_write=True``: the unit of work writes with one statement (reads before it are
        fine); on PostgreSQL it runs in autocommit, the statement committing by itself, which
        saves the BEGIN and COMMIT round trips. Only for work that needs nothing else written
        with it: a second write would commit on its own. The writes it carries (`carry`) are
        a statement of their own after it; if that one fails they go with the next
        transaction. On SQLite an ordinary writing unit of work.
        """
        if read_only:
            return UnitOfWork(self.read_only_sessionmaker, clock=self.clock)
        autocommit = one_write and self._autocommit_sessionmaker is not None
        if urgent and self._writers is None and self.source_url is not None:
            return UnitOfWork(self._urgent_sessions(autocommit), None, self.clock,
                              self._users_changed, database=self, autocommit=autocommit)
        if autocommit and self._autocommit_sessionmaker is not None:
            return UnitOfWork(self._autocommit_sessionmaker, None, self.clock,
                              self._users_changed, database=self, autocommit=True)
        return UnitOfWork(self.sessionmaker, self._writers, self.clock, self._users_changed,
                          urgent=urgent, database=self)

    def _urgent_sessions(self, autocommit: bool = False) -> async_sessionmaker[AsyncSession]:
        if self._urgent_sessionmaker is None:
            self._urgent_engine = create_engine(
                self.source_url, pool_size=1, max_overflow=1, pool_timeout=10
            )
            clocked = self._urgent_engine.execution_options(**{CLOCK_OPTION: self.clock})
            self._urgent_sessionmaker = async_sessionmaker(
                clocked, expire_on_commit=False, autoflush=True
            )
            self._urgent_autocommit_sessionmaker = async_sessionmaker(
                clocked.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
                autoflush=True,
            )
        sessions = self._urgent_autocommit_sessionmaker if autocommit else self._urgent_sessionmaker
        assert sessions is not None
        return sessions

    async def upgrade(self, revision: str = "head") -> None:
        """Run migrations up to ``revision`` on this database."""
        await upgrade_schema(self.engine, revision)

    async def current_revision(self) -> str | None:
        return await current_revision(self.engine)

    async def ping(self) -> None:
        """Round trip to the database; raises StorageUnavailable when it cannot be reached."""
        with translate_errors():
            async with self._read_only_engine.connect() as conn:  # never waits for a writer
                await conn.execute(text("SELECT 1"))

    @property
    def engines(self) -> list[AsyncEngine]:
        """Every engine in use: the main one, and the urgent writers' once it was needed."""
        return [self.engine] + ([self._urgent_engine] if self._urgent_engine is not None else [])

    async def dispose(self) -> None:
        if self._urgent_engine is not None:
            await self._urgent_engine.dispose()
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"
