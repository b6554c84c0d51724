"""Curation's vocabulary: the review queue's limits, the values the console shows (suggestion
groups, signals, drafts, revisions, trials), and building a KB and matcher from revisions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from knowledge_base.loader import (
    load_knowledge_base,
)
from knowledge_base.matcher import Matcher, MatchResult
from knowledge_base.model import Entry, KnowledgeBase
from knowledge_base.revisions import FIELDS

QUEUE_DAYS = 90  # questions older than this leave the review queue
QUEUE_DECISIONS = ("escalate", "clarify")
GROUP_SIMILARITY = 75.0  # rapidfuzz token_set_ratio of normalised texts to join a group
GUESSES = 3
ENTRY_FIELDS = FIELDS

Swap = Callable[[KnowledgeBase, Matcher], None]


class CurationRefused(Exception):
    """The user is not (or no longer) a curator or admin."""


@dataclass(frozen=True)
class Guess:
    entry_id: str
    question: str
    score: float


@dataclass(frozen=True)
class SuggestionGroup:
    """Similar questions the bot did not answer confidently, with what the matcher guessed."""

    key: int  # the newest question's id
    texts: tuple[str, ...]  # distinct phrasings, personal data removed, most asked first
    count: int
    municipalities: tuple[tuple[str, int], ...]
    question_ids: tuple[int, ...]
    guesses: tuple[Guess, ...]
    picked: tuple[str, ...] = ()  # entries clerks picked from the clarify list

    @property
    def phrasing(self) -> str:
        return self.texts[0] if self.texts else ""


@dataclass(frozen=True)
class SignalItem:
    """A clerk's 👎 and what came next, or an escalation a mentor answered from an entry."""

    kind: str
    label: str
    question_id: int
    text: str  # personal data removed
    entry_id: str | None
    entry_question: str


@dataclass(frozen=True)
class DraftItem:
    """A mentor's answer proposed as an entry (personal data removed when it was made)."""

    id: int
    service: str | None
    question: str
    answer: str


@dataclass(frozen=True)
class Queue:
    groups: list[SuggestionGroup]
    signals: list[SignalItem]
    drafts: list[DraftItem]


SIGNAL_LABELS = {
    "down_then_asked": "👎 pa novo pitanje",
    "down_then_mentor": "👎 pa pitanje mentoru",
    "mentor_matched_entry": "mentor odgovorio kao postojeći unos",
}


@dataclass(frozen=True)
class RevisionItem:
    id: int
    entry_id: str
    summary: str
    author: str
    at: datetime
    in_base: bool  # the YAML base already says the same (exported and merged)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    problems: tuple[str, ...] = ()
    revision: int | None = None


@dataclass(frozen=True)
class Trial:
    """What the bot would do with a question: decision, the entry, the top candidates."""

    decision: str
    entry_id: str | None
    confidence: float
    score: float
    reason: str
    candidates: tuple[Guess, ...] = field(default_factory=tuple)


def decide(matcher: Matcher, text: str) -> MatchResult:
    """The answering service's decision, synchronously (for a worker thread)."""
    assessment = matcher.assess(text)
    result = matcher.decide(assessment)
    if matcher.wants_second_opinion(result, assessment):
        result = matcher.second_opinion(assessment, result)
    return result


def build_knowledge(overrides: Sequence[Mapping[str, Any]]) -> tuple[KnowledgeBase, Matcher]:
    knowledge_base = load_knowledge_base(overrides=overrides)
    return knowledge_base, Matcher.from_knowledge_base(knowledge_base)


def base_entries() -> dict[str, Entry]:
    """The reviewed YAML base alone (no revisions)."""
    return dict(load_knowledge_base().entries)


def latest_per_entry(rows: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    newest: dict[str, dict[str, Any]] = {}
    for entry_id, data in rows:
        newest.pop(entry_id, None)
        newest[entry_id] = data
    return list(newest.values())



def lines(text: str) -> list[str]:
    """A textarea's lines, trimmed, empty ones dropped."""
    return [line.strip() for line in re.split(r"[\r\n]+", text or "") if line.strip()]
