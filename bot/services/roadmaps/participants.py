"""Who takes part: admins add and remove municipalities, a mentor takes one as theirs."""

from __future__ import annotations

import html

from bot.i18n import N_, tr
from bot.services.audit import audit_record
from bot.services.municipalities import directory
from bot.services.replies import Reply
from bot.services.roadmaps.base import RoadmapBase
from bot.services.roadmaps.common import (
    PARTICIPANT_ADD,
    PARTICIPANT_MENTOR,
    PARTICIPANT_REMOVE,
)
from bot.services.roles import admin_refusal, refusal
from bot.services.users import UserProfile
from storage.roadmaps import RoadmapRepository


class RoadmapParticipants(RoadmapBase):
    """Managing the participating municipalities."""

    async def add_participant(self, actor: UserProfile, query: str) -> Reply:
        return await self._participant_change(actor, query, add=True)

    async def remove_participant(self, actor: UserProfile, query: str) -> Reply:
        return await self._participant_change(actor, query, add=False)

    async def _participant_change(self, actor: UserProfile, query: str, *, add: bool) -> Reply:
        lang = actor.language
        action = PARTICIPANT_ADD if add else PARTICIPANT_REMOVE
        async with self._database.uow() as uow:
            row = await uow.users.get(actor.id)
            if row is None or row.role != "admin":
                return admin_refusal(actor, action)
            found = directory().search(query.strip(), limit=2) if query.strip() else []
            if not found:
                return Reply(
                    tr(
                        lang,
                        "Nisam našao tu opštinu. Upotreba: /opstina_dodaj naziv "
                        "(ili /opstina_ukloni naziv), npr. /opstina_dodaj Čačak.",
                    )
                )
            key = found[0].key
            repo = uow.repository(RoadmapRepository)
            changed = (
                await repo.add_participant(key, actor.id)
                if add
                else await repo.remove_participant(key)
            )
            if changed:
                await audit_record(uow, actor, action, f"roadmap:{key}")
            await uow.commit()
        if add:
            text = (
                N_("Opština {municipality} je dodata u program.")
                if changed
                else N_("Opština {municipality} je već u programu.")
            )
        else:
            text = (
                N_("Opština {municipality} više nije u programu (istorija ostaje).")
                if changed
                else N_("Opština {municipality} nije u programu.")
            )
        return Reply(tr(lang, text, municipality=html.escape(key)))

    async def take_municipality(self, actor: UserProfile, query: str) -> Reply:
        """/opstina_mentor naziv: the mentor takes the municipality (nudges come to them)."""
        lang = actor.language
        async with self._database.uow() as uow:
            if await self._mentor(uow, actor) is None:
                return refusal(actor, PARTICIPANT_MENTOR)
            found = directory().search(query.strip(), limit=1) if query.strip() else []
            repo = uow.repository(RoadmapRepository)
            if not found or not await repo.set_mentor(found[0].key, actor.id):
                return Reply(
                    tr(lang, "Te opštine nema u programu. Upotreba: /opstina_mentor naziv.")
                )
            await audit_record(uow, actor, PARTICIPANT_MENTOR, f"roadmap:{found[0].key}")
            await uow.commit()
        return Reply(
            tr(
                lang,
                "Vi ste mentor opštine {municipality}.",
                municipality=html.escape(found[0].key),
            )
        )
