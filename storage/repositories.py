"""Repositories: the only place with queries. Each wraps the AsyncSession of a UnitOfWork.

Methods never commit; ``await uow.commit()`` does. Methods that write flush, so generated ids
are available right away. Transient database errors surface as ``StorageUnavailable``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    CTE,
    BigInteger,
    Insert,
    Select,
    String,
    Table,
    Update,
    and_,
    any_,
    bindparam,
    column,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.carrying import execute_carrying
from storage.clock import Clock, clock_of
from storage.errors import guarded
from storage.models import (
    CHANNELS,
    DECISIONS,
    FEEDBACK_VALUES,
    Feedback,
    OutboxMessage,
    ProcessedUpdate,
    Question,
    User,
)
from storage.types import UTCDateTime

__all__ = [
    "FeedbackRepository",
    "OutboxRepository",
    "ProcessedUpdateRepository",
    "QuestionRepository",
    "Repository",
    "UserRepository",
]


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


class Repository:
    """Base class: holds the session. Subclasses decorate public methods with ``@guarded``.

    Stored times come from ``self.now()``: the clock of the unit of work (by default the one of
    the `Database` whose session this is), so rows are stamped by the same clock that later
    decides whether they are due."""

    def __init__(self, session: AsyncSession, clock: Clock | None = None) -> None:
        self.session = session
        self.clock: Clock = clock or clock_of(session.get_bind())

    def now(self) -> datetime:
        """Business time by the unit of work's clock (see `storage.clock`)."""
        return self.clock()

    @property
    def dialect_name(self) -> str:
        return self.session.get_bind().dialect.name

    def _insert(self, table: Any) -> Any:
        """A dialect-specific INSERT supporting ``on_conflict_do_*`` (PostgreSQL and SQLite)."""
        if self.dialect_name == "postgresql":
            return postgresql.insert(table)
        if self.dialect_name == "sqlite":
            return sqlite.insert(table)
        raise NotImplementedError(f"upsert not implemented for {self.dialect_name}")


class UserRepository(Repository):
    @guarded
    async def get(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    @guarded
    async def get_by_external(self, channel: str, external_id: str | int) -> User | None:
        stmt = select(User).where(User.channel == channel, User.external_id == str(external_id))
        return await self.session.scalar(stmt)

    @guarded
    async def lock_for_role_change(self, user_ids: Iterable[int]) -> dict[int, User]:
        """``user_ids`` and every admin, re-read from the database and locked until the unit of
        work ends (``SELECT ... FOR UPDATE`` on PostgreSQL, in id order so two role changes
        cannot deadlock; SQLite write units of work are serialised by ``BEGIN IMMEDIATE``).
        A role change decides on these rows, not on a profile read earlier."""
        stmt = (
            select(User)
            .where(or_(User.id.in_(list(user_ids)), User.role == "admin"))
            .order_by(User.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return {row.id: row for row in await self.session.scalars(stmt)}

    @guarded
    async def add(self, user: User) -> User:
        """Insert a new user (flushes: ``user.id`` is set). Duplicate -> IntegrityError."""
        _check(user.channel, CHANNELS, "channel")
        self.session.add(user)
        await self.session.flush()
        return user

    @guarded
    async def get_or_create(
        self, channel: str, external_id: str | int, **defaults: Any
    ) -> tuple[User, bool]:
        """The user with this channel id, created with ``defaults`` if missing.

        Returns ``(user, created)``. Race-safe: when another instance inserts the same user
        concurrently, the insert is undone inside a SAVEPOINT and the existing row is returned.
        """
        _check(channel, CHANNELS, "channel")
        external = str(external_id)
        existing = await self.get_by_external(channel, external)
        if existing is not None:
            return existing, False
        user = User(channel=channel, external_id=external, **defaults)
        try:
            async with self.session.begin_nested():
                self.session.add(user)
        except IntegrityError:
            found = await self.get_by_external(channel, external)
            if found is None:
                raise
            return found, False
        return user, True

    def _filtered(
        self,
        stmt: Select[Any],
        *,
        channel: str | None,
        role: str | None,
        municipality: str | None,
        onboarded: bool | None,
    ) -> Select[Any]:
        stmt = stmt.where(User.active.is_(True))
        if channel is not None:
            stmt = stmt.where(User.channel == channel)
        if role is not None:
            stmt = stmt.where(User.role == role)
        if municipality is not None:
            stmt = stmt.where(User.municipality == municipality)
        if onboarded is not None:
            stmt = stmt.where(User.onboarded.is_(onboarded))
        return stmt

    @guarded
    async def list_active(
        self,
        *,
        channel: str | None = None,
        role: str | None = None,
        municipality: str | None = None,
        onboarded: bool | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[User]:
        """Active users ordered by id; page with ``after_id=<last id>`` and ``limit``."""
        stmt = self._filtered(
            select(User), channel=channel, role=role, municipality=municipality, onboarded=onboarded
        )
        if after_id is not None:
            stmt = stmt.where(User.id > after_id)
        stmt = stmt.order_by(User.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list(await self.session.scalars(stmt))

    @guarded
    async def count_active(
        self,
        *,
        channel: str | None = None,
        role: str | None = None,
        municipality: str | None = None,
        onboarded: bool | None = None,
    ) -> int:
        stmt = self._filtered(
            select(func.count()).select_from(User),
            channel=channel,
            role=role,
            municipality=municipality,
            onboarded=onboarded,
        )
        return int(await self.session.scalar(stmt) or 0)


class QuestionRepository(Repository):
    @guarded
    async def add(
        self,
        *,
        user_id: int,
        text: str,
        decision: str,
        entry_id: str | None = None,
        score: float = 0.0,
        candidates: Iterable[str] = (),
        created_at: datetime | None = None,
        roadmap_step: str | None = None,
    ) -> Question:
        """Record an asked question and the matcher's decision (flushes: ``.id`` is set)."""
        _check(decision, DECISIONS, "decision")
        question = Question(
            user_id=user_id,
            text=text,
            decision=decision,
            entry_id=entry_id,
            score=float(score),
            candidates=list(candidates),
            created_at=created_at or self.now(),
            roadmap_step=roadmap_step,
        )
        self.session.add(question)
        await self.session.flush()
        return question

    @guarded
    async def insert(
        self,
        *,
        user_id: int,
        text: str,
        decision: str,
        entry_id: str | None = None,
        score: float = 0.0,
        candidates: Iterable[str] = (),
        roadmap_step: str | None = None,
    ) -> int:
        """`add` for the hot path (every clerk's question): one Core INSERT ... RETURNING id,
        without the ORM's object and flush; returns the new question's id."""
        _check(decision, DECISIONS, "decision")
        row = {
            "user_id": user_id,
            "text": text,
            "decision": decision,
            "entry_id": entry_id,
            "score": float(score),
            "candidates": list(candidates),
            "created_at": self.now(),
            "roadmap_step": roadmap_step,
        }
        # Core, no ORM machinery; on PostgreSQL it carries the inbox's waiting done marks.
        return int((await execute_carrying(self.session, _insert_question(), row)).scalar_one())

    @guarded
    async def get(self, question_id: int) -> Question | None:
        return await self.session.get(Question, question_id)

    @guarded
    async def recent(
        self,
        limit: int = 50,
        *,
        since: datetime | None = None,
        decision: str | None = None,
    ) -> list[Question]:
        """Newest first."""
        stmt = select(Question)
        if since is not None:
            stmt = stmt.where(Question.created_at >= since)
        if decision is not None:
            stmt = stmt.where(Question.decision == decision)
        stmt = stmt.order_by(Question.created_at.desc(), Question.id.desc()).limit(limit)
        return list(await self.session.scalars(stmt))

    @guarded
    async def for_user(self, user_id: int, limit: int = 20) -> list[Question]:
        """The user's questions, newest first."""
        stmt = (
            select(Question)
            .where(Question.user_id == user_id)
            .order_by(Question.created_at.desc(), Question.id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(stmt))

    @guarded
    async def counts_by_decision(self, start: datetime, end: datetime) -> dict[str, int]:
        """``{"answer": n, "clarify": n, "escalate": n}`` for ``start <= created_at < end``."""
        stmt = (
            select(Question.decision, func.count())
            .where(Question.created_at >= start, Question.created_at < end)
            .group_by(Question.decision)
        )
        counts = dict.fromkeys(DECISIONS, 0)
        for decision, count in await self.session.execute(stmt):
            counts[decision] = int(count)
        return counts

    @guarded
    async def top_entries(
        self, start: datetime, end: datetime, limit: int = 10
    ) -> list[tuple[str, int]]:
        """Most often matched entry ids (any decision) in ``[start, end)``, most frequent first."""
        count = func.count().label("n")
        stmt = (
            select(Question.entry_id, count)
            .where(
                Question.created_at >= start,
                Question.created_at < end,
                Question.entry_id.is_not(None),
            )
            .group_by(Question.entry_id)
            .order_by(count.desc(), Question.entry_id)
            .limit(limit)
        )
        return [(str(e), int(n)) for e, n in await self.session.execute(stmt)]


class FeedbackRepository(Repository):
    @guarded
    async def record(self, question_id: int, user_id: int, value: str) -> Feedback:
        """Store a 👍/👎; a second tap by the same user on the same answer replaces the value."""
        _check(value, FEEDBACK_VALUES, "feedback value")
        now = self.now()
        stmt = self._insert(Feedback).values(
            question_id=question_id, user_id=user_id, value=value, created_at=now, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[Feedback.question_id, Feedback.user_id],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        ).returning(Feedback)
        result = await self.session.scalars(stmt, execution_options={"populate_existing": True})
        return result.one()

    @guarded
    async def get(self, question_id: int, user_id: int) -> Feedback | None:
        stmt = select(Feedback).where(
            Feedback.question_id == question_id, Feedback.user_id == user_id
        )
        return await self.session.scalar(stmt)

    @guarded
    async def counts(self, start: datetime, end: datetime) -> dict[str, int]:
        """``{"up": n, "down": n}`` for feedback last changed in ``[start, end)``."""
        stmt = (
            select(Feedback.value, func.count())
            .where(Feedback.updated_at >= start, Feedback.updated_at < end)
            .group_by(Feedback.value)
        )
        counts = dict.fromkeys(FEEDBACK_VALUES, 0)
        for value, count in await self.session.execute(stmt):
            counts[value] = int(count)
        return counts


class ProcessedUpdateRepository(Repository):
    @guarded
    async def claim(
        self, channel: str, update_id: int, payload: dict[str, Any] | None = None
    ) -> bool:
        """Mark an incoming update as handled; True only the first time. With ``payload`` the
        update is kept until `finish` (an inbox: see `take_unfinished`).

        Call it in the same unit of work as the state change the update causes: if that work
        rolls back, so does the claim, and a redelivery is handled again. Race-safe: of two
        concurrent transactions claiming the same update, exactly one gets True (on PostgreSQL
        the second waits for the first to commit or roll back).
        """
        _check(channel, CHANNELS, "channel")
        table = ProcessedUpdate.__table__
        stmt = (
            self._insert(table)
            .values(channel=channel, update_id=int(update_id), processed_at=self.now(),
                    payload=payload if payload is not None else null())
            .on_conflict_do_nothing(index_elements=["channel", "update_id"])
            .returning(table.c.update_id)
        )
        result = await self.session.execute(stmt)
        return result.scalar_one_or_none() is not None

    @guarded
    async def claim_many(self, channel: str, payloads: Iterable[dict[str, Any]]) -> set[int]:
        """Claim and keep several updates in one statement (a whole getUpdates batch); returns
        the ids claimed now (the others were claimed before: redeliveries, another instance)."""
        _check(channel, CHANNELS, "channel")
        now = self.now()
        payloads = list(payloads)
        if not payloads:
            return set()
        if self.dialect_name == "postgresql":
            # One statement text whatever the batch's size (one prepared statement, not one
            # per size), carrying the inbox's waiting done marks (storage.carrying).
            parameters = {"c_channel": channel, "c_now": now, "c_payloads": payloads}
            result = await execute_carrying(self.session, _claim_from_json(), parameters)
            return {int(update_id) for update_id in result.scalars()}
        rows = [
            {"channel": channel, "update_id": int(payload["update_id"]), "processed_at": now,
             "payload": payload}
            for payload in payloads
        ]
        table = ProcessedUpdate.__table__
        stmt = (
            self._insert(table)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["channel", "update_id"])
            .returning(table.c.update_id)
        )
        connection = await self.session.connection()  # Core: no ORM execution machinery
        result = await connection.execute(stmt)
        return {int(update_id) for update_id in result.scalars()}

    @guarded
    async def touch(self, channel: str, update_ids: Iterable[int]) -> None:
        """The instance handling these updates is alive: their claims count from now (a
        replay scan elsewhere takes only claims older than its window)."""
        ids = [int(i) for i in update_ids]
        if not ids:
            return
        stmt = (
            update(ProcessedUpdate)
            .where(ProcessedUpdate.channel == channel, ProcessedUpdate.update_id.in_(ids),
                   ProcessedUpdate.done_at.is_(None))
            .values(processed_at=self.now())
        )
        await self.session.execute(stmt, execution_options={"synchronize_session": False})

    @guarded
    async def finish(self, channel: str, update_ids: Iterable[int]) -> None:
        """Handling ended: drop the kept update (it may hold a clerk's words) and mark it done."""
        ids = [int(i) for i in update_ids]
        if not ids:
            return
        connection = await self.session.connection()  # Core: written for every update
        await connection.execute(
            _finish_updates(), {"b_channel": channel, "b_ids": ids, "b_done_at": self.now()}
        )

    def finish_cte(self, channel: str, update_ids: Iterable[int]) -> tuple[CTE, dict[str, Any]]:
        """`finish` as a CTE and its parameters, to ride inside another statement
        (storage.carrying; PostgreSQL)."""
        ids = [int(i) for i in update_ids]
        return _finish_cte(), {"m_channel": channel, "m_ids": ids, "m_done_at": self.now()}

    @guarded
    async def take_unfinished(
        self,
        channel: str,
        *,
        started_before: datetime,
        limit: int = 100,
        max_replays: int = 3,
        exclude: Iterable[int] = (),
    ) -> list[dict[str, Any]]:
        """Updates whose handling started before ``started_before`` and never ended (the
        process died): returned to be handled again, each taken by one instance only (its
        start time moves to now). One that already failed ``max_replays`` times is given up."""
        stmt = (
            select(ProcessedUpdate)
            .where(
                ProcessedUpdate.channel == channel,
                ProcessedUpdate.done_at.is_(None),
                ProcessedUpdate.payload.is_not(None),
                ProcessedUpdate.processed_at < started_before,
            )
            .order_by(ProcessedUpdate.update_id)
            .limit(limit)
        )
        skip = [int(update_id) for update_id in exclude]
        if skip:  # the caller's own updates, still in its hands
            stmt = stmt.where(ProcessedUpdate.update_id.not_in(skip))
        if self.dialect_name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        now = self.now()
        taken: list[dict[str, Any]] = []
        for row in await self.session.scalars(stmt):
            if not row.payload or row.replays >= max_replays:
                row.done_at, row.payload = now, null()
                continue
            taken.append(dict(row.payload))
            row.replays += 1
            row.processed_at = now
        await self.session.flush()
        return taken

    @guarded
    async def count_unfinished(
        self, channel: str, *, started_before: datetime, exclude: Iterable[int] = ()
    ) -> int:
        """How many kept updates started before ``started_before`` and never ended."""
        stmt = select(func.count()).where(
            ProcessedUpdate.channel == channel,
            ProcessedUpdate.done_at.is_(None),
            ProcessedUpdate.payload.is_not(None),
            ProcessedUpdate.processed_at < started_before,
        )
        skip = [int(update_id) for update_id in exclude]
        if skip:
            stmt = stmt.where(ProcessedUpdate.update_id.not_in(skip))
        return int(await self.session.scalar(stmt) or 0)

    @guarded
    async def is_processed(self, channel: str, update_id: int) -> bool:
        row = await self.session.get(ProcessedUpdate, (channel, int(update_id)))
        return row is not None

    @guarded
    async def prune(self, older_than: datetime) -> int:
        """Delete claims older than ``older_than`` (redeliveries stop within a day)."""
        stmt = delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < older_than)
        result = await self.session.execute(stmt, execution_options={"synchronize_session": False})
        return int(getattr(result, "rowcount", 0) or 0)


class OutboxRepository(Repository):
    """Messages that must arrive. Claiming uses a lease: a row claimed by an instance that died
    becomes due again when the lease runs out, so nothing is lost (at-least-once; the window for a
    repeat is the moment between the channel accepting a message and the row being marked)."""

    @guarded
    async def add(
        self,
        *,
        channel: str,
        chat_id: str | int,
        kind: str,
        payload: dict[str, Any],
        user_id: int | None = None,
        dedupe_key: str | None = None,
        batch: str | None = None,
        priority: int = 100,
        not_before: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> OutboxMessage | None:
        """Queue a message; returns None when a message with the same ``dedupe_key`` exists."""
        _check(channel, CHANNELS, "channel")
        values = {
            "channel": channel,
            "chat_id": str(chat_id),
            "kind": kind,
            "payload": payload,
            "user_id": user_id,
            "dedupe_key": dedupe_key,
            "batch": batch,
            "priority": priority,
            "status": "pending",
            "attempts": 0,
            "not_before": not_before or self.now(),
            "expires_at": expires_at,
            "created_at": self.now(),
        }
        stmt = (
            self._insert(OutboxMessage)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(OutboxMessage.id)
        )
        new_id = await self.session.scalar(stmt)
        if new_id is None:
            return None
        return await self.session.get(OutboxMessage, new_id)

    @guarded
    async def add_many(self, rows: Iterable[dict[str, Any]]) -> int:
        """Queue many messages at once (a broadcast); duplicates by ``dedupe_key`` are skipped.

        Returns the driver's row count, for logs only: an executemany count is not reliable on
        every driver (aiosqlite may report -1 or the last statement's count)."""
        now = self.now()
        prepared = [
            {
                "user_id": None, "dedupe_key": None, "batch": None, "priority": 100,
                "expires_at": None,
                "status": "pending", "attempts": 0, "not_before": now, "created_at": now,
                **row, "chat_id": str(row["chat_id"]),
            }
            for row in rows
        ]
        if not prepared:
            return 0
        stmt = self._insert(OutboxMessage).on_conflict_do_nothing(index_elements=["dedupe_key"])
        result = await self.session.execute(stmt, prepared)
        return int(getattr(result, "rowcount", 0) or 0)

    @guarded
    async def get(self, message_id: int) -> OutboxMessage | None:
        return await self.session.get(OutboxMessage, message_id)

    @guarded
    async def claim_due(
        self,
        *,
        limit: int,
        lease_seconds: float = 60.0,
        now: datetime | None = None,
        channels: Iterable[str] | None = None,
    ) -> list[OutboxMessage]:
        """Take up to ``limit`` due messages for sending (``FOR UPDATE SKIP LOCKED`` on
        PostgreSQL, so several instances never take the same row)."""
        now = now or self.now()
        due = or_(
            and_(OutboxMessage.status == "pending", OutboxMessage.not_before <= now),
            and_(OutboxMessage.status == "sending", OutboxMessage.lease_until < now),
        )
        stmt = (
            select(OutboxMessage)
            .where(due)
            .order_by(OutboxMessage.priority, OutboxMessage.id)
            .limit(limit)
        )
        if channels is not None:  # only what this instance can send; the rest stays due
            stmt = stmt.where(OutboxMessage.channel.in_(list(channels)))
        if self.dialect_name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(await self.session.scalars(stmt))
        lease = now + timedelta(seconds=lease_seconds)
        for row in rows:
            row.status = "sending"
            row.lease_until = lease
            row.attempts += 1
        await self.session.flush()
        return rows

    def _held(self, message_id: int, claim: int | None) -> list[Any]:
        """WHERE clauses: the row, and when ``claim`` (the ``attempts`` its claim set) is given,
        only while that claim still holds it (a later claim by another instance increments
        ``attempts``)."""
        where: list[Any] = [OutboxMessage.id == message_id]
        if claim is not None:
            where += [OutboxMessage.status == "sending", OutboxMessage.attempts == claim]
        return where

    @guarded
    async def renew_lease(self, claims: Mapping[int, int], lease_until: datetime) -> set[int]:
        """Extend the lease of the rows still held by these claims (``{id: attempts}``);
        returns the ids renewed (the others were taken by another instance or finished)."""
        if not claims:
            return set()
        held = or_(*(and_(OutboxMessage.id == message_id, OutboxMessage.attempts == claim)
                     for message_id, claim in claims.items()))
        result = await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "sending", held)
            .values(lease_until=lease_until)
            .returning(OutboxMessage.id),
            execution_options={"synchronize_session": False},
        )
        return {int(row[0]) for row in result.all()}

    @guarded
    async def mark_sent(
        self, message_id: int, external_message_id: str | None = None, *, claim: int | None = None
    ) -> bool:
        """Mark sent; with ``claim``, only if that claim still holds the row. Returns whether
        a row was marked."""
        result = await self.session.execute(
            update(OutboxMessage)
            .where(*self._held(message_id, claim))
            .values(status="sent", sent_at=self.now(), lease_until=None,
                    external_message_id=external_message_id)
        )
        return bool(getattr(result, "rowcount", 0))

    @guarded
    async def mark_retry(
        self, message_id: int, not_before: datetime, error: str, *, claim: int | None = None
    ) -> None:
        await self.session.execute(
            update(OutboxMessage)
            .where(*self._held(message_id, claim), OutboxMessage.status == "sending")
            .values(status="pending", not_before=not_before, lease_until=None,
                    last_error=error[:500])
        )

    @guarded
    async def mark_final(
        self, message_id: int, status: str, error: str | None = None, *, claim: int | None = None
    ) -> None:
        """``failed`` (gave up), ``blocked`` (the user blocked the bot), ``cancelled`` or
        ``expired`` (due too late to be of use)."""
        await self.session.execute(
            update(OutboxMessage)
            .where(*self._held(message_id, claim))
            .values(status=status, lease_until=None, last_error=(error or "")[:500] or None)
        )

    @guarded
    async def cancel_batch(self, batch: str) -> int:
        result = await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.batch == batch, OutboxMessage.status == "pending")
            .values(status="cancelled")
        )
        return int(getattr(result, "rowcount", 0) or 0)

    @guarded
    async def counts_by_status(self, batch: str) -> dict[str, int]:
        stmt = (
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.batch == batch)
            .group_by(OutboxMessage.status)
        )
        return {status: int(count) for status, count in (await self.session.execute(stmt)).all()}

    @guarded
    async def pending_count(self) -> int:
        stmt = select(func.count()).where(OutboxMessage.status.in_(("pending", "sending")))
        return int(await self.session.scalar(stmt) or 0)


# The hot path's statements, built once: a statement built per call costs more to construct
# and to look up in the compiled cache than to run (SQLite).


@lru_cache(maxsize=1)
def _insert_question() -> Insert:
    table = cast(Table, Question.__table__)
    return insert(table).returning(table.c.id)


@lru_cache(maxsize=1)
def _claim_from_json() -> Insert:
    """`claim_many` on PostgreSQL: the batch's updates as one JSONB array parameter, each
    claimed with its update_id (``INSERT ... SELECT ... FROM jsonb_array_elements(...)``)."""
    table = cast(Table, ProcessedUpdate.__table__)
    kept = func.jsonb_array_elements(
        bindparam("c_payloads", type_=postgresql.JSONB)
    ).table_valued(column("value", postgresql.JSONB))
    rows = select(
        bindparam("c_channel", type_=String),
        sql_cast(kept.c.value["update_id"].astext, BigInteger),
        bindparam("c_now", type_=UTCDateTime()),
        kept.c.value,
    )
    return cast(
        Insert,
        postgresql.insert(table)
        .from_select(
            ["channel", "update_id", "processed_at", "payload"], rows, include_defaults=False
        )
        .on_conflict_do_nothing(index_elements=["channel", "update_id"])
        .returning(table.c.update_id),
    )


@lru_cache(maxsize=1)
def _finish_cte() -> CTE:
    """`_finish_updates` as a data-modifying CTE with one array parameter (PostgreSQL): one
    statement text whatever the number of ids, so one prepared statement."""
    table = cast(Table, ProcessedUpdate.__table__)
    return (
        update(table)
        .where(
            table.c.channel == bindparam("m_channel"),
            table.c.update_id == any_(bindparam("m_ids", type_=postgresql.ARRAY(BigInteger))),
        )
        .values(done_at=bindparam("m_done_at"), payload=null())
        .cte("carried_done_marks")
    )


@lru_cache(maxsize=1)
def _finish_updates() -> Update:
    table = cast(Table, ProcessedUpdate.__table__)
    return (
        update(table)
        .where(
            table.c.channel == bindparam("b_channel"),
            table.c.update_id.in_(bindparam("b_ids", expanding=True)),
        )
        .values(done_at=bindparam("b_done_at"), payload=null())  # SQL NULL, not JSON null
    )
