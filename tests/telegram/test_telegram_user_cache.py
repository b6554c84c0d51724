"""Returning users come from an in-process cache (bot.services.users.UserCache), and a change of
role or a deletion still takes effect on the very next update: every committed change of a
user's row invalidates the entry (storage.uow reports it), whichever service made it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event

from bot.services.users import UserCache, UserProfile, UserService
from storage.uow import Database
from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.harness import BotUnderTest

pytestmark = pytest.mark.asyncio(loop_scope="module")
ADMIN = 779_001
_ids = itertools.count(779_101)
ONLY_MENTORS = "samo mentorima"
ONLY_ADMINS = "samo administratori"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def bot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BotUnderTest]:
    async with (
        fresh_database_url(request.param, tmp_path_factory.mktemp("db")) as url,
        FakeBotAPI() as api,
        BotUnderTest(api, url, admin_ids=[ADMIN], user_cache_seconds=300) as running,
    ):
        yield running


@contextmanager
def users_selects(database: Database) -> Iterator[list[str]]:
    """The statements reading the users table while the block runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM users" in statement:
            seen.append(statement)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def cached(bot: BotUnderTest, telegram_id: int) -> UserProfile | None:
    assert bot.services is not None
    return bot.services.users.cache.get("telegram", str(telegram_id))


async def test_a_returning_user_is_not_read_from_the_database(bot: BotUnderTest) -> None:
    assert bot.services is not None
    ana = bot.clerk(next(_ids), None)
    await ana.say("kako da dobijem pristup ezupu")
    assert cached(bot, ana.user_id) is not None
    with users_selects(bot.services.database) as seen:
        await ana.say("kako da platim taksu")
    assert seen == []
    assert ana.last.text


async def test_a_role_change_takes_effect_on_the_next_update(bot: BotUnderTest) -> None:
    admin = bot.clerk(ADMIN, None)
    ana = bot.clerk(next(_ids), None)
    await ana.say("/red")
    assert ONLY_MENTORS in ana.last.text
    assert cached(bot, ana.user_id) is not None  # her next update would come from the cache

    await admin.say(f"/dodaj_mentora {ana.user_id}")
    await ana.say("/red")
    assert ONLY_MENTORS not in ana.last.text

    await admin.say(f"/ukloni_mentora {ana.user_id}")
    await ana.say("/red")
    assert ONLY_MENTORS in ana.last.text


async def test_an_admin_role_taken_away_is_gone_on_the_next_update(bot: BotUnderTest) -> None:
    """/obavestenje trusts the role in the profile the update carries: a stale cached profile
    would let a former admin start a broadcast."""
    admin = bot.clerk(ADMIN, None)
    ana = bot.clerk(next(_ids), None)
    await ana.say("/obavestenje")
    assert ONLY_ADMINS in ana.last.text
    assert cached(bot, ana.user_id) is not None

    await admin.say(f"/dodaj_admina {ana.user_id}")
    await ana.say("/obavestenje")
    assert ONLY_ADMINS not in ana.last.text
    await ana.say("/otkazi")
    await ana.say("dobar dan")
    assert cached(bot, ana.user_id) is not None
    assert cached(bot, ana.user_id).is_admin  # type: ignore[union-attr]

    await admin.say(f"/ukloni_admina {ana.user_id}")
    await ana.say("/obavestenje")
    assert ONLY_ADMINS in ana.last.text


async def test_a_deletion_takes_effect_on_the_next_update(bot: BotUnderTest) -> None:
    admin = bot.clerk(ADMIN, None)
    marko = bot.clerk(next(_ids), None)
    await marko.say("kako da dobijem pristup ezupu")
    await admin.say(f"/dodaj_mentora {marko.user_id}")
    await marko.say("/red")
    assert ONLY_MENTORS not in marko.last.text
    assert cached(bot, marko.user_id) is not None

    await marko.say("/obrisi_me")
    await marko.tap("Da, obriši")
    assert cached(bot, marko.user_id) is None
    await marko.say("/red")  # a new clerk now: the deleted mentor's role is gone
    assert ONLY_MENTORS in marko.last.text


async def test_a_change_by_any_service_drops_the_entry(bot: BotUnderTest) -> None:
    """Language and municipality go through UserService, blocked marks through the outbox:
    the storage layer reports them all."""
    assert bot.services is not None
    users = bot.services.users
    ana = bot.clerk(next(_ids), None)
    await ana.say("dobar dan")
    profile = cached(bot, ana.user_id)
    assert profile is not None
    await users.set_language(profile.id, "en")
    assert cached(bot, ana.user_id) is None
    await ana.say("dobar dan")
    assert cached(bot, ana.user_id) == await users.get(profile.id)
    await users.mark_inactive("telegram", str(ana.user_id))
    assert cached(bot, ana.user_id) is None
    await ana.say("dobar dan")  # writing again makes her active again (a write: not cached)
    stored = await users.get(profile.id)
    assert stored is not None and stored.active
    await ana.say("dobar dan")
    assert cached(bot, ana.user_id) == stored


# -- the cache itself ---------------------------------------------------------------------------


def profile(user_id: int = 1, role: str = "clerk") -> UserProfile:
    return UserProfile(user_id, "telegram", str(100 + user_id), "Ana", "sr-Latn", None, role,
                       True, True)


async def test_a_profile_read_before_an_invalidation_is_not_cached_after_it() -> None:
    cache = UserCache(ttl=60)
    generation = cache.generation()  # a read starts...
    cache.invalidate([1])  # ...a role change commits meanwhile...
    cache.put(profile(), generation)  # ...the read ends with the old role
    assert cache.get("telegram", "101") is None


async def test_entries_expire_and_the_oldest_go_first() -> None:
    now = [0.0]
    cache = UserCache(ttl=10, size=2, clock=lambda: now[0])
    for user_id in (1, 2, 3):
        cache.put(profile(user_id), cache.generation())
    assert cache.get("telegram", "101") is None  # pushed out
    assert cache.get("telegram", "102") is not None
    now[0] = 10.0
    assert cache.get("telegram", "102") is None
    assert len(cache) == 1


async def test_commits_that_do_not_change_users_invalidate_nothing(database: Database) -> None:
    users = UserService(database, cache_seconds=60)
    ana = await users.get_or_register("telegram", "5", display_name="Ana")
    assert await users.get_or_register("telegram", "5", display_name="Ana") == ana
    generation = users.cache.generation()
    async with database.uow() as uow:
        await uow.processed_updates.claim("telegram", 1)
        await uow.commit()
    assert users.cache.generation() == generation
    assert users.cache.get("telegram", "5") == ana


async def test_no_cache_unless_asked(database: Database) -> None:
    users = UserService(database)
    await users.get_or_register("telegram", "6", display_name="Ana")
    await users.get_or_register("telegram", "6", display_name="Ana")
    assert len(users.cache) == 0
