"""Trainings end to end: the real runtime and handlers, a real database (SQLite and PostgreSQL),
the fake Bot API over HTTP, an injected clock, the outbox drained as the dispatcher would.

The admin creates a training through /obuka_nova -> the announcement reaches clerks -> a clerk
taps "Prijavi se" -> confirmation and an .ics file -> reminders fire once, at their time, also
after a restart -> the admin changes the time and cancels, registrants are told."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.bot_api import FakeBotAPI, SentMessage
from tests.fakes.clock import BELGRADE, Clock, ordinary_wednesday
from tests.fakes.harness import Clerk
from tests.fakes.trainings_harness import TrainingsBot, documents, texts

_ids = itertools.count(40_001)


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    async with fresh_database_url(request.param, tmp_path) as database_url:
        yield database_url


def training_start(now: datetime, days: int = 13, hour: int = 10) -> datetime:
    """`days` after `now`'s day, at `hour` in Belgrade (the tests' dates follow their clock)."""
    day = now.astimezone(BELGRADE) + timedelta(days=days)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0)


def typed(moment: datetime) -> str:
    """The date as the admin types it: 15.12.2026 10:00."""
    return moment.strftime("%d.%m.%Y %H:%M")


def shown(moment: datetime) -> str:
    """The date as the bot shows it: 15.12.2026. u 10:00."""
    return moment.strftime("%d.%m.%Y. u %H:%M")


async def create_training(
    admin: Clerk,
    title: str,
    *,
    service: str = "eZUP",
    when: str | None = None,
    capacity: str | None = None,
    audience: str = "Svi korisnici",
    typed_audience: str | None = None,
) -> str:
    """Walk the /obuka_nova dialogue with valid answers; returns the admin's last message."""
    await admin.say("/obuka_nova")
    await admin.say(title)
    await admin.tap(service)
    await admin.say(when or typed(training_start(ordinary_wednesday())))
    await admin.say("90")
    await admin.say("https://meet.example.rs/obuka")
    if capacity is None:
        await admin.tap("Bez ograničenja")
    else:
        await admin.say(capacity)
    if typed_audience is not None:
        await admin.say(typed_audience)
    else:
        await admin.tap(audience)
    assert "Objavi" in admin.last.button_labels, admin.last.text
    seen = await admin.tap("Objavi")
    return seen[-1].text


def reminders(bot: TrainingsBot, chat_id: int) -> list[str]:
    return texts(bot.api, chat_id, "Podsetnik")


async def test_training_from_dialogue_to_last_reminder_change_and_cancel(url: str):
    clock = Clock()
    start = training_start(clock())  # 13 days ahead, 10:00 in Belgrade
    ana_id, boris_id = next(_ids), next(_ids)
    async with FakeBotAPI() as api:
        bot = TrainingsBot(api, url, clock=clock)
        await bot.start()
        try:
            ana, boris = bot.clerk(ana_id, None), bot.clerk(boris_id, None)
            assert "nema najavljenih" in (await ana.say("/obuke"))[-1].text
            await boris.say("/obuke")

            # The admin's dialogue: every answer is checked, with a clear message.
            admin = bot.admin()
            assert "korak 1 od 7" in (await admin.say("/obuka_nova"))[-1].text
            assert "prekratak" in (await admin.say("ab"))[-1].text
            seen = await admin.say("eZUP za početnike")
            assert "korak 2 od 7" in seen[-1].text and "ePlaćanje" in seen[-1].button_labels
            assert "Ne poznajem uslugu" in (await admin.say("eFoo"))[-1].text
            assert "npr. 15.12.2026 10:00" in (await admin.tap("eZUP"))[-1].text  # the example
            assert "prošao" in (await admin.say(typed(training_start(clock(), days=-1))))[-1].text
            assert "Ne razumem datum" in (await admin.say("sutra ujutru"))[-1].text
            assert "korak 4 od 7" in (await admin.say(typed(start)))[-1].text
            assert "Ne razumem trajanje" in (await admin.say("dugo"))[-1].text
            assert "korak 5 od 7" in (await admin.say("1,5h"))[-1].text
            assert "Link nije ispravan" in (await admin.say("htp:/meet.example"))[-1].text
            assert "korak 6 od 7" in (await admin.say("https://meet.example.rs/ezup"))[-1].text
            assert "broj mesta" in (await admin.say("puno"))[-1].text
            seen = await admin.say("1")
            assert "korak 7 od 7" in seen[-1].text
            assert "Zainteresovani za eZUP" in seen[-1].button_labels
            assert "Ne poznajem opštinu" in (await admin.say("Atlantida"))[-1].text
            summary = (await admin.tap("Svi korisnici"))[-1]
            assert "Proverite obuku" in summary.text and "eZUP za početnike" in summary.text
            assert shown(start) in summary.text and "trajanje 90 min" in summary.text
            assert "svi korisnici" in summary.text
            assert summary.button_labels == ["Objavi", "Otkaži"]
            published = (await admin.tap("Objavi"))[-1]
            assert "Obuka je objavljena" in published.text and "3 korisnika" in published.text
            assert bot.api.seen_by(bot.admin_id)[-2].button_labels == []  # no second "Objavi"

            # The announcement reaches the clerks through the outbox.
            assert not texts(api, ana_id, "Nova obuka")
            await bot.deliver_outbox()
            announcement = ana.last
            assert "Nova obuka" in announcement.text and "eZUP za početnike" in announcement.text
            assert announcement.button_labels == ["Prijavi se"]

            # Sign-up: confirmation now, the calendar file through the outbox.
            confirmation = (await ana.tap("Prijavi se"))[-1]
            assert "Prijavljeni ste na obuku" in confirmation.text
            assert "Podsetićemo vas 24 sata, 1 sat pre početka" in confirmation.text
            assert confirmation.button_labels == ["Odjavi se"]
            assert not documents(api, ana_id)
            await bot.deliver_outbox()
            [ics] = documents(api, ana_id)
            assert "Dodajte obuku u kalendar" in ics.text
            files = [v for c in api.calls_of("sendDocument") for v in c.params.values()
                     if isinstance(v, dict) and "filename" in v]
            assert files[-1]["filename"].endswith(".ics") and files[-1]["size"] > 100
            assert "Već ste prijavljeni" in (await ana.tap("Prijavi se", announcement))[-1].text

            # Full: the waiting list.
            full = (await boris.tap("Prijavi se"))[-1]
            assert "Sva mesta su popunjena" in full.text
            assert "1. po redu" in (await boris.tap("listu čekanja"))[-1].text
            listing = (await ana.say("/obuke"))[-1]
            assert "prijavljeni ste" in listing.text
            assert any(label.startswith("Odjavi se") for label in listing.button_labels)
            assert "na listi čekanja" in (await boris.say("/obuke"))[-1].text

            # Reminders: not before their time, then exactly once.
            clock.set(start - timedelta(hours=24, minutes=1))
            await bot.deliver_outbox()
            assert reminders(bot, ana_id) == []
            clock.set(start - timedelta(hours=23, minutes=59))
            await bot.deliver_outbox()
            await bot.deliver_outbox()
            assert len(reminders(bot, ana_id)) == 1 and "za 24 sata" in reminders(bot, ana_id)[0]
            assert reminders(bot, boris_id) == []  # waiting list: no reminder
        finally:
            await bot.stop()

        # A restart: a new runtime on the same database keeps the 1-hour reminder.
        bot = TrainingsBot(api, url, clock=clock)
        await bot.start()
        try:
            ana, admin = bot.clerk(ana_id, None), bot.admin()
            clock.set(start - timedelta(minutes=59))
            await bot.deliver_outbox()
            await bot.deliver_outbox()
            assert len(reminders(bot, ana_id)) == 2 and "za 1 sat" in reminders(bot, ana_id)[1]

            # The admin moves the training: registrants are told, reminders move with it.
            manage = (await admin.tap("Upravljaj obukom"))[-1]
            assert "Prijavljeno: 1, na listi čekanja: 1" in manage.text
            assert "Promeni vreme" in manage.button_labels
            await admin.tap("Promeni vreme")
            assert "prošao" in (await admin.say(typed(start - timedelta(days=1))))[-1].text
            new_start = training_start(start, days=1, hour=12)
            changed = (await admin.say(typed(new_start)))[-1]
            assert "Obuka je izmenjena. Obavešteno: 2." in changed.text
            await bot.deliver_outbox()
            ana_docs = documents(api, ana_id)
            assert len(ana_docs) == 2 and "Obuka je promenjena" in ana_docs[-1].text
            assert shown(new_start) in ana_docs[-1].text
            assert len(texts(api, boris_id, "Obuka je promenjena")) == 1
            clock.set(new_start - timedelta(hours=23, minutes=59))
            await bot.deliver_outbox()
            assert len(reminders(bot, ana_id)) == 3
            assert shown(new_start) in reminders(bot, ana_id)[2]

            # The admin changes the place too (a typed address).
            await admin.tap("Upravljaj obukom")
            await admin.tap("Promeni mesto")
            assert "Link nije ispravan" in (await admin.say("htp:/x.rs"))[-1].text
            moved = (await admin.say("Palata Srbija, Bulevar Mihajla Pupina 2, Beograd"))[-1]
            assert "Obuka je izmenjena" in moved.text and "Palata Srbija" in moved.text
            await bot.deliver_outbox()
            assert "Palata Srbija" in documents(api, ana_id)[-1].text

            # ... and cancels it: registrants and the waiting list are told, no more reminders.
            await admin.tap("Upravljaj obukom")
            assert "Sigurno otkazati" in (await admin.tap("Otkaži obuku"))[-1].text
            cancelled = (await admin.tap("Da, otkaži"))[-1]
            assert "Obuka je otkazana. Obavešteno: 2." in cancelled.text
            await bot.deliver_outbox()
            assert "je otkazana" in documents(api, ana_id)[-1].text
            assert len(texts(api, boris_id, "je otkazana")) == 1
            clock.set(new_start - timedelta(minutes=30))
            await bot.deliver_outbox()
            assert len(reminders(bot, ana_id)) == 3
            assert "nema najavljenih" in (await ana.say("/obuke"))[-1].text
        finally:
            await bot.stop()


async def test_waiting_list_moves_up_and_announcements_follow_services_and_places(url: str):
    clock = Clock()
    ana_id, boris_id, ceca_id = next(_ids), next(_ids), next(_ids)
    async with FakeBotAPI() as api, TrainingsBot(api, url, clock=clock) as bot:
        ana, boris, ceca = (bot.clerk(i, None) for i in (ana_id, boris_id, ceca_id))
        for clerk in (ana, boris, ceca):
            await clerk.say("/obuke")
        await bot.set_municipality(ceca_id, "Novi Sad")

        # Ceca works on ePlaćanje only.
        menu = (await ceca.say("/usluge"))[-1]
        assert "Na kojim uslugama radite" in menu.text and "✅ Sve usluge" in menu.button_labels
        toggled = (await ceca.tap("ePlaćanje"))[-1]
        assert "Radite na: ePlaćanje." in toggled.text and "✅ ePlaćanje" in toggled.button_labels
        assert len(ceca.chat) == 2  # the menu was edited in place

        admin = bot.admin()
        assert "Obuka je objavljena" in await create_training(
            admin, "eZUP napredno", capacity="1", audience="Zainteresovani za eZUP")
        await bot.deliver_outbox()
        assert texts(api, ana_id, "eZUP napredno") and texts(api, boris_id, "eZUP napredno")
        assert not texts(api, ceca_id, "eZUP napredno")  # not her service

        await create_training(admin, "ePlaćanje u Novom Sadu", service="ePlaćanje",
                              typed_audience="Novi Sad")
        await bot.deliver_outbox()
        assert texts(api, ceca_id, "ePlaćanje u Novom Sadu")
        assert not texts(api, ana_id, "ePlaćanje u Novom Sadu")  # not her municipality

        # Capacity 1: Ana gets the seat, Boris the waiting list; Ana leaves, Boris moves up.
        await ana.tap("Prijavi se", texts_message(ana, "eZUP napredno"))
        await boris.tap("Prijavi se", texts_message(boris, "eZUP napredno"))
        await boris.tap("listu čekanja")
        await bot.deliver_outbox()
        listing = (await ana.say("/obuke"))[-1]
        left = (await ana.tap("Odjavi se", listing))[-1]
        assert "Odjavljeni ste sa obuke „eZUP napredno“" in left.text
        await bot.deliver_outbox()
        promoted = documents(api, boris_id)
        assert len(promoted) == 1 and "Oslobodilo se mesto" in promoted[0].text
        assert "prijavljeni ste" in (await boris.say("/obuke"))[-1].text
        assert len(documents(api, ana_id)) == 1  # her own calendar file only

        # Abandoning the dialogue publishes nothing.
        await admin.say("/obuka_nova")
        await admin.say("Obuka koja neće biti")
        assert "ništa nije objavljeno" in (await admin.tap("Otkaži"))[-1].text
        answer = (await admin.say("kako da dobijem pristup ezupu"))[-1]
        assert "korak" not in answer.text  # a question again, not the dialogue


def texts_message(clerk: Clerk, part: str) -> SentMessage:
    return next(m for m in reversed(clerk.chat) if part in m.text and m.button_labels)


async def test_clerks_are_refused_politely(url: str):
    clock = Clock()
    async with FakeBotAPI() as api, TrainingsBot(api, url, clock=clock) as bot:
        admin = bot.admin()
        await create_training(admin, "Obuka za sve")
        clerk = bot.clerk(next(_ids), None)
        refused = (await clerk.say("/obuka_nova"))[-1]
        assert "samo administratori" in refused.text
        assert "korak" not in (await clerk.say("Moja obuka"))[-1].text  # no dialogue started
        assert "samo administratori" in (await clerk.say("/obavestenje"))[-1].text
        assert "samo administratori" in (await clerk.say("/obavestenje Svima zdravo"))[-1].text
        listing = (await clerk.say("/obuke"))[-1]
        assert "Obuka za sve" in listing.text and "⚙️" not in listing.button_labels
        training = listing.callback_data("Prijavi se").rsplit(":", 1)[1]
        for forged in (f"tr:s:{training}", f"tr:c:{training}", f"tr:cy:{training}",
                       f"tr:t:{training}", "bc:go:1", "bc:stop:1"):
            seen = await clerk.tap_data(forged, listing)
            assert "samo administratori" in seen[-1].text, forged
        assert "korak" not in (await clerk.say(typed(training_start(clock(), hour=11))))[-1].text
        await bot.deliver_outbox()
        assert not texts(api, clerk.user_id, "otkazana")
        assert "Obuka za sve" in (await admin.say("/obuke"))[-1].text
