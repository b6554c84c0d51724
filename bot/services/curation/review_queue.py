"""The review queue: questions the bot could not answer, grouped by likeness, with signals,
mentors' drafts and past revisions; a curator marks what was done with them."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from rapidfuzz import fuzz

from bot.services.audit import KB_SUGGESTION, audit_record
from bot.services.curation.base import CurationBase
from bot.services.curation.common import (
    GROUP_SIMILARITY,
    GUESSES,
    QUEUE_DAYS,
    QUEUE_DECISIONS,
    SIGNAL_LABELS,
    DraftItem,
    Guess,
    Outcome,
    Queue,
    RevisionItem,
    SignalItem,
    SuggestionGroup,
    base_entries,
    decide,
)
from bot.services.pii import scrub
from bot.services.users import UserProfile
from knowledge_base.normalize import normalize
from knowledge_base.revisions import entry_data
from storage.curation import MARK_OUTCOMES, CurationRepository


class CurationQueue(CurationBase):
    """What waits for a curator, and marking it handled."""

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

    async def suggestions(self, user: UserProfile, limit: int = 50) -> list[SuggestionGroup]:
        return (await self.queue(user, limit)).groups

    async def queue(self, user: UserProfile, limit: int = 50) -> Queue:
        """The review queue: unanswered and unsure questions of the last QUEUE_DAYS days that
        no curator has dealt with, grouped by similarity, the most asked first (the entry a
        clerk picked after "Na šta mislite?", or the one a mentor's answer repeated, is the
        first guess); the signals (👎 and what came next); mentors' drafts."""
        since = self._database.clock() - timedelta(days=QUEUE_DAYS)
        async with self._database.uow(read_only=True) as uow:
            await self._check_curator(uow, user)
            repo = uow.repository(CurationRepository)
            rows = await repo.open_questions(since, QUEUE_DECISIONS)
            found = await repo.signals(since, tuple(SIGNAL_LABELS))
            drafts = [
                DraftItem(d.id, d.service, d.question, d.answer) for d in await repo.open_drafts()
            ]
        matched = {
            signal.question_id: signal.entry_id
            for signal, _ in found
            if signal.kind == "mentor_matched_entry" and signal.entry_id
        }
        items = [
            (
                q.id,
                scrub(q.text, [name] if name else []),
                municipality,
                q.chosen_entry_id or matched.get(q.id),
            )
            for q, municipality, name in rows
        ]
        groups = await asyncio.to_thread(self._group, items, limit)
        signals = []
        for signal, text in found:
            entry = self.entry(signal.entry_id) if signal.entry_id else None
            signals.append(
                SignalItem(
                    kind=signal.kind,
                    label=SIGNAL_LABELS[signal.kind],
                    question_id=signal.question_id,
                    text=" ".join(scrub(text).split()),
                    entry_id=signal.entry_id,
                    entry_question=entry.question if entry else "",
                )
            )
        return Queue(groups, signals, drafts)

    async def revisions(self, user: UserProfile, limit: int = 100) -> list[RevisionItem]:
        """The newest KB revisions: who changed which entry when, and whether the YAML base
        has absorbed the change yet."""
        async with self._database.uow(read_only=True) as uow:
            await self._check_curator(uow, user)
            rows = await uow.repository(CurationRepository).recent_revisions(limit)
        base = await asyncio.to_thread(base_entries)
        items = []
        for row, author in rows:
            old = base.get(row.entry_id)
            absorbed = old is not None and all(
                row.data.get(key) == value for key, value in entry_data(old).items()
            )
            items.append(
                RevisionItem(
                    row.id,
                    row.entry_id,
                    row.summary,
                    author or "",
                    row.created_at.astimezone(self._zone),
                    absorbed,
                )
            )
        return items

    async def draft(self, user: UserProfile, draft_id: int) -> DraftItem | None:
        async with self._database.uow(read_only=True) as uow:
            await self._check_curator(uow, user)
            row = await uow.repository(CurationRepository).draft(draft_id)
            if row is None or row.exported_at is not None:
                return None
            return DraftItem(row.id, row.service, row.question, row.answer)

    async def set_draft_aside(self, user: UserProfile, draft_id: int) -> Outcome:
        async with self._database.uow() as uow:
            await self._check_curator(uow, user)
            closed = await uow.repository(CurationRepository).close_draft(draft_id)
            if closed:
                await audit_record(uow, user, KB_SUGGESTION, f"draft:{draft_id}",
                                   {"outcome": "ignored"})
            await uow.commit()
        return Outcome(closed, "Nacrt je sklonjen iz reda." if closed else "Nacrt nije u redu.")

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
