"""The mentor queue: what the bot cannot answer, a mentor answers.

Every use case is one unit of work: the state change and the messages it causes (the card in
the mentor group, its edits, the answer to the clerk, reminders) are written together, the
messages as outbox rows that the dispatcher delivers exactly once. A request is stored before the
clerk hears "received". Privileged actions check the actor's role as stored in the database;
refusals are polite and logged. Replies are channel-neutral; the group's texts are Serbian Latin.

Action tokens (kept short for Telegram's 64-byte callback data):
  mq:c:<n> claim · mq:u:<n> release · mq:z:<n> close · mq:k:<n> add to the KB · mq:a:<n> attachments
  mr:<n>:ok  "Rešeno, hvala" · mr:<n>:more  "Imam dodatno pitanje" · mrt:<n>:<1-5> rating
  ms:send / ms:cancel  the clerk sends or drops the request being written
  mo:<n> a follower opens their own request after all · mc:<n> leave a call-back contact
  mh:<n>:0 hand-over choices · mh:<n>:<user id> forward to that mentor · mh:<n>:-1 for ITE ·
  mh:<n>:-2 for the Ministry

Followers instead of duplicates: an escalation close to an open, not yet answered request (same
service, `similarity` at least `follow_similarity` by the knowledge-base matcher's own measure,
created within `follow_window`) does not open a second request: the clerk follows that one (one
tap opens their own after all). The card shows the followers and their municipalities; the
mentor's answer is queued to the asker and every follower in the same transaction (each on
their own channel, in their language); a follower rates it and may ask a follow-up, which opens
their own request with the mentor who answered. Their phrasings go into the KB draft.

Hand-over: a mentor forwards a request to another mentor, or marks it for ITE / the Ministry
with a note. The clerk (and the followers) hear who handles it and when to expect an answer;
the SLA clock is paused while it is handed over, and the mentor who handed it over is reminded
(working days, once a day) when the expected time has passed without an answer.

The package is split by responsibility; `MentoringService` puts the layers together, so callers
import it (and the values it returns) from here as before:
  common.py        constants, MentorConfig, Attachment / Created / Result, text helpers
  base.py          shared state and wording           cards.py       the group card, outbox writes
  followers.py     followers instead of duplicates    clerk_side.py  opening a request
  clerk_replies.py call-back, resolved, rating, follow-ups
  mentor_side.py   claim, release, close, answer, KB draft
  handover.py      forwarding and handing out          lists.py       /red, /moji, files
  periodic.py      SLA reminders, blocked clerks, auto-close, card ids
"""

from __future__ import annotations

from bot.services.mentoring.clerk_replies import ClerkReplies
from bot.services.mentoring.common import (
    CARD_THREAD,
    CLERK_KINDS,
    GROUP_KINDS,
    GROUP_LANGUAGE,
    MAX_CONTACT,
    MAX_NOTE,
    MAX_TEXT,
    PARTIES,
    PARTY_CODES,
    PARTY_WORDS,
    REDACTED_TEXT,
    STATE_LABELS,
    WEEKDAYS,
    Attachment,
    Created,
    MentorConfig,
    Result,
    to_int_or_none,
)
from bot.services.mentoring.lists import MentorLists
from bot.services.mentoring.mentor_side import MentorSide
from bot.services.mentoring.periodic import MentorPeriodic

__all__ = [
    "CARD_THREAD",
    "CLERK_KINDS",
    "GROUP_KINDS",
    "GROUP_LANGUAGE",
    "MAX_CONTACT",
    "MAX_NOTE",
    "MAX_TEXT",
    "PARTIES",
    "PARTY_CODES",
    "PARTY_WORDS",
    "REDACTED_TEXT",
    "STATE_LABELS",
    "WEEKDAYS",
    "Attachment",
    "Created",
    "MentorConfig",
    "MentoringService",
    "Result",
    "to_int_or_none",
]


class MentoringService(ClerkReplies, MentorSide, MentorPeriodic, MentorLists):
    """The whole queue: the clerk's side, the mentor's side, hand-over, lists and the scheduled
    jobs, each a layer over the shared state and the card writer (see the modules)."""
