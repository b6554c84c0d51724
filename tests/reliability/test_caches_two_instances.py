"""Two bot instances (webhook, as behind a load balancer) on one PostgreSQL and one real Redis,
each with its user cache on: a change of a user's row committed on one instance reaches the
other's cache over Redis (bot.cache_sync) before that user's next update there.

- a mentor role revoked on A is refused on B at her next update (B had her cached as mentor);
- an admin role taken away on A is gone on B at the next update;
- a user deleted on A is not served from B's cache;
- an incident declared (closed) on A is told (no longer told) on B at the next question;
- B's cache is off while its subscription is lost, and starts empty once subscribed again.

Needs TEST_POSTGRES_URL and a Redis (TEST_REDIS_URL, default database 13 of 127.0.0.1:6379).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.cache_sync import CacheSync
from bot.services.users import UserProfile
from tests.conftest import fresh_database_url
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.harness import BotUnderTest

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
ADMIN = 781_001
ONLY_MENTORS = "samo mentorima"
ONLY_ADMINS = "samo administratori"
EZUP_QUESTION = "Kako se službenik prijavljuje na eZUP?"
_ids = itertools.count(781_101)

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]


async def _redis_or_skip() -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        await client.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[BotUnderTest, BotUnderTest]]:
    await _redis_or_skip()
    tmp: Path = tmp_path_factory.mktemp("db")
    async with fresh_database_url("postgres", tmp) as url, FakeBotAPI() as api:
        settings: dict[str, Any] = {
            "admin_ids": [ADMIN], "redis_url": REDIS_URL, "user_cache_seconds": 300,
        }
        async with (
            BotUnderTest(api, url, webhook=True, **settings) as a,
            BotUnderTest(api, url, webhook=True, **settings) as b,
        ):
            for bot in (a, b):
                await asyncio.wait_for(sync_of(bot).subscribed.wait(), 10)
            yield a, b


def sync_of(bot: BotUnderTest) -> CacheSync:
    assert bot.services is not None and bot.services.cache_sync is not None
    return bot.services.cache_sync


def cached(bot: BotUnderTest, telegram_id: int) -> UserProfile | None:
    assert bot.services is not None
    return bot.services.users.cache.get("telegram", str(telegram_id))


async def _given_a_role(
    pair: tuple[BotUnderTest, BotUnderTest], command: str, first: str = "dobar dan"
) -> tuple[int, Any, Any]:
    """A new user who wrote `first` on B and was then given a role by the admin on A
    (`command`: /dodaj_mentora, /dodaj_admina): (her id, the admin on A, her chat on B)."""
    a, b = pair
    admin = a.clerk(ADMIN, None)
    user_id = next(_ids)
    on_b = b.clerk(user_id, None)
    await on_b.say(first)
    await admin.say(f"{command} {user_id}")
    return user_id, admin, on_b


async def test_a_mentor_role_revoked_on_one_instance_is_refused_on_the_other(
    pair: tuple[BotUnderTest, BotUnderTest],
) -> None:
    _a, b = pair
    ana_id, admin, ana_on_b = await _given_a_role(pair, "/dodaj_mentora")
    await ana_on_b.say("/red")
    assert ONLY_MENTORS not in ana_on_b.last.text
    profile = cached(b, ana_id)
    assert profile is not None and profile.is_mentor  # her next update on B: from B's cache

    await admin.say(f"/ukloni_mentora {ana_id}")
    await ana_on_b.say("/red")
    assert ONLY_MENTORS in ana_on_b.last.text


async def test_an_admin_role_taken_away_on_one_instance_is_gone_on_the_other(
    pair: tuple[BotUnderTest, BotUnderTest],
) -> None:
    _a, b = pair
    ana_id, admin, ana_on_b = await _given_a_role(pair, "/dodaj_admina")
    await ana_on_b.say("dobar dan")
    await ana_on_b.say("/obavestenje")
    assert ONLY_ADMINS not in ana_on_b.last.text
    await ana_on_b.say("/otkazi")
    profile = cached(b, ana_id)
    assert profile is not None and profile.is_admin

    await admin.say(f"/ukloni_admina {ana_id}")
    await ana_on_b.say("/obavestenje")
    assert ONLY_ADMINS in ana_on_b.last.text


async def test_a_user_deleted_on_one_instance_is_not_served_from_the_others_cache(
    pair: tuple[BotUnderTest, BotUnderTest],
) -> None:
    a, b = pair
    marko_id, _admin, marko_on_b = await _given_a_role(
        pair, "/dodaj_mentora", first="kako da dobijem pristup ezupu"
    )
    marko_on_a = a.clerk(marko_id, None)
    await marko_on_b.say("/red")
    assert ONLY_MENTORS not in marko_on_b.last.text
    before = cached(b, marko_id)
    assert before is not None and before.is_mentor

    await marko_on_a.say("/obrisi_me")
    await marko_on_a.tap("Da, obriši")
    assert cached(b, marko_id) is None
    await marko_on_b.say("/red")  # a new clerk on B too: the deleted mentor's role is gone
    assert ONLY_MENTORS in marko_on_b.last.text
    after = cached(b, marko_id)
    assert after is not None and after.id != before.id and not after.is_mentor


async def test_the_cache_is_off_while_the_subscription_is_lost(
    pair: tuple[BotUnderTest, BotUnderTest],
) -> None:
    from redis.asyncio import Redis

    _a, b = pair
    ana_id = next(_ids)
    ana_on_b = b.clerk(ana_id, None)
    await ana_on_b.say("dobar dan")
    await ana_on_b.say("dobar dan")
    assert cached(b, ana_id) is not None
    sync = sync_of(b)

    client = Redis.from_url(REDIS_URL)
    try:  # the pub/sub connections on this test's Redis database dropped (B's and A's)
        db = client.connection_pool.connection_kwargs.get("db", 0)
        for found in await client.client_list(_type="pubsub"):
            if int(found.get("db", -1)) == int(db):
                await client.client_kill_filter(_id=found["id"])
    finally:
        await client.aclose()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while sync.subscribed.is_set() and loop.time() < deadline:
        await asyncio.sleep(0.01)
    assert b.services is not None
    assert not b.services.users.cache.live  # noticed the loss: nothing served from memory
    assert not b.services.desk.open_services.live
    assert cached(b, ana_id) is None
    await ana_on_b.say("dobar dan")  # answered all the same, from the database
    assert cached(b, ana_id) is None

    await asyncio.wait_for(sync.subscribed.wait(), 10)  # subscribed again, from empty
    assert b.services.users.cache.live
    assert len(b.services.users.cache) == 0
    await ana_on_b.say("dobar dan")
    await ana_on_b.say("dobar dan")
    assert cached(b, ana_id) is not None


async def test_an_incident_declared_on_one_instance_is_told_at_once_on_the_other(
    pair: tuple[BotUnderTest, BotUnderTest],
) -> None:
    """B keeps in memory which services have an open incident (usually none); a declaration
    or closing on A reaches it before the next question there."""
    a, b = pair
    admin = a.clerk(ADMIN, None)
    mentor_id = next(_ids)
    await a.clerk(mentor_id, None).say("dobar dan")
    await admin.say(f"/dodaj_mentora {mentor_id}")
    mentor = a.clerk(mentor_id, None)
    clerk_on_b = b.clerk(next(_ids), None)
    await clerk_on_b.say(EZUP_QUESTION)
    assert "Poznat problem" not in clerk_on_b.last.text
    assert b.services is not None
    assert b.services.desk.open_services.get() == frozenset()  # known: nothing open

    await mentor.say("/incident eZUP ne radi prijava od 9h")
    assert "Incident #" in mentor.last.text
    await clerk_on_b.say(EZUP_QUESTION)
    assert clerk_on_b.last.text.startswith("⚠️ <b>Poznat problem: eZUP</b>")

    number = mentor.last.text.split("Incident #", 1)[1].split()[0]
    await mentor.say(f"/incident_zatvori {number}")
    await clerk_on_b.say(EZUP_QUESTION)
    assert "Poznat problem" not in clerk_on_b.last.text


async def test_the_relay_stops_promptly() -> None:
    """Shutting down waits for the subscription's task a bounded time (a process that does
    not exit on SIGTERM holds up a deployment)."""
    from bot.services.users import UserCache

    await _redis_or_skip()
    sync = CacheSync.from_url(REDIS_URL, UserCache(60))
    await sync.start()
    await asyncio.wait_for(sync.subscribed.wait(), 10)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sync.close()
    assert loop.time() - started < 3
    assert not sync.users.live  # type: ignore[union-attr]
