"""/obrisi_me leaves nothing of the clerk with the mentors or in the outbox (issue #13): no
queued card edit puts the question back, no follow-up goes out afterwards, the cards of
closed requests are retracted too, and no outbox row, card or draft keeps the clerk's data."""

from __future__ import annotations

import json

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import select

from bot.channels.telegram_sender import TelegramSender
from bot.outbox import OutboxDispatcher
from bot.ratelimit import LocalRateLimiter
from bot.services.mentoring import MentorConfig, MentoringService
from bot.services.privacy import PrivacyService
from bot.services.roles import RoleService
from bot.services.users import UserService
from storage.mentor import MentorRepository
from storage.models import OutboxMessage
from storage.uow import Database
from tests.fakes.bot_api import BOT_TOKEN, FakeBotAPI
from tests.fakes.clock import Clock, belgrade, ordinary_week
from tests.services.test_mentor_service import ADMIN_TG, GROUP, mentor

QUESTION = ("Stranka (JMBG 0101990710123, tel. 064/123-45-67) ne vidi dokument u eSandučetu, "
            "a mi u Čačku ne znamo zašto.")
FOLLOWUP = "Stranka ponovo zove sa 064/123-45-67, JMBG 0101990710123."
SECRETS = ("Milica", "Jovanović", "Čača", "0101990710123", "064/123-45-67", "ne vidi dokument",
           "ponovo zove")


@pytest.fixture
def clock() -> Clock:
    return Clock(belgrade(ordinary_week(), 10))


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


async def test_deletion_leaves_nothing_of_the_clerk_in_cards_outbox_or_drafts(
    database: Database, clock: Clock
) -> None:
    users = UserService(database, frozenset({ADMIN_TG}))
    roles = RoleService(database, frozenset({ADMIN_TG}))
    mentoring = MentoringService(database, MentorConfig(mentor_chat_id=GROUP), clock=clock)
    privacy = PrivacyService(database, clock=clock)
    marko = await mentor(users, roles, "201", "Marko Mentor")
    clerk = await users.get_or_register("telegram", "101", display_name="Milica Jovanović")
    clerk = await users.set_municipality(clerk.id, "Čačak")

    async def ask(text: str) -> int:
        async with database.uow() as uow:
            question = await uow.questions.add(
                user_id=clerk.id, text=text, decision="escalate", entry_id="esanduce", score=0.2)
            await uow.commit()
        number = (await mentoring.create_request(clerk, question_id=question.id)).number
        assert number is not None
        return number

    async with FakeBotAPI() as api:
        bot = Bot(BOT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base_url)))
        limiter = LocalRateLimiter(per_second=1000, per_chat_interval=0, per_group_interval=0)
        dispatcher = OutboxDispatcher(database, {"telegram": TelegramSender(bot)}, limiter)
        dispatcher.on_delivered.append(mentoring.on_delivered)
        try:
            # A request answered, turned into a KB draft and closed, its card in the group.
            closed = await ask(QUESTION)
            await dispatcher.drain()
            assert (await mentoring.claim(marko, closed)).ok
            assert (await mentoring.answer(marko, closed, "Neka proveri spam.")).ok
            assert (await mentoring.add_to_knowledge_base(marko, closed)).ok
            assert (await mentoring.clerk_resolved(clerk, closed)).ok
            await dispatcher.drain()
            # An open one: claimed and answered; the clerk follows up. The card edit and the
            # follow-up to the mentor are still queued when the clerk deletes their data.
            open_ = await ask(QUESTION)
            await dispatcher.drain()
            assert (await mentoring.claim(marko, open_)).ok
            assert (await mentoring.answer(marko, open_, "Pogledajte uputstvo.")).ok
            await dispatcher.drain()
            assert (await mentoring.clerk_followup(clerk, open_, FOLLOWUP)).ok
            assert any(_leaks(m.text) for m in api.seen_by(GROUP))  # the cards show it now
            before_deletion = len(api.calls)

            assert (await privacy.delete_user(clerk.id, actor=clerk)).done
            clock.advance(minutes=10)
            await dispatcher.drain()
        finally:
            await bot.session.close()

        after = api.calls[before_deletion:]
        assert not [c.text for c in after if _leaks(c.text)], "sent after the deletion"
        assert not [c.text for c in after if str(c.chat_id) == "201"
                    and "Dodatno pitanje" in c.text], "the follow-up went out"
        for message in api.seen_by(GROUP):  # the cards of both requests, as the group sees them
            assert not _leaks(message.text), message.text
    async with database.uow() as uow:
        rows = list(await uow.session.scalars(select(OutboxMessage)))
        drafts = await uow.repository(MentorRepository).drafts()
    for row in rows:
        assert not _leaks(json.dumps(row.payload, ensure_ascii=False)), (row.kind, row.payload)
    for draft in drafts:
        assert not _leaks(draft.question + draft.answer), draft.question


async def test_retraction_waits_for_a_card_edit_a_dispatcher_is_sending(
    database: Database, clock: Clock
) -> None:
    """A card edit claimed by a dispatcher just before the deletion may still go out: the
    note replacing the card is queued after that claim's lease, so it is the last edit."""
    users = UserService(database, frozenset({ADMIN_TG}))
    roles = RoleService(database, frozenset({ADMIN_TG}))
    mentoring = MentoringService(database, MentorConfig(mentor_chat_id=GROUP), clock=clock)
    marko = await mentor(users, roles, "201", "Marko Mentor")
    clerk = await users.get_or_register("telegram", "101", display_name="Milica Jovanović")
    async with database.uow() as uow:
        question = await uow.questions.add(
            user_id=clerk.id, text=QUESTION, decision="escalate", entry_id=None, score=0.1)
        await uow.commit()
    number = (await mentoring.create_request(clerk, question_id=question.id)).number
    assert number is not None
    async with database.uow() as uow:  # the card was sent as message 77
        (card,) = await uow.outbox.claim_due(limit=10)
        await uow.outbox.mark_sent(card.id, "77", claim=card.attempts)
        await uow.commit()
    await mentoring.sync_cards()
    assert (await mentoring.claim(marko, number)).ok  # queues a card edit with the question
    async with database.uow() as uow:  # a dispatcher takes it and is sending it
        claimed = await uow.outbox.claim_due(limit=10, lease_seconds=120)
        await uow.commit()
    edit = next(row for row in claimed if row.kind == "mentor_card_edit")
    assert edit.lease_until is not None

    assert (await PrivacyService(database, clock=clock).delete_user(clerk.id)).done
    async with database.uow() as uow:
        assert not await uow.outbox.mark_sent(edit.id, "77", claim=edit.attempts)  # cancelled
        rows = {row.dedupe_key: row for row in await uow.session.scalars(select(OutboxMessage))}
    note = rows[f"privacy_card:{number}"]
    assert note.payload["edit_message_id"] == 77 and not _leaks(note.payload["text"])
    assert note.not_before > edit.lease_until
