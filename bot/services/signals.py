"""Signals for curators, recorded where they happen (in the caller's unit of work, so they
commit with the change and a redelivered update adds nothing: one signal per kind and question).

- `clarify_pick`: the entry a clerk picked from "Na šta mislite?" (the matcher should have
  answered it);
- `down_then_asked` / `down_then_mentor`: a 👎 on an answer, then the clerk asked again within
  `REASK_MINUTES`, or asked a mentor about it;
- `escalated_no_entry`: a question escalated to a mentor that no entry answered;
- `mentor_matched_entry`: the mentor's answer to an escalation says what an existing entry says
  (the KB had it; the matcher missed the phrasing).

The console's review queue (bot/services/curation/) shows them; storage keeps them channel-
neutral in `kb_signals`.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

from rapidfuzz import fuzz

from knowledge_base.model import KnowledgeBase
from knowledge_base.normalize import normalize
from storage.curation import CurationRepository
from storage.uow import UnitOfWork

REASK_MINUTES = 10
MENTOR_MATCH_MIN_WORDS = 8
MENTOR_MATCH_SIMILARITY = 90.0
_TAG = re.compile(r"<[^>]+>")


def _repo(uow: UnitOfWork) -> CurationRepository:
    return uow.repository(CurationRepository)


async def clarify_pick(uow: UnitOfWork, question_id: int, entry_id: str) -> None:
    await _repo(uow).signal("clarify_pick", question_id, entry_id)


async def asked_again(uow: UnitOfWork, user_id: int, question_id: int) -> None:
    """A new question `question_id`: if the clerk gave a 👎 in the last minutes, that answer
    did not help and they tried again."""
    repo = _repo(uow)
    since = uow.clock() - timedelta(minutes=REASK_MINUTES)
    down = await repo.recent_down(user_id, since, question_id)
    if down is not None:
        await repo.signal("down_then_asked", down, details={"next_question": question_id})


async def mentor_requested(
    uow: UnitOfWork, question_id: int, decision: str, entry_id: str | None
) -> None:
    repo = _repo(uow)
    if decision == "escalate" and entry_id is None:
        await repo.signal("escalated_no_entry", question_id)
    if await repo.has_down(question_id):
        await repo.signal("down_then_mentor", question_id, entry_id)


def entry_like(knowledge_base: KnowledgeBase, answer: str) -> tuple[str, float] | None:
    """The entry whose answer the mentor's answer repeats, if one is close enough."""
    text = normalize(answer)
    if len(text.split()) < MENTOR_MATCH_MIN_WORDS:
        return None
    best: tuple[str, float] | None = None
    for entry in knowledge_base.entries.values():
        body = normalize(html.unescape(_TAG.sub(" ", entry.answer)))
        score = float(fuzz.token_set_ratio(text, body))
        if score >= MENTOR_MATCH_SIMILARITY and (best is None or score > best[1]):
            best = (entry.id, score)
    return best


async def mentor_answered(
    uow: UnitOfWork, knowledge_base: KnowledgeBase | None, question_id: int | None, answer: str
) -> None:
    if knowledge_base is None or question_id is None:
        return
    found = entry_like(knowledge_base, answer)
    if found is not None:
        details: dict[str, Any] = {"similarity": round(found[1], 1)}
        await _repo(uow).signal("mentor_matched_entry", question_id, found[0], details)
