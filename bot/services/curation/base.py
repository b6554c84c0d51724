"""The KB in use and keeping it current: revisions from the database applied over the YAML base,
swapped into the answering service when a newer one appears; and the curator's role check."""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from bot.services.answering import AnswerService
from bot.services.console_access import CONSOLE_ROLES
from bot.services.curation.common import (
    CurationRefused,
    Swap,
    build_knowledge,
    latest_per_entry,
)
from bot.services.users import UserProfile
from knowledge_base.matcher import Matcher
from knowledge_base.model import Entry, KnowledgeBase, KnowledgeBaseError
from storage.curation import CurationRepository
from storage.uow import Database, UnitOfWork

log = logging.getLogger(__name__)


class CurationBase:
    """Shared state, the KB in use and its refresh; the layers above add the use cases."""

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
        return latest_per_entry((row.entry_id, dict(row.data)) for row in rows)

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
                knowledge_base, matcher = await asyncio.to_thread(build_knowledge, overrides)
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

    async def _check_curator(self, uow: UnitOfWork, user: UserProfile) -> None:
        row = await uow.users.get(user.id)
        if row is None or not row.active or row.role not in CONSOLE_ROLES:
            log.warning("curation.refused user_id=%s", user.id, extra={"user_id": user.id})
            raise CurationRefused(user.id)

    def entry(self, entry_id: str) -> Entry | None:
        return self.knowledge_base.get(entry_id)
