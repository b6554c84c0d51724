"""The mentor desk end to end (issue #17): the real runtime and handlers, a real database
(SQLite and PostgreSQL), the fake Bot API over HTTP, the outbox drained as the dispatcher would.

Incidents: a mentor declares one on a service; clerks asking about it hear of it first and are
recorded (as is a clerk escalating on it); closing it tells each of them once. Canned replies:
kept by mentors, drafted from the "Šablon" button on a card, sent as they are or edited. Out of
hours: an escalation says when a mentor will first see it (dates relative to the real today)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.services.working_hours import WorkingHours
from storage.desk import IncidentClerk
from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.clock import (  # dates relative to the real today
    Clock,
    belgrade,
    ordinary_wednesday,
    ordinary_week,
    today,
)
from tests.fakes.mentor_harness import ADMIN_ID, MentorBot

BELGRADE = ZoneInfo("Europe/Belgrade")
_ids = itertools.count(40_001)
EZUP_QUESTION = "Kako se službenik prijavljuje na eZUP?"
OTHER_QUESTION = "Kako se plaća taksa preko ePlaćanja?"


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    async with fresh_database_url(request.param, tmp_path) as database_url:
        yield database_url


def closed_notices(bot: MentorBot, clerk_id: int) -> list[str]:
    return [m.text for m in bot.api.seen_by(clerk_id) if "ponovo radi" in m.text
            or "working again" in m.text]


async def test_incident_notice_recorded_clerks_told_once_when_closed(url: str):
    clock = Clock()
    async with FakeBotAPI() as api, MentorBot(api, url, clock=clock) as bot:
        admin = bot.mentor(ADMIN_ID, "Admin")
        await admin.say("/dodaj_mentora 2101")
        marko = bot.mentor(2101, "Marko")
        asker, english, escalator, other = (next(_ids) for _ in range(4))

        # A clerk can neither declare nor close; nothing is declared by their attempt.
        clerk = bot.clerk(asker, None)
        await clerk.say("/incident eZUP ne radi prijava od 9h")
        assert "samo mentorima" in clerk.last.text
        await clerk.say(EZUP_QUESTION)
        assert "Poznat problem" not in clerk.last.text

        await marko.say("/incident eKafa ne radi")
        assert "Ne poznajem uslugu" in marko.last.text
        await marko.say("/incident eZUP ne radi prijava od 9h <posle restarta>")
        declared = marko.last.text
        assert "Incident #1" in declared and "eZUP" in declared
        await clerk.say("/incident_zatvori 1")
        assert "samo mentorima" in clerk.last.text

        # The clerk's question about eZUP: the notice first, then the answer.
        seen = await clerk.say(EZUP_QUESTION)
        text = seen[-1].text
        at = clock.now.astimezone(BELGRADE).strftime("%d.%m.%Y. %H:%M")
        assert text.startswith("⚠️ <b>Poznat problem: eZUP</b>")
        assert "ne radi prijava od 9h &lt;posle restarta&gt;" in text  # escaped
        assert at in text and "javićemo Vam kada proradi" in text
        assert text.index("javićemo") < text.index("\n\n") + 2 < len(text)
        assert "👍" in "".join(seen[-1].button_labels)  # the answer still comes with it

        # In English for an English-speaking clerk (the service named in the text).
        en = bot.clerk(english, "en")
        await en.say("/start")
        await en.say("eZUP login keeps failing since this morning, any idea?")
        assert "Known problem: eZUP" in en.last.text
        assert "we will let you know when it works again" in en.last.text

        # A clerk who goes straight to a mentor about eZUP is recorded with the request.
        esc = bot.clerk(escalator, None)
        await esc.say("/mentor eZUP mi javlja grešku 500 pri prijavi")
        received = await esc.tap("Pošalji mentoru")
        number = int(received[-1].text.split("#", 1)[1].split("<", 1)[0])

        # Another service: no notice, not recorded.
        await bot.clerk(other, None).say(OTHER_QUESTION)
        assert "Poznat problem" not in bot.api.last_seen(other).text

        assert bot.services is not None
        async with bot.services.database.uow(read_only=True) as uow:
            rows = list(await uow.session.scalars(select(IncidentClerk)))
        by_via = sorted((row.via, row.request_id) for row in rows)
        assert by_via == [("question", None), ("question", None), ("request", number)]

        await marko.say("/incident")
        listing = marko.last
        assert "#1" in listing.text and "službenika: 3" in listing.text
        assert listing.button_labels == ["Zatvori #1"]

        await marko.tap("Zatvori #1", listing)
        assert any("je zatvoren" in toast for toast in marko.toasts())
        await marko.say("/incident_zatvori 1")
        assert "već zatvoren" in marko.last.text
        assert not closed_notices(bot, asker)  # through the outbox, not yet sent
        await bot.deliver_outbox()
        await bot.deliver_outbox()
        for clerk_id in (asker, english, escalator):
            assert len(closed_notices(bot, clerk_id)) == 1, clerk_id
        assert "eZUP" in closed_notices(bot, asker)[0]
        assert "working again" in closed_notices(bot, english)[0]
        assert not closed_notices(bot, other)

        # Closed: no more notice.
        await clerk.say(EZUP_QUESTION)
        assert "Poznat problem" not in clerk.last.text

        await admin.say("/statistika")
        stats = [m.text for m in api.seen_by(ADMIN_ID) if "Statistika" in m.text][-1]
        assert "Incidenti: 1 · službenika pogođeno: 3" in stats
        await admin.say("/audit")
        trail = admin.last.text
        assert "incident.declare" in trail and "incident.close" in trail


async def test_open_incident_is_listed_in_statistics(url: str):
    async with FakeBotAPI() as api, MentorBot(api, url, clock=Clock()) as bot:
        admin = bot.mentor(ADMIN_ID, "Admin")
        await admin.say("/start")
        await admin.say("/incident ePlaćanje ne prolaze uplate")
        assert "Incident #1" in admin.last.text
        await admin.say("/statistika")
        stats = [m.text for m in api.seen_by(ADMIN_ID) if "Statistika" in m.text][-1]
        assert "Otvoren incident #1: eplacanje" in stats


# -- canned replies ---------------------------------------------------------------------------


async def escalate_about_ezup(bot: MentorBot, clerk_id: int) -> int:
    """A clerk from Čačak asks a mentor directly about eZUP; returns the request number."""
    clerk = bot.clerk(clerk_id, None)
    await clerk.say("/opstina")
    offered = await clerk.say("Čačak")
    if offered and any("Čačak" in label for label in offered[-1].button_labels):
        await clerk.tap("Čačak", offered[-1])
    await clerk.say("/mentor Kako da dodam novog službenika u eZUP?")
    received = await clerk.tap("Pošalji mentoru")
    return int(received[-1].text.split("#", 1)[1].split("<", 1)[0])


async def test_canned_reply_drafted_from_the_card_sent_as_is_or_edited(url: str):
    async with FakeBotAPI() as api, MentorBot(api, url, clock=Clock()) as bot:
        admin = bot.mentor(ADMIN_ID, "Admin")
        await admin.say("/dodaj_mentora 2201")
        marko = bot.mentor(2201, "Marko")
        await marko.say("/start")
        clerk_id, second_id = next(_ids), next(_ids)
        clerk = bot.clerk(clerk_id, None)

        # Clerks cannot keep canned replies.
        await clerk.say("/sablon_novi pristup | tekst")
        assert "samo mentorima" in clerk.last.text
        await clerk.say("/sabloni")
        assert "samo mentorima" in clerk.last.text

        await marko.say("/sablon_novi Pristup | Poštovani {ime}, za {usluga} u opštini {opstina} "
                        "administrator dodaje korisnike <b>sam</b>.")
        assert "sačuvan" in marko.last.text
        await marko.say("/sablon_novi kratko | Hvala, {ime}!")
        await marko.say("/sablon_novi bez crte")
        assert "Upotreba" in marko.last.text
        await marko.say("/sabloni")
        assert "Pristup" in marko.last.text and "kratko" in marko.last.text
        assert "&lt;b&gt;sam" in marko.last.text  # the mentor's text is escaped
        await marko.say("/sablon_obrisi kratko")
        assert "obrisan" in marko.last.text
        await marko.say("/sabloni")
        assert "kratko" not in marko.last.text
        await clerk.say("/sablon_obrisi Pristup")
        assert "samo mentorima" in clerk.last.text

        number = await escalate_about_ezup(bot, clerk_id)
        await bot.deliver_outbox()
        card = bot.card(number)
        assert "Šablon" in card.button_labels

        # A clerk in the group cannot open the canned replies.
        intruder = bot.mentor(next(_ids), "Uljez")
        await intruder.tap_in_group("Šablon", card)
        assert any("samo mentorima" in toast for toast in intruder.toasts())

        # Telegram refuses a private message to a mentor who never started the bot there:
        # the tap's toast says what to do first.
        api.fail_next(1, status=403, method="sendMessage",
                      description="Forbidden: bot can't initiate conversation with a user")
        await marko.tap_in_group("Šablon", card)
        assert any("/start" in toast for toast in marko.toasts())
        assert not any("poslati u privatni" in toast for toast in marko.toasts())

        await marko.tap_in_group("Šablon", card)
        assert any("poslati u privatni razgovor" in toast for toast in marko.toasts())
        choices = api.last_seen(2201)
        assert f"#{number}" in choices.text and choices.button_labels == ["Pristup"]
        (draft,) = await marko.tap("Pristup", choices)
        assert "Nacrt odgovora" in draft.text and draft.button_labels == ["Pošalji ovako"]
        assert "Poštovani Milica, za eZUP u opštini Čačak" in draft.text
        assert "&lt;b&gt;sam&lt;/b&gt;" in draft.text

        await marko.tap("Pošalji ovako", draft)
        await bot.deliver_outbox()
        answers = [m for m in api.seen_by(clerk_id) if "Odgovor mentora" in m.text]
        assert len(answers) == 1
        assert "Poštovani Milica, za eZUP u opštini Čačak" in answers[0].text
        assert "&lt;b&gt;sam&lt;/b&gt;" in answers[0].text

        # Edited: the mentor replies to the draft with the final text.
        other = await escalate_about_ezup(bot, second_id)
        await bot.deliver_outbox()
        await marko.tap_in_group("Šablon", bot.card(other))
        (draft,) = await marko.tap("Pristup", api.last_seen(2201))
        await marko.say("Poštovana Milice, administrator Vašeg organa dodaje korisnike.")
        assert f"#{other}" in marko.last.text and "sačuvan" in marko.last.text
        await bot.deliver_outbox()
        edited = [m for m in api.seen_by(second_id) if "Odgovor mentora" in m.text]
        assert len(edited) == 1 and "administrator Vašeg organa" in edited[0].text
        assert "Poštovani Milica, za" not in edited[0].text
        # The draft is used up: the mentor's next message is not another answer.
        await marko.say("Hvala!")
        await bot.deliver_outbox()
        assert len([m for m in api.seen_by(second_id) if "Odgovor mentora" in m.text]) == 1


# -- out of hours -----------------------------------------------------------------------------

WEEKDAYS_SR = ("ponedeljak", "utorak", "sredu", "četvrtak", "petak", "subotu", "nedelju")


async def received_for(bot: MentorBot, clerk_id: int, language: str | None = None) -> str:
    clerk = bot.clerk(clerk_id, language)
    if language:
        await clerk.say("/start")
    await clerk.say("/mentor Kolika je kvota za parking ispred opštine u subotu?")
    received = await clerk.tap("mentor")
    return received[-1].text


def next_weekday_holiday() -> date:
    """The first public holiday on a weekday after the real today (computed, never fixed)."""
    hours = WorkingHours()
    day = today() + timedelta(days=1)
    while day.weekday() >= 5 or hours.is_workday(day):
        day += timedelta(days=1)
    return day


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        pytest.param(
            lambda: belgrade(ordinary_week() + timedelta(days=4), 17),
            lambda: "u ponedeljak, {} od 08:00".format(
                (ordinary_week() + timedelta(days=7)).strftime("%d.%m.")
            ),
            id="friday-evening",
        ),
        pytest.param(
            lambda: belgrade(ordinary_week() + timedelta(days=5), 11),
            lambda: "u ponedeljak, {} od 08:00".format(
                (ordinary_week() + timedelta(days=7)).strftime("%d.%m.")
            ),
            id="saturday",
        ),
        pytest.param(lambda: ordinary_wednesday(7, 15), lambda: "danas od 08:00", id="early"),
        pytest.param(lambda: ordinary_wednesday(16, 5), lambda: "sutra od 08:00", id="late"),
    ],
)
async def test_out_of_hours_escalation_says_when_a_mentor_will_see_it(url: str, when, expected):
    async with FakeBotAPI() as api, MentorBot(api, url, clock=Clock(when())) as bot:
        text = await received_for(bot, next(_ids))
        assert "Primljeno" in text
        assert f"pitanje će videti {expected()}." in text


async def test_on_a_holiday_the_next_working_day_is_named(url: str):
    holiday = next_weekday_holiday()
    hours = WorkingHours()
    opens = holiday + timedelta(days=1)
    while not hours.is_workday(opens):
        opens += timedelta(days=1)
    if opens == holiday + timedelta(days=1):
        expected = "sutra od 08:00"
    else:
        expected = f"u {WEEKDAYS_SR[opens.weekday()]}, {opens.strftime('%d.%m.')} od 08:00"
    async with FakeBotAPI() as api, MentorBot(api, url, clock=Clock(belgrade(holiday, 10))) as bot:
        text = await received_for(bot, next(_ids))
        assert f"pitanje će videti {expected}." in text


async def test_in_hours_no_out_of_hours_note_and_english_out_of_hours(url: str):
    clock = Clock()
    # The same question three times: without followers (MENTOR_FOLLOW_WINDOW_HOURS=0), each
    # opens a request of its own.
    async with FakeBotAPI() as api, MentorBot(
        api, url, clock=clock, mentor_follow_window_hours=0
    ) as bot:
        text = await received_for(bot, next(_ids))
        assert "Primljeno" in text and "van radnog vremena" not in text
        clock.set(belgrade(ordinary_week() + timedelta(days=6), 12))  # Sunday noon
        text = await received_for(bot, next(_ids), "en")
        assert "they will see your question tomorrow from 08:00." in text
        clock.set(belgrade(ordinary_week() + timedelta(days=5), 9))  # Saturday morning
        text = await received_for(bot, next(_ids), "en")
        monday = (ordinary_week() + timedelta(days=7)).strftime("%d.%m.")
        assert f"they will see your question on Monday, {monday} from 08:00." in text
