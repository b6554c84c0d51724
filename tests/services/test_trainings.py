"""Trainings, service level: announce, sign up, .ics, reminders once, restart, change, cancel,
waiting list. Real database (SQLite and PostgreSQL), real outbox dispatcher, fake Bot API,
injected clock."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from icalendar import Calendar
from sqlalchemy import select

from bot.channels.telegram_sender import TelegramSender
from bot.outbox import OutboxDispatcher
from bot.ratelimit import LocalRateLimiter
from bot.services.audience import Audience, InterestService, parse_audience
from bot.services.municipalities import MunicipalityDirectory
from bot.services.trainings import (
    BELGRADE,
    Invalid,
    TrainingDraft,
    TrainingService,
    parse_capacity,
    parse_duration,
    parse_offsets,
    parse_place,
    parse_when,
)
from bot.services.users import UserProfile, UserService
from storage.clock import utcnow
from storage.models import OutboxMessage, User
from storage.uow import Database
from tests.fakes.bot_api import BOT_TOKEN, FakeBotAPI


class Clock:
    def __init__(self) -> None:
        # Ahead of the real time: rows queued with the real utcnow() are due on this clock.
        self.now = utcnow().replace(microsecond=0) + timedelta(minutes=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def bot_for(api: FakeBotAPI) -> Bot:
    return Bot(BOT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base_url)))


def dispatcher_for(database: Database, bot: Bot, clock: Clock) -> OutboxDispatcher:
    limiter = LocalRateLimiter(per_second=1000, per_chat_interval=0, per_group_interval=0)
    return OutboxDispatcher(database, {"telegram": TelegramSender(bot)}, limiter, clock=clock)


async def add_user(
    database: Database, telegram_id: int, *, role: str = "clerk", language: str = "sr-Latn",
    municipality: str | None = "Novi Sad", services: list[str] | None = None,
) -> UserProfile:
    async with database.uow() as uow:
        await uow.users.add(User(
            channel="telegram", external_id=str(telegram_id), role=role, language=language,
            municipality=municipality, onboarded=True, services_of_interest=services,
        ))
        await uow.commit()
    profile = await UserService(database).get_or_register("telegram", str(telegram_id))
    return profile


def draft(clock: Clock, **changes: object) -> TrainingDraft:
    values: dict[str, object] = {
        "title": "eZUP za početnike", "service": "ezup",
        "starts_at": clock.now + timedelta(days=3), "duration_minutes": 90,
        "link": "https://meet.example.rs/ezup", "capacity": None, "audience": Audience(),
    }
    values.update(changes)
    return TrainingDraft(**values)  # type: ignore[arg-type]


def texts(api: FakeBotAPI, chat_id: int) -> list[str]:
    return [m.text for m in api.seen_by(chat_id)]


async def outbox_rows(database: Database, kind: str) -> list[OutboxMessage]:
    async with database.uow() as uow:
        stmt = select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
        return list(await uow.session.scalars(stmt))


# --------------------------------------------------------------------------- the story


async def test_training_from_announcement_to_last_reminder(database: Database) -> None:
    clock = Clock()
    service = TrainingService(database, clock=clock)
    admin = await add_user(database, 900, role="admin")
    ana = await add_user(database, 901)
    other = await add_user(database, 902, municipality="Niš")
    training_id, reply = await service.create(
        admin, draft(clock, audience=Audience("municipalities", ("Novi Sad",)))
    )
    assert training_id is not None and "objavljena" in reply.text
    async with FakeBotAPI() as api:
        bot = bot_for(api)
        try:
            dispatcher = dispatcher_for(database, bot, clock)
            await dispatcher.drain()
            announcement = api.last_seen(901)
            assert "eZUP za početnike" in announcement.text
            assert announcement.button_labels == ["Prijavi se"]
            assert api.seen_by(902) == [] and other.municipality == "Niš"  # not in the audience

            confirmation = await service.perform(ana, announcement.callback_data("Prijavi se"))
            assert confirmation is not None and "Prijavljeni ste" in confirmation.text
            await dispatcher.drain()
            documents = api.calls_of("sendDocument")
            assert len(documents) == 1 and documents[0].chat_id == 901
            attached = documents[0].params["document"].removeprefix("attach://")
            assert documents[0].params[attached]["filename"] == f"obuka-{training_id}.ics"
            [ics_row] = await outbox_rows(database, "training_ics")
            content = ics_row.payload["document"]["content_b64"]
            calendar = Calendar.from_ical(base64.b64decode(content))
            [event] = calendar.walk("VEVENT")
            assert event.decoded("dtstart") == clock.now + timedelta(days=3)
            assert str(event["summary"]) == "eZUP za početnike"

            # Signing up twice changes nothing (a redelivered tap).
            again = await service.sign_up(ana, training_id)
            assert "Već ste prijavljeni" in again.text

            clock.advance(days=2, minutes=1)  # 24 h before the start (and a minute)
            await dispatcher.drain()
            reminders = [t for t in texts(api, 901) if "Podsetnik" in t]
            assert len(reminders) == 1 and "za 24 sata" in reminders[0]
            await dispatcher.drain()
            clock.advance(hours=23, minutes=29)  # 30 minutes before
            await dispatcher.drain()
            await dispatcher.drain()
            reminders = [t for t in texts(api, 901) if "Podsetnik" in t]
            assert len(reminders) == 2 and "za 1 sat" in reminders[1]
            clock.advance(days=1)  # past the end: the check-in message expired unsent
            await dispatcher.drain()
            assert len([t for t in texts(api, 901) if "Podsetnik" in t]) == 2
            assert not [t for t in texts(api, 901) if "potvrdite prisustvo" in t]
        finally:
            await bot.session.close()
    statuses = [r["status"] for r in await service.reminder_rows(training_id)]
    assert statuses == ["sent", "sent"]


async def test_reminders_survive_a_restart(database_url: str) -> None:
    clock = Clock()
    first = Database.from_url(database_url)
    try:
        service = TrainingService(first, clock=clock)
        admin = await add_user(first, 910, role="admin")
        ana = await add_user(first, 911)
        training_id, _ = await service.create(admin, draft(clock))
        assert training_id is not None
        await service.sign_up(ana, training_id)
    finally:
        await first.dispose()  # the bot stops; nothing in memory survives

    clock.advance(days=1, hours=23)  # restarted a day later, an hour before the 24 h reminder
    second = Database.from_url(database_url)
    try:
        async with FakeBotAPI() as api:
            bot = bot_for(api)
            try:
                dispatcher = dispatcher_for(second, bot, clock)
                await dispatcher.drain()
                assert not [t for t in texts(api, 911) if "Podsetnik" in t]
                clock.advance(hours=1)
                await dispatcher.drain()
                assert len([t for t in texts(api, 911) if "Podsetnik" in t]) == 1
            finally:
                await bot.session.close()
    finally:
        await second.dispose()


async def test_reminder_missed_while_down_is_sent_late_or_expires(database: Database) -> None:
    clock = Clock()
    service = TrainingService(database, clock=clock)
    admin = await add_user(database, 920, role="admin")
    ana = await add_user(database, 921)
    training_id, _ = await service.create(admin, draft(clock))
    assert training_id is not None
    await service.sign_up(ana, training_id)
    async with FakeBotAPI() as api:
        bot = bot_for(api)
        try:
            dispatcher = dispatcher_for(database, bot, clock)
            await dispatcher.drain()
            # Down from before the 24 h reminder until 30 minutes before the start.
            clock.advance(days=3, minutes=-30)
            await dispatcher.drain()
            late = [t for t in texts(api, 921) if "Podsetnik" in t]
            assert len(late) == 2  # both still useful: the training has not started
        finally:
            await bot.session.close()

    # A second training; the bot is down until after it started: the reminders expire.
    clock2 = Clock()
    service2 = TrainingService(database, clock=clock2)
    t2, _ = await service2.create(admin, draft(clock2, title="ePisarnica"))
    assert t2 is not None
    await service2.sign_up(ana, t2)
    clock2.advance(days=3, minutes=5)
    async with FakeBotAPI() as api:
        bot = bot_for(api)
        try:
            await dispatcher_for(database, bot, clock2).drain()
            assert not [t for t in texts(api, 921) if "Podsetnik" in t]
        finally:
            await bot.session.close()
    assert [r["status"] for r in await service2.reminder_rows(t2)] == ["expired", "expired"]


async def test_change_of_time_moves_reminders_and_tells_registrants(database: Database) -> None:
    clock = Clock()
    service = TrainingService(database, clock=clock)
    admin = await add_user(database, 930, role="admin")
    ana = await add_user(database, 931)
    training_id, _ = await service.create(admin, draft(clock))
    assert training_id is not None
    await service.sign_up(ana, training_id)
    new_start = clock.now + timedelta(days=5)
    reply = await service.change(admin, training_id, starts_at=new_start)
    assert "izmenjena" in reply.text
    rows = await service.reminder_rows(training_id)
    assert sorted(r["not_before"] for r in rows) == [
        new_start - timedelta(hours=24), new_start - timedelta(hours=1)
    ]
    assert all(r["expires_at"] == new_start and r["status"] == "pending" for r in rows)
    async with FakeBotAPI() as api:
        bot = bot_for(api)
        try:
            dispatcher = dispatcher_for(database, bot, clock)
            await dispatcher.drain()
            changed = [m for m in api.seen_by(931) if "promenjena" in m.text]
            assert len(changed) == 1 and changed[0].method == "sendDocument"
            local = new_start.astimezone(BELGRADE).strftime("%d.%m.%Y. u %H:%M")
            assert local in changed[0].text
            clock.advance(days=2, minutes=1)  # the old 24 h moment: nothing now
            await dispatcher.drain()
            assert not [t for t in texts(api, 931) if "Podsetnik" in t]
            clock.advance(days=2)  # the new one
            await dispatcher.drain()
            assert len([t for t in texts(api, 931) if "Podsetnik" in t]) == 1
        finally:
            await bot.session.close()


async def test_cancelled_training_cancels_reminders_and_tells_everyone(database: Database) -> None:
    clock = Clock()
    service = TrainingService(database, clock=clock)
    admin = await add_user(database, 940, role="admin")
    ana = await add_user(database, 941)
    ivan = await add_user(database, 942)
    training_id, _ = await service.create(admin, draft(clock, capacity=1))
    assert training_id is not None
    await service.sign_up(ana, training_id)
    full = await service.sign_up(ivan, training_id)
    assert "popunjena" in full.text
    await service.sign_up(ivan, training_id, waitlist=True)
    reply = await service.cancel(admin, training_id)
    assert "otkazana" in reply.text
    assert {r["status"] for r in await service.reminder_rows(training_id)} == {"cancelled"}
    async with FakeBotAPI() as api:
        bot = bot_for(api)
        try:
            dispatcher = dispatcher_for(database, bot, clock)
            await dispatcher.drain()
            assert any("otkazana" in t for t in texts(api, 941))
            assert any("otkazana" in t for t in texts(api, 942))
            clock.advance(days=3)
            await dispatcher.drain()
            assert not [t for t in texts(api, 941) if "Podsetnik" in t]
        finally:
            await bot.session.close()
    again = await service.sign_up(ana, training_id)
    assert "otkazana" in again.text


async def test_full_training_waitlist_moves_up_when_someone_cancels(database: Database) -> None:
    clock = Clock()
    service = TrainingService(database, clock=clock)
    admin = await add_user(database, 950, role="admin")
    ana, ivan, mara = [await add_user(database, i) for i in (951, 952, 953)]
    training_id, _ = await service.create(admin, draft(clock, capacity=1))
    assert training_id is not None
    assert "Prijavljeni ste" in (await service.sign_up(ana, training_id)).text
    assert "1. po redu" in (await service.sign_up(ivan, training_id, waitlist=True)).text
    assert "2. po redu" in (await service.sign_up(mara, training_id, waitlist=True)).text
    listing = await service.upcoming(ivan)
    assert "na listi čekanja" in listing.text
    bye = await service.cancel_registration(ana, training_id)
    assert "Odjavljeni ste" in bye.text
    view = await service.get(training_id)
    assert view is not None and view.registered == 1 and view.waitlisted == 1
    async with FakeBotAPI() as api:
        bot = bot_for(api)
        try:
            await dispatcher_for(database, bot, clock).drain()
            promoted = [m for m in api.seen_by(952) if "Oslobodilo se mesto" in m.text]
            assert len(promoted) == 1 and promoted[0].method == "sendDocument"
            assert not any("Oslobodilo" in t for t in texts(api, 953))
        finally:
            await bot.session.close()
    # ana's reminders were cancelled, ivan's armed
    rows = await service.reminder_rows(training_id)
    by_user = {(r["user_id"], r["status"]) for r in rows}
    assert (ana.id, "cancelled") in by_user and (ivan.id, "pending") in by_user
    assert "2. po redu" not in (await service.sign_up(mara, training_id)).text  # now 1st


async def test_clerk_cannot_create_change_or_cancel(database: Database, caplog) -> None:
    clock = Clock()
    service = TrainingService(database, clock=clock)
    admin = await add_user(database, 960, role="admin")
    ana = await add_user(database, 961)
    training_id, _ = await service.create(admin, draft(clock))
    assert training_id is not None
    refused, reply = await service.create(ana, draft(clock))
    assert refused is None and "administrator" in reply.text
    assert "administrator" in (await service.cancel(ana, training_id)).text
    assert "administrator" in (await service.change(
        ana, training_id, starts_at=clock.now + timedelta(days=9))).text
    view = await service.get(training_id)
    assert view is not None and view.status == "active"
    assert any("refused" in r.getMessage() for r in caplog.records)


async def test_reminder_comes_in_the_clerks_script(database: Database) -> None:
    clock = Clock()
    service = TrainingService(database, clock=clock)
    admin = await add_user(database, 970, role="admin")
    vesna = await add_user(database, 971, language="sr-Cyrl")
    training_id, _ = await service.create(admin, draft(clock, title="Obuka za ePisarnicu"))
    assert training_id is not None
    reply = await service.sign_up(vesna, training_id)
    assert "Пријављени сте" in reply.text
    assert reply.text.endswith("\nПодсетићемо вас 24 сата, 1 сат пре почетка.")
    clock.advance(days=3, minutes=-30)
    async with FakeBotAPI() as api:
        bot = bot_for(api)
        try:
            await dispatcher_for(database, bot, clock).drain()
        finally:
            await bot.session.close()
        reminders = [t for t in texts(api, 971) if "Подсетник" in t]
        assert len(reminders) == 2
        assert "Obuka za ePisarnicu" in reminders[0]  # the title stays as the admin typed it


async def test_an_english_clerk_sees_trainings_and_sign_up_in_english(database: Database) -> None:
    """The training messages are extracted into the catalogue: none may reach an English
    clerk in Serbian (they did while they went through an alias babel did not extract)."""
    clock = Clock()
    service = TrainingService(database, clock=clock)
    admin = await add_user(database, 990, role="admin")
    john = await add_user(database, 991, language="en")
    jane = await add_user(database, 992, language="en")
    assert (await service.upcoming(john)).text == "There are no trainings announced at the moment."
    training_id, _ = await service.create(admin, draft(clock, title="eZUP basics", capacity=1))
    assert training_id is not None

    listing = await service.upcoming(john)
    assert listing.text.startswith("<b>Upcoming trainings</b>\n\n1. <b>eZUP basics</b>")
    assert "duration 90 min" in listing.text and "Seats: 0/1" in listing.text
    assert listing.text.endswith("\nnot signed up")
    signed = await service.sign_up(john, training_id)
    assert signed.text.startswith("✅ You are signed up for the training.\n")
    assert signed.text.endswith("\nWe will remind you 24 hours, 1 hour before it starts.")
    full = await service.sign_up(jane, training_id)
    assert full.text.startswith("All seats are taken. Would you like to join the waiting list?")
    waiting = await service.sign_up(jane, training_id, waitlist=True)
    assert waiting.text.startswith("You are on the waiting list, number 1 in line.")
    replies = (listing, signed, full, waiting, await service.upcoming(jane))
    assert [b.label for r in replies for row in r.buttons for b in row] == [
        "Sign up: eZUP basics", "Cancel my sign-up", "Put me on the waiting list",
        "Leave the waiting list", "Leave the waiting list: eZUP basics",
    ]
    serbian = ("obuk", "prijav", "mesta", "čekanj", "podset", " za ", " u ")
    for reply in replies:
        shown = (reply.text + " ".join(b.label for row in reply.buttons for b in row)).lower()
        assert not [word for word in serbian if word in shown], reply.text


async def test_service_interest_audience_and_clerks_who_said_nothing(database: Database) -> None:
    clock = Clock()
    service = TrainingService(database, clock=clock)
    admin = await add_user(database, 980, role="admin", services=["lei"])
    await add_user(database, 981, services=["ezup"])
    await add_user(database, 982, services=["eplacanje"])
    await add_user(database, 983, services=None)  # said nothing: gets everything
    nada = await add_user(database, 984, services=["eplacanje"])
    interests = InterestService(database)
    menu = await interests.toggle(nada.id, nada.language, "ezup")
    assert "✅ eZUP" in [b.label for row in menu.buttons for b in row]
    await service.create(admin, draft(clock, audience=Audience("service", ("ezup",))))
    async with FakeBotAPI() as api:
        bot = bot_for(api)
        try:
            await dispatcher_for(database, bot, clock).drain()
            got = {chat for chat in (980, 981, 982, 983, 984) if api.seen_by(chat)}
        finally:
            await bot.session.close()
    assert got == {981, 983, 984}


# --------------------------------------------------------------------------- validation


def test_dates_in_the_forms_admins_write() -> None:
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    expected = datetime(2026, 12, 15, 9, tzinfo=UTC)  # 10:00 in Belgrade (CET)
    for text in ("15.12.2026 10:00", "15.12.2026. u 10h", "2026-12-15 10:00",
                 "15. 12. 2026. u 10.00", "15.12.2026 u 10", "15.12.2026. у 10ч"):
        assert parse_when(text, now) == expected, text
    summer = parse_when("15.6.2027 10:30", now)
    assert summer == datetime(2027, 6, 15, 8, 30, tzinfo=UTC)  # CEST
    with pytest.raises(Invalid, match="prošao"):
        parse_when("1.11.2026 10:00", now)
    with pytest.raises(Invalid, match="ne postoji"):
        parse_when("31.2.2027 10:00", now)
    with pytest.raises(Invalid, match="Ne razumem datum"):
        parse_when("sutra u deset", now)


def test_duration_place_capacity_and_offsets() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("1,5 h") == 90
    assert parse_duration("1h30") == 90
    assert parse_duration("2 sata") == 120
    with pytest.raises(Invalid):
        parse_duration("dugo")
    assert parse_place("https://meet.example.rs/x") == ("https://meet.example.rs/x", None)
    assert parse_place("www.zoom.us/j/1") == ("https://www.zoom.us/j/1", None)
    assert parse_place("Trg slobode 1, Novi Sad") == (None, "Trg slobode 1, Novi Sad")
    with pytest.raises(Invalid, match="Link nije ispravan"):
        parse_place("https://localhost")
    with pytest.raises(Invalid, match="Link nije ispravan"):
        parse_place("htps://meet")
    assert parse_capacity("bez") is None
    assert parse_capacity("30") == 30
    with pytest.raises(Invalid):
        parse_capacity("trideset")
    assert parse_offsets("24h, 1h") == (timedelta(hours=24), timedelta(hours=1))
    assert parse_offsets("1d,30m") == (timedelta(days=1), timedelta(minutes=30))


def test_audience_answers_and_unknown_municipality() -> None:
    directory = MunicipalityDirectory.from_csv()
    assert parse_audience("svi", directory) == Audience("all")
    assert parse_audience("eZUP, ePlaćanje", directory) == Audience(
        "service", ("ezup", "eplacanje"))
    found = parse_audience("Novi Sad, cacak", directory)
    assert found.kind == "municipalities"
    assert found.values == ("Novi Sad", "Novi Sad (Novi Sad)", "Čačak")  # city + its municipality
    with pytest.raises(ValueError, match="nije jednoznačna"):
        parse_audience("Palilula", directory)
    with pytest.raises(ValueError, match="Ne poznajem opštinu"):
        parse_audience("Gotham", directory)
    assert parse_audience("uloga: mentori", directory, allow_roles=True) == Audience(
        "role", ("mentor",))


# --------------------------------------------------------------------------- forged buttons


async def test_forged_join_token_respects_audience_capacity_and_status(database: Database) -> None:
    """On Viber anyone can type `act:tr:j:<id>`: joining re-checks what the list would show,
    and the meeting link only reaches a clerk who is actually confirmed."""
    clock = Clock()
    service = TrainingService(database, clock=clock)
    admin = await add_user(database, 960, role="admin")
    insider = await add_user(database, 961)  # Novi Sad
    outsider = await add_user(database, 962, municipality="Niš")
    late = await add_user(database, 963)
    link = "https://meet.example.rs/ezup"
    training_id, _ = await service.create(
        admin, draft(clock, capacity=1, audience=Audience("municipalities", ("Novi Sad",)))
    )
    assert training_id is not None

    # Outside the audience: not in the list, and the forged token is refused without the link.
    assert "eZUP za početnike" not in (await service.upcoming(outsider)).text
    for token in (f"tr:j:{training_id}", f"tr:w:{training_id}"):
        forged = await service.perform(outsider, token)
        assert forged is not None and link not in forged.text
        assert "Prijavljeni ste" not in forged.text and "listu čekanja" not in forged.text
    view = await service.get(training_id)
    assert view is not None and (view.registered, view.waitlisted) == (0, 0)

    # The announcement and the list show no link to someone not yet confirmed.
    assert link not in (await service.upcoming(insider)).text
    async with database.uow() as uow:
        stmt = select(OutboxMessage).where(OutboxMessage.kind == "training_announce")
        announcements = list(await uow.session.scalars(stmt))
    assert announcements and all(link not in str(a.payload) for a in announcements)

    # In the audience: confirmed, and only now the link.
    joined = await service.perform(insider, f"tr:j:{training_id}")
    assert joined is not None and "Prijavljeni ste" in joined.text and link in joined.text
    assert link in (await service.upcoming(insider)).text

    # Full: a forged join does not register past the capacity nor reveal the link.
    full = await service.perform(late, f"tr:j:{training_id}")
    assert full is not None and link not in full.text and "Prijavljeni ste" not in full.text
    waiting = await service.perform(late, f"tr:w:{training_id}")
    assert waiting is not None and "listu čekanja" in waiting.text and link not in waiting.text
    view = await service.get(training_id)
    assert view is not None and (view.registered, view.waitlisted) == (1, 1)

    # Cancelled: closed for sign-up.
    await service.cancel(admin, training_id)
    closed = await service.perform(outsider, f"tr:j:{training_id}")
    assert closed is not None and "otkazana" in closed.text and link not in closed.text
