"""The curators' tables and their repository: one-time console sign-in links, knowledge-base
revisions (approved changes applied over the reviewed YAML base at load), what curators decided
about unanswered questions, and the signals the bot records for them.

- `console_links`: a link the bot sent to a curator; `used_at` is set once (the sign-in), so a
  second use finds nothing to consume.
- `kb_revisions`: the whole entry as plain data (the YAML fields) after an approved change; the
  newest revision of an entry wins over the base. The highest id is the "revision counter" every
  instance polls.
- `curation_marks`: a question a curator has dealt with (made an alternative, a new entry,
  marked not covered, ignored), so it leaves the review queue.
- `kb_signals`: channel-neutral hints for curators (a clerk's 👎 and what came next, an
  escalation without an entry, ...); one per kind and question, so a redelivered update adds
  nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.clock import stamp
from storage.errors import guarded
from storage.models import Base, Question, User
from storage.repositories import Repository
from storage.types import JSONType, UTCDateTime

__all__ = [
    "MARK_OUTCOMES",
    "SIGNAL_KINDS",
    "ConsoleLink",
    "CurationMark",
    "CurationRepository",
    "KbRevision",
    "KbSignal",
]

MARK_OUTCOMES: tuple[str, ...] = ("alternative", "new_entry", "not_covered", "ignored")
SIGNAL_KINDS: tuple[str, ...] = (
    "clarify_pick",  # the entry a clerk picked after a clarify question
    "down_then_asked",  # 👎 on an answer, then the clerk asked again
    "down_then_mentor",  # 👎 on an answer, then the clerk asked a mentor
    "mentor_matched_entry",  # an escalation whose mentor answer matched an existing entry
    "escalated_no_entry",  # a question escalated to a mentor with no entry
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ConsoleLink(Base):
    __tablename__ = "console_links"
    __table_args__ = (UniqueConstraint("nonce"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


class KbRevision(Base):
    __tablename__ = "kb_revisions"
    __table_args__ = (Index(None, "entry_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[str] = mapped_column(String(128))
    # The entry's YAML fields after the change (id, service, question, alternatives, ...).
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    summary: Mapped[str] = mapped_column(String(200), default="")
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


class CurationMark(Base):
    __tablename__ = "curation_marks"
    __table_args__ = (
        UniqueConstraint("question_id"),
        CheckConstraint(_in("outcome", MARK_OUTCOMES), name="outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(String(16))
    entry_id: Mapped[str | None] = mapped_column(String(128), default=None)
    revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("kb_revisions.id", ondelete="SET NULL"), default=None
    )
    curator_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


class KbSignal(Base):
    __tablename__ = "kb_signals"
    __table_args__ = (
        UniqueConstraint("kind", "question_id"),
        CheckConstraint(_in("kind", SIGNAL_KINDS), name="kind"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    entry_id: Mapped[str | None] = mapped_column(String(128), default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


class CurationRepository(Repository):
    # -- sign-in links --------------------------------------------------------------------

    @guarded
    async def add_link(self, nonce: str, user_id: int, expires_at: datetime) -> ConsoleLink:
        link = ConsoleLink(nonce=nonce, user_id=user_id, expires_at=expires_at)
        self.session.add(link)
        await self.session.flush()
        return link

    @guarded
    async def consume_link(self, nonce: str, user_id: int) -> bool:
        """Mark the link used, once: True only for the first use of an unexpired link of
        `user_id` (two requests racing with the same link: one wins)."""
        now = self.now()
        result = await self.session.execute(
            update(ConsoleLink)
            .where(
                ConsoleLink.nonce == nonce,
                ConsoleLink.user_id == user_id,
                ConsoleLink.used_at.is_(None),
                ConsoleLink.expires_at > now,
            )
            .values(used_at=now)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    # -- revisions ------------------------------------------------------------------------

    @guarded
    async def latest_revision(self) -> int:
        value = await self.session.scalar(select(func.max(KbRevision.id)))
        return int(value or 0)

    @guarded
    async def add_revision(
        self, entry_id: str, data: dict[str, Any], summary: str, author_id: int | None
    ) -> KbRevision:
        revision = KbRevision(
            entry_id=entry_id,
            data=data,
            summary=summary[:200],
            author_id=author_id,
            created_at=self.now(),
        )
        self.session.add(revision)
        await self.session.flush()
        return revision

    @guarded
    async def revisions(self, up_to: int | None = None) -> list[KbRevision]:
        """Every revision in order (the newest of an entry last)."""
        query = select(KbRevision).order_by(KbRevision.id)
        if up_to is not None:
            query = query.where(KbRevision.id <= up_to)
        return list((await self.session.scalars(query)).all())

    # -- the review queue -----------------------------------------------------------------

    @guarded
    async def open_questions(
        self, since: datetime, decisions: Sequence[str], limit: int = 2000
    ) -> list[tuple[Question, str | None]]:
        """Questions with one of `decisions` asked since `since` that no curator has dealt with,
        with the asker's municipality; newest first."""
        marked = select(CurationMark.question_id)
        query = (
            select(Question, User.municipality)
            .join(User, User.id == Question.user_id)
            .where(
                Question.created_at >= since,
                Question.decision.in_(list(decisions)),
                Question.id.not_in(marked),
            )
            .order_by(Question.id.desc())
            .limit(limit)
        )
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]

    @guarded
    async def questions(self, ids: Sequence[int]) -> list[Question]:
        if not ids:
            return []
        query = select(Question).where(Question.id.in_(list(ids))).order_by(Question.id)
        return list((await self.session.scalars(query)).all())

    @guarded
    async def mark(
        self,
        question_ids: Sequence[int],
        outcome: str,
        curator_id: int | None,
        entry_id: str | None = None,
        revision_id: int | None = None,
    ) -> int:
        """Take the questions out of the review queue; already marked ones are left alone.
        Returns how many were marked now."""
        done = set(
            (
                await self.session.scalars(
                    select(CurationMark.question_id).where(
                        CurationMark.question_id.in_(list(question_ids))
                    )
                )
            ).all()
        )
        added = 0
        for qid in question_ids:
            if qid in done:
                continue
            self.session.add(
                CurationMark(
                    question_id=qid,
                    outcome=outcome,
                    entry_id=entry_id,
                    revision_id=revision_id,
                    curator_id=curator_id,
                    created_at=self.now(),
                )
            )
            done.add(qid)
            added += 1
        await self.session.flush()
        return added

    # -- signals --------------------------------------------------------------------------

    @guarded
    async def signal(
        self,
        kind: str,
        question_id: int,
        entry_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> bool:
        """Record a signal once per kind and question; False when it was already there."""
        exists = await self.session.scalar(
            select(KbSignal.id).where(KbSignal.kind == kind, KbSignal.question_id == question_id)
        )
        if exists is not None:
            return False
        self.session.add(
            KbSignal(
                kind=kind,
                question_id=question_id,
                entry_id=entry_id,
                details=details or {},
                created_at=self.now(),
            )
        )
        await self.session.flush()
        return True

    @guarded
    async def signals(self, since: datetime, kinds: Sequence[str]) -> list[tuple[KbSignal, str]]:
        """Signals of `kinds` since `since` whose question no curator has dealt with, with the
        question's text."""
        marked = select(CurationMark.question_id)
        query = (
            select(KbSignal, Question.text)
            .join(Question, Question.id == KbSignal.question_id)
            .where(
                KbSignal.created_at >= since,
                KbSignal.kind.in_(list(kinds)),
                KbSignal.question_id.not_in(marked),
            )
            .order_by(KbSignal.id.desc())
        )
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]
