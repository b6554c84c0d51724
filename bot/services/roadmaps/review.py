"""A mentor confirms a step done or sends it back, and the clerk hears which."""

from __future__ import annotations

import html

from bot.i18n import tr
from bot.services.answering import in_script
from bot.services.audit import audit_record
from bot.services.messages import reply_to_payload
from bot.services.replies import Reply
from bot.services.roadmaps.base import RoadmapBase
from bot.services.roadmaps.common import (
    MARK,
    STATUS_LABELS,
    STEP_CHANGE,
)
from bot.services.roles import refusal
from bot.services.users import UserProfile
from storage.roadmaps import RoadmapRepository


class RoadmapReview(RoadmapBase):
    """Mentors' review of steps clerks marked done."""

    async def review(
        self, actor: UserProfile, participant_id: int, service: str, step_id: str, confirm: bool
    ) -> Reply:
        """A mentor confirms a step done (`rk`) or sends it back to in progress (`rv`)."""
        return (await self._review(actor, participant_id, service, step_id, confirm))[0]

    async def _review(
        self, actor: UserProfile, participant_id: int, service: str, step_id: str, confirm: bool
    ) -> tuple[Reply, bool]:
        """The reply, and whether the step changed."""
        step = self._step(service, step_id)
        lang = actor.language
        async with self._database.uow() as uow:
            if await self._mentor(uow, actor) is None:
                return refusal(actor, "roadmap.confirm"), False
            if step is None:
                return self._stale(actor), False
            repo = uow.repository(RoadmapRepository)
            participant = await repo.participant_by_id(participant_id)
            if participant is None or not participant.active:
                return self._stale(actor), False
            await repo.lock_municipality(participant.municipality)
            state = await repo.state(participant.municipality, service, step_id, for_update=True)
            new = "done" if confirm else "in_progress"
            name = self.municipality_name(lang, participant.municipality)
            if state is not None and state.status == new:
                return Reply(
                    tr(
                        lang,
                        "Već je zabeleženo: {municipality} · {step} – {status}.",
                        municipality=html.escape(name),
                        step=html.escape(step.title),
                        status=tr(lang, STATUS_LABELS[new]),
                    )
                ), False
            reported_by = state.updated_by if state is not None else None
            await repo.set_state(
                participant.municipality, service, step_id, new, reason=None, actor_user_id=actor.id
            )
            await audit_record(
                uow,
                actor,
                STEP_CHANGE,
                f"roadmap:{participant.municipality}",
                {"service": service, "step": step_id, "status": new},
            )
            if reported_by and reported_by != actor.id:
                clerk = await uow.users.get(reported_by)
                if clerk is not None and clerk.active:
                    clerk_lang = clerk.language
                    text = (
                        tr(
                            clerk_lang,
                            "✅ Mentor je potvrdio korak „{step}“ ({service}). "
                            "Sledeći korak vidite u /plan.",
                            step=html.escape(in_script(clerk_lang, step.title)),
                            service=self.service_title(clerk_lang, service),
                        )
                        if confirm
                        else tr(
                            clerk_lang,
                            "Mentor je vratio korak „{step}“ ({service}) u rad. "
                            "Ako nije jasno šta nedostaje, pitajte mentora (/mentor).",
                            step=html.escape(in_script(clerk_lang, step.title)),
                            service=self.service_title(clerk_lang, service),
                        )
                    )
                    event_id = (await repo.events(participant.municipality, limit=1))[0].id
                    await uow.outbox.add(
                        channel=clerk.channel,
                        chat_id=clerk.external_id,
                        user_id=clerk.id,
                        kind="roadmap_notice",
                        payload=reply_to_payload(Reply(text)),
                        dedupe_key=f"rm-review:{event_id}",
                    )
            await uow.commit()
        return Reply(
            tr(
                lang,
                "{mark} {municipality} · {service}: „{step}“ – {status} ({name}).",
                mark=MARK[new],
                municipality=html.escape(name),
                service=self.service_title(lang, service),
                step=html.escape(step.title),
                status=tr(lang, STATUS_LABELS[new]),
                name=html.escape(actor.display_name or "—"),
            )
        ), True
