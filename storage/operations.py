"""Operations tables and their queries: the audit trail and the privacy records, plus the
generic look-ups that find, export and anonymise everything the database holds about one user.

Used as ``uow.repository(AuditRepository)`` / ``uow.repository(PrivacyRepository)``.

Which rows are "about a user" is discovered from the schema rather than listed by hand, so a
table another feature adds later is exported and anonymised without a change here:

* a *subject* column is a foreign key to ``users.id`` named ``user_id``, ``clerk_id``,
  ``actor_user_id`` or ``target_id``: the row belongs to that user;
* an *owned child* is a row that references a subject row through a foreign key with
  ``ON DELETE CASCADE`` (a mentor request's thread messages, the feedback on a question): it
  cannot exist without its parent, so it is part of the user's data as well;
* any other foreign key to ``users.id`` (``created_by``, ``claimed_by``...) is only a
  *reference*: the export names the row (table, id) without copying other people's data.

Anonymising a row replaces every ``Text`` column with ``[obrisano]``, empties ``attachments``,
clears ``municipality``/``display_name`` and tombstones ``*external_id`` columns; the numbers,
states and timestamps that statistics need stay.
"""

from __future__ import annotations

import base64
import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from storage.clock import stamp
from storage.errors import guarded
from storage.models import Base, OutboxMessage, Question, User
from storage.repositories import Repository
from storage.types import JSONType, UTCDateTime

__all__ = [
    "FINAL_OUTBOX_STATUSES",
    "PRIVACY_KINDS",
    "REDACTED",
    "SUBJECT_COLUMNS",
    "AuditEntry",
    "AuditRepository",
    "PrivacyRepository",
    "PrivacyRequest",
    "UserLink",
    "months_before",
    "user_links",
]

REDACTED = "[obrisano]"


@dataclass
class Withdrawn:
    """What ``PrivacyRepository.withdraw_messages_about`` did."""

    cancelled: int = 0
    redacted: int = 0
    in_flight_until: datetime | None = None  # a cancelled row may still be sent until then
    # (channel, chat_id, message id) of group posts, cards and mentors' copies already sent
    sent_posts: list[tuple[str, str, int]] = field(default_factory=list)


# Sent messages about a clerk's request that quote them, edited into a note on deletion.
SENT_POSTS_TO_RETRACT = ("mentor_card", "mentor_group", "mentor_followup", "mentor_sla")
SUBJECT_COLUMNS: tuple[str, ...] = ("user_id", "clerk_id", "actor_user_id", "target_id")
PRIVACY_KINDS: tuple[str, ...] = ("export", "deletion")
FINAL_OUTBOX_STATUSES: tuple[str, ...] = ("sent", "failed", "blocked", "cancelled", "expired")
RETENTION_LOCK_KEY = 7_240_015_007  # arbitrary; one retention run at a time across instances
# Columns that identify a person even though they are short strings.
_CLEARED_COLUMNS = ("municipality", "display_name")
# Child rows that belong to another person though they hang off a user's row: the clerks who
# follow a request (their own question, their own export and deletion), not its asker's data.
OTHERS_CHILDREN: tuple[str, ...] = ("mentor_followers",)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class AuditEntry(Base):
    """One privileged action: who (user id plus channel id at the time), when, what, on what."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index(None, "at"),
        Index(None, "action", "at"),
        Index(None, "actor_user_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    actor_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # Kept so the trail still says who acted if the user row changes; None for the system.
    actor_channel: Mapped[str | None] = mapped_column(String(16), default=None)
    actor_external_id: Mapped[str | None] = mapped_column(String(64), default=None)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200), default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class PrivacyRequest(Base):
    """A data subject's request that was carried out: an export or a deletion, with a summary of
    what was done (counts only, never the data itself)."""

    __tablename__ = "privacy_requests"
    __table_args__ = (
        CheckConstraint(_in("kind", PRIVACY_KINDS), name="kind"),
        Index(None, "user_id", "created_at"),
        Index(None, "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    kind: Mapped[str] = mapped_column(String(16))
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


# --------------------------------------------------------------------------- schema discovery


@dataclass(frozen=True)
class UserLink:
    """A foreign key column from ``table`` to ``users.id``."""

    table: str
    column: str
    subject: bool  # the row belongs to the user (see module docstring)


def user_links(tables: Iterable[Table] | None = None) -> list[UserLink]:
    """Every foreign key to ``users.id`` in the models, in dependency order."""
    links: list[UserLink] = []
    for table in tables if tables is not None else Base.metadata.sorted_tables:
        if table.name == User.__tablename__:
            continue
        for column in table.columns:
            if any(fk.column.table.name == User.__tablename__ for fk in column.foreign_keys):
                links.append(UserLink(table.name, column.name, column.name in SUBJECT_COLUMNS))
    return links


def _owned_children(parent: Table) -> list[tuple[Table, Column[Any]]]:
    """Tables whose rows cannot exist without a ``parent`` row (FK with ON DELETE CASCADE)."""
    found: list[tuple[Table, Column[Any]]] = []
    for table in Base.metadata.sorted_tables:
        if table is parent:
            continue
        for column in table.columns:
            for fk in column.foreign_keys:
                if fk.column.table is parent and (fk.ondelete or "").upper() == "CASCADE":
                    found.append((table, column))
    return found


def _primary_key(table: Table) -> list[Column[Any]]:
    return list(table.primary_key.columns)


def months_before(moment: datetime, months: int) -> datetime:
    """``moment`` minus whole calendar months (the day clamped to the shorter month)."""
    index = moment.year * 12 + (moment.month - 1) - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _plain(value: Any) -> Any:
    """A column value as JSON-ready data."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _without_files(payload: Any) -> Any:
    """An outbox payload without the bytes of attached documents (an earlier export, an .ics)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("document"), dict):
        return payload
    document = dict(payload["document"])
    content = document.pop("content_b64", None)
    if isinstance(content, str):
        document["size_bytes"] = len(content) * 3 // 4
    return {**payload, "document": document}


def _row_dict(table: Table, row: Any) -> dict[str, Any]:
    data = {column.name: _plain(row._mapping[column]) for column in table.columns}
    if table.name == OutboxMessage.__tablename__ and "payload" in data:
        data["payload"] = _without_files(data["payload"])
    return data


def _is_text(column: Column[Any]) -> bool:
    return isinstance(column.type, Text)


def _is_json(column: Column[Any]) -> bool:
    return isinstance(column.type, JSON) or "JSON" in type(column.type).__name__.upper()


def _anonymised_values(table: Table, tombstone: str) -> dict[str, Any]:
    """Column -> replacement for one row of ``table`` that belongs to a deleted user."""
    values: dict[str, Any] = {}
    for column in table.columns:
        if column.primary_key or column.foreign_keys:
            continue
        if _is_text(column):
            values[column.name] = REDACTED
        elif column.name == "attachments" and _is_json(column):
            values[column.name] = []
        elif column.name in _CLEARED_COLUMNS and column.nullable:
            values[column.name] = None
        elif column.name.endswith("external_id") and isinstance(column.type, String):
            values[column.name] = tombstone[: column.type.length or 64]
    return values


# --------------------------------------------------------------------------- repositories


class AuditRepository(Repository):
    @guarded
    async def add(
        self,
        *,
        action: str,
        actor_user_id: int | None = None,
        actor_channel: str | None = None,
        actor_external_id: str | None = None,
        target: str | None = None,
        details: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Append one entry (flushes: ``.id`` is set). Never commits."""
        entry = AuditEntry(
            at=at or self.now(),
            actor_user_id=actor_user_id,
            actor_channel=actor_channel,
            actor_external_id=None if actor_external_id is None else str(actor_external_id)[:64],
            action=action[:64],
            target=None if target is None else target[:200],
            details=dict(details or {}),
        )
        self.session.add(entry)
        await self.session.flush()
        return entry

    @guarded
    async def latest(
        self, limit: int = 20, *, action: str | None = None, actor_user_id: int | None = None
    ) -> list[AuditEntry]:
        """Newest first."""
        stmt = select(AuditEntry)
        if action is not None:
            stmt = stmt.where(AuditEntry.action == action)
        if actor_user_id is not None:
            stmt = stmt.where(AuditEntry.actor_user_id == actor_user_id)
        stmt = stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(max(1, limit))
        return list(await self.session.scalars(stmt))

    @guarded
    async def count(self, action: str | None = None) -> int:
        stmt = select(func.count()).select_from(AuditEntry)
        if action is not None:
            stmt = stmt.where(AuditEntry.action == action)
        return int(await self.session.scalar(stmt) or 0)


class PrivacyRepository(Repository):
    """Export, deletion and retention, over every table that holds data about users."""

    # -- messages about a deleted clerk -------------------------------------------------------

    @guarded
    async def withdraw_messages_about(
        self, request_ids: Iterable[int], dedupe_keys: Iterable[str] = ()
    ) -> Withdrawn:
        """Outbox rows about these mentor requests (``meta.request_id``) or with these dedupe
        keys, whoever they are addressed to (the mentors' group, a mentor, an admin): those not
        sent yet are cancelled, and every one loses its text. Returns what was done, the latest
        lease of a row some dispatcher may still be sending, and the group posts already sent
        (to be edited)."""
        ids = [int(i) for i in request_ids]
        keys = list(dedupe_keys)
        if not ids and not keys:
            return Withdrawn()
        about: list[ColumnElement[bool]] = []
        if ids:
            about.append(OutboxMessage.payload[("meta", "request_id")].as_integer().in_(ids))
        if keys:
            about.append(OutboxMessage.dedupe_key.in_(keys))
        rows = list(await self.session.scalars(select(OutboxMessage).where(or_(*about))))
        withdrawn = Withdrawn()
        for row in rows:
            meta = (row.payload or {}).get("meta")
            if row.status in ("pending", "sending"):
                if row.status == "sending" and row.lease_until is not None and (
                    withdrawn.in_flight_until is None or row.lease_until > withdrawn.in_flight_until
                ):
                    withdrawn.in_flight_until = row.lease_until
                row.status, row.lease_until, row.last_error = "cancelled", None, "user data deleted"
                withdrawn.cancelled += 1
            elif (
                row.status == "sent"
                and row.kind in SENT_POSTS_TO_RETRACT
                and row.external_message_id
                and str(row.external_message_id).isdigit()
            ):
                withdrawn.sent_posts.append(
                    (row.channel, row.chat_id, int(row.external_message_id))
                )
            row.payload = {"text": REDACTED, **({"meta": meta} if meta else {})}
            withdrawn.redacted += 1
        await self.session.flush()
        return withdrawn

    # -- records ----------------------------------------------------------------------------

    @guarded
    async def record_request(
        self, user_id: int | None, kind: str, summary: dict[str, Any], at: datetime | None = None
    ) -> PrivacyRequest:
        if kind not in PRIVACY_KINDS:
            raise ValueError(f"unknown privacy request kind {kind!r}")
        row = PrivacyRequest(
            user_id=user_id, kind=kind, summary=_plain(summary), created_at=at or self.now()
        )
        self.session.add(row)
        await self.session.flush()
        return row

    @guarded
    async def requests_of(self, user_id: int) -> list[PrivacyRequest]:
        stmt = (
            select(PrivacyRequest)
            .where(PrivacyRequest.user_id == user_id)
            .order_by(PrivacyRequest.id)
        )
        return list(await self.session.scalars(stmt))

    # -- export -----------------------------------------------------------------------------

    async def _subject_rows(self, user_id: int) -> dict[str, dict[tuple[Any, ...], Any]]:
        """table name -> {primary key: row} of the user's rows and their owned children."""
        tables = Base.metadata.tables
        found: dict[str, dict[tuple[Any, ...], Any]] = {}

        def keep(table: Table, rows: Sequence[Any]) -> None:
            if not rows:
                return
            bucket = found.setdefault(table.name, {})
            for row in rows:
                key = tuple(row._mapping[c] for c in _primary_key(table))
                bucket.setdefault(key, row)

        subject_by_table: dict[str, list[str]] = {}
        for link in user_links():
            if link.subject:
                subject_by_table.setdefault(link.table, []).append(link.column)
        for name, columns in subject_by_table.items():
            table = tables[name]
            condition = or_(*(table.c[c] == user_id for c in columns))
            rows = (await self.session.execute(select(table).where(condition))).all()
            keep(table, rows)
        # One level of owned children (a request's thread, the feedback on a question).
        for name in list(found):
            parent = tables[name]
            parent_keys = [key[0] for key in found[name] if len(key) == 1]
            if not parent_keys:
                continue
            for child, column in _owned_children(parent):
                if child.name in OTHERS_CHILDREN:
                    continue
                for chunk in _chunks(parent_keys, 500):
                    rows = (
                        await self.session.execute(select(child).where(column.in_(chunk)))
                    ).all()
                    keep(child, rows)
        return found

    @guarded
    async def export_user(self, user_id: int) -> dict[str, Any]:
        """Everything stored about the user: their row, every row that belongs to them (with
        owned children) grouped by table, and references to rows they only touched."""
        user_table: Table = User.__table__  # type: ignore[assignment]
        user_row = (
            await self.session.execute(select(user_table).where(user_table.c.id == user_id))
        ).first()
        if user_row is None:
            raise LookupError(f"user {user_id} does not exist")
        tables = Base.metadata.tables
        found = await self._subject_rows(user_id)
        data: dict[str, list[dict[str, Any]]] = {}
        for name in sorted(found):
            table = tables[name]
            rows = sorted(found[name].items(), key=lambda item: tuple(map(str, item[0])))
            data[name] = [_row_dict(table, row) for _key, row in rows]
        references: dict[str, list[dict[str, Any]]] = {}
        for link in user_links():
            if link.subject:
                continue
            table = tables[link.table]
            pk = _primary_key(table)
            stmt = select(*pk).where(table.c[link.column] == user_id).order_by(*pk)
            for row in (await self.session.execute(stmt)).all():
                ident = {c.name: _plain(row._mapping[c]) for c in pk}
                references.setdefault(link.table, []).append({**ident, "as": link.column})
        return {
            "user": _row_dict(user_table, user_row),
            "data": data,
            "references": references,
        }

    # -- deletion ---------------------------------------------------------------------------

    @guarded
    async def anonymise_user(self, user_id: int, tombstone: str) -> dict[str, int]:
        """Remove the user's personal data, keeping anonymous rows for statistics.

        The user row keeps its id (so counts still add up) but loses name, channel id (replaced
        by ``tombstone``), municipality and interests, and becomes an inactive clerk. Every row
        that belongs to the user (and owned children) is anonymised column by column; outbox
        rows addressed to them are emptied, and those not sent yet are cancelled.
        Returns counts per table (rows changed)."""
        user = await self.session.get(User, user_id)
        if user is None:
            raise LookupError(f"user {user_id} does not exist")
        counts: dict[str, int] = {}
        tables = Base.metadata.tables
        found = await self._subject_rows(user_id)
        outbox_name = OutboxMessage.__tablename__
        for name, rows in found.items():
            if name == outbox_name:
                continue
            table = tables[name]
            values = _anonymised_values(table, tombstone)
            if not values or not rows:
                continue
            pk = _primary_key(table)
            keys = list(rows)
            changed = 0
            for chunk in _chunks(keys, 500):
                condition: ColumnElement[bool]
                if len(pk) == 1:
                    condition = pk[0].in_([key[0] for key in chunk])
                else:
                    condition = or_(
                        *(and_(*(c == v for c, v in zip(pk, key, strict=True))) for key in chunk)
                    )
                result = await self.session.execute(
                    update(table).where(condition).values(**values),
                    execution_options={"synchronize_session": False},
                )
                changed += int(getattr(result, "rowcount", 0) or 0)
            counts[name] = changed

        # Outbox: nothing more reaches them, and what was sent no longer says anything.
        to_them = or_(
            OutboxMessage.user_id == user_id,
            and_(
                OutboxMessage.channel == user.channel,
                OutboxMessage.chat_id == user.external_id,
            ),
        )
        cancelled = await self.session.execute(
            update(OutboxMessage)
            .where(to_them, OutboxMessage.status.in_(("pending", "sending")))
            .values(status="cancelled", lease_until=None, last_error="user data deleted"),
            execution_options={"synchronize_session": False},
        )
        emptied = await self.session.execute(
            update(OutboxMessage)
            .where(to_them)
            .values(payload={"text": REDACTED}, chat_id="deleted"),
            execution_options={"synchronize_session": False},
        )
        counts["outbox_cancelled"] = int(getattr(cancelled, "rowcount", 0) or 0)
        counts[outbox_name] = int(getattr(emptied, "rowcount", 0) or 0)

        user.display_name = None
        user.external_id = tombstone[:64]
        user.municipality = None
        user.services_of_interest = None
        user.active = False
        user.onboarded = False
        user.role = "clerk"
        user.updated_at = self.now()
        await self.session.flush()
        return counts

    # -- retention --------------------------------------------------------------------------

    @guarded
    async def try_job_lock(self, key: int = RETENTION_LOCK_KEY) -> bool:
        """Take a transaction-scoped lock so only one instance runs a job at a time (PostgreSQL
        advisory lock; SQLite has one writer anyway). False: another instance holds it."""
        if self.dialect_name != "postgresql":
            return True
        result = await self.session.execute(select(func.pg_try_advisory_xact_lock(key)))
        return bool(result.scalar())

    @guarded
    async def anonymise_older_than(self, cutoff: datetime, *, batch: int = 500) -> dict[str, int]:
        """Question texts, mentor-request threads quiet since before ``cutoff`` (whatever their
        state: a request left ``new`` or ``claimed`` forever is anonymised too) and finished
        outbox messages created before ``cutoff`` lose their text; the rows and everything
        statistics need stay. Idempotent (rows already anonymised are not touched again), so
        several instances may run it. ``cutoff`` comes from the caller's (injected) clock."""
        counts: dict[str, int] = {}
        result = await self.session.execute(
            update(Question)
            .where(Question.created_at < cutoff, Question.text != REDACTED)
            .values(text=REDACTED),
            execution_options={"synchronize_session": False},
        )
        counts["questions"] = int(getattr(result, "rowcount", 0) or 0)

        tables = Base.metadata.tables
        requests = tables.get("mentor_requests")
        if requests is not None and {"state", "created_at"} <= set(requests.c.keys()):
            # Old = no activity since the cutoff: every timestamp of the thread (created,
            # claimed, answered, closed) and of its messages is older. The state does not matter.
            quiet = [requests.c.created_at < cutoff]
            for name in ("claimed_at", "first_answer_at", "last_answer_at", "closed_at"):
                if name in requests.c:
                    quiet.append(or_(requests.c[name].is_(None), requests.c[name] < cutoff))
            for child, column in _owned_children(requests):
                if "created_at" in child.c:
                    recent = select(column).where(
                        column.is_not(None), child.c.created_at >= cutoff
                    )
                    quiet.append(requests.c.id.not_in(recent))
            old_requests = select(requests.c.id).where(*quiet).scalar_subquery()
            values = {
                k: v
                for k, v in _anonymised_values(requests, "").items()
                if k not in _CLEARED_COLUMNS and not k.endswith("external_id")
            }
            text_columns = [requests.c[k] for k, v in values.items() if v == REDACTED]
            if values and text_columns:
                not_done = or_(*(c != REDACTED for c in text_columns))
                result = await self.session.execute(
                    update(requests)
                    .where(requests.c.id.in_(old_requests), not_done)
                    .values(**values),
                    execution_options={"synchronize_session": False},
                )
                counts["mentor_requests"] = int(getattr(result, "rowcount", 0) or 0)
            for child, column in _owned_children(requests):
                child_values = {
                    k: v
                    for k, v in _anonymised_values(child, "").items()
                    if k not in _CLEARED_COLUMNS and not k.endswith("external_id")
                }
                child_text = [child.c[k] for k, v in child_values.items() if v == REDACTED]
                if not child_values or not child_text:
                    continue
                result = await self.session.execute(
                    update(child)
                    .where(column.in_(old_requests), or_(*(c != REDACTED for c in child_text)))
                    .values(**child_values),
                    execution_options={"synchronize_session": False},
                )
                counts[child.name] = int(getattr(result, "rowcount", 0) or 0)

        # Finished outbox messages: the text goes; a mentor card keeps its "meta" (request id).
        text_of = OutboxMessage.payload["text"].as_string()
        changed = 0
        last_id = 0
        while True:
            rows = list(
                await self.session.scalars(
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.id > last_id,
                        OutboxMessage.created_at < cutoff,
                        OutboxMessage.status.in_(FINAL_OUTBOX_STATUSES),
                        or_(text_of.is_(None), text_of != REDACTED),
                    )
                    .order_by(OutboxMessage.id)
                    .limit(batch)
                )
            )
            if not rows:
                break
            for row in rows:
                kept = {"meta": row.payload["meta"]} if "meta" in (row.payload or {}) else {}
                row.payload = {"text": REDACTED, **kept}
                last_id = row.id
            changed += len(rows)
            await self.session.flush()
        counts["outbox"] = changed
        return counts


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
