"""Redis down (REDIS_URL set: FSM storage, per-user event isolation) must not lose clerks'
updates (issue #13): the bot still answers, and every update is claimed and kept."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.models import ProcessedUpdate
from storage.uow import Database
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.harness import BotUnderTest

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this test's own, on a free port (the test kills it)."""
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        # the server is not ours: it runs on the real clock even when the suite runs under
        # libfaketime (a faked redis-server does not answer in time)
        env={k: v for k, v in os.environ.items() if not k.startswith(("LD_PRELOAD", "FAKETIME"))},
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield server, f"redis://127.0.0.1:{port}/0"
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()


async def test_with_redis_down_the_clerk_is_still_answered_and_the_update_kept(
    own_redis: tuple[subprocess.Popen[bytes], str], database_url: str
) -> None:
    server, redis_url = own_redis
    async with FakeBotAPI() as api, BotUnderTest(api, database_url, redis_url=redis_url) as bot:
        ana = bot.clerk(7601, language_code=None)
        (first,) = await ana.say("kako da dobijem pristup ezupu")
        assert "еЗУП" in first.text or "eZUP" in first.text
        server.kill()  # Redis goes away
        server.wait()
        await asyncio.sleep(0.2)
        answer = await ana.say("kako da dobijem pristup ezupu")
        assert answer, "no answer with Redis down"
        await asyncio.sleep(1.0)  # done marks are written about twice a second
    database = Database.from_url(database_url)
    try:
        async with database.uow(read_only=True) as uow:
            claims = list(await uow.session.scalars(select(ProcessedUpdate)))
    finally:
        await database.dispose()
    assert len(claims) == 2 and all(claim.done_at is not None for claim in claims)
