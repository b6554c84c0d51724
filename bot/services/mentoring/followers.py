"""Followers instead of duplicates: a question close to an open request joins it, and leaves it
when the clerk opens their own after all."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.i18n import tr
from bot.services.buttons import pack
from bot.services.buttons_mentoring import OpenOwn
from bot.services.mentoring.cards import MentorCards
from bot.services.mentoring.common import (
    MAX_TEXT,
    REDACTED_TEXT,
)
from bot.services.replies import Button, Reply
from bot.services.users import UserProfile
from storage.mentor import (
    MentorFollower,
    MentorRepository,
    MentorRequest,
)
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)


class MentorFollowers(MentorCards):
    """Finding the request a question may follow, and attaching or detaching its follower."""

    def _named_service(self, text: str) -> str | None:
        """The one KB service a question names ("eZUP", "ePlaćanje"), if it names just one."""
        if self._desk is None:
            return None
        named = self._desk.services_in(text)
        return next(iter(named)) if len(named) == 1 else None

    async def _similar_request(
        self,
        repo: MentorRepository,
        user: UserProfile,
        service: str | None,
        question: str,
        now: datetime,
    ) -> tuple[MentorRequest, float] | None:
        """The open, unanswered request on the same service within the window whose question
        is the closest to this one, if close enough (the matcher's measure)."""
        if self._similarity is None or self.config.follow_window <= timedelta(0):
            return None  # MENTOR_FOLLOW_WINDOW_HOURS=0 turns followers off
        best: tuple[MentorRequest, float] | None = None
        for request in await repo.similar_candidates(service, now - self.config.follow_window):
            if request.question == REDACTED_TEXT:
                continue
            score = self._similarity(question, request.question)
            if score >= self.config.follow_similarity and (best is None or score > best[1]):
                best = (request, score)
        return best

    async def _follow(
        self,
        uow: UnitOfWork,
        user: UserProfile,
        request: MentorRequest,
        question: str,
        question_id: int | None,
        source_key: str | None,
        score: float,
        now: datetime,
    ) -> Reply:
        """Attach the clerk to `request` as a follower (once), update its card."""
        repo = uow.repository(MentorRepository)
        if await repo.follower(request.id, user.id) is None:
            await repo.add_follower(
                MentorFollower(
                    request_id=request.id,
                    user_id=user.id,
                    question_id=question_id,
                    source_key=source_key,
                    state="following",
                    question=question[:MAX_TEXT],
                    municipality=user.municipality,
                    similarity=score,
                    created_at=now,
                )
            )
            if self._desk is not None:  # an open incident on the service hears of them too
                services = self._desk.services_in(question)
                if request.service:
                    services.add(request.service)
                await self._desk.attach_request(uow, user.id, request.id, services)
            await self._queue_card(uow, request)
            log.info(
                "mentor.follower_added user_id=%s number=%s similarity=%.2f",
                user.id, request.id, score,
            )
        await uow.commit()
        return self._following(user, request)

    def _following(self, user: UserProfile, request: MentorRequest) -> Reply:
        text = tr(
            user.language,
            "Isto pitanje je već kod mentora pod brojem <b>#{number}</b>. Pridružili smo Vas "
            "tom pitanju: kada mentor odgovori, odgovor stiže i Vama, ovde.",
            number=request.id,
        )
        if request.handed_to:
            text += "\n" + self._handover_line(user.language, request)
        text += "\n" + tr(
            user.language,
            "Ako je Vaše pitanje ipak drugačije, pošaljite ga kao novo.",
        )
        return Reply(
            text,
            ((Button(tr(user.language, "Pošalji kao novo pitanje"), pack(OpenOwn(request.id))),),),
        )

    async def _detach(self, follower_id: int, own_number: int) -> None:
        """The follower has their own request now: off the followed request's card."""
        async with self._database.uow() as uow:
            repo = uow.repository(MentorRepository)
            follower = await uow.session.get(MentorFollower, follower_id)
            if follower is None or follower.state == "own":
                return
            follower.state = "own"
            follower.own_request_id = own_number
            request = await repo.get(follower.request_id)
            if request is not None:
                await self._queue_card(uow, request)
            await uow.commit()
