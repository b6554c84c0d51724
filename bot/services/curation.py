"""Curating the knowledge base without a developer: the review queue of questions the bot could
not answer, edits of entries, and the KB revisions that carry them to every instance.

Where changes live: the YAML files in knowledge_base/content stay the reviewed base. An approved
change is a KB revision in the database (the whole entry as plain data); at load the newest
revision of each entry is applied over the base (`load_knowledge_base(overrides=...)`). Every
instance polls the highest revision id (`refresh`, every few seconds) and, when it grew, builds
the new KB and matcher off the event loop and swaps them into the answering service at once. A
change that fails `knowledge_base check` is refused with the check's messages.
`python -m knowledge_base revisions export DIR` writes the revisions as YAML for the repository.

Every change re-checks the curator's role against the database and is written to the audit
trail in the same unit of work. Channel-neutral: the console (bot/console/) only translates.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rapidfuzz import fuzz

from bot.services.answering import AnswerService
from bot.services.audit import KB_REVISION, KB_SUGGESTION, audit_record
from bot.services.console_access import CONSOLE_ROLES
from bot.services.pii import scrub
from bot.services.users import UserProfile
from knowledge_base.loader import (
    ID_PATTERN,
    REVIEW_MONTHS,
    check_knowledge_base,
    load_knowledge_base,
    months_before,
)
from knowledge_base.matcher import Matcher, MatchResult
from knowledge_base.model import Entry, KnowledgeBase, KnowledgeBaseError
from knowledge_base.normalize import normalize
from knowledge_base.revisions import FIELDS, entry_data
from storage.curation import MARK_OUTCOMES, CurationRepository
from storage.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

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
    if matcher.wants_second_opinion(result):
        result = matcher.second_opinion(assessment, result)
    return result


def _build(overrides: Sequence[Mapping[str, Any]]) -> tuple[KnowledgeBase, Matcher]:
    knowledge_base = load_knowledge_base(overrides=overrides)
    return knowledge_base, Matcher.from_knowledge_base(knowledge_base)


def _latest_per_entry(rows: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    newest: dict[str, dict[str, Any]] = {}
    for entry_id, data in rows:
        newest.pop(entry_id, None)
        newest[entry_id] = data
    return list(newest.values())


class CurationService:
    def __init__(
        self,
        database: Database,
        answers: AnswerService,
        *,
        timezone: str = "Europe/Belgrade",
    ) -> None:
        self._database = database
        self._answers = answers
        self._zone = ZoneInfo(timezone)
        self.revision = 0  # the revision the answering service uses now
        self.on_swap: list[Swap] = []
        self._refreshing = asyncio.Lock()
        self._saving = asyncio.Lock()

    # -- the KB in use, and keeping it current ----------------------------------------------

    @property
    def knowledge_base(self) -> KnowledgeBase:
        return self._answers.knowledge_base

    @property
    def matcher(self) -> Matcher:
        return self._answers.matcher

    def today(self) -> date:
        return self._database.clock().astimezone(self._zone).date()

    async def _overrides(self, uow: UnitOfWork, up_to: int | None = None) -> list[dict[str, Any]]:
        rows = await uow.repository(CurationRepository).revisions(up_to)
        return _latest_per_entry((row.entry_id, dict(row.data)) for row in rows)

    async def refresh(self) -> bool:
        """Poll the revision counter; when it grew, build the KB and matcher with every
        revision (in a worker thread) and swap them in. True when a new revision was applied."""
        async with self._refreshing:
            async with self._database.uow(read_only=True) as uow:
                repo = uow.repository(CurationRepository)
                latest = await repo.latest_revision()
                if latest == self.revision:
                    return False
                overrides = await self._overrides(uow, latest)
            try:
                knowledge_base, matcher = await asyncio.to_thread(_build, overrides)
            except KnowledgeBaseError as exc:
                # The base changed under the revisions (a deployment): keep answering from the
                # KB in use, say so once per revision.
                log.error("kb.revision_rejected revision=%s errors=%s", latest, len(exc.problems))
                self.revision = latest
                return False
            self._answers.use(knowledge_base, matcher)
            for swap in self.on_swap:
                swap(knowledge_base, matcher)
            log.info("kb.revision_applied revision=%s entries=%s", latest, len(overrides))
            self.revision = latest
            return True

    # -- roles ----------------------------------------------------------------------------

    async def _check_curator(self, uow: UnitOfWork, user: UserProfile) -> None:
        row = await uow.users.get(user.id)
        if row is None or not row.active or row.role not in CONSOLE_ROLES:
            log.warning("curation.refused user_id=%s", user.id, extra={"user_id": user.id})
            raise CurationRefused(user.id)

    # -- entries --------------------------------------------------------------------------

    def entry(self, entry_id: str) -> Entry | None:
        return self.knowledge_base.get(entry_id)

    def entries(self, query: str = "") -> list[Entry]:
        """Entries whose id, question, alternatives or keywords contain the words of `query`
        (without diacritics, any case); all of them for an empty query."""
        wanted = normalize(query).split()
        found = []
        for entry in self.knowledge_base.entries.values():
            haystack = normalize(
                " ".join([entry.id, entry.question, *entry.alternatives, *entry.keywords])
            )
            if all(word in haystack for word in wanted):
                found.append(entry)
        return sorted(found, key=lambda e: (e.service, e.id))

    def stale(self) -> list[Entry]:
        """Entries not reviewed in the last REVIEW_MONTHS months, oldest first."""
        limit = months_before(self.today(), REVIEW_MONTHS)
        old = [
            e
            for e in self.knowledge_base.entries.values()
            if e.reviewed is None or e.reviewed < limit
        ]
        return sorted(old, key=lambda e: (e.reviewed or date.min, e.id))

    def services(self) -> list[tuple[str, str]]:
        return [(s.id, s.title_sr) for s in self.knowledge_base.services]

    async def save_entry(
        self,
        user: UserProfile,
        data: Mapping[str, Any],
        *,
        summary: str = "",
        question_ids: Sequence[int] = (),
        outcome: str = "new_entry",
    ) -> Outcome:
        """Store an edited or new entry as a KB revision, if the whole KB still passes the
        check; `reviewed` is today and `reviewed_by` the curator. Questions from the review
        queue that led to it (`question_ids`) leave the queue with `outcome`."""
        change = {key: data[key] for key in ENTRY_FIELDS if key in data and data[key] is not None}
        entry_id = str(change.get("id", ""))
        if not ID_PATTERN.match(entry_id):
            return Outcome(
                False,
                "Oznaka unosa (id) mora biti od malih slova i cifara, reči spojene crticom "
                "(npr. ezup-lozinka).",
            )
        change["reviewed"] = self.today().isoformat()
        change["reviewed_by"] = user.display_name.strip() or f"kurator #{user.id}"
        async with self._saving:
            async with self._database.uow(read_only=True) as uow:
                await self._check_curator(uow, user)
                overrides = await self._overrides(uow)
            problems = await asyncio.to_thread(
                check_knowledge_base, overrides=[*overrides, change], today=self.today()
            )
            errors = tuple(str(p) for p in problems if p.level == "error")
            if errors:
                return Outcome(False, "Izmena nije sačuvana: provera baze znanja javlja greške.",
                               errors)
            async with self._database.uow() as uow:
                await self._check_curator(uow, user)
                repo = uow.repository(CurationRepository)
                revision = await repo.add_revision(
                    entry_id, change, summary or f"izmena {entry_id}", user.id
                )
                marked = 0
                if question_ids:
                    marked = await repo.mark(
                        question_ids, outcome, user.id, entry_id=entry_id, revision_id=revision.id
                    )
                await audit_record(
                    uow,
                    user,
                    KB_REVISION,
                    f"kb:{entry_id}",
                    {"revision": revision.id, "questions": marked, "summary": summary[:100]},
                )
                await uow.commit()
                number = revision.id
        await self.refresh()
        return Outcome(True, f"Sačuvano kao revizija #{number}; bot je već koristi.", (), number)

    async def add_alternative(
        self, user: UserProfile, entry_id: str, phrasing: str, question_ids: Sequence[int]
    ) -> Outcome:
        """A group of questions becomes a new alternative phrasing of an existing entry."""
        entry = self.entry(entry_id)
        text = " ".join(scrub(phrasing).split())
        if entry is None:
            return Outcome(False, "Taj unos ne postoji (možda je u međuvremenu promenjen).")
        if not text:
            return Outcome(False, "Upišite formulaciju pitanja koju dodajete.")
        data = entry_data(entry)
        if text.lower() not in (a.lower() for a in entry.alternatives):
            data["alternatives"] = [*entry.alternatives, text]
        return await self.save_entry(
            user,
            data,
            summary=f"nova formulacija za {entry_id}",
            question_ids=question_ids,
            outcome="alternative",
        )

    async def mark(self, user: UserProfile, question_ids: Sequence[int], outcome: str) -> Outcome:
        """Take questions out of the review queue: not covered by the programme, or ignored."""
        if outcome not in MARK_OUTCOMES or not question_ids:
            return Outcome(False, "Nepoznata radnja.")
        async with self._database.uow() as uow:
            await self._check_curator(uow, user)
            marked = await uow.repository(CurationRepository).mark(question_ids, outcome, user.id)
            await audit_record(
                uow, user, KB_SUGGESTION, None, {"outcome": outcome, "questions": marked}
            )
            await uow.commit()
        label = {"not_covered": "označena kao van programa", "ignored": "zanemarena"}.get(
            outcome, "obrađena"
        )
        return Outcome(True, f"Pitanja ({marked}) su {label}.")

    # -- the review queue -----------------------------------------------------------------

    async def suggestions(self, user: UserProfile, limit: int = 50) -> list[SuggestionGroup]:
        """Unanswered and unsure questions of the last QUEUE_DAYS days that no curator has
        dealt with, grouped by similarity, the most asked first."""
        since = self._database.clock() - timedelta(days=QUEUE_DAYS)
        async with self._database.uow(read_only=True) as uow:
            await self._check_curator(uow, user)
            rows = await uow.repository(CurationRepository).open_questions(
                since, QUEUE_DECISIONS
            )
            items = [
                (q.id, q.text, municipality, q.chosen_entry_id) for q, municipality in rows
            ]
        return await asyncio.to_thread(self._group, items, limit)

    def _group(
        self, items: list[tuple[int, str, str | None, str | None]], limit: int
    ) -> list[SuggestionGroup]:
        groups: list[tuple[str, list[tuple[int, str, str | None, str | None]]]] = []
        for item in items:
            key = normalize(item[1])
            if not key.strip() or item[1] == "[obrisano]":
                continue
            for representative, members in groups:
                if fuzz.token_set_ratio(key, representative) >= GROUP_SIMILARITY:
                    members.append(item)
                    break
            else:
                groups.append((key, [item]))
        groups.sort(key=lambda g: (-len(g[1]), -g[1][0][0]))
        matcher, knowledge_base = self.matcher, self.knowledge_base
        result = []
        for _, members in groups[:limit]:
            texts = Counter(" ".join(scrub(text).split()) for _, text, _, _ in members)
            places = Counter(m for _, _, m, _ in members if m)
            picked = tuple(dict.fromkeys(p for _, _, _, p in members if p))
            phrasing = texts.most_common(1)[0][0]
            decision = decide(matcher, phrasing)
            guesses: list[Guess] = []
            for entry_id in [*picked, *(c.entry_id for c in decision.candidates)]:
                entry = knowledge_base.get(entry_id)
                if entry is None or any(g.entry_id == entry_id for g in guesses):
                    continue
                score = next(
                    (c.score for c in decision.candidates if c.entry_id == entry_id), 0.0
                )
                guesses.append(Guess(entry_id, entry.question, score))
            result.append(
                SuggestionGroup(
                    key=members[0][0],
                    texts=tuple(t for t, _ in texts.most_common(5)),
                    count=len(members),
                    municipalities=tuple(places.most_common(5)),
                    question_ids=tuple(sorted(m[0] for m in members)),
                    guesses=tuple(guesses[:GUESSES]),
                    picked=picked,
                )
            )
        return result

    # -- the test pane --------------------------------------------------------------------

    async def trial(
        self, text: str, change: Mapping[str, Any] | None = None
    ) -> tuple[Trial, Trial | None, tuple[str, ...]]:
        """What the bot decides for `text` now, and with an unsaved `change` of one entry
        (None: no change). Returns (now, with the change, problems of the change)."""
        question = text.strip()[:500]
        matcher = self.matcher
        before = await asyncio.to_thread(self._trial, matcher, self.knowledge_base, question)
        if change is None:
            return before, None, ()
        async with self._database.uow(read_only=True) as uow:
            overrides = await self._overrides(uow)
        try:
            knowledge_base, changed = await asyncio.to_thread(_build, [*overrides, dict(change)])
        except KnowledgeBaseError as exc:
            return before, None, tuple(str(p) for p in exc.problems)
        after = await asyncio.to_thread(self._trial, changed, knowledge_base, question)
        return before, after, ()

    @staticmethod
    def _trial(matcher: Matcher, knowledge_base: KnowledgeBase, question: str) -> Trial:
        result = decide(matcher, question)
        candidates = []
        for candidate in result.candidates[:5]:
            entry = knowledge_base.get(candidate.entry_id)
            candidates.append(
                Guess(candidate.entry_id, entry.question if entry else "", candidate.score)
            )
        return Trial(
            decision=result.decision,
            entry_id=result.entry_id,
            confidence=float(result.confidence),
            score=float(result.score),
            reason=result.reason,
            candidates=tuple(candidates),
        )


def lines(text: str) -> list[str]:
    """A textarea's lines, trimmed, empty ones dropped."""
    return [line.strip() for line in re.split(r"[\r\n]+", text or "") if line.strip()]
