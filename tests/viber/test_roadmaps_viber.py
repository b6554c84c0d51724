"""Roadmaps for a Viber clerk: /plan, a service's next step with "Urađeno" and "Zapeli smo"
(the same service as Telegram's; SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.mentor import MentorRequest
from storage.roadmaps import RoadmapRepository
from tests.fakes.viber_api import ViberBotUnderTest

pytestmark = pytest.mark.asyncio(loop_scope="module")



async def test_viber_clerk_walks_the_plan_marks_done_and_gets_stuck(bot: ViberBotUnderTest):
    assert bot.services is not None
    services = bot.services
    admin = await services.users.get_or_register("telegram", "777001", "Admin")
    clerk = bot.user(name="Jelena")
    await clerk.say("/plan")
    assert "nije uključena" in clerk.last.text
    async with services.database.uow() as uow:
        for user_id, role, municipality in ((admin.id, "admin", None), (None, None, "Vranje")):
            row = (
                await uow.users.get(user_id)
                if user_id
                else await uow.users.get_by_external("viber", clerk.id)
            )
            assert row is not None
            if role:
                row.role = role
            if municipality:
                row.municipality = municipality
        await uow.commit()
    admin = await services.users.get(admin.id)
    assert admin is not None
    assert "dodata" in (await services.roadmaps.add_participant(admin, "Vranje")).text

    (plan,) = await clerk.say("/plan")
    assert "Plan uvođenja usluga – Vranje" in plan.text
    (card,) = await clerk.tap("ePlaćanje", plan)
    assert "Sporazum sa Kancelarijom" in card.text and "<b>" not in card.text
    (done,) = await clerk.tap("Urađeno", card)
    assert "čeka potvrdu mentora" in done.text
    (again,) = await clerk.tap("Urađeno", card)  # an old keyboard tapped again
    assert "već zabeležen" in again.text
    (prompt,) = await clerk.tap("Zapeli smo", card)
    assert "Šta vas koči" in prompt.text
    (received,) = await clerk.tap("spisak lokalnih taksi", prompt)
    assert "Primljeno" in received.text
    (forged,) = await clerk.tap_action("act:rd:999:eplacanje:sporazum")
    assert "samo plan svoje opštine" in forged.text or "više ne važi" in forged.text
    async with services.database.uow() as uow:
        states = {s.step: s.status for s in await uow.repository(RoadmapRepository).states()}
        request = (await uow.session.scalars(select(MentorRequest))).one()
    assert states == {"sporazum": "blocked"}
    assert (request.service, request.roadmap_step) == ("eplacanje", "sporazum")
