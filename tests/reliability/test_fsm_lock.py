"""The per-user lock and the FSM state in one Redis round trip (bot.telegram.fsm): the state is
read once the lock is held, the lock still excludes a second update of the same user, only its
holder releases it, and with Redis down both fall back to this process.

Needs a Redis (TEST_REDIS_URL, default database 13 of 127.0.0.1:6379)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiogram.fsm.storage.base import StorageKey

from bot.telegram.fsm import FallbackIsolation, FallbackStorage

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")

pytestmark = pytest.mark.asyncio


def key(user: int) -> StorageKey:
    return StorageKey(bot_id=42, chat_id=user, user_id=user)


@pytest_asyncio.fixture
async def storage() -> AsyncIterator[FallbackStorage]:
    store = FallbackStorage.from_url(REDIS_URL)
    try:
        await store.ping()
    except Exception as exc:
        await store.close()
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    yield store
    await store.close()


async def test_the_state_comes_with_the_lock(storage: FallbackStorage) -> None:
    isolation = storage.create_isolation()
    assert isinstance(isolation, FallbackIsolation)
    k = key(880_001)
    await storage.set_state(k, "Dialog:writing")
    async with isolation.lock(k):
        assert storage.prefetched == {k: "Dialog:writing"}
        assert await storage.get_state(k) == "Dialog:writing"
        assert k not in storage.prefetched  # once: later reads ask Redis
        await storage.set_state(k, None)
        assert await storage.get_state(k) is None
    assert k not in storage.prefetched
    lock_key = storage.primary.key_builder.build(k, "lock")
    assert await storage.primary.redis.exists(lock_key) == 0  # released


async def test_a_second_update_of_the_same_user_waits_for_the_first(
    storage: FallbackStorage,
) -> None:
    isolation = storage.create_isolation()
    k = key(880_002)
    await storage.set_state(k, None)
    order: list[str] = []

    async def update(name: str, new_state: str) -> None:
        async with isolation.lock(k):
            order.append(f"{name} saw {await storage.get_state(k)}")
            await asyncio.sleep(0.2)
            await storage.set_state(k, new_state)
            order.append(f"{name} done")

    first = asyncio.create_task(update("a", "A"))
    await asyncio.sleep(0.05)
    await asyncio.gather(first, update("b", "B"))
    assert order == ["a saw None", "a done", "b saw A", "b done"]
    assert await storage.get_state(k) == "B"


async def test_only_the_holder_releases_the_lock(storage: FallbackStorage) -> None:
    """A lock that expired and was taken by another update is not deleted by the first."""
    isolation = storage.create_isolation()
    k = key(880_003)
    lock_key = storage.primary.key_builder.build(k, "lock")
    async with isolation.lock(k):
        await storage.primary.redis.set(lock_key, b"someone-else")
    assert await storage.primary.redis.get(lock_key) == b"someone-else"
    await storage.primary.redis.delete(lock_key)


async def test_with_redis_down_both_fall_back_to_this_process() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    storage = FallbackStorage.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        isolation = storage.create_isolation()
        k = key(880_004)
        async with isolation.lock(k):
            assert storage.prefetched == {}
            assert await storage.get_state(k) is None
            await storage.set_state(k, "Dialog:writing")
            assert await storage.get_state(k) == "Dialog:writing"
        assert storage.health.down
    finally:
        await storage.close()


async def test_a_burst_takes_its_locks_in_redis_not_in_the_fallback(
    storage: FallbackStorage,
) -> None:
    """More updates at once than the pool has connections wait for one; none fails over to
    the per-process lock (which would not exclude the other instance)."""
    isolation = storage.create_isolation()
    failures: list[BaseException] = []
    storage.health.failed = failures.append  # type: ignore[method-assign]

    async def update(user: int) -> None:
        async with isolation.lock(key(user)):
            await storage.get_state(key(user))

    await asyncio.gather(*(update(881_000 + i) for i in range(400)))
    assert failures == []
