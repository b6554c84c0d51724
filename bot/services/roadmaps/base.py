"""What every part of the roadmaps shares: the templates, the clock, titles and dates in
words, who may act (the clerk's own municipality, a mentor) and the message to the mentors."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.i18n import tr
from bot.services.answering import in_script
from bot.services.mentoring import MentoringService
from bot.services.messages import reply_to_payload
from bot.services.municipalities import directory
from bot.services.replies import Reply
from bot.services.roadmaps.common import (
    SERVICE_ORDER,
)
from bot.services.users import UserProfile
from knowledge_base.model import KnowledgeBase
from knowledge_base.roadmaps import Roadmap, Step
from storage.models import User
from storage.roadmaps import RoadmapMunicipality, RoadmapRepository
from storage.uow import Database, UnitOfWork

log = logging.getLogger(__name__)


class RoadmapBase:
    """Shared state and helpers; the layers above add the use cases."""

    def __init__(
        self,
        database: Database,
        roadmaps: dict[str, Roadmap],
        knowledge_base: KnowledgeBase,
        mentoring: MentoringService | None = None,
        *,
        nudge_weeks: int = 2,
        remind_clerks: bool = False,
        timezone: str = "Europe/Belgrade",
    ) -> None:
        self._database = database
        self._kb = knowledge_base
        self._mentoring = mentoring
        self.roadmaps = {s: roadmaps[s] for s in SERVICE_ORDER if s in roadmaps}
        self.roadmaps.update({s: r for s, r in roadmaps.items() if s not in self.roadmaps})
        self.nudge_weeks = nudge_weeks
        self.remind_clerks = remind_clerks
        self._tz = ZoneInfo(timezone)
        self.clock = database.clock

    def use_knowledge_base(self, knowledge_base: KnowledgeBase) -> None:
        """A newer KB revision was applied: entry buttons and titles come from it."""
        self._kb = knowledge_base

    def service_title(self, language: str, service: str) -> str:
        found = self._kb.service(service)
        if found is None:
            return service
        return found.title_en if language == "en" else in_script(language, found.title_sr)

    def step_title(self, language: str, service: str, step_id: str) -> str:
        roadmap = self.roadmaps.get(service)
        step = roadmap.step(step_id) if roadmap else None
        return in_script(language, step.title) if step else step_id

    def _step(self, service: str, step_id: str) -> Step | None:
        roadmap = self.roadmaps.get(service)
        return roadmap.step(step_id) if roadmap is not None else None

    @staticmethod
    def next_step(roadmap: Roadmap, statuses: dict[str, str]) -> Step | None:
        """The first step not done (the one the municipality is on), or None when all are."""
        return next((s for s in roadmap.steps if statuses.get(s.id) != "done"), None)

    @staticmethod
    def step_to_work_on(roadmap: Roadmap, statuses: dict[str, str]) -> Step | None:
        """What a clerk sees first: the first step neither done nor waiting for a mentor (work
        goes on while a mentor has not confirmed yet), else the first one waiting."""
        open_steps = [s for s in roadmap.steps if statuses.get(s.id) != "done"]
        return next((s for s in open_steps if statuses.get(s.id) != "pending"), None) or (
            open_steps[0] if open_steps else None
        )

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self._tz)

    def date_text(self, moment: datetime | None) -> str:
        return self.local(moment).strftime("%d.%m.%Y") if moment else "—"

    @staticmethod
    def municipality_name(language: str, key: str) -> str:
        unit = directory().by_key(key)
        return unit.name(language) if unit is not None else key

    async def _row(self, uow: UnitOfWork, user: UserProfile) -> User | None:
        return await uow.users.get(user.id)

    def _not_taking_part(self, user: UserProfile) -> Reply:
        return Reply(
            tr(
                user.language,
                "Vaša opština još nije uključena u plan uvođenja usluga. Ako treba da bude, "
                "obratite se mentoru (/mentor). Opštinu birate komandom /opstina.",
            )
        )

    def _stale(self, user: UserProfile) -> Reply:
        return Reply(
            tr(user.language, "Ovo dugme više ne važi. Otvorite plan ponovo komandom /plan.")
        )

    def _foreign(self, user: UserProfile) -> Reply:
        log.warning("roadmap.refused_foreign user_id=%s", user.id)
        return Reply(
            tr(
                user.language,
                "Možete da menjate samo plan svoje opštine. Otvorite ga komandom /plan.",
            )
        )

    async def _own(
        self, uow: UnitOfWork, user: UserProfile, participant_id: int | None = None
    ) -> RoadmapMunicipality | Reply:
        """The participating municipality of the user as the database has it (and the one the
        button names must be the same), or the polite reply to give."""
        row = await self._row(uow, user)
        if row is None or not row.municipality:
            return self._not_taking_part(user)
        participant = await uow.repository(RoadmapRepository).participant(row.municipality)
        if participant is None or not participant.active:
            return self._not_taking_part(user)
        if participant_id is not None and participant.id != participant_id:
            return self._foreign(user)
        return participant

    async def _mentor(self, uow: UnitOfWork, actor: UserProfile) -> User | None:
        row = await uow.users.get(actor.id)
        return row if row is not None and row.role in ("mentor", "admin") else None

    async def _to_mentors(
        self,
        uow: UnitOfWork,
        participant: RoadmapMunicipality,
        reply: Reply,
        *,
        kind: str,
        dedupe_key: str | None = None,
    ) -> bool:
        """To the municipality's own mentor (private chat) or else the mentors' group."""
        if participant.mentor_user_id is not None:
            mentor = await uow.users.get(participant.mentor_user_id)
            if mentor is not None and mentor.active and mentor.role in ("mentor", "admin"):
                row = await uow.outbox.add(
                    channel=mentor.channel,
                    chat_id=mentor.external_id,
                    user_id=mentor.id,
                    kind=kind,
                    payload=reply_to_payload(reply),
                    dedupe_key=dedupe_key,
                    priority=60,
                )
                return row is not None
        if self._mentoring is None or self._mentoring.config.mentor_chat_id is None:
            return False
        row = await uow.outbox.add(
            channel=self._mentoring.config.group_channel,
            chat_id=str(self._mentoring.config.mentor_chat_id),
            kind=kind,
            payload=reply_to_payload(reply),
            dedupe_key=dedupe_key,
            priority=60,
        )
        return row is not None
