"""The mentor desk, second part (issue #17), end to end over the fake Bot API on SQLite and
PostgreSQL: followers instead of duplicates, hand-over, the call-back contact out of hours.

Followers: five clerks from five municipalities ask the same thing (Latin, no diacritics,
Cyrillic, with an e-mail address, with a greeting); one card with four followers; one answer
reaches all five exactly once (the outbox drained again and again); a follower rates it and
asks a follow-up, which opens their own request with the mentor who answered; the KB draft
carries every phrasing without personal data. (Across a kill -9 of the bot process:
test_desk_followers_crash.py.)"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.services.buttons import parse
from bot.services.users import UserProfile
from storage.mentor import KnowledgeDraft, MentorFollower, MentorRepository, MentorRequest
from storage.repositories import UserRepository
from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.bot_api import FakeBotAPI, SentMessage, callback_update
from tests.fakes.clock import Clock, belgrade, ordinary_week
from tests.fakes.mentor_harness import ADMIN_ID, MentorBot

_ids = itertools.count(47_001)

SAME_QUESTION = [
    ("Čačak", "Kako da dodam novog službenika u eZUP?"),
    ("Niš", "kako da dodam novog sluzbenika u ezup (pera.peric@cacak.rs)"),
    ("Novi Sad", "Како да додам новог службеника у еЗУП?"),
    ("Subotica", "Kako da dodam novog službenika u eZUP, hitno je"),
    ("Kragujevac", "Kako da dodam novog službenika u eZUP? Pozdrav, Milica"),
]
ANSWER = "Novog službenika dodaje lokalni administrator eZUP-a u meniju Korisnici."


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    async with fresh_database_url(request.param, tmp_path) as database_url:
        yield database_url


def number_in(text: str) -> int:
    match = re.search(r"#(\d+)", text)
    assert match, text
    return int(match.group(1))


async def set_municipality(bot: MentorBot, clerk_id: int, name: str) -> None:
    clerk = bot.clerk(clerk_id, None)
    await clerk.say("/opstina")
    offered = await clerk.say(name)
    labels = offered[-1].button_labels if offered else []
    if any(name in label for label in labels):
        await clerk.tap(name, offered[-1])


async def escalate(bot: MentorBot, clerk_id: int, question: str) -> SentMessage:
    """/mentor <question>, then "Pošalji mentoru"; returns what the clerk was told."""
    clerk = bot.clerk(clerk_id, None)
    await clerk.say(f"/mentor {question}")
    told = await clerk.tap("Pošalji mentoru")
    return told[-1]


def answers_to(bot: MentorBot, clerk_id: int) -> list[SentMessage]:
    return [m for m in bot.api.seen_by(clerk_id) if "Odgovor mentora" in m.text]


def cards(bot: MentorBot) -> list[SentMessage]:
    return [m for m in bot.group if m.text.startswith("<b>#")]


async def stored(bot: MentorBot, model, *where):  # type: ignore[no-untyped-def]
    assert bot.services is not None
    async with bot.services.database.uow(read_only=True) as uow:
        return list(await uow.session.scalars(select(model).where(*where)))


async def test_five_clerks_one_card_four_followers_one_answer_reaches_all_once(url: str):
    async with FakeBotAPI() as api, MentorBot(api, url, clock=Clock()) as bot:
        admin = bot.mentor(ADMIN_ID, "Admin")
        await admin.say("/dodaj_mentora 2301")
        marko = bot.mentor(2301, "Marko")
        await marko.say("/start")
        clerks = [next(_ids) for _ in SAME_QUESTION]
        for clerk_id, (place, _question) in zip(clerks, SAME_QUESTION, strict=True):
            await set_municipality(bot, clerk_id, place)

        told = [
            await escalate(bot, clerk_id, question)
            for clerk_id, (_place, question) in zip(clerks, SAME_QUESTION, strict=True)
        ]
        assert "Primljeno" in told[0].text
        number = number_in(told[0].text)
        for follower in told[1:]:
            assert f"Isto pitanje je već kod mentora pod brojem <b>#{number}</b>" in follower.text
            assert follower.button_labels == ["Pošalji kao novo pitanje"]

        await bot.deliver_outbox()
        await bot.deliver_outbox()  # the card's refresh, queued once the card was sent
        assert len(cards(bot)) == 1
        card = bot.card(number)
        assert "👥 Isto pita još 4: Kragujevac, Niš, Novi Sad, Subotica" in card.text
        requests = await stored(bot, MentorRequest)
        assert [r.id for r in requests] == [number]
        followers = await stored(bot, MentorFollower)
        assert len(followers) == 4 and all(f.request_id == number for f in followers)

        await marko.tap_in_group("Preuzmi", card)
        await marko.reply_in_group(bot.card(number), ANSWER)
        for _ in range(3):
            await bot.deliver_outbox()
        for clerk_id, (_place, question) in zip(clerks, SAME_QUESTION, strict=True):
            (answer,) = answers_to(bot, clerk_id)
            assert ANSWER in answer.text
            assert answer.button_labels == ["Rešeno, hvala", "Imam dodatno pitanje"]
            shown = question.replace("(", "").split()[0]
            assert shown in answer.text  # each quoted their own phrasing
        card = bot.card(number)
        assert "Odgovorio/la: Marko" in card.text and "Isto pita još 4" in card.text

        # A follower rates the answer; another asks a follow-up: their own request, with Marko.
        nis, novi_sad = clerks[1], clerks[2]
        stars = (await bot.clerk(nis, None).tap("Rešeno, hvala"))[-1]
        assert "Kako ocenjujete" in stars.text and len(stars.button_labels) == 5
        (thanks,) = await bot.clerk(nis, None).tap("4 ⭐", stars)
        assert "Hvala na oceni" in thanks.text
        follow = bot.clerk(novi_sad, None)
        await follow.tap("Imam dodatno pitanje")
        (opened,) = await follow.say("A ako administrator nije dostupan?")
        assert "otvoreno kao novo pitanje" in opened.text
        own = number_in(opened.text)
        assert own != number
        await bot.deliver_outbox()
        await bot.deliver_outbox()
        own_card = bot.card(own)
        assert "Preuzeo/la: Marko" in own_card.text and "administrator nije dostupan" in (
            own_card.text
        )
        assert any(
            f"Dodatno pitanje uz Vaš odgovor na #{number}" in m.text for m in api.seen_by(2301)
        )
        assert "Isto pita još 3" in bot.card(number).text and "ocene: 4.0" in bot.card(
            number
        ).text
        # The owner of the request still closes it with "Rešeno".
        await bot.clerk(clerks[0], None).tap("Rešeno, hvala")
        # Nothing was sent twice, however often the outbox is drained.
        await bot.deliver_outbox()
        assert [len(answers_to(bot, c)) for c in clerks] == [1, 1, 1, 1, 1]

        # The KB draft: the question and every follower's phrasing, without personal data.
        await marko.tap_in_group("Dodaj u bazu znanja", bot.card(number))
        (draft,) = await stored(bot, KnowledgeDraft)
        assert draft.request_id == number and draft.question == SAME_QUESTION[0][1]
        phrasings = " | ".join(draft.alternatives)
        assert len(draft.alternatives) == 4, draft.alternatives
        assert "pera.peric" not in phrasings and "Milica" not in phrasings
        assert "Како да додам" in phrasings and "hitno je" in phrasings


async def test_a_follower_may_open_their_own_request_after_all(url: str):
    async with FakeBotAPI() as api, MentorBot(api, url, clock=Clock()) as bot:
        first, second, other = next(_ids), next(_ids), next(_ids)
        received = await escalate(bot, first, SAME_QUESTION[0][1])
        number = number_in(received.text)
        # Another service's question, however alike in words, is not followed.
        unrelated = await escalate(bot, other, "Kako da dodam novog službenika u ePisarnicu?")
        assert "Primljeno" in unrelated.text
        # The tap on "Pošalji mentoru", redelivered by Telegram, changes nothing twice.
        clerk = bot.clerk(second, None)
        (compose,) = await clerk.say(f"/mentor {SAME_QUESTION[3][1]}")
        tap = callback_update(
            bot.next_update_id(), second, compose.callback_data("Pošalji mentoru"),
            message_id=compose.message_id, language_code=None,
        )
        await bot.deliver(tap)
        await bot.deliver(tap)
        following = clerk.last
        assert f"#{number}" in following.text
        assert len([m for m in clerk.chat if "Isto pitanje" in m.text]) == 1
        assert len(await stored(bot, MentorFollower)) == 1
        own = (await clerk.tap("Pošalji kao novo pitanje", following))[-1]
        assert "Primljeno" in own.text
        own_number = number_in(own.text)
        assert own_number not in (number, number_in(unrelated.text))
        # The tap again (an old message): the same request, not a third one.
        again = await clerk.tap_data(f"mo:{number}", following)
        assert f"#{own_number}" in again[-1].text
        (row,) = await stored(bot, MentorFollower)
        assert (row.state, row.own_request_id) == ("own", own_number)
        await bot.deliver_outbox()
        await bot.deliver_outbox()
        assert "Isto pita" not in bot.card(number).text
        assert len(await stored(bot, MentorRequest)) == 3

        # Outside the window (MENTOR_FOLLOW_WINDOW_HOURS, 24 h by default) no one follows.
        later = next(_ids)
        bot.clock.advance(hours=25)  # type: ignore[attr-defined]
        fresh = await escalate(bot, later, SAME_QUESTION[0][1])
        assert "Primljeno" in fresh.text


async def test_followers_hear_of_an_incident_and_its_closing_once(url: str):
    async with FakeBotAPI() as api, MentorBot(api, url, clock=Clock()) as bot:
        admin = bot.mentor(ADMIN_ID, "Admin")
        await admin.say("/start")
        await admin.say("/incident eZUP ne radi dodavanje korisnika")
        clerks = [next(_ids) for _ in range(3)]
        told = [await escalate(bot, c, SAME_QUESTION[i][1]) for i, c in enumerate(clerks)]
        assert "Primljeno" in told[0].text and "Isto pitanje" in told[2].text
        await admin.say("/incident_zatvori 1")
        assert "Obaveštenih službenika: 3" in admin.last.text
        for _ in range(2):
            await bot.deliver_outbox()
        for clerk_id in clerks:
            closed = [m for m in api.seen_by(clerk_id) if "ponovo radi" in m.text]
            assert len(closed) == 1, clerk_id


# -- hand-over --------------------------------------------------------------------------------


async def test_forward_to_another_mentor_and_for_ite_with_a_note(url: str):
    clock = Clock()
    async with FakeBotAPI() as api, MentorBot(api, url, clock=clock) as bot:
        admin = bot.mentor(ADMIN_ID, "Admin")
        await admin.say("/dodaj_mentora 2401")
        await admin.say("/dodaj_mentora 2402")
        marko, ana = bot.mentor(2401, "Marko"), bot.mentor(2402, "Ana")
        await marko.say("/start")
        await ana.say("/start")
        asker, follower = next(_ids), next(_ids)
        number = number_in((await escalate(bot, asker, SAME_QUESTION[0][1])).text)
        await escalate(bot, follower, SAME_QUESTION[1][1])
        await bot.deliver_outbox()
        await marko.tap_in_group("Preuzmi", bot.card(number))

        # A clerk cannot hand anything over.
        intruder = bot.clerk(next(_ids), None)
        await intruder.say(f"/prosledi {number} 2402")
        assert "samo mentorima" in intruder.last.text
        await marko.say(f"/prosledi {number} 9999 ko je ovo")
        assert "Ne nalazim tog mentora" in marko.last.text

        # (In private chats the fake Telegram calls everyone Milica: mentors go by their id.)
        await marko.say(f"/prosledi {number} 2402 pogledaj, ti si radila na tome")
        assert f"#{number} je prosleđeno: Milica" in marko.last.text
        for _ in range(2):
            await bot.deliver_outbox()
        handed = [m for m in api.seen_by(2402) if "Vam je prosledio/la pitanje" in m.text]
        assert len(handed) == 1 and "ti si radila na tome" in handed[0].text
        for clerk_id in (asker, follower):
            notes = [m for m in api.seen_by(clerk_id) if "drugi mentor" in m.text]
            assert len(notes) == 1 and "Odgovor očekujte" in notes[0].text
        card = bot.card(number)
        assert "🔁 Prosledio/la Milica mentoru Milica, očekivano do" in card.text
        # Marko no longer holds it: only Ana (or an admin) may hand it on.
        await marko.say(f"/prosledi {number} ITE poslato")
        assert "preuzeo drugi mentor" in marko.last.text

        # Ana marks it for ITE with the buttons: the choices privately, then a note.
        await ana.tap_in_group("Prosledi", card)
        choices = api.last_seen(2402)
        assert f"#{number}" in choices.text and "Za ITE" in choices.button_labels
        assert "Za ministarstvo" in choices.button_labels
        # Marko and the admin, ITE, the Ministry (not Ana herself)
        assert len(choices.button_labels) == 4
        (prompt,) = await ana.tap("Za ITE", choices)
        assert "Napišite napomenu" in prompt.text
        await ana.say("Poslato ITE mejlom 8.12, predmet 123")
        assert "je označeno" in ana.last.text and "ITE" in ana.last.text
        for _ in range(2):
            await bot.deliver_outbox()
        for clerk_id in (asker, follower):
            notes = [m for m in api.seen_by(clerk_id) if "(ITE)" in m.text]
            assert len(notes) == 1 and "Odgovor očekujte" in notes[0].text
        card = bot.card(number)
        assert "➡️ Za: Kancelarija za IT i eUpravu (ITE) (prosledio/la" in card.text
        assert "Napomena: Poslato ITE mejlom 8.12, predmet 123" in card.text

        # The SLA clock is paused; after five working days Ana is reminded, once a day.
        assert bot.services is not None
        mentoring = bot.services.mentoring
        assert await mentoring.check_handovers() == 0
        clock.set(clock.now + timedelta(days=7, hours=2))
        assert await mentoring.check_handovers() == 1
        assert await mentoring.check_handovers() == 0
        await bot.deliver_outbox()
        reminders = [m for m in api.seen_by(2402) if "još nema odgovor" in m.text]
        assert len(reminders) == 1 and "predmet 123" in reminders[0].text
        assert not [m for m in api.seen_by(2401) if "još nema odgovor" in m.text]
        clock.set(clock.now + timedelta(days=1))
        assert await mentoring.check_handovers() == 1

        # ITE answered: Ana answers once, to both clerks; the hand-over ends.
        await ana.say(f"/odgovori {number} ITE kaže: administrator dodaje korisnike.")
        for _ in range(2):
            await bot.deliver_outbox()
        for clerk_id in (asker, follower):
            assert len(answers_to(bot, clerk_id)) == 1
        clock.set(clock.now + timedelta(days=7))
        assert await mentoring.check_handovers() == 0
        async with bot.services.database.uow(read_only=True) as uow:
            request = await uow.repository(MentorRepository).get(number)
            assert request is not None and request.handed_to is None
        await admin.say("/audit")
        assert "request.forward" in admin.last.text


async def test_forward_by_tapping_a_mentors_name_in_private(url: str):
    """"Prosledi" on the card, then the other mentor's button in the private chat: the request
    is theirs (the card says so), they are told, and a stale tap on the same choice does nothing."""
    async with FakeBotAPI() as api, MentorBot(api, url, clock=Clock()) as bot:
        admin = bot.mentor(ADMIN_ID, "Admin")
        await admin.say("/dodaj_mentora 2411")
        await admin.say("/dodaj_mentora 2412")
        marko, ana = bot.mentor(2411, "Marko"), bot.mentor(2412, "Ana")
        await marko.say("/start")
        await ana.say("/start")
        number = number_in((await escalate(bot, next(_ids), SAME_QUESTION[2][1])).text)
        await bot.deliver_outbox()
        await marko.tap_in_group("Preuzmi", bot.card(number))
        await marko.tap_in_group("Prosledi", bot.card(number))
        choices = api.last_seen(2411)
        assert f"#{number}" in choices.text
        assert bot.services is not None
        async with bot.services.database.uow(read_only=True) as uow:
            ana_user = await uow.repository(UserRepository).get_by_external("telegram", 2412)
        assert ana_user is not None
        to_ana = next(
            button["callback_data"]
            for row in choices.keyboard
            for button in row
            if (token := parse(button.get("callback_data", ""))) is not None
            and getattr(token, "target", None) == ana_user.id
        )
        await marko.tap_data(to_ana, choices)
        assert any("prosleđeno" in toast for toast in marko.toasts())
        for _ in range(2):
            await bot.deliver_outbox()
        handed = [m for m in api.seen_by(2412) if "Vam je prosledio/la pitanje" in m.text]
        assert len(handed) == 1
        assert "🔁 Prosledio/la" in bot.card(number).text
        async with bot.services.database.uow(read_only=True) as uow:
            request = await uow.repository(MentorRepository).get(number)
            assert request is not None and request.claimed_by == ana_user.id
        # Marko taps the same choice again: it is no longer his to hand over.
        await marko.tap_data(to_ana, choices)
        assert any("preuzeo drugi mentor" in toast for toast in marko.toasts())
        for _ in range(2):
            await bot.deliver_outbox()
        handed = [m for m in api.seen_by(2412) if "Vam je prosledio/la pitanje" in m.text]
        assert len(handed) == 1


# -- the call-back contact out of hours --------------------------------------------------------


async def test_out_of_hours_clerk_leaves_a_contact_exported_and_deleted(url: str):
    saturday = belgrade(ordinary_week() + timedelta(days=5), 11)
    monday = (ordinary_week() + timedelta(days=7)).strftime("%d.%m.")
    clock = Clock(saturday)
    async with FakeBotAPI() as api, MentorBot(api, url, clock=clock) as bot:
        clerk_id = next(_ids)
        received = await escalate(bot, clerk_id, "Kolika je kvota za parking ispred opštine?")
        number = number_in(received.text)
        assert f"pitanje će videti u ponedeljak, {monday} od 08:00" in received.text
        assert received.button_labels == ["📞 Ostavi kontakt za povratni poziv"]
        clerk = bot.clerk(clerk_id, None)
        (prompt,) = await clerk.tap("Ostavi kontakt", received)
        assert "broj telefona ili adresu e-pošte" in prompt.text
        (wrong,) = await clerk.say("sutra posle podne")
        assert "ne liči na broj telefona" in wrong.text
        (saved,) = await clerk.say("064 123 4567")
        assert "Mentor će Vam se javiti na 064 123 4567" in saved.text
        assert f"u ponedeljak, {monday} od 08:00" in saved.text
        (answer,) = await clerk.say("kako da dobijem pristup ezupu")
        assert "eZUP" in answer.text  # the contact is given: a question is a question again
        for _ in range(2):
            await bot.deliver_outbox()
        assert "📞 Povratni poziv: 064 123 4567" in bot.card(number).text

        # Exported with the rest of the clerk's data...
        assert bot.services is not None
        user = await bot.stored_user(clerk_id)
        assert user is not None
        profile = await bot.services.users.get(user.id)
        assert isinstance(profile, UserProfile)
        exported = await bot.services.privacy.export(profile)
        data = json.loads(exported.content)["data"]
        (row,) = data["mentor_requests"]
        assert row["callback_contact"] == "064 123 4567"

        # ...and deleted with it (/obrisi_me).
        await clerk.say("/obrisi_me")
        await clerk.tap("Da, obriši")
        (request,) = await stored(bot, MentorRequest, MentorRequest.id == number)
        assert request.callback_contact == "[obrisano]"


async def test_retention_removes_an_old_call_back_contact(url: str):
    saturday = belgrade(ordinary_week() + timedelta(days=5), 11)
    clock = Clock(saturday)
    async with FakeBotAPI() as api, MentorBot(api, url, clock=clock) as bot:
        clerk_id = next(_ids)
        received = await escalate(bot, clerk_id, "Kolika je kvota za parking ispred opštine?")
        number = number_in(received.text)
        clerk = bot.clerk(clerk_id, None)
        await clerk.tap("Ostavi kontakt", received)
        (saved,) = await clerk.say("jelena@opstina.rs")
        assert "jelena@opstina.rs" in saved.text
        assert bot.services is not None
        clock.set(clock.now + timedelta(days=400))
        await bot.services.privacy.apply_retention()
        (request,) = await stored(bot, MentorRequest, MentorRequest.id == number)
        assert request.callback_contact == "[obrisano]"


async def test_when_the_asker_deletes_their_data_followers_may_ask_anew(url: str):
    async with FakeBotAPI() as api, MentorBot(api, url, clock=Clock()) as bot:
        asker, follower = next(_ids), next(_ids)
        number = number_in((await escalate(bot, asker, SAME_QUESTION[0][1])).text)
        await escalate(bot, follower, SAME_QUESTION[2][1])
        # Each exports their own: the asker not the follower's question, the follower theirs.
        assert bot.services is not None
        exports = {}
        for clerk_id in (asker, follower):
            user = await bot.stored_user(clerk_id)
            assert user is not None
            profile = await bot.services.users.get(user.id)
            assert profile is not None
            exported = await bot.services.privacy.export(profile)
            exports[clerk_id] = json.loads(exported.content)["data"]
        assert "mentor_followers" not in exports[asker]
        (row,) = exports[follower]["mentor_followers"]
        assert row["question"] == SAME_QUESTION[2][1] and row["request_id"] == number
        owner = bot.clerk(asker, None)
        await owner.say("/obrisi_me")
        await owner.tap("Da, obriši")
        await bot.deliver_outbox()
        (notice,) = [m for m in api.seen_by(follower) if "zatvoreno bez odgovora" in m.text]
        assert f"#{number}" in notice.text
        own = (await bot.clerk(follower, None).tap("Pošalji kao novo pitanje", notice))[-1]
        assert "Primljeno" in own.text and number_in(own.text) != number
        (request,) = await stored(bot, MentorRequest, MentorRequest.id == number_in(own.text))
        assert request.question == SAME_QUESTION[2][1]
