"""Trainings, registrations and broadcasts: tables and repositories.

Used as ``uow.repository(TrainingRepository)`` / ``uow.repository(BroadcastRepository)``.
Reminders and broadcast deliveries are outbox rows (``storage.models.OutboxMessage``); the
queries on them that only these features need (moving a training's reminders, counting a
broadcast) live here too, so the SQL stays in the storage layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.clock import stamp
from storage.errors import guarded
from storage.models import Base, OutboxMessage, User
from storage.repositories import Repository
from storage.types import JSONType, UTCDateTime

__all__ = [
    "AUDIENCE_KINDS",
    "BROADCAST_STATES",
    "REGISTRATION_STATUSES",
    "TRAINING_STATUSES",
    "Broadcast",
    "BroadcastRepository",
    "Registration",
    "Training",
    "TrainingRepository",
]

TRAINING_STATUSES: tuple[str, ...] = ("active", "cancelled")
REGISTRATION_STATUSES: tuple[str, ...] = ("registered", "waitlisted", "cancelled")
BROADCAST_STATES: tuple[str, ...] = ("draft", "running", "cancelled", "done")
# who receives it: everyone, clerks of chosen municipalities, clerks working on a service, a role
AUDIENCE_KINDS: tuple[str, ...] = ("all", "municipalities", "service", "role")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


class Training(Base):
    __tablename__ = "trainings"
    __table_args__ = (
        CheckConstraint(_in("status", TRAINING_STATUSES), name="status"),
        CheckConstraint(_in("audience_kind", AUDIENCE_KINDS), name="audience_kind"),
        Index(None, "status", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(32))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_minutes: Mapped[int] = mapped_column(Integer)
    # An online training has a link; one in person has an address.
    link: Mapped[str | None] = mapped_column(String(500), default=None)
    address: Mapped[str | None] = mapped_column(String(300), default=None)
    capacity: Mapped[int | None] = mapped_column(Integer, default=None)
    # Slides, recording, handouts: sent with the feedback question after the training.
    materials_link: Mapped[str | None] = mapped_column(String(500), default=None)
    audience_kind: Mapped[str] = mapped_column(String(16), default="all")
    audience_values: Mapped[list[str]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")
    # Grows with every change: the SEQUENCE of the .ics, so calendars update the event.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp, onupdate=stamp)


class Registration(Base):
    __tablename__ = "training_registrations"
    __table_args__ = (
        UniqueConstraint("training_id", "user_id"),
        CheckConstraint(_in("status", REGISTRATION_STATUSES), name="status"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating"),
        Index(None, "training_id", "status", "position"),
        Index(None, "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    # Order of arrival: the waiting list moves up by it.
    position: Mapped[int] = mapped_column(Integer, default=0)
    # Attendance: the clerk's own check-in during the training, or the trainer's mark.
    attended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    attendance_marked_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # The attendee's feedback after the training: 1-5 and an optional comment.
    rating: Mapped[int | None] = mapped_column(Integer, default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp, onupdate=stamp)


class Broadcast(Base):
    __tablename__ = "broadcasts"
    __table_args__ = (
        CheckConstraint(_in("state", BROADCAST_STATES), name="state"),
        CheckConstraint(_in("audience_kind", AUDIENCE_KINDS), name="audience_kind"),
        Index(None, "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    audience_kind: Mapped[str] = mapped_column(String(16), default="all")
    audience_values: Mapped[list[str]] = mapped_column(JSONType, default=list)
    state: Mapped[str] = mapped_column(String(16), default="draft")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # Where the admin watches it: progress message (edited as it goes) and the final report.
    admin_channel: Mapped[str | None] = mapped_column(String(16), default=None)
    admin_chat_id: Mapped[str | None] = mapped_column(String(64), default=None)
    progress_message_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # Deliveries are queued in chunks; the last user id queued (resume point after a crash).
    queued_up_to: Mapped[int] = mapped_column(Integer, default=0)
    queued_all: Mapped[bool] = mapped_column(default=False)
    total: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    blocked: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class TrainingRepository(Repository):
    # ---- trainings -------------------------------------------------------------------------
    @guarded
    async def add(self, training: Training) -> Training:
        _check(training.status or "active", TRAINING_STATUSES, "training status")
        _check(training.audience_kind or "all", AUDIENCE_KINDS, "audience")
        self.session.add(training)
        await self.session.flush()
        return training

    @guarded
    async def get(self, training_id: int, *, for_update: bool = False) -> Training | None:
        if for_update and self.dialect_name == "postgresql":
            stmt = select(Training).where(Training.id == training_id).with_for_update()
            return await self.session.scalar(stmt)
        return await self.session.get(Training, training_id)

    @guarded
    async def upcoming(self, now: datetime, limit: int = 50) -> list[Training]:
        """Active trainings that have not started yet, soonest first."""
        stmt = (
            select(Training)
            .where(Training.status == "active", Training.starts_at > now)
            .order_by(Training.starts_at, Training.id)
            .limit(limit)
        )
        return list(await self.session.scalars(stmt))

    @guarded
    async def starting_between(self, start: datetime, end: datetime) -> list[Training]:
        """Active trainings starting in [start, end), in order (attendance lists, reports)."""
        stmt = (
            select(Training)
            .where(Training.status == "active", Training.starts_at >= start,
                   Training.starts_at < end)
            .order_by(Training.starts_at, Training.id)
        )
        return list(await self.session.scalars(stmt))

    # ---- registrations ---------------------------------------------------------------------
    @guarded
    async def registration(
        self, training_id: int, user_id: int, *, fresh: bool = False
    ) -> Registration | None:
        """`fresh` re-reads a row this session may hold (after a conditional UPDATE)."""
        stmt = select(Registration).where(
            Registration.training_id == training_id, Registration.user_id == user_id
        )
        options = {"populate_existing": True} if fresh else {}
        return await self.session.scalar(stmt, execution_options=options)

    @guarded
    async def registrations_of_user(self, user_id: int) -> dict[int, Registration]:
        stmt = select(Registration).where(Registration.user_id == user_id)
        return {r.training_id: r for r in await self.session.scalars(stmt)}

    @guarded
    async def count(self, training_id: int, status: str) -> int:
        stmt = select(func.count()).where(
            Registration.training_id == training_id, Registration.status == status
        )
        return int(await self.session.scalar(stmt) or 0)

    @guarded
    async def next_position(self, training_id: int) -> int:
        stmt = select(func.max(Registration.position)).where(
            Registration.training_id == training_id
        )
        return int(await self.session.scalar(stmt) or 0) + 1

    @guarded
    async def set_registration(
        self, training_id: int, user_id: int, status: str, position: int
    ) -> Registration:
        """Create or change the clerk's registration (one row per clerk and training)."""
        _check(status, REGISTRATION_STATUSES, "registration status")
        row = await self.registration(training_id, user_id)
        if row is None:
            row = Registration(
                training_id=training_id, user_id=user_id, status=status, position=position
            )
            self.session.add(row)
        else:
            row.status = status
            row.position = position
            row.updated_at = self.now()
        await self.session.flush()
        return row

    @guarded
    async def first_waitlisted(self, training_id: int) -> Registration | None:
        stmt = (
            select(Registration)
            .where(Registration.training_id == training_id, Registration.status == "waitlisted")
            .order_by(Registration.position, Registration.id)
            .limit(1)
        )
        return await self.session.scalar(stmt)

    @guarded
    async def participants(
        self, training_id: int, statuses: Sequence[str] = ("registered", "waitlisted")
    ) -> list[tuple[Registration, User]]:
        """Registrations with their users (active or not), in order of arrival."""
        stmt = (
            select(Registration, User)
            .join(User, User.id == Registration.user_id)
            .where(Registration.training_id == training_id, Registration.status.in_(statuses))
            .order_by(Registration.position, Registration.id)
        )
        return [(r, u) for r, u in (await self.session.execute(stmt)).all()]

    # ---- reminders (outbox rows keyed "reminder:<training>:<user>:<minutes>") --------------
    @guarded
    async def put_reminder(
        self,
        *,
        dedupe_key: str,
        channel: str,
        chat_id: str,
        user_id: int,
        payload: dict[str, Any],
        not_before: datetime,
        expires_at: datetime,
        kind: str = "reminder",
    ) -> None:
        """Queue a reminder, or re-arm an existing one with a new time and text.

        A row being sent right now (``sending``) is left alone; any other (pending, cancelled,
        already sent for an earlier time, expired) becomes pending at the new time: that is
        how a reminder follows a training that moved, and comes back after a re-registration.
        """
        now = self.now()
        stmt = self._insert(OutboxMessage).values(
            channel=channel, chat_id=chat_id, user_id=user_id, kind=kind, payload=payload,
            dedupe_key=dedupe_key, batch=None, priority=50, status="pending", attempts=0,
            not_before=not_before, expires_at=expires_at, created_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["dedupe_key"],
            set_={
                "payload": stmt.excluded.payload,
                "not_before": stmt.excluded.not_before,
                "expires_at": stmt.excluded.expires_at,
                "status": "pending",
                "attempts": 0,
                "lease_until": None,
                "last_error": None,
                "sent_at": None,
            },
            where=OutboxMessage.status != "sending",
        )
        await self.session.execute(stmt)

    @guarded
    async def cancel_reminders(self, training_id: int, user_id: int | None = None) -> int:
        """Cancel pending reminders of a training (of one clerk, or of everyone)."""
        prefix = f"reminder:{training_id}:" + ("" if user_id is None else f"{user_id}:")
        result = await self.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.dedupe_key.startswith(prefix, autoescape=True),
                OutboxMessage.status == "pending",
            )
            .values(status="cancelled", last_error="training changed")
        )
        return int(getattr(result, "rowcount", 0) or 0)

    @guarded
    async def cancel_keyed(self, prefix: str, reason: str, *, exact: bool = False) -> int:
        """Cancel pending outbox rows whose dedupe key starts with `prefix` (or is it, with
        `exact`): a training's check-in messages ``checkin:<training>:``, feedback questions
        ``tfeedback:<training>:<user>``."""
        result = await self.session.execute(
            update(OutboxMessage)
            .where(self._keyed(prefix, exact), OutboxMessage.status == "pending")
            .values(status="cancelled", last_error=reason)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    @guarded
    async def keyed(self, prefix: str, *, exact: bool = False) -> list[OutboxMessage]:
        stmt = select(OutboxMessage).where(self._keyed(prefix, exact)).order_by(OutboxMessage.id)
        return list(await self.session.scalars(stmt))

    @staticmethod
    def _keyed(prefix: str, exact: bool) -> Any:
        if exact:
            return OutboxMessage.dedupe_key == prefix
        return OutboxMessage.dedupe_key.startswith(prefix, autoescape=True)

    @guarded
    async def repayload(self, dedupe_key: str, payload: dict[str, Any]) -> bool:
        """Replace the text of a message not sent yet (materials added after check-in)."""
        result = await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.dedupe_key == dedupe_key, OutboxMessage.status == "pending")
            .values(payload=payload)
        )
        return bool(getattr(result, "rowcount", 0))

    # ---- attendance and feedback -----------------------------------------------------------
    async def _update_registration(
        self, training_id: int, user_id: int, *conditions: Any, **values: Any
    ) -> bool:
        """One conditional UPDATE of a clerk's registration (attendance, rating, comment):
        True when the row matched, so two taps at once change it once."""
        result = await self.session.execute(
            update(Registration)
            .where(
                Registration.training_id == training_id,
                Registration.user_id == user_id,
                *conditions,
            )
            .values(**{"updated_at": self.now(), **values})
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    @guarded
    async def mark_attended(
        self, training_id: int, user_id: int, marked_by: int | None
    ) -> bool:
        """Record attendance of a registered clerk; False when it was already recorded (or the
        clerk is not registered). A single conditional UPDATE: two taps at once count once."""
        now = self.now()
        return await self._update_registration(
            training_id,
            user_id,
            Registration.status == "registered",
            Registration.attended_at.is_(None),
            attended_at=now,
            attendance_marked_by=marked_by,
            updated_at=now,
        )

    @guarded
    async def unmark_attended(self, training_id: int, user_id: int) -> bool:
        return await self._update_registration(
            training_id,
            user_id,
            Registration.attended_at.is_not(None),
            attended_at=None,
            attendance_marked_by=None,
        )

    @guarded
    async def record_rating(self, training_id: int, user_id: int, rating: int) -> bool:
        """The attendee's 1-5; False when already rated or not an attendee (the first stays)."""
        if not 1 <= rating <= 5:
            raise ValueError(f"rating {rating} outside 1..5")
        now = self.now()
        return await self._update_registration(
            training_id,
            user_id,
            Registration.attended_at.is_not(None),
            Registration.rating.is_(None),
            rating=rating,
            rated_at=now,
            updated_at=now,
        )

    @guarded
    async def record_comment(self, training_id: int, user_id: int, comment: str) -> bool:
        """The optional comment, once the attendee has rated."""
        return await self._update_registration(
            training_id, user_id, Registration.rating.is_not(None), comment=comment
        )

    @guarded
    async def reminders(self, training_id: int) -> list[OutboxMessage]:
        stmt = (
            select(OutboxMessage)
            .where(OutboxMessage.dedupe_key.startswith(f"reminder:{training_id}:", autoescape=True))
            .order_by(OutboxMessage.id)
        )
        return list(await self.session.scalars(stmt))


class BroadcastRepository(Repository):
    @guarded
    async def add(self, broadcast: Broadcast) -> Broadcast:
        _check(broadcast.audience_kind or "all", AUDIENCE_KINDS, "audience")
        self.session.add(broadcast)
        await self.session.flush()
        return broadcast

    @guarded
    async def get(self, broadcast_id: int) -> Broadcast | None:
        return await self.session.get(Broadcast, broadcast_id)

    @guarded
    async def in_state(self, *states: str) -> list[Broadcast]:
        for state in states:
            _check(state, BROADCAST_STATES, "broadcast state")
        stmt = select(Broadcast).where(Broadcast.state.in_(states)).order_by(Broadcast.id)
        return list(await self.session.scalars(stmt))

    @guarded
    async def transition(self, broadcast_id: int, old: Iterable[str], new: str) -> bool:
        """Move the broadcast from one of `old` states to `new`; False if it was not in them
        (a second tap on "Pošalji", or two instances racing)."""
        _check(new, BROADCAST_STATES, "broadcast state")
        values: dict[str, Any] = {"state": new}
        if new == "running":
            values["started_at"] = self.now()
        if new in ("done", "cancelled"):
            values["finished_at"] = self.now()
        result = await self.session.execute(
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.state.in_(tuple(old)))
            .values(**values)
        )
        await self.session.flush()
        return int(getattr(result, "rowcount", 0) or 0) == 1

    @guarded
    async def progress_message_id(self, broadcast_id: int) -> str | None:
        """The id Telegram gave the progress message (recorded on its outbox row once sent)."""
        stmt = select(OutboxMessage.external_message_id).where(
            OutboxMessage.dedupe_key == f"broadcast-progress:{broadcast_id}",
            OutboxMessage.status == "sent",
        )
        return await self.session.scalar(stmt)
