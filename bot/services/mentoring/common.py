"""The mentor queue's vocabulary: its constants, settings, the values its calls return, and the
text helpers every part uses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.i18n import N_
from bot.services.replies import Reply, toast
from bot.services.working_hours import WorkingHours

if TYPE_CHECKING:
    from bot.config import Settings

from storage.mentor import (
    CARD_KIND,
    MentorRequest,
)
from storage.models import User

GROUP_LANGUAGE = "sr-Latn"
MAX_TEXT = 3500
CARD_THREAD = 4  # messages of the thread shown on the card
# Kinds of outbox rows that go to the clerk: a 403 on them means the clerk blocked the bot.
CLERK_KINDS = ("mentor_answer", "mentor_notice")
REDACTED_TEXT = "[obrisano]"  # what retention and deletion leave of a text (storage.operations)
# Outside parties a request can be handed to, as the clerk and the card name them.
PARTIES = {"ite": N_("Kancelarija za IT i eUpravu (ITE)"), "ministry": N_("nadležno ministarstvo")}
PARTY_WORDS = {
    "ite": "ite", "kite": "ite", "kancelarija": "ite",
    "ministarstvo": "ministry", "ministry": "ministry", "mdulsu": "ministry",
}
PARTY_CODES = {-1: "ite", -2: "ministry"}  # in the mh:<n>:<target> token
MAX_NOTE = 500
MAX_CONTACT = 120
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
GROUP_KINDS = (CARD_KIND, "mentor_group")

# Accusative, as in "u ponedeljak"; N_ so that they are translated (and written in Cyrillic).
WEEKDAYS = (
    N_("ponedeljak"), N_("utorak"), N_("sredu"), N_("četvrtak"), N_("petak"), N_("subotu"),
    N_("nedelju"),
)
STATE_LABELS = {
    "new": "🆕 novo",
    "claimed": "🙋 preuzeto",
    "answered": "✅ odgovoreno",
    "closed": "🔒 zatvoreno",
}


@dataclass(frozen=True)
class MentorConfig:
    mentor_chat_id: int | None = None
    group_channel: str = "telegram"
    hours: WorkingHours = field(default_factory=WorkingHours)
    expected_answer: timedelta = timedelta(hours=4)  # working time, promised to the clerk
    remind_after: timedelta = timedelta(minutes=30)  # unclaimed, working time -> group
    escalate_after: timedelta = timedelta(hours=4)  # unclaimed, working time -> admins
    auto_close_after: timedelta = timedelta(days=3)  # answered, no reply from the clerk
    blocked_lookback: timedelta = timedelta(days=14)
    # Followers: an escalation this close to an open request made this recently follows it.
    follow_window: timedelta = timedelta(hours=24)
    follow_similarity: float = 0.6
    handover_days: int = 5  # working days ITE / the Ministry are expected to take

    @classmethod
    def from_settings(cls, settings: Settings) -> MentorConfig:
        """The mentor queue's knobs, from the one Settings."""
        hours = WorkingHours(
            start=settings.working_hours_start,
            end=settings.working_hours_end,
            timezone=settings.timezone,
            public_holidays=settings.mentor_public_holidays,
        )
        return cls(
            mentor_chat_id=settings.mentor_chat_id,
            hours=hours,
            expected_answer=timedelta(hours=settings.mentor_expected_answer_hours),
            remind_after=timedelta(minutes=settings.mentor_remind_after_minutes),
            escalate_after=timedelta(minutes=settings.mentor_escalate_after_minutes),
            auto_close_after=timedelta(days=settings.mentor_auto_close_days),
            follow_window=timedelta(hours=settings.mentor_follow_window_hours),
            handover_days=settings.mentor_handover_days,
        )


@dataclass(frozen=True)
class Attachment:
    type: str  # photo | document | video | voice ...
    file_id: str
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "file_id": self.file_id, "name": self.name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attachment:
        return cls(str(data.get("type", "document")), str(data["file_id"]), data.get("name"))


@dataclass(frozen=True)
class Created:
    reply: Reply
    number: int | None
    new: bool


@dataclass(frozen=True)
class Result:
    """What the actor sees (`reply`), and a short plain `notice` for a button toast."""

    reply: Reply
    ok: bool
    number: int | None = None
    # the action waits for a text from the actor (the hand-over note) before it can go on
    awaits_text: bool = False

    @property
    def notice(self) -> str:
        return toast(self.reply)


def held_by_another(request: MentorRequest, mentor: User) -> bool:
    """Claimed by another mentor: only they (or an admin) may answer, release, close or hand
    it over; the one rule for every mentor action."""
    return (
        request.state == "claimed"
        and request.claimed_by not in (None, mentor.id)
        and mentor.role != "admin"
    )


def to_int_or_none(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 11 else None



