"""/healthz tells the truth (issue #13): 503 when the outbox dispatcher stopped claiming,
Redis does not answer, or updates wait longer than the replay window; 200 otherwise."""

from __future__ import annotations

import asyncio
import json
import subprocess

from aiogram.utils.backoff import BackoffConfig
from sqlalchemy import text

from bot.runtime import RuntimeOptions
from tests.fakes.bot_api import FakeBotAPI, message_update
from tests.fakes.clock import Clock
from tests.fakes.harness import FAST_RETRIES, BotUnderTest
from tests.reliability.test_redis_down import own_redis  # noqa: F401  (fixture)


async def _health(bot: BotUnderTest) -> tuple[int, dict]:
    status, body = await bot.get("/healthz")
    return status, json.loads(body)


async def _until_unhealthy(bot: BotUnderTest, timeout: float = 10.0) -> tuple[int, dict]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, body = await _health(bot)
        if status != 200 or loop.time() > deadline:
            return status, body
        await asyncio.sleep(0.2)


async def test_healthz_is_503_when_the_outbox_dispatcher_stopped(database_url: str) -> None:
    async with FakeBotAPI() as api, BotUnderTest(api, database_url, background_work=True) as bot:
        status, body = await _health(bot)
        assert status == 200 and body["outbox"] == "ok", body
        assert bot.services is not None
        async with bot.services.database.engine.begin() as conn:  # the schema breaks under it
            await conn.execute(text("ALTER TABLE outbox RENAME TO outbox_gone"))
        status, body = await _until_unhealthy(bot)
        async with bot.services.database.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE outbox_gone RENAME TO outbox"))
    assert status == 503 and body["outbox"] == "stopped", body


async def test_healthz_is_503_when_redis_is_down(
    own_redis: tuple[subprocess.Popen[bytes], str],  # noqa: F811
    database_url: str,
) -> None:
    server, redis_url = own_redis
    async with FakeBotAPI() as api, BotUnderTest(api, database_url, redis_url=redis_url) as bot:
        status, body = await _health(bot)
        assert status == 200 and body["redis"] == "ok", body
        server.kill()
        server.wait()
        status, body = await _health(bot)
    assert status == 503 and body["redis"] == "unavailable", body


async def test_healthz_is_503_when_updates_wait_longer_than_the_replay_window(
    database_url: str,
) -> None:
    clock = Clock()
    options = RuntimeOptions(
        retry=FAST_RETRIES, polling_timeout=1,
        polling_backoff=BackoffConfig(min_delay=0.01, max_delay=0.05, factor=2, jitter=0),
        shutdown_grace=5, background_work=False, inbox_scan_every=600,
    )
    async with FakeBotAPI() as api, BotUnderTest(
        api, database_url, options=options, clock=clock, inbox_replay_after_seconds=60
    ) as bot:
        status, _body = await _health(bot)
        assert status == 200
        assert bot.services is not None
        async with bot.services.database.uow() as uow:  # an update a dead process left behind
            await uow.processed_updates.claim(
                "telegram", 424242, message_update(424242, 7701, "kako da dobijem pristup"))
            await uow.commit()
        clock.advance(minutes=5)
        status, _body = await _health(bot)
        assert status == 200  # within the replay window and one scan
        clock.advance(minutes=10)  # no scan has taken it: replays are not happening
        status, body = await _health(bot)
    assert status == 503 and "inbox" in body, body
