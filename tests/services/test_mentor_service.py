"""The mentor queue at the service level: real databases, an injected clock, no Telegram."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import select

from bot.channels.telegram_sender import TelegramSender
from bot.outbox import OutboxDispatcher
from bot.ratelimit import LocalRateLimiter
from bot.services.mentoring import Attachment, MentorConfig, MentoringService
from bot.services.pii import scrub
from bot.services.roles import RoleService
from bot.services.users import UserProfile, UserService
from bot.services.working_hours import WorkingHours
from storage.mentor import MentorRepository, MentorRequest
from storage.models import OutboxMessage
from storage.uow import Database
from tests.fakes.bot_api import BOT_TOKEN, FakeBotAPI
from tests.fakes.clock import Clock, belgrade, ordinary_week, today

GROUP = -100500
ADMIN_TG = "900"


# The week after the real today whose days (and the Monday after) are all working days.
MONDAY = ordinary_week()
FRIDAY, NEXT_MONDAY = MONDAY + timedelta(days=4), MONDAY + timedelta(days=7)


@pytest.fixture
def clock() -> Clock:
    """Wednesday 10:00 in Belgrade of that week; `database` (tests/conftest.py) runs on it too."""
    return Clock(belgrade(MONDAY + timedelta(days=2), 10))


def orthodox_easter(year: int) -> date:
    """Orthodox Easter (Meeus' Julian algorithm, shifted to the Gregorian calendar; 1900-2099)."""
    a, b, c = year % 4, year % 7, year % 19
    d = (19 * c + 15) % 30
    e = (2 * a + 4 * b - d + 34) % 7
    month, day = divmod(d + e + 114, 31)
    return date(year, month, day + 1) + timedelta(days=13)


@pytest.fixture
def users(database: Database) -> UserService:
    return UserService(database, frozenset({ADMIN_TG}))


@pytest.fixture
def mentoring(database: Database, clock: Clock) -> MentoringService:
    return MentoringService(database, MentorConfig(mentor_chat_id=GROUP), clock=clock)


async def clerk_with_question(
    database: Database, users: UserService, text: str = "Kako da prijavim grešku u eZUP-u?"
) -> tuple[UserProfile, int]:
    clerk = await users.get_or_register("telegram", "101", display_name="Milica Jovanović")
    clerk = await users.set_municipality(clerk.id, "Čačak")
    async with database.uow() as uow:
        row = await uow.questions.add(
            user_id=clerk.id, text=text, decision="escalate", entry_id="ezup-login", score=0.2
        )
        await uow.commit()
        return clerk, row.id


async def mentor(users: UserService, roles: RoleService, tg: str, name: str) -> UserProfile:
    admin = await users.get_or_register("telegram", ADMIN_TG, display_name="Admin")
    result = await roles.grant(admin, tg, "mentor")
    assert result.changed
    return await users.get_or_register("telegram", tg, display_name=name)


async def outbox(database: Database) -> list[OutboxMessage]:
    async with database.uow() as uow:
        return list(await uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def request_row(database: Database, number: int) -> MentorRequest:
    async with database.uow() as uow:
        row = await uow.repository(MentorRepository).get(number)
        assert row is not None
        return row


async def test_request_is_stored_before_the_clerk_hears_its_number_and_answer_time(
    database: Database, users: UserService, mentoring: MentoringService
):
    clerk, question_id = await clerk_with_question(database, users)
    created = await mentoring.create_request(
        clerk,
        question_id=question_id,
        details=["Greška se javlja posle prijave."],
        attachments=[Attachment("photo", "ph-1")],
    )
    assert created.new and created.number is not None
    assert f"#{created.number}" in created.reply.text
    assert "danas do 14:00" in created.reply.text  # 4 working hours after 10:00
    row = await request_row(database, created.number)
    assert (row.state, row.municipality, row.question) == (
        "new", "Čačak", "Kako da prijavim grešku u eZUP-u?"
    )
    assert row.details == "Greška se javlja posle prijave."
    assert row.attachments == [{"type": "photo", "file_id": "ph-1", "name": None}]
    (card,) = await outbox(database)
    assert card.kind == "mentor_card" and card.chat_id == str(GROUP)
    assert "Čačak" in card.payload["text"] and "Milica" in card.payload["text"]
    assert "ezup-login" in card.payload["text"]  # the bot's best guess
    assert card.payload["buttons"][0][0] == {"label": "Preuzmi", "action": f"mq:c:{row.id}"}


async def test_expected_answer_time_skips_the_night_the_weekend_and_holidays(
    database: Database, users: UserService, mentoring: MentoringService, clock: Clock
):
    clock.set(belgrade(FRIDAY, 15))  # Friday afternoon
    clerk, question_id = await clerk_with_question(database, users)
    created = await mentoring.create_request(clerk, question_id=question_id)
    assert f"u ponedeljak, {NEXT_MONDAY:%d.%m.}, do 11:00" in created.reply.text

    hours = WorkingHours()
    # Public holidays of the years to come: Orthodox Christmas (7 January), Orthodox Good
    # Friday and Easter Monday. Two working hours from 15:00 on the working day before
    # Christmas end at 09:00 on the next working day after it.
    for year in range(today().year, today().year + 3):
        christmas = date(year, 1, 7)
        easter = orthodox_easter(year)
        for holiday in (christmas, easter - timedelta(days=2), easter + timedelta(days=1)):
            assert not hours.is_workday(holiday), holiday
        before, after = christmas - timedelta(days=1), christmas + timedelta(days=1)
        while not hours.is_workday(before):
            before -= timedelta(days=1)
        while not hours.is_workday(after):
            after += timedelta(days=1)
        start = belgrade(before, 15)
        assert hours.add_working_time(start, timedelta(hours=2)) == belgrade(after, 9), year


async def test_the_same_question_or_update_never_opens_a_second_request(
    database: Database, users: UserService, mentoring: MentoringService
):
    clerk, question_id = await clerk_with_question(database, users)
    first = await mentoring.create_request(clerk, question_id=question_id, source_key="tg:1")
    again = await mentoring.create_request(clerk, question_id=question_id, source_key="tg:2")
    redelivered = await mentoring.create_request(clerk, text="drugo", source_key="tg:1")
    assert first.new and not again.new and not redelivered.new
    assert again.number == first.number == redelivered.number
    assert "već kod mentora" in again.reply.text
    assert len(await outbox(database)) == 1


async def test_claim_answer_follow_up_resolve_and_rate(
    database: Database, users: UserService, mentoring: MentoringService, clock: Clock
):
    roles = RoleService(database, frozenset({ADMIN_TG}))
    marko = await mentor(users, roles, "201", "Marko Mentor")
    clerk, question_id = await clerk_with_question(database, users)
    number = (await mentoring.create_request(clerk, question_id=question_id)).number
    assert number is not None

    clock.advance(minutes=5)
    assert (await mentoring.claim(marko, number)).ok
    ana = await mentor(users, roles, "202", "Ana")
    taken = await mentoring.claim(ana, number)
    assert not taken.ok and "Marko Mentor" in taken.reply.text
    clock.advance(minutes=10)
    answered = await mentoring.answer(marko, number, "Prijavite grešku na portalu, odeljak Pomoć.")
    assert answered.ok

    row = await request_row(database, number)
    assert row.state == "answered" and row.first_answer_at == clock.now
    to_clerk = [m for m in await outbox(database) if m.kind == "mentor_answer"]
    assert len(to_clerk) == 1 and to_clerk[0].chat_id == "101"
    text = to_clerk[0].payload["text"]
    assert "Kako da prijavim grešku u eZUP-u?" in text and "odeljak Pomoć" in text
    labels = [b["label"] for row_ in to_clerk[0].payload["buttons"] for b in row_]
    assert labels == ["Rešeno, hvala", "Imam dodatno pitanje"]

    followed = await mentoring.clerk_followup(clerk, number, "A gde je taj odeljak?")
    assert followed.ok
    row = await request_row(database, number)
    assert (row.state, row.claimed_by) == ("claimed", marko.id)
    to_marko = [m for m in await outbox(database) if m.kind == "mentor_followup"]
    assert len(to_marko) == 1 and to_marko[0].chat_id == "201"
    assert "A gde je taj odeljak?" in to_marko[0].payload["text"]
    assert any(
        m.kind == "mentor_group" and "A gde je taj odeljak?" in m.payload["text"]
        for m in await outbox(database)
    )

    await mentoring.answer(marko, number, "Gore desno, ikonica upitnika.")
    resolved = await mentoring.clerk_resolved(clerk, number)
    assert "Kako ocenjujete" in resolved.reply.text
    assert len(resolved.reply.buttons[0]) == 5
    assert (await mentoring.rate(clerk, number, 5)).ok
    row = await request_row(database, number)
    assert (row.state, row.closed_reason, row.rating) == ("closed", "resolved", 5)
    # Nobody else can rate or follow up on this clerk's request.
    assert not (await mentoring.rate(marko, number, 1)).ok


async def test_clerks_are_politely_refused_mentor_actions_and_the_attempt_is_logged(
    database: Database,
    users: UserService,
    mentoring: MentoringService,
    caplog: pytest.LogCaptureFixture,
):
    clerk, question_id = await clerk_with_question(database, users)
    number = (await mentoring.create_request(clerk, question_id=question_id)).number
    assert number is not None
    outsider = await users.get_or_register("telegram", "303", display_name="Neko")
    caplog.set_level(logging.WARNING)
    for result in (
        await mentoring.claim(outsider, number),
        await mentoring.answer(outsider, number, "odgovor"),
        await mentoring.close(outsider, number),
        await mentoring.add_to_knowledge_base(outsider, number),
    ):
        assert not result.ok
        assert "samo mentorima" in result.reply.text
    assert "samo mentorima" in (await mentoring.queue_list(outsider)).text
    refusals = [r for r in caplog.records if "role.refused" in r.getMessage()]
    assert len(refusals) == 5
    assert (await request_row(database, number)).state == "new"


async def test_admins_grant_and_revoke_roles_and_others_cannot(
    database: Database, users: UserService
):
    roles = RoleService(database, frozenset({ADMIN_TG}))
    admin = await users.get_or_register("telegram", ADMIN_TG, display_name="Admin")
    clerk = await users.get_or_register("telegram", "401")
    refused = await roles.grant(clerk, "401", "admin")
    assert not refused.changed and "samo administratorima" in refused.reply.text

    assert (await roles.grant(admin, "402", "mentor")).changed  # not met the bot yet: created
    assert (await users.get_or_register("telegram", "402")).role == "mentor"
    assert (await roles.grant(admin, "402", "admin")).changed
    assert (await roles.revoke(admin, "402", "admin")).changed
    assert (await users.get_or_register("telegram", "402")).role == "mentor"
    assert (await roles.revoke(admin, "402", "mentor")).changed
    assert (await users.get_or_register("telegram", "402")).role == "clerk"
    assert not (await roles.revoke(admin, ADMIN_TG, "admin")).changed  # configured admin
    assert not (await roles.grant(admin, "abc", "mentor")).changed
    async with database.uow() as uow:
        target = await uow.users.get_by_external("telegram", "402")
        assert target is not None
        changes = await uow.repository(MentorRepository).role_changes(target.id)
    assert [(c.old_role, c.new_role) for c in changes] == [
        ("clerk", "mentor"), ("mentor", "admin"), ("admin", "mentor"), ("mentor", "clerk")
    ]


async def _two_admins(database: Database, users: UserService) -> tuple[UserProfile, UserProfile]:
    """Two admins made in the app (no ADMIN_IDS): nothing but the database keeps them admins."""
    roles = RoleService(database, frozenset({ADMIN_TG}))
    boot = await users.get_or_register("telegram", ADMIN_TG, display_name="Boot")
    assert (await roles.grant(boot, "410", "admin")).changed
    assert (await roles.grant(boot, "411", "admin")).changed
    async with database.uow() as uow:  # the configured admin is gone; two app admins remain
        row = await uow.users.get(boot.id)
        assert row is not None
        await uow.session.delete(row)
        await uow.commit()
    return (await users.get_or_register("telegram", "410"),
            await users.get_or_register("telegram", "411"))


async def _admins(database: Database) -> list[str]:
    from storage.models import User

    async with database.uow(read_only=True) as uow:
        rows = await uow.session.scalars(select(User.external_id).where(User.role == "admin"))
        return sorted(rows)


async def test_demoted_admin_with_a_stale_profile_cannot_change_roles(
    database: Database, users: UserService
):
    """The profile was read when the update arrived; meanwhile another admin demoted them."""
    ana, ivan = await _two_admins(database, users)
    roles = RoleService(database)
    assert (await roles.revoke(ivan, "410", "admin")).changed  # Ivan demotes Ana
    assert ana.is_admin  # Ana's profile, read before, still says admin
    late = await roles.revoke(ana, "411", "admin")
    assert not late.changed and "samo administratorima" in late.reply.text
    assert not (await roles.grant(ana, "412", "admin")).changed
    assert await _admins(database) == ["411"]


async def test_two_admins_demoting_each_other_at_once_leave_an_admin(
    database: Database, users: UserService
):
    import asyncio

    ana, ivan = await _two_admins(database, users)
    roles = RoleService(database)
    results = await asyncio.gather(
        roles.revoke(ana, "411", "admin"), roles.revoke(ivan, "410", "admin")
    )
    assert sum(r.changed for r in results) == 1
    assert len(await _admins(database)) == 1


async def test_the_last_admin_is_never_removed(database: Database, users: UserService):
    ana, _ivan = await _two_admins(database, users)
    roles = RoleService(database, frozenset({ADMIN_TG}))
    # A configured admin (ADMIN_IDS) whose own row is not an admin in the database any more.
    boss = await users.get_or_register("telegram", ADMIN_TG, display_name="Boss")
    async with database.uow() as uow:
        row = await uow.users.get(boss.id)
        assert row is not None
        row.role = "mentor"
        await uow.commit()
    assert (await roles.revoke(boss, "411", "admin")).changed  # Ana is still there
    last = await roles.revoke(boss, "410", "mentor")  # would make Ana a clerk
    assert not last.changed and "poslednji administrator" in last.reply.text
    assert await _admins(database) == ["410"] and ana.external_id == "410"


async def test_unclaimed_request_reminds_the_group_after_30_minutes_and_admins_after_4_hours(
    database: Database, users: UserService, mentoring: MentoringService, clock: Clock
):
    await users.get_or_register("telegram", ADMIN_TG, display_name="Admin")
    clerk, question_id = await clerk_with_question(database, users)
    number = (await mentoring.create_request(clerk, question_id=question_id)).number

    clock.advance(minutes=29)
    assert await mentoring.check_sla() == 0
    clock.advance(minutes=2)
    assert await mentoring.check_sla() == 1
    assert await mentoring.check_sla() == 0  # once
    reminders = [m for m in await outbox(database) if m.kind == "mentor_group"]
    assert len(reminders) == 1 and f"#{number}" in reminders[0].payload["text"]
    assert reminders[0].chat_id == str(GROUP)

    clock.advance(hours=3, minutes=30)  # 4 h 1 min of working time
    assert await mentoring.check_sla() == 1
    assert await mentoring.check_sla() == 0
    to_admins = [m for m in await outbox(database) if m.kind == "mentor_sla"]
    assert [m.chat_id for m in to_admins] == [ADMIN_TG]


async def test_sla_counts_only_working_hours(
    database: Database, users: UserService, mentoring: MentoringService, clock: Clock
):
    service = mentoring
    clock.set(belgrade(FRIDAY, 15, 50))  # Friday 15:50
    clerk, question_id = await clerk_with_question(database, users)
    await service.create_request(clerk, question_id=question_id)
    clock.set(belgrade(NEXT_MONDAY, 8, 15))  # Monday 08:15: 25 working minutes
    assert await service.check_sla() == 0
    clock.advance(minutes=6)
    assert await service.check_sla() == 1


async def test_answered_request_closes_itself_after_days_without_reply(
    database: Database, users: UserService, mentoring: MentoringService, clock: Clock
):
    roles = RoleService(database, frozenset({ADMIN_TG}))
    marko = await mentor(users, roles, "201", "Marko")
    clerk, question_id = await clerk_with_question(database, users)
    number = (await mentoring.create_request(clerk, question_id=question_id)).number
    assert number is not None
    await mentoring.answer(marko, number, "Odgovor.")
    clock.advance(days=2)
    assert await mentoring.auto_close() == 0
    clock.advance(days=1, minutes=1)
    assert await mentoring.auto_close() == 1
    assert await mentoring.auto_close() == 0
    row = await request_row(database, number)
    assert (row.state, row.closed_reason) == ("closed", "auto")
    notes = [m for m in await outbox(database) if m.kind == "mentor_notice"]
    assert len(notes) == 1 and "3 dana" in notes[0].payload["text"]


async def test_mentor_is_told_when_the_clerk_blocked_the_bot(
    database: Database, users: UserService, mentoring: MentoringService
):
    roles = RoleService(database, frozenset({ADMIN_TG}))
    marko = await mentor(users, roles, "201", "Marko")
    clerk, question_id = await clerk_with_question(database, users)
    number = (await mentoring.create_request(clerk, question_id=question_id)).number
    assert number is not None
    async with FakeBotAPI() as api:
        bot = Bot(BOT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base_url)))
        try:
            limiter = LocalRateLimiter(per_second=1000, per_chat_interval=0, per_group_interval=0)
            dispatcher = OutboxDispatcher(database, {"telegram": TelegramSender(bot)}, limiter)
            dispatcher.on_delivered.append(mentoring.on_delivered)
            await dispatcher.drain()  # the card
            await mentoring.answer(marko, number, "Odgovor.")
            api.fail_next(1, status=403, method="sendMessage")  # the answer: edits don't count
            await dispatcher.drain()
            assert await mentoring.check_blocked() == 1  # the sweep finds it too: no repeat
            await dispatcher.drain()
        finally:
            await bot.session.close()
        to_marko = [m for m in api.seen_by(201) if "blokirao" in m.text]
        in_group = [m for m in api.seen_by(GROUP) if "blokirao" in m.text]
        assert len(to_marko) == 1 and len(in_group) == 1


async def test_answer_committed_before_a_crash_is_delivered_exactly_once_after_restart(
    database_url: str, users: UserService, clock: Clock
):
    first = Database.from_url(database_url, clock=clock)
    users = UserService(first, frozenset({ADMIN_TG}))
    service = MentoringService(first, MentorConfig(mentor_chat_id=GROUP), clock=clock)
    roles = RoleService(first, frozenset({ADMIN_TG}))
    marko = await mentor(users, roles, "201", "Marko")
    clerk, question_id = await clerk_with_question(first, users)
    number = (await service.create_request(clerk, question_id=question_id)).number
    assert number is not None
    await service.answer(marko, number, "Odgovor koji mora da stigne.")
    await first.dispose()  # the process dies before its dispatcher ran

    second = Database.from_url(database_url, clock=clock)
    try:
        async with FakeBotAPI() as api:
            bot = Bot(
                BOT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base_url))
            )
            try:
                limiter = LocalRateLimiter(per_second=1000, per_chat_interval=0,
                                           per_group_interval=0)
                dispatcher = OutboxDispatcher(second, {"telegram": TelegramSender(bot)}, limiter)
                await dispatcher.drain()
                await dispatcher.drain()
            finally:
                await bot.session.close()
            answers = [m for m in api.seen_by(101) if "mora da stigne" in m.text]
            assert len(answers) == 1
    finally:
        await second.dispose()


async def test_knowledge_base_draft_has_personal_data_removed(
    database: Database, users: UserService, mentoring: MentoringService
):
    roles = RoleService(database, frozenset({ADMIN_TG}))
    marko = await mentor(users, roles, "201", "Marko Marković")
    clerk, question_id = await clerk_with_question(
        database,
        users,
        "Stranka Petar Petrović (JMBG 0101990710123, tel. 064/123-45-67, petar@example.rs) "
        "ne vidi dokument u eSandučetu. Pozdrav, Milica Jovanović",
    )
    number = (await mentoring.create_request(clerk, question_id=question_id)).number
    assert number is not None
    refused = await mentoring.add_to_knowledge_base(marko, number)
    assert not refused.ok  # nothing answered yet
    await mentoring.answer(marko, number, "Neka stranka pozove 011 123 4567. Marko Marković")
    assert (await mentoring.add_to_knowledge_base(marko, number)).ok
    assert "već u nacrtima" in (await mentoring.add_to_knowledge_base(marko, number)).reply.text
    async with database.uow() as uow:
        (draft,) = await uow.repository(MentorRepository).drafts()
    for secret in ("Petar", "Petrović", "0101990710123", "064", "petar@", "Milica",
                   "Jovanović", "011 123", "Marković"):
        assert secret not in draft.question + draft.answer, secret
    assert "ne vidi dokument u eSandučetu" in draft.question


def test_scrub_keeps_ordinary_numbers_and_words():
    text = "Član 103 ZUP-a, rok 15 dana, 2026. godine; Gospodin Jovan Ilić zvao sa +381 64 1234567"
    cleaned = scrub(text)
    assert "Član 103" in cleaned and "15 dana" in cleaned and "2026." in cleaned
    assert "Jovan" not in cleaned and "Ilić" not in cleaned and "1234567" not in cleaned


async def test_mentor_lists_show_open_requests_oldest_first(
    database: Database, users: UserService, mentoring: MentoringService, clock: Clock
):
    roles = RoleService(database, frozenset({ADMIN_TG}))
    marko = await mentor(users, roles, "201", "Marko")
    clerk, q1 = await clerk_with_question(database, users, "prvo pitanje")
    _, q2 = await clerk_with_question(database, users, "drugo pitanje")
    n1 = (await mentoring.create_request(clerk, question_id=q1)).number
    clock.advance(minutes=1)
    n2 = (await mentoring.create_request(clerk, question_id=q2)).number
    assert n1 is not None and n2 is not None
    await mentoring.claim(marko, n2)
    listing = (await mentoring.queue_list(marko)).text
    assert listing.index("prvo pitanje") < listing.index("drugo pitanje")
    mine = (await mentoring.queue_list(marko, mine=True)).text
    assert "drugo pitanje" in mine and "prvo pitanje" not in mine
