"""Editing entries: finding them, the ones due for review, saving an edit as a KB revision
(checked first) and adding a clerk's phrasing as an alternative."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from bot.services.audit import KB_REVISION, audit_record
from bot.services.curation.base import CurationBase
from bot.services.curation.common import (
    ENTRY_FIELDS,
    Outcome,
)
from bot.services.pii import scrub
from bot.services.users import UserProfile
from knowledge_base.loader import (
    ID_PATTERN,
    REVIEW_MONTHS,
    check_knowledge_base,
    months_before,
)
from knowledge_base.model import Entry
from knowledge_base.normalize import normalize
from knowledge_base.revisions import entry_data
from storage.curation import CurationRepository


class CurationEntries(CurationBase):
    """Curators' edits of knowledge-base entries."""

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
        draft_id: int | None = None,
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
                if draft_id is not None:
                    await repo.close_draft(draft_id)
                await audit_record(
                    uow,
                    user,
                    KB_REVISION,
                    f"kb:{entry_id}",
                    {
                        "revision": revision.id,
                        "questions": marked,
                        "draft": draft_id,
                        "summary": summary[:100],
                    },
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
