"""Mentor queue tables and their repository: requests, the clerk<->mentor thread, role changes
and knowledge-base drafts.

A request's number is its id. States: new -> claimed -> answered -> closed (a follow-up from the
clerk takes an answered request back to claimed by the mentor who answered). The group card is an
outbox row (kind ``mentor_card``); its Telegram message id is copied onto the request once sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
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
from storage.models import Base, OutboxMessage, Question, User
from storage.repositories import Repository
from storage.types import JSONType, UTCDateTime

__all__ = [
    "CLOSE_REASONS",
    "HANDOVER_TARGETS",
    "MENTOR_STATES",
    "OPEN_STATES",
    "KnowledgeDraft",
    "MentorFollower",
    "MentorMessage",
    "MentorRepository",
    "MentorRequest",
    "RoleChange",
]

MENTOR_STATES: tuple[str, ...] = ("new", "claimed", "answered", "closed")
OPEN_STATES: tuple[str, ...] = ("new", "claimed", "answered")
# resolved: the clerk tapped "Rešeno"; mentor: closed by a mentor; auto: no reply for N days.
CLOSE_REASONS: tuple[str, ...] = ("resolved", "mentor", "auto")
AUTHORS: tuple[str, ...] = ("clerk", "mentor")
# Who a request was handed over to: another mentor, or an outside party (ITE, the Ministry).
HANDOVER_TARGETS: tuple[str, ...] = ("mentor", "ite", "ministry")
# A follower follows the request (gets its answer), or opened their own request instead.
FOLLOWER_STATES: tuple[str, ...] = ("following", "own")

CARD_KIND = "mentor_card"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class MentorRequest(Base):
    __tablename__ = "mentor_requests"
    __table_args__ = (
        CheckConstraint(_in("state", MENTOR_STATES), name="state"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating"),
        UniqueConstraint("source_key"),
        Index(None, "state", "created_at"),
        Index(None, "user_id", "created_at"),
        Index(None, "claimed_by", "state"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    question_id: Mapped[int | None] = mapped_column(
        ForeignKey("questions.id", ondelete="SET NULL"), default=None
    )
    # Makes creation idempotent: the same question / update never opens a second request.
    source_key: Mapped[str | None] = mapped_column(String(100), default=None)
    state: Mapped[str] = mapped_column(String(16), default="new")
    municipality: Mapped[str | None] = mapped_column(String(128), default=None)
    service: Mapped[str | None] = mapped_column(String(32), default=None)
    # The roadmap step of `service` a "Zapeli smo" request is about.
    roadmap_step: Mapped[str | None] = mapped_column(String(32), default=None)
    question: Mapped[str] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text, default=None)
    # [{"type": "photo"|"document"|..., "file_id": str, "name": str | None}]
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    best_guess: Mapped[str | None] = mapped_column(String(128), default=None)
    best_guess_score: Mapped[float | None] = mapped_column(Float, default=None)
    card_chat_id: Mapped[str | None] = mapped_column(String(64), default=None)
    card_message_id: Mapped[int | None] = mapped_column(Integer, default=None)
    claimed_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    answered_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    first_answer_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_answer_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    closed_reason: Mapped[str | None] = mapped_column(String(16), default=None)
    rating: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp, onupdate=stamp)
    # Hand-over: forwarded to another mentor or marked for ITE / the Ministry (with a note).
    # While `handed_to` is set the SLA clock is paused and `handed_by` is reminded when
    # `handover_due` passes without an answer; the next answer ends the hand-over.
    handed_to: Mapped[str | None] = mapped_column(String(16), default=None)
    handed_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    handed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    handover_due: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    handover_note: Mapped[str | None] = mapped_column(Text, default=None)
    # A phone number or e-mail the clerk left for a call back (out of hours); personal data:
    # exported, deleted and anonymised by retention with the rest of the request.
    callback_contact: Mapped[str | None] = mapped_column(Text, default=None)


class MentorFollower(Base):
    """A clerk whose question is the same as an open request's: they get its answer instead
    of opening a duplicate. `question` is their own phrasing (for the KB draft)."""

    __tablename__ = "mentor_followers"
    __table_args__ = (
        CheckConstraint(_in("state", FOLLOWER_STATES), name="state"),
        UniqueConstraint("request_id", "user_id"),
        UniqueConstraint("source_key"),
        Index(None, "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("mentor_requests.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    question_id: Mapped[int | None] = mapped_column(
        ForeignKey("questions.id", ondelete="SET NULL"), default=None
    )
    source_key: Mapped[str | None] = mapped_column(String(100), default=None)
    state: Mapped[str] = mapped_column(String(16), default="following")
    question: Mapped[str] = mapped_column(Text)
    municipality: Mapped[str | None] = mapped_column(String(128), default=None)
    similarity: Mapped[float | None] = mapped_column(Float, default=None)
    own_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("mentor_requests.id", ondelete="SET NULL"), default=None
    )
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    rating: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


class MentorMessage(Base):
    """The thread: the clerk's question details and follow-ups, the mentors' answers."""

    __tablename__ = "mentor_messages"
    __table_args__ = (
        CheckConstraint(_in("author", AUTHORS), name="author"),
        Index(None, "request_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("mentor_requests.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    text: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


class RoleChange(Base):
    """Audit of role grants and revocations (refusals are logged, not stored)."""

    __tablename__ = "role_changes"
    __table_args__ = (Index(None, "target_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    target_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    old_role: Mapped[str] = mapped_column(String(16))
    new_role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


class KnowledgeDraft(Base):
    """A mentor's answer proposed as a KB entry, personal data already removed."""

    __tablename__ = "kb_drafts"
    __table_args__ = (UniqueConstraint("request_id"), Index(None, "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("mentor_requests.id", ondelete="SET NULL"), default=None
    )
    service: Mapped[str | None] = mapped_column(String(32), default=None)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    # Other phrasings of the question: the followers' (personal data removed).
    alternatives: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    exported_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class MentorRepository(Repository):
    """All mentor-queue queries. Use as ``uow.repository(MentorRepository)``."""

    # -- requests ---------------------------------------------------------------------------

    @guarded
    async def add_request(self, request: MentorRequest) -> MentorRequest:
        self.session.add(request)
        await self.session.flush()
        return request

    @guarded
    async def get(self, number: int, *, for_update: bool = False) -> MentorRequest | None:
        if not for_update or self.dialect_name != "postgresql":
            return await self.session.get(MentorRequest, number)
        stmt = select(MentorRequest).where(MentorRequest.id == number).with_for_update()
        return await self.session.scalar(stmt, execution_options={"populate_existing": True})

    @guarded
    async def by_source(self, source_key: str) -> MentorRequest | None:
        return await self.session.scalar(
            select(MentorRequest).where(MentorRequest.source_key == source_key)
        )

    @guarded
    async def open_for_question(self, user_id: int, question_id: int) -> MentorRequest | None:
        stmt = select(MentorRequest).where(
            MentorRequest.user_id == user_id,
            MentorRequest.question_id == question_id,
            MentorRequest.state.in_(OPEN_STATES),
        )
        return await self.session.scalar(stmt.limit(1))

    @guarded
    async def by_card(self, chat_id: str | int, message_id: int) -> MentorRequest | None:
        """The request whose card is this group message (recorded, or read from the outbox)."""
        stmt = select(MentorRequest).where(
            MentorRequest.card_chat_id == str(chat_id), MentorRequest.card_message_id == message_id
        )
        found = await self.session.scalar(stmt)
        if found is not None:
            return found
        row = await self.session.scalar(
            select(OutboxMessage).where(
                OutboxMessage.kind == CARD_KIND,
                OutboxMessage.chat_id == str(chat_id),
                OutboxMessage.external_message_id == str(message_id),
            )
        )
        if row is None:
            return None
        number = (row.payload.get("meta") or {}).get("request_id")
        return await self.session.get(MentorRequest, int(number)) if number else None

    @guarded
    async def sync_card_ids(self, limit: int = 200) -> int:
        """Copy the Telegram message id of sent cards onto their requests."""
        pending = list(
            await self.session.scalars(
                select(MentorRequest)
                .where(
                    MentorRequest.card_message_id.is_(None),
                    MentorRequest.state != "closed",
                )
                .order_by(MentorRequest.id)
                .limit(limit)
            )
        )
        if not pending:
            return 0
        by_key = {f"{CARD_KIND}:{request.id}": request for request in pending}
        rows = await self.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.dedupe_key.in_(list(by_key)),
                OutboxMessage.status == "sent",
                OutboxMessage.external_message_id.is_not(None),
            )
        )
        pairs = [(by_key[str(row.dedupe_key)], row) for row in rows]
        count = 0
        for request, row in pairs:
            request.card_chat_id = row.chat_id
            request.card_message_id = int(row.external_message_id or 0) or None
            count += 1
        await self.session.flush()
        return count

    @guarded
    async def open_requests(
        self, *, claimed_by: int | None = None, limit: int = 50
    ) -> list[MentorRequest]:
        """Open requests, oldest first; ``claimed_by`` = one mentor's (claimed or answered)."""
        stmt = select(MentorRequest).where(MentorRequest.state.in_(OPEN_STATES))
        if claimed_by is not None:
            stmt = stmt.where(
                (MentorRequest.claimed_by == claimed_by)
                | ((MentorRequest.answered_by == claimed_by) & (MentorRequest.state == "answered"))
            )
        stmt = stmt.order_by(MentorRequest.created_at, MentorRequest.id).limit(limit)
        return list(await self.session.scalars(stmt))

    @guarded
    async def in_state(self, state: str, *, limit: int = 500) -> list[MentorRequest]:
        stmt = (
            select(MentorRequest)
            .where(MentorRequest.state == state)
            .order_by(MentorRequest.created_at, MentorRequest.id)
            .limit(limit)
        )
        return list(await self.session.scalars(stmt))

    @guarded
    async def answered_before(self, moment: datetime, *, limit: int = 200) -> list[MentorRequest]:
        """Answered requests whose last answer is older than ``moment`` (auto-close)."""
        stmt = select(MentorRequest).where(
            MentorRequest.state == "answered", MentorRequest.last_answer_at < moment
        )
        if self.dialect_name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        return list(await self.session.scalars(stmt.order_by(MentorRequest.id).limit(limit)))

    @guarded
    async def created_between(self, start: datetime, end: datetime) -> list[MentorRequest]:
        stmt = (
            select(MentorRequest)
            .where(MentorRequest.created_at >= start, MentorRequest.created_at < end)
            .order_by(MentorRequest.id)
        )
        return list(await self.session.scalars(stmt))

    @guarded
    async def count_open(self) -> int:
        stmt = select(func.count()).where(MentorRequest.state.in_(OPEN_STATES))
        return int(await self.session.scalar(stmt) or 0)

    # -- followers and hand-overs -------------------------------------------------------------

    @guarded
    async def similar_candidates(
        self, service: str | None, since: datetime, *, limit: int = 50
    ) -> list[MentorRequest]:
        """Open requests on `service` created since `since` that no mentor has answered yet,
        newest first: the ones a new escalation may follow."""
        stmt = select(MentorRequest).where(
            MentorRequest.state.in_(("new", "claimed")),
            MentorRequest.first_answer_at.is_(None),
            MentorRequest.created_at >= since,
        )
        if service is None:
            stmt = stmt.where(MentorRequest.service.is_(None))
        else:
            stmt = stmt.where(MentorRequest.service == service)
        stmt = stmt.order_by(MentorRequest.created_at.desc(), MentorRequest.id.desc())
        return list(await self.session.scalars(stmt.limit(limit)))

    @guarded
    async def add_follower(self, follower: MentorFollower) -> MentorFollower:
        self.session.add(follower)
        await self.session.flush()
        return follower

    @guarded
    async def follower(
        self, request_id: int, user_id: int, *, for_update: bool = False
    ) -> MentorFollower | None:
        stmt = select(MentorFollower).where(
            MentorFollower.request_id == request_id, MentorFollower.user_id == user_id
        )
        if for_update and self.dialect_name == "postgresql":
            stmt = stmt.with_for_update()
        return await self.session.scalar(stmt, execution_options={"populate_existing": True})

    @guarded
    async def follower_by_source(self, source_key: str) -> MentorFollower | None:
        return await self.session.scalar(
            select(MentorFollower).where(MentorFollower.source_key == source_key)
        )

    @guarded
    async def following(self, user_id: int, question_id: int) -> MentorFollower | None:
        """The clerk already follows a request for this question of theirs."""
        stmt = select(MentorFollower).where(
            MentorFollower.user_id == user_id,
            MentorFollower.question_id == question_id,
            MentorFollower.state == "following",
        )
        return await self.session.scalar(stmt.limit(1))

    @guarded
    async def followers_of(
        self, request_id: int, *, state: str | None = "following"
    ) -> list[MentorFollower]:
        stmt = select(MentorFollower).where(MentorFollower.request_id == request_id)
        if state is not None:
            stmt = stmt.where(MentorFollower.state == state)
        return list(await self.session.scalars(stmt.order_by(MentorFollower.id)))

    @guarded
    async def handovers_due(self, moment: datetime, *, limit: int = 200) -> list[MentorRequest]:
        """Handed-over requests still unanswered whose expected time has passed."""
        stmt = select(MentorRequest).where(
            MentorRequest.handed_to.is_not(None),
            MentorRequest.state.in_(("new", "claimed")),
            MentorRequest.handover_due < moment,
        )
        return list(await self.session.scalars(stmt.order_by(MentorRequest.id).limit(limit)))

    # -- thread -----------------------------------------------------------------------------

    @guarded
    async def add_message(
        self,
        request_id: int,
        author: str,
        text: str,
        *,
        user_id: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
        created_at: datetime | None = None,
    ) -> MentorMessage:
        if author not in AUTHORS:
            raise ValueError(f"unknown author {author!r}")
        message = MentorMessage(
            request_id=request_id,
            author=author,
            user_id=user_id,
            text=text,
            attachments=list(attachments or []),
            created_at=created_at or self.now(),
        )
        self.session.add(message)
        await self.session.flush()
        return message

    @guarded
    async def thread(self, request_id: int) -> list[MentorMessage]:
        stmt = (
            select(MentorMessage)
            .where(MentorMessage.request_id == request_id)
            .order_by(MentorMessage.created_at, MentorMessage.id)
        )
        return list(await self.session.scalars(stmt))

    # -- outbox look-ups ----------------------------------------------------------------------

    @guarded
    async def blocked_deliveries(
        self, kinds: tuple[str, ...], since: datetime
    ) -> list[OutboxMessage]:
        """Messages to clerks that could not be delivered because the clerk blocked the bot."""
        stmt = select(OutboxMessage).where(
            OutboxMessage.kind.in_(kinds),
            OutboxMessage.status == "blocked",
            OutboxMessage.created_at >= since,
        )
        return list(await self.session.scalars(stmt.order_by(OutboxMessage.id).limit(200)))

    # -- users and roles ----------------------------------------------------------------------

    @guarded
    async def users_with_role(self, role: str) -> list[User]:
        stmt = select(User).where(User.role == role, User.active.is_(True)).order_by(User.id)
        return list(await self.session.scalars(stmt))

    @guarded
    async def record_role_change(
        self, actor_id: int | None, target_id: int, old_role: str, new_role: str
    ) -> RoleChange:
        change = RoleChange(
            actor_id=actor_id,
            target_id=target_id,
            old_role=old_role,
            new_role=new_role,
            created_at=self.now(),
        )
        self.session.add(change)
        await self.session.flush()
        return change

    @guarded
    async def role_changes(self, target_id: int) -> list[RoleChange]:
        stmt = select(RoleChange).where(RoleChange.target_id == target_id).order_by(RoleChange.id)
        return list(await self.session.scalars(stmt))

    # -- drafts -------------------------------------------------------------------------------

    @guarded
    async def draft_for(self, request_id: int) -> KnowledgeDraft | None:
        return await self.session.scalar(
            select(KnowledgeDraft).where(KnowledgeDraft.request_id == request_id)
        )

    @guarded
    async def add_draft(self, draft: KnowledgeDraft) -> KnowledgeDraft:
        self.session.add(draft)
        await self.session.flush()
        return draft

    @guarded
    async def drafts(self, *, include_exported: bool = True) -> list[KnowledgeDraft]:
        stmt = select(KnowledgeDraft)
        if not include_exported:
            stmt = stmt.where(KnowledgeDraft.exported_at.is_(None))
        return list(await self.session.scalars(stmt.order_by(KnowledgeDraft.id)))

    # -- reports ------------------------------------------------------------------------------

    @guarded
    async def questions_between(self, start: datetime, end: datetime) -> list[Question]:
        stmt = (
            select(Question)
            .where(Question.created_at >= start, Question.created_at < end)
            .order_by(Question.id)
        )
        return list(await self.session.scalars(stmt))

    @guarded
    async def municipalities_of(self, user_ids: set[int]) -> dict[int, str | None]:
        if not user_ids:
            return {}
        stmt = select(User.id, User.municipality).where(User.id.in_(user_ids))
        return {int(uid): m for uid, m in (await self.session.execute(stmt)).all()}

    # -- deletion of a clerk's data (/obrisi_me) ---------------------------------------------

    @guarded
    async def requests_of(self, user_id: int) -> list[MentorRequest]:
        """Every request the clerk ever opened, whatever its state, oldest first."""
        stmt = select(MentorRequest).where(MentorRequest.user_id == user_id)
        return list(await self.session.scalars(stmt.order_by(MentorRequest.id)))

    @guarded
    async def message_ids_of(self, request_ids: Iterable[int]) -> list[int]:
        ids = list(request_ids)
        if not ids:
            return []
        stmt = select(MentorMessage.id).where(MentorMessage.request_id.in_(ids))
        return [int(i) for i in await self.session.scalars(stmt)]

    @guarded
    async def forget_draft_questions(self, request_ids: Iterable[int], redacted: str) -> int:
        """KB drafts made from these requests lose the clerk's question (the mentor's answer,
        already scrubbed of personal data, stays for the curators)."""
        ids = list(request_ids)
        if not ids:
            return 0
        result = await self.session.execute(
            update(KnowledgeDraft).where(KnowledgeDraft.request_id.in_(ids))
            .values(question=redacted),
            execution_options={"synchronize_session": False},
        )
        return int(getattr(result, "rowcount", 0) or 0)
