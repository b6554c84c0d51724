"""Webhook mode: the bot registers its webhook with the secret, answers updates POSTed with the
right X-Telegram-Bot-Api-Secret-Token, refuses the rest, and handles a redelivered update once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import event

from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.bot_api import FakeBotAPI, message_update
from tests.fakes.harness import WEBHOOK_SECRET, BotUnderTest

pytestmark = pytest.mark.asyncio(loop_scope="module")

EZUP_ACCESS_QUESTION = (
    "Kako naš organ dobija pristup podacima iz službenih evidencija preko eZUP-a?"
)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def webhook_bot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BotUnderTest]:
    async with (
        fresh_database_url(request.param, tmp_path_factory.mktemp("db")) as url,
        FakeBotAPI() as api,
        BotUnderTest(api, url, webhook=True) as running,
    ):
        yield running


async def test_webhook_is_registered_with_the_secret(webhook_bot: BotUnderTest) -> None:
    (call,) = webhook_bot.api.calls_of("setWebhook")
    assert call.params["url"] == "https://bot.example.rs/telegram/webhook"
    assert call.params["secret_token"] == WEBHOOK_SECRET
    assert webhook_bot.api.calls_of("getUpdates") == []


async def test_webhook_with_the_right_secret_is_answered(webhook_bot: BotUnderTest) -> None:
    ana = webhook_bot.clerk(7001, language_code=None)
    (answer,) = await ana.say("kako da dobijem pristup ezupu")
    assert EZUP_ACCESS_QUESTION in answer.text


@pytest.mark.parametrize("secret", ["wrong-secret", "", None], ids=["wrong", "empty", "missing"])
async def test_webhook_without_the_right_secret_is_rejected(
    webhook_bot: BotUnderTest, secret: str | None
) -> None:
    before = webhook_bot.completed
    clerk_id = 7100 + len(secret or "") + (1 if secret is None else 0)
    update = message_update(webhook_bot.next_update_id(), clerk_id, "kako da dobijem pristup ezupu")
    response = await webhook_bot.post_update(update, secret=secret)
    assert response.status == 401
    # The rejected update left no trace; the next genuine one is handled as usual.
    ana = webhook_bot.clerk(clerk_id, language_code=None)
    await ana.say("/pomoc")
    assert len(ana.chat) == 1
    assert webhook_bot.completed == before + 1
    assert await webhook_bot.stored_questions(clerk_id) == []


@pytest.mark.parametrize(
    "body", [b"not json at all", b"[1, 2]", b'{"message": {"text": "hi"}}'],
    ids=["not-json", "a-list", "no-update-id"],
)
async def test_webhook_body_that_is_not_an_update_gets_400(
    webhook_bot: BotUnderTest, body: bytes
) -> None:
    before = webhook_bot.completed
    status, answer = await webhook_bot.post_raw(body)
    assert status == 400 and answer["ok"] is False
    ana = webhook_bot.clerk(7200 + len(body), language_code=None)
    await ana.say("/pomoc")  # and the bot goes on as usual
    assert webhook_bot.completed == before + 1


async def test_duplicated_webhook_update_is_handled_once(webhook_bot: BotUnderTest) -> None:
    update = message_update(webhook_bot.next_update_id(), 7003, "kako da dobijem pristup ezupu")
    await webhook_bot.deliver(update)
    response = await webhook_bot.post_update(update)  # Telegram sends it again
    assert response.status == 200  # acknowledged, not handled again
    await asyncio.sleep(0.2)
    assert len(webhook_bot.api.seen_by(7003)) == 1
    assert len(await webhook_bot.stored_questions(7003)) == 1


async def test_an_update_is_kept_before_telegram_gets_its_200(webhook_bot: BotUnderTest) -> None:
    assert webhook_bot.services is not None
    database = webhook_bot.services.database
    update_id = webhook_bot.next_update_id()
    update = message_update(update_id, 7004, "kako da dobijem pristup ezupu")
    before = webhook_bot.completed
    response = await webhook_bot.post_update(update)
    assert response.status == 200
    async with database.uow(read_only=True) as uow:  # claimed before the answer, not after
        assert await uow.processed_updates.is_processed("telegram", update_id)
    await webhook_bot.wait_completed(before + 1)


async def test_with_the_database_down_telegram_gets_503_and_its_retry_is_answered(
    webhook_bot: BotUnderTest,
) -> None:
    assert webhook_bot.services is not None
    engine = webhook_bot.services.database.engine.sync_engine

    def refuse(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lower().lstrip().startswith("insert into processed_updates"):
            raise engine.dialect.loaded_dbapi.OperationalError("database is down")

    update = message_update(webhook_bot.next_update_id(), 7005, "kako da dobijem pristup ezupu")
    event.listen(engine, "before_cursor_execute", refuse)
    try:
        response = await webhook_bot.post_update(update)
    finally:
        event.remove(engine, "before_cursor_execute", refuse)
    assert response.status == 503  # Telegram will send it again
    assert webhook_bot.api.seen_by(7005) == []
    await webhook_bot.deliver(update)  # the retry, with the database back
    (answer,) = webhook_bot.api.seen_by(7005)
    assert "57/2019" in answer.text  # the eZUP access entry (in the clerk's script)


async def test_health_in_webhook_mode(webhook_bot: BotUnderTest) -> None:
    status, body = await webhook_bot.get("/healthz")
    assert status == 200 and json.loads(body) == {
        "status": "ok",
        "mode": "webhook",
        "database": "ok",
    }
