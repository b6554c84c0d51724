"""Outgoing Bot API calls through the real aiogram session against the fake server:
429 waits retry_after and retries, 5xx and network errors retry with back-off, 403 reports the
blocked chat, other errors are not retried."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramServerError

from bot.services.replies import Reply
from bot.telegram.metrics import Metrics
from bot.telegram.session import RetryMiddleware, RetryPolicy
from bot.telegram.ui import send_reply
from tests.fakes.bot_api import FakeBotAPI

CHAT = 4242


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as fake:
        yield fake


class Blocked:
    def __init__(self) -> None:
        self.chats: list[int] = []

    async def __call__(self, chat_id: int) -> None:
        self.chats.append(chat_id)


def make_bot(api: FakeBotAPI, blocked: Blocked | None = None, attempts: int = 4) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.base_url))
    session.middleware(
        RetryMiddleware(
            RetryPolicy(attempts=attempts, base_delay=0.01, max_delay=0.02),
            on_blocked=blocked,
            metrics=Metrics(),
        )
    )
    return Bot(api.token, session=session, default=DefaultBotProperties(parse_mode="HTML"))


async def test_too_many_requests_waits_and_retries(api: FakeBotAPI) -> None:
    bot = make_bot(api)
    api.fail_next(1, status=429, retry_after=1, method="sendMessage")
    try:
        message = await bot.send_message(CHAT, "Dobar dan")
    finally:
        await bot.session.close()
    assert message.text == "Dobar dan"
    attempts = api.calls_of("sendMessage")
    assert [call.status for call in attempts] == [429, 200]
    assert [m.text for m in api.seen_by(CHAT)] == ["Dobar dan"]


async def test_server_errors_are_retried_with_backoff(api: FakeBotAPI) -> None:
    bot = make_bot(api)
    api.fail_next(2, status=502, method="sendMessage")
    try:
        await bot.send_message(CHAT, "Posle dve greške")
    finally:
        await bot.session.close()
    assert [call.status for call in api.calls_of("sendMessage")] == [502, 502, 200]


async def test_network_errors_are_retried(api: FakeBotAPI) -> None:
    bot = make_bot(api)
    api.fail_next(1, method="sendMessage", drop_connection=True)
    try:
        await bot.send_message(CHAT, "Veza je pukla pa se vratila")
    finally:
        await bot.session.close()
    assert [m.text for m in api.seen_by(CHAT)] == ["Veza je pukla pa se vratila"]


async def test_retries_give_up_after_the_last_attempt(api: FakeBotAPI) -> None:
    bot = make_bot(api, attempts=3)
    api.fail_next(5, status=500, method="sendMessage")
    try:
        with pytest.raises(TelegramServerError):
            await bot.send_message(CHAT, "Nikako")
    finally:
        await bot.session.close()
    assert len(api.calls_of("sendMessage")) == 3


async def test_blocked_bot_reports_the_chat_and_does_not_retry(api: FakeBotAPI) -> None:
    blocked = Blocked()
    bot = make_bot(api, blocked)
    api.fail_next(1, status=403, method="sendMessage")
    try:
        with pytest.raises(TelegramForbiddenError):
            await bot.send_message(CHAT, "Halo?")
    finally:
        await bot.session.close()
    assert blocked.chats == [CHAT]
    assert len(api.calls_of("sendMessage")) == 1


async def test_bad_request_is_not_retried(api: FakeBotAPI) -> None:
    bot = make_bot(api)
    api.fail_next(1, status=400, method="sendMessage", description="Bad Request: can't parse")
    try:
        with pytest.raises(TelegramBadRequest):
            await bot.send_message(CHAT, "<b>")
    finally:
        await bot.session.close()
    assert len(api.calls_of("sendMessage")) == 1


async def test_reply_with_broken_markup_still_reaches_the_clerk_as_plain_text(
    api: FakeBotAPI,
) -> None:
    bot = make_bot(api)
    try:
        await send_reply(bot, CHAT, Reply("<b>Korak 1 &amp; korak 2 <br> kraj"))
    finally:
        await bot.session.close()
    assert [call.status for call in api.calls_of("sendMessage")] == [400, 200]
    assert [m.text for m in api.seen_by(CHAT)] == ["Korak 1 & korak 2  kraj"]
