"""ORM models. Every change here needs a migration in ``storage/migrations/versions``.

Allowed values of the string "enum" columns are module constants (``CHANNELS`` ...), enforced by
CHECK constraints; they are plain strings in Python (``Literal`` aliases for type checkers).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    inspect,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.clock import stamp
from storage.types import JSONType, UTCDateTime

__all__ = [
    "CHANNELS",
    "DECISIONS",
    "FEEDBACK_VALUES",
    "LANGUAGES",
    "NAMING_CONVENTION",
    "OUTBOX_STATUSES",
    "ROLES",
    "Base",
    "Channel",
    "Decision",
    "Feedback",
    "FeedbackValue",
    "Language",
    "OutboxMessage",
    "ProcessedUpdate",
    "Question",
    "Role",
    "User",
]

Channel = Literal["telegram", "viber", "playground"]
Language = Literal["sr-Latn", "sr-Cyrl", "en"]
Role = Literal["clerk", "mentor", "curator", "admin"]
Decision = Literal["answer", "clarify", "escalate"]
FeedbackValue = Literal["up", "down"]

CHANNELS: tuple[str, ...] = ("telegram", "viber", "playground")
LANGUAGES: tuple[str, ...] = ("sr-Latn", "sr-Cyrl", "en")
ROLES: tuple[str, ...] = ("clerk", "mentor", "curator", "admin")
DECISIONS: tuple[str, ...] = ("answer", "clarify", "escalate")
FEEDBACK_VALUES: tuple[str, ...] = ("up", "down")
# pending -> sending -> sent | failed | blocked (the user blocked the bot); cancelled by an admin.
OUTBOX_STATUSES: tuple[str, ...] = (
    "pending", "sending", "sent", "failed", "blocked", "cancelled", "expired"
)

# Deterministic constraint names: needed to alter/drop constraints in later migrations
# (SQLite batch mode in particular cannot handle unnamed constraints).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}

    def __repr__(self) -> str:
        identity = inspect(self).identity
        return f"<{type(self).__name__} {identity!r}>"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(_in("language", LANGUAGES), name="language"),
        CheckConstraint(_in("role", ROLES), name="role"),
        Index(None, "role", "active"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(255), default=None)
    language: Mapped[str] = mapped_column(String(8), default="sr-Latn", server_default="sr-Latn")
    # False while the language is only the client's hint: replies then follow the question
    language_chosen: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Latin name of the municipality/city, or "other"; None until onboarding asks.
    municipality: Mapped[str | None] = mapped_column(String(128), default=None)
    role: Mapped[str] = mapped_column(String(16), default="clerk", server_default="clerk")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    onboarded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    services_of_interest: Mapped[list[str] | None] = mapped_column(JSONType, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp, onupdate=stamp)


class Question(Base):
    __tablename__ = "questions"
    __table_args__ = (
        CheckConstraint(_in("decision", DECISIONS), name="decision"),
        Index(None, "created_at"),
        Index(None, "entry_id"),
        Index(None, "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(String(16))
    entry_id: Mapped[str | None] = mapped_column(String(128), default=None)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    candidates: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # The entry the clerk picked from a clarify list (what the matcher should have answered).
    chosen_entry_id: Mapped[str | None] = mapped_column(String(128), default=None)
    # "service/step": the step the clerk's municipality was on for the question's service
    # (its roadmap), so curators see where municipalities struggle.
    roadmap_step: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("question_id", "user_id"),
        CheckConstraint(_in("value", FEEDBACK_VALUES), name="value"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    value: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp, onupdate=stamp)


class ProcessedUpdate(Base):
    """An incoming update (Telegram ``update_id``, Viber ``message_token``), claimed once.

    While it is being handled the row also keeps the update itself (``payload``); when handling
    ends ``done_at`` is set and the payload dropped. A row left unfinished by a process that died
    is handled again after a restart (``replays`` counts those tries)."""

    __tablename__ = "processed_updates"
    __table_args__ = (Index(None, "processed_at"),)

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    replays: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class OutboxMessage(Base):
    """A message that must arrive: written in the same transaction as the change that causes it,
    sent later by the dispatcher, which retries, respects rate limits and marks the outcome."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_in("status", OUTBOX_STATUSES), name="status"),
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        UniqueConstraint("dedupe_key"),
        Index(None, "status", "not_before"),
        Index(None, "batch", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    kind: Mapped[str] = mapped_column(String(32))
    # {"text": str, "buttons": [[{"label", "action"}]], "document": {...}} — channel-neutral.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Same key twice inserts nothing: a reminder or delivery can never be queued twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # Groups the deliveries of one broadcast, for progress and cancellation.
    batch: Mapped[str | None] = mapped_column(String(64), default=None)
    priority: Mapped[int] = mapped_column(Integer, default=100)  # lower goes first
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    # Past this moment the message is pointless (a reminder for a training that has started):
    # it is marked expired and logged instead of sent.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    external_message_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
