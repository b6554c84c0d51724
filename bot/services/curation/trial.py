"""Trying a question against the KB as it is and as it would be with unsaved edits, before a
curator saves them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bot.services.curation.base import CurationBase
from bot.services.curation.common import (
    Guess,
    Trial,
    build_knowledge,
    decide,
)
from knowledge_base.matcher import Matcher
from knowledge_base.model import KnowledgeBase, KnowledgeBaseError


class CurationTrial(CurationBase):
    """The console's "try it" for a question."""

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
            knowledge_base, changed = await asyncio.to_thread(
                build_knowledge, [*overrides, dict(change)]
            )
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
