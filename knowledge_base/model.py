"""Plain data of the knowledge base: entries, services and what validation found wrong."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal


@dataclass
class Entry:
    """One curated question with its answer (Telegram HTML subset, Serbian Latin)."""

    id: str
    service: str
    question: str
    alternatives: list[str]
    keywords: list[str]
    answer: str
    sources: list[str]
    related: list[str]
    reviewed: dt.date | None
    source_file: str = ""
    # Who checked the entry against its sources on the `reviewed` date.
    reviewed_by: str | None = None


@dataclass(frozen=True)
class ReferralGroup:
    """A subject the programme does not cover (knowledge_base/not_covered.yaml): the phrases
    that name it and where the clerk should go instead. `kind` is "referral" (with a source and
    the mentor as second choice) or "small_talk" (a short friendly reply, no buttons)."""

    id: str
    phrases: tuple[str, ...]
    text: str
    text_en: str
    source: str = ""
    kind: str = "referral"


@dataclass(frozen=True)
class Detail:
    """A kind of detail a clerk may ask of any subject (a price, a contact, a time limit), from
    knowledge_base/details.yaml: a question `asked` it of an entry whose answer does not state
    it (no `stated` phrase) is a near miss, not a question that entry answers."""

    id: str
    asked: tuple[str, ...]
    stated: tuple[str, ...]


@dataclass
class Service:
    id: str
    title_sr: str
    title_en: str


@dataclass
class KnowledgeBase:
    """All entries (in file order) and services; synonyms are the curated groups for matching."""

    entries: dict[str, Entry]
    services: list[Service]
    synonyms: list[list[str]] = field(default_factory=list)
    # Subjects the KB does not cover (curated in knowledge_base/not_covered.yaml)
    not_covered: list[str] = field(default_factory=list)
    # The same subjects grouped, each with its referral text (and the small-talk group)
    referrals: list[ReferralGroup] = field(default_factory=list)
    # kinds of detail an answer may or may not state (knowledge_base/details.yaml)
    details: list[Detail] = field(default_factory=list)

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)

    def by_service(self, service_id: str) -> list[Entry]:
        return [entry for entry in self.entries.values() if entry.service == service_id]

    def service(self, service_id: str) -> Service | None:
        return next((s for s in self.services if s.id == service_id), None)

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class Problem:
    """Something wrong in a KB file; `entry_id` is None when the problem is not in one entry."""

    file: str
    entry_id: str | None
    message: str
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}: {self.entry_id}" if self.entry_id else self.file
        return f"{self.level.upper()} {where}: {self.message}"


class KnowledgeBaseError(Exception):
    """The KB could not be loaded; `problems` lists every error found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"knowledge base has {len(problems)} problem(s):\n{lines}")
