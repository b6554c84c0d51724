"""The clerk's button tokens as typed values: one `pack`, one `parse`.

A `Button.action` is a short string every channel hands back verbatim (Telegram's
callback_data holds 64 bytes): `<kind>:<field>:<field>`. Services build the typed value and
`pack` it; the Telegram handlers (handlers/callbacks.py), the action router
(bot/services/actions.py), the Viber channel and the playground `parse` it back. A token that
does not parse (an old message, a changed format) is None: the caller answers "this option
is no longer available".

The other features' kinds sit in small sibling modules (bot/services/buttons_trainings.py:
`tr:<verb>:...`, whose KIND holds two segments; bot/services/buttons_mentoring.py: `ms:`,
`mo:`, `mc:`, `mh:`, `mq:`, `sab:`, `inc:`, `bc:`, `int:`, `pd:`;
bot/services/buttons_roadmaps.py: `rm`, `rp:`, `rd:`, ...); `parse` dispatches over all of
them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from bot.digits import to_int
from bot.services.buttons_mentoring import FEATURE_KINDS, FeatureToken
from bot.services.buttons_roadmaps import ROADMAP_TOKEN_KINDS, RoadmapToken
from bot.services.buttons_trainings import TRAINING_KINDS, TrainingToken

SEPARATOR = ":"


@dataclass(frozen=True)
class ShowEntry:
    """Show a KB entry (a related link, the topic browser)."""

    KIND: ClassVar[str] = "e"
    entry_id: str


@dataclass(frozen=True)
class Clarify:
    """A candidate picked from the short list offered for question `question_id`."""

    KIND: ClassVar[str] = "c"
    question_id: int
    entry_id: str


@dataclass(frozen=True)
class Feedback:
    """👍 / 👎 under an answer."""

    KIND: ClassVar[str] = "fb"
    question_id: int
    value: str  # up | down


@dataclass(frozen=True)
class AskMentor:
    """'Ask a mentor' about question `question_id`."""

    KIND: ClassVar[str] = "m"
    question_id: int


@dataclass(frozen=True)
class ServiceList:
    """The questions of one service in the topic browser."""

    KIND: ClassVar[str] = "svc"
    service_id: str


@dataclass(frozen=True)
class ServicesMenu:
    """The list of services."""

    KIND: ClassVar[str] = "menu"


@dataclass(frozen=True)
class SetLanguage:
    KIND: ClassVar[str] = "lang"
    code: str  # sr-Latn | sr-Cyrl | en


@dataclass(frozen=True)
class ChooseMunicipality:
    KIND: ClassVar[str] = "mun"
    token: str  # a municipality slug, "other" or "skip"


@dataclass(frozen=True)
class MentorResolved:
    """Under a mentor's answer: "Rešeno, hvala" (`ok`) or "Imam dodatno pitanje" (`more`)."""

    KIND: ClassVar[str] = "mr"
    number: int
    value: str  # ok | more


@dataclass(frozen=True)
class MentorRating:
    """The clerk's stars for a mentor's answer."""

    KIND: ClassVar[str] = "mrt"
    number: int
    rating: int


Token: TypeAlias = (
    ShowEntry
    | Clarify
    | Feedback
    | AskMentor
    | ServiceList
    | ServicesMenu
    | SetLanguage
    | ChooseMunicipality
    | MentorResolved
    | MentorRating
    | TrainingToken
    | FeatureToken
    | RoadmapToken
)
CLERK_KINDS: tuple[type[Any], ...] = (
    ShowEntry,
    Clarify,
    Feedback,
    AskMentor,
    ServiceList,
    ServicesMenu,
    SetLanguage,
    ChooseMunicipality,
    MentorResolved,
    MentorRating,
)
ALL_KINDS = (*CLERK_KINDS, *TRAINING_KINDS, *FEATURE_KINDS, *ROADMAP_TOKEN_KINDS)
KINDS: dict[str, type[Any]] = {kind.KIND: kind for kind in ALL_KINDS}


def pack(token: Token) -> str:
    """`kind:field:field`; a text field may not hold the separator (ids and slugs never do)."""
    values = [str(getattr(token, f.name)) for f in dataclasses.fields(token)]
    if any(SEPARATOR in value for value in values):
        raise ValueError(f"a button token field holds {SEPARATOR!r}: {token!r}")
    return SEPARATOR.join([token.KIND, *values])


def parse(action: str) -> Token | None:
    """The typed value of a token, or None when it is not one of these kinds or is malformed.

    A kind is the first segment (`fb`) or, for the trainings, the first two (`tr:j`)."""
    segments = action.split(SEPARATOR)
    cls = KINDS.get(SEPARATOR.join(segments[:2]))
    if cls is not None:
        parts = segments[2:]
    else:
        cls = KINDS.get(segments[0])
        parts = segments[1:]
    if cls is None:
        return None
    fields = dataclasses.fields(cls)
    if len(parts) != len(fields):
        return None
    signed: frozenset[str] = getattr(cls, "SIGNED", frozenset())
    optional: frozenset[str] = getattr(cls, "OPTIONAL", frozenset())
    values: dict[str, object] = {}
    for field, raw in zip(fields, parts, strict=True):
        if field.type == "int":
            negative = field.name in signed and raw.startswith("-")
            number = to_int(raw[1:] if negative else raw, 11)
            if number is None:
                return None
            values[field.name] = -number if negative else number
        elif raw or field.name in optional:
            values[field.name] = raw
        else:
            return None
    token: Token = cls(**values)
    return token
