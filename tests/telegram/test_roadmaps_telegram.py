"""Implementation roadmaps end to end in Telegram: the real runtime and handlers, a real
database (SQLite and PostgreSQL), the fake Bot API, the outbox drained as the dispatcher would.

Two clerks of Čačak and one of Niš walk the eZUP steps; one gets stuck and the mentor's card
shows the step; the mentor confirms, reads the matrix and a timeline; the clerk of Niš cannot
change Čačak's roadmap; the nudge job lists a quiet municipality once a week."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from storage.mentor import MentorRequest
from storage.models import Question
from storage.roadmaps import RoadmapEvent, RoadmapRepository
from tests.conftest import BACKENDS, fresh_database_url
from tests.console.test_console import link_for, sign_in
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.clock import Clock
from tests.fakes.mentor_harness import ADMIN_ID, MentorBot

_ids = itertools.count(61_001)
MENTOR_ID = 2601


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    async with fresh_database_url(request.param, tmp_path) as database_url:
        yield database_url


async def join(bot: MentorBot, name: str):
    clerk = bot.clerk(next(_ids), None)
    await clerk.say("/opstina")
    offered = await clerk.say(name)
    if offered and any(name in label for label in offered[-1].button_labels):
        await clerk.tap(name, offered[-1])
    return clerk


async def pid(bot: MentorBot, municipality: str) -> int:
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        row = await uow.repository(RoadmapRepository).participant(municipality)
        assert row is not None
        return row.id


async def statuses(bot: MentorBot, municipality: str) -> dict[str, str]:
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        rows = await uow.repository(RoadmapRepository).states(municipality)
        return {f"{r.service}/{r.step}": r.status for r in rows}


async def open_ezup(clerk) -> None:
    await clerk.say("/plan")
    assert "Plan uvođenja usluga" in clerk.last.text
    await clerk.tap("eZUP")


async def test_two_municipalities_walk_ezup_one_gets_stuck_mentor_confirms(url: str):
    async with FakeBotAPI() as api, MentorBot(api, url, clock=Clock()) as bot:
        admin = bot.mentor(ADMIN_ID, "Admin")
        await admin.say("/dodaj_mentora 2601")
        marko = bot.mentor(MENTOR_ID, "Marko")
        await marko.say("/start")

        ana, bojan, vesna = (
            await join(bot, "Čačak"),
            await join(bot, "Čačak"),
            await join(bot, "Niš"),
        )
        # Not taking part yet: a polite word, nothing else.
        await ana.say("/plan")
        assert "nije uključena" in ana.last.text
        # Only admins add municipalities.
        await marko.say("/opstina_dodaj Čačak")
        assert "samo administratorima" in marko.last.text
        await admin.say("/opstina_dodaj Čačak")
        assert "dodata" in admin.last.text
        await admin.say("/opstina_dodaj nis")
        assert "Niš" in admin.last.text

        # Ana: the next step first, with its KB entries as buttons; "Urađeno" waits for a mentor.
        await open_ezup(ana)
        card = ana.last
        assert "Sledeći korak: <b>Određen lokalni administrator za eZUP</b>" in card.text
        assert any(label.startswith("📖") for label in card.button_labels)
        await ana.tap("Urađeno", card)
        assert "čeka potvrdu mentora" in ana.last.text
        await ana.tap_data(card.callback_data("Urađeno"), card)  # a second tap: nothing new
        assert "već zabeležen" in ana.last.text
        # While the mentor has not confirmed, the next step is the one to work on.
        await open_ezup(bojan)
        assert "Kvalifikovani elektronski sertifikati" in bojan.last.text.split("\n")[1]
        await bot.deliver_outbox()
        confirm = [m for m in bot.group if "javlja da je urađen" in m.text][-1]
        assert "Čačak" in confirm.text and "Potvrdi" in confirm.button_labels
        # A clerk cannot confirm (forged data in a private chat).
        await vesna.tap_data(confirm.callback_data("Potvrdi"), ana.last)
        assert "samo mentorima" in vesna.last.text
        # Nor can anyone who is not a mentor in the group: the card stays as it was.
        await bot.mentor(vesna.user_id, "Vesna").tap_in_group("Potvrdi", confirm)
        assert "samo mentorima" in marko.toasts()[-1]
        assert (
            "Potvrdi"
            in next(m for m in bot.group if m.message_id == confirm.message_id).button_labels
        )
        await marko.tap_in_group("Potvrdi", confirm)
        await bot.deliver_outbox()
        assert any("Mentor je potvrdio" in m.text for m in ana.chat)
        card = next(m for m in bot.group if m.message_id == confirm.message_id)
        assert "urađeno" in card.text and not card.button_labels

        # Bojan (same municipality) continues from where Ana left it.
        await open_ezup(bojan)
        assert "Kvalifikovani elektronski sertifikati" in bojan.last.text.split("\n")[1]
        await bojan.tap("Urađeno")
        await bot.deliver_outbox()
        confirm = [m for m in bot.group if "javlja da je urađen" in m.text][-1]
        await marko.tap_in_group("Potvrdi", confirm)
        await bot.deliver_outbox()

        # A question is recorded with the step the municipality is on for its service.
        await bojan.say("kako da dobijem pristup ezupu")
        assert bot.services is not None
        async with bot.services.database.uow() as uow:
            steps = list(await uow.session.scalars(select(Question.roadmap_step)))
        assert "ezup/pristup" in steps

        # Ana is stuck on the access request: the reason is chosen, a mentor request opens.
        await open_ezup(ana)
        await ana.tap("Zapeli smo")
        assert "Šta vas koči" in ana.last.text
        await ana.tap("postupak nije naveden")
        assert "Primljeno" in ana.last.text
        await bot.deliver_outbox()
        async with bot.services.database.uow() as uow:
            request = (await uow.session.scalars(select(MentorRequest))).one()
        card = bot.card(request.id)
        assert "Usluga: ezup" in card.text
        assert "Korak plana: Zahtev za pristup imaocima registara" in card.text
        assert "postupak nije naveden" in card.text
        cacak = await pid(bot, "Čačak")
        assert (await statuses(bot, "Čačak"))["ezup/pristup"] == "blocked"

        # Vesna of Niš cannot change Čačak's roadmap, however she forges the button.
        before = await statuses(bot, "Čačak")
        await vesna.tap_data(f"rd:{cacak}:ezup:pristup", ana.last)
        assert "samo plan svoje opštine" in vesna.last.text
        await vesna.tap_data(f"rb:{cacak}:ezup:pristup:1", ana.last)
        assert "samo plan svoje opštine" in vesna.last.text
        await vesna.tap_data("rd:x:ezup:'; drop", ana.last)
        assert "više ne važi" in vesna.last.text
        assert await statuses(bot, "Čačak") == before
        # Her own roadmap works: one step done and waiting for confirmation.
        await open_ezup(vesna)
        await vesna.tap("Urađeno")
        assert (await statuses(bot, "Niš")) == {"ezup/admin": "pending"}

        # The mentor's matrix: Čačak first (it is blocked), eZUP 2/5 with a blocked step.
        await marko.say("/opstine")
        matrix = marko.last
        lines = matrix.text.split("<pre>")[1].split("</pre>")[0].split("\n")
        assert lines[1].startswith("Čačak") and " 2/5!" in lines[1]
        assert lines[2].startswith("Niš") and " 0/5" in lines[2]
        assert matrix.button_labels[0].endswith("Čačak")
        timeline = await marko.tap("Čačak", matrix)
        text = timeline[-1].text
        assert "tok rada" in text and "postupak nije naveden" in text and "urađeno" in text
        # Clerks see no matrix.
        await ana.say("/opstine")
        assert "samo mentorima" in ana.last.text

        data = await bot.services.roadmaps.programme(with_history=True)
        rows = {r.municipality: r for r in data.rows}
        assert rows["Čačak"].services["ezup"].done == 2
        assert rows["Čačak"].services["ezup"].blocked == 1
        assert rows["Niš"].services["ezup"].pending == 1
        assert [(b.municipality, b.step) for b in data.blocked] == [("Čačak", "pristup")]
        assert data.questions_by_step.get("ezup/pristup") == 1
        # Every change is on the trail with who made it.
        async with bot.services.database.uow() as uow:
            events = list(await uow.session.scalars(select(RoadmapEvent)))
        assert len(events) == 6
        assert all(e.actor_user_id for e in events)

        # The console: the matrix, the report and its CSV show the same counts.
        session, status = await sign_in(await link_for(bot, ADMIN_ID))
        async with session:
            assert status == 303
            async with session.get(bot.http_url + "/console/opstine") as response:
                assert response.status == 200
                body = await response.text()
            assert body.index("Čačak") < body.index("Niš")
            assert '2/5 <abbr title="zapelo">!</abbr>' in body
            assert '0/5 <abbr title="čeka potvrdu mentora">?</abbr>' in body
            async with session.get(bot.http_url + "/console/plan-izvestaj") as response:
                report = await response.text()
            assert "postupak nije naveden u zahtevu za pristup" in report
            assert "<polyline" in report and "Zahtev za pristup imaocima registara" in report
            async with session.get(bot.http_url + "/console/plan-izvestaj.csv") as response:
                assert response.headers["Content-Type"].startswith("text/csv")
                lines = (await response.text()).lstrip("\ufeff").splitlines()
            assert lines[0].startswith("opstina,usluga,korak")
            cacak_done = [ln for ln in lines if ln.startswith("Čačak,ezup,") and ",done," in ln]
            assert len(cacak_done) == 2
            assert any(ln.startswith("Niš,ezup,admin,") and ",pending," in ln for ln in lines)
            async with session.get(bot.http_url + "/console/opstina?id=x") as response:
                assert response.status == 404
        # A clerk gets no console.
        await vesna.say("/konzola")
        assert "/console/login" not in vesna.last.text


async def test_quiet_municipality_is_listed_to_the_mentors_once_a_week(url: str):
    clock = Clock()
    async with (
        FakeBotAPI() as api,
        MentorBot(api, url, clock=clock, roadmap_remind_clerks=True) as bot,
    ):
        admin = bot.mentor(ADMIN_ID, "Admin")
        await admin.say("/opstina_dodaj Pirot")
        clerk = await join(bot, "Pirot")
        assert bot.services is not None
        nudge = bot.services.roadmaps.nudge
        assert await nudge() == 0  # just added: not quiet yet
        clock.advance(weeks=3)
        assert await nudge() == 2  # the mentors' group, and the clerk's reminder
        assert await nudge() == 0  # the same week: nothing twice
        await bot.deliver_outbox()
        listed = [m for m in bot.group if "Bez napretka" in m.text]
        assert len(listed) == 1 and "Pirot" in listed[0].text
        reminder = [m for m in clerk.chat if "Podsetnik" in m.text]
        assert len(reminder) == 1 and "Određen lokalni administrator" in reminder[0].text
