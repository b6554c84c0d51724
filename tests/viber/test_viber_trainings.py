"""Trainings and broadcasts reach Viber clerks: sign-up from Viber, the calendar file and the
reminders arrive on Viber through the outbox, and broadcasts include Viber users only when
VIBER_BROADCASTS says so (Viber bills messages the bot starts); deliveries count per channel."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.channels.viber_client import ViberSettings, broadcast_channels
from bot.services.audience import Audience
from bot.services.broadcasts import BroadcastService
from bot.services.trainings import TrainingDraft
from bot.services.users import UserProfile
from storage.clock import utcnow
from storage.models import OutboxMessage
from tests.fakes.viber_api import ViberBotUnderTest, telegram_user_with_role

pytestmark = pytest.mark.asyncio(loop_scope="module")



async def _admin(bot: ViberBotUnderTest, telegram_id: str) -> UserProfile:
    return await telegram_user_with_role(bot, telegram_id, "Admin Ana", "admin")


async def _training(bot: ViberBotUnderTest, title: str, starts_at: datetime) -> int:
    assert bot.services is not None
    admin = await _admin(bot, "900100")
    draft = TrainingDraft(
        title=title,
        service="ezup",
        starts_at=starts_at,
        duration_minutes=90,
        link="https://meet.example.rs/ezup",
    )
    training_id, _reply = await bot.services.trainings.create(admin, draft)
    assert training_id is not None
    return training_id


async def _viber_rows(bot: ViberBotUnderTest, user_external_id: str) -> list[OutboxMessage]:
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        result = await uow.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.channel == "viber", OutboxMessage.chat_id == user_external_id)
            .order_by(OutboxMessage.id)
        )
        return list(result)


async def test_viber_clerk_signs_up_and_gets_the_calendar_and_both_reminders(
    bot: ViberBotUnderTest,
) -> None:
    starts = (utcnow() + timedelta(days=3)).replace(microsecond=0)
    await _training(bot, "eZUP za početnike", starts)
    clerk = bot.user(name="Vesna")
    (listing,) = await clerk.say("/obuke")
    assert "eZUP za početnike" in listing.text and "<b>" not in listing.text
    (signed,) = await clerk.tap("Prijavi se: eZUP za početnike", listing)
    assert "Prijavljeni ste na obuku" in signed.text
    assert any(label.startswith("Odjavi se") for label in signed.button_labels)

    rows = await _viber_rows(bot, clerk.id)
    kinds = sorted(row.kind for row in rows)
    # calendar + 24 h + 1 h + the check-in at the start
    assert kinds.count("training_ics") == 1 and len(rows) == 4
    assert kinds.count("training_checkin") == 1

    # The calendar file now (no public URL in this test: the text says where to get it).
    before = len(clerk.chat)
    await bot.dispatcher().drain()
    (calendar,) = clerk.chat[before:]
    assert "obuka-" in calendar.text and ".ics" in calendar.text

    # 24 hours before: the first reminder; 1 hour before: the second; each once.
    day_before = starts - timedelta(hours=23)
    assert await bot.dispatcher(clock=lambda: day_before).drain() == 1
    assert "eZUP za početnike" in clerk.last.text
    assert await bot.dispatcher(clock=lambda: day_before).drain() == 0
    hour_before = starts - timedelta(minutes=50)
    assert await bot.dispatcher(clock=lambda: hour_before).drain() == 1
    assert len(clerk.chat) == before + 3
    # At the start: "Prisutan/na sam" (the button works on Viber as on Telegram).
    at_start = starts + timedelta(minutes=1)
    assert await bot.dispatcher(clock=lambda: at_start).drain() == 1
    assert "potvrdite prisustvo" in clerk.last.text
    assert "Prisutan/na sam" in clerk.last.button_labels
    assert all(row.status == "sent" for row in await _viber_rows(bot, clerk.id))


async def test_viber_clerk_who_unsubscribed_gets_no_reminder(bot: ViberBotUnderTest) -> None:
    starts = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    await _training(bot, "ePlaćanje u praksi", starts)
    clerk = bot.user()
    (listing,) = await clerk.say("/obuke")
    await clerk.tap("Prijavi se: ePlaćanje u praksi", listing)
    await bot.dispatcher().drain()  # the calendar
    await clerk.unsubscribe()
    before = len(clerk.chat)
    await bot.dispatcher(clock=lambda: starts - timedelta(hours=23)).drain()
    assert len(clerk.chat) == before
    statuses = [(row.kind, row.status) for row in await _viber_rows(bot, clerk.id)]
    assert ("reminder", "blocked") in statuses  # Viber said "not subscribed"
    assert ("training_ics", "sent") in statuses


@pytest.mark.parametrize("include_viber", [False, True], ids=["viber-off", "viber-on"])
async def test_broadcasts_include_viber_users_only_when_switched_on(
    bot: ViberBotUnderTest, include_viber: bool
) -> None:
    assert bot.services is not None
    database = bot.services.database
    admin = await _admin(bot, "900200")
    reader = bot.user(name="Čitalac")
    await reader.say("dobar dan")
    gone = bot.user(name="Otišla")
    await gone.say("dobar dan")
    await gone.unsubscribe()
    settings = ViberSettings(  # type: ignore[call-arg]
        _env_file=None, auth_token=SecretStr("t"), broadcasts=include_viber
    )
    broadcasts = BroadcastService(database, channels=broadcast_channels(settings))
    broadcast_id, _preview = await broadcasts.draft(
        admin, "<b>Nova verzija eZUP-a</b> od ponedeljka.", Audience("all")
    )
    assert broadcast_id is not None
    await broadcasts.start(admin, broadcast_id, admin_channel="telegram", admin_chat_id="900200")
    batch = broadcasts.batch(broadcast_id)
    before = len(reader.chat)
    await bot.dispatcher().drain()
    async with database.uow() as uow:
        per_channel = dict(
            (
                await uow.session.execute(
                    select(OutboxMessage.channel, func.count())
                    .where(OutboxMessage.batch == batch)
                    .group_by(OutboxMessage.channel)
                )
            ).all()
        )
        viber_receivers = set(
            await uow.session.scalars(
                select(OutboxMessage.chat_id).where(
                    OutboxMessage.batch == batch, OutboxMessage.channel == "viber"
                )
            )
        )
    assert per_channel.get("telegram", 0) >= 1  # the admin, at least
    assert gone.id not in viber_receivers  # unsubscribed: inactive, skipped
    if include_viber:
        assert reader.id in viber_receivers
        assert reader.chat[before:][-1].text == "*Nova verzija eZUP-a* od ponedeljka."
    else:
        assert "viber" not in per_channel
        assert reader.chat[before:] == []


async def test_viber_clerk_checks_in_rates_and_comments(bot: ViberBotUnderTest) -> None:
    """Issue #16 on Viber: the check-in at the start, the feedback question after the end,
    the rating once, the comment as the next text (carried in tracking_data)."""
    starts = (utcnow() + timedelta(minutes=5)).replace(microsecond=0)
    training_id = await _training(bot, "eSanduče uživo", starts)
    clerk = bot.user(name="Jelena")
    (listing,) = await clerk.say("/obuke")
    await clerk.tap("Prijavi se: eSanduče uživo", listing)
    await bot.dispatcher().drain()  # the calendar
    assert await bot.dispatcher(clock=lambda: starts + timedelta(minutes=1)).drain() == 1
    checkin = clerk.last
    assert "Prisutan/na sam" in checkin.button_labels
    (recorded,) = await clerk.tap("Prisutan/na sam", checkin)
    assert "Prisustvo je zabeleženo" in recorded.text
    (again,) = await clerk.tap("Prisutan/na sam", checkin)
    assert "već zabeleženo" in again.text

    ends = starts + timedelta(minutes=91)
    assert await bot.dispatcher(clock=lambda: ends).drain() == 1
    question = clerk.last
    assert "Kako biste je ocenili" in question.text
    (thanks,) = await clerk.tap("5", question)
    assert "Hvala na oceni 5" in thanks.text
    (prompt,) = await clerk.tap("Dodaj komentar", thanks)
    assert "Napišite komentar" in prompt.text
    (saved,) = await clerk.say("Odlično objašnjeno")
    assert "Komentar je zabeležen" in saved.text
    assert bot.services is not None
    profile = await bot.services.users.get_or_register("viber", clerk.id, "Jelena")
    admin = await _admin(bot, "900100")
    lines = await bot.services.trainings.attendance.lines(admin, training_id)
    assert lines is not None
    [line] = [item for item in lines if item.user_id == profile.id]
    assert (line.attended, line.rating, line.comment) == (True, 5, "Odlično objašnjeno")
