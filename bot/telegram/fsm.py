"""FSM storage and per-user event isolation that survive Redis going away (issue #13).

aiogram reads the FSM state and takes the per-user isolation lock before any of our
middlewares run, so with plain RedisStorage a Redis outage fails every update before it is
claimed and kept: each would be lost. Here a Redis error turns into this process's memory for a
while (`retry_after` seconds, then Redis is tried again): the clerk is answered, and the only
cost is that a dialog begun on another instance (a mentor request being written) may have to
be started again, and one user's updates are serialised per instance only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Redis down, refusing, timing out, or a lock lost with it.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
# A dead server must not hold an update for long: connect and read give up after this.
REDIS_TIMEOUT = 2.0
REDIS_CONNECTIONS = 100  # per process; more updates at once wait for one (REDIS_TIMEOUT at most)


class RedisHealth:
    """Whether Redis answered lately; after a failure it is left alone for `retry_after`."""

    def __init__(self, retry_after: float = 5.0) -> None:
        self._retry_after = retry_after
        self._down_until = 0.0  # monotonic
        self.last_error: str | None = None

    def usable(self) -> bool:
        return time.monotonic() >= self._down_until

    @property
    def down(self) -> bool:
        return self.last_error is not None

    def failed(self, error: BaseException) -> None:
        if self.last_error is None:
            log.warning("redis.unavailable falling back to local memory error=%r", error)
        self.last_error = repr(error)
        self._down_until = time.monotonic() + self._retry_after

    def worked(self) -> None:
        if self.last_error is not None:
            log.info("redis.available_again")
        self.last_error = None


class FallbackStorage(BaseStorage):
    """RedisStorage, with this process's memory while Redis is unreachable.

    The state an update's lock brought along (`FallbackIsolation`: the lock and the state in
    one round trip) answers that update's first `get_state`, which aiogram asks right after
    taking the lock."""

    def __init__(self, primary: RedisStorage, health: RedisHealth | None = None) -> None:
        self.primary = primary
        self.local = MemoryStorage()
        self.health = health or RedisHealth()
        self.prefetched: dict[StorageKey, str | None] = {}

    @classmethod
    def from_url(cls, url: str, pool_class: type[ConnectionPool] | None = None) -> FallbackStorage:
        # A burst's updates all take their lock at once: past the pool's size they wait for a
        # connection (briefly: each holds one for one round trip) instead of failing with
        # MaxConnectionsError, which would send them to the per-process fallback.
        options: dict[str, Any] = {
            "max_connections": REDIS_CONNECTIONS,
            "socket_connect_timeout": REDIS_TIMEOUT,
            "socket_timeout": REDIS_TIMEOUT,
        }
        if pool_class is None:
            pool_class, options["timeout"] = BlockingConnectionPool, REDIS_TIMEOUT
        pool = pool_class.from_url(url, **options)
        return cls(RedisStorage(Redis(connection_pool=pool)))

    async def _call(self, name: str, *args: Any) -> Any:
        if self.health.usable():
            try:
                result = await getattr(self.primary, name)(*args)
            except REDIS_ERRORS as error:
                self.health.failed(error)
            else:
                self.health.worked()
                return result
        return await getattr(self.local, name)(*args)

    async def get_state(self, key: StorageKey) -> str | None:
        if key in self.prefetched:
            return self.prefetched.pop(key)
        state: str | None = await self._call("get_state", key)
        return state

    async def set_state(self, key: StorageKey, state: str | State | None = None) -> None:
        self.prefetched.pop(key, None)
        await self._call("set_state", key, state)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._call("set_data", key, data)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("get_data", key)
        return data

    async def ping(self) -> None:
        """Raises when Redis does not answer (for /healthz)."""
        await self.primary.redis.ping()

    def create_isolation(self) -> FallbackIsolation:
        return FallbackIsolation(self.primary.create_isolation(), self.health, self)

    async def close(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await self.primary.close()
        await self.local.close()


# The lock of redis-py's Lock (aiogram's RedisEventIsolation): released only by its holder.
_RELEASE = """
local token = redis.call('get', KEYS[1])
if not token or token ~= ARGV[1] then
    return 0
end
redis.call('del', KEYS[1])
return 1
"""
LOCK_RETRY_SECONDS = 0.1  # redis-py Lock's wait between tries while another holds it


class FallbackIsolation(BaseEventIsolation):
    """Redis' per-user lock across instances; a per-process lock while Redis is down.

    With `storage`, the lock is aiogram's (the same key, token, expiry and release script as
    RedisEventIsolation's redis-py Lock), taken in one round trip together with the user's
    FSM state, which `storage` hands to the `get_state` aiogram asks right after the lock: the
    state is read once the lock is held, as before, one round trip sooner."""

    def __init__(
        self,
        primary: BaseEventIsolation,
        health: RedisHealth,
        storage: FallbackStorage | None = None,
    ) -> None:
        self.primary = primary
        self.local = SimpleEventIsolation()
        self.health = health
        self.storage = storage
        self._release: Any = None

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        if self.storage is not None and isinstance(self.primary, RedisEventIsolation):
            async with self._lock_with_state(self.primary, self.storage, key):
                yield None
            return
        held: AbstractAsyncContextManager[None] | None = None
        if self.health.usable():
            candidate = self.primary.lock(key)
            try:
                await candidate.__aenter__()
            except REDIS_ERRORS as error:
                self.health.failed(error)
            else:
                held = candidate
        if held is None:
            async with self.local.lock(key):
                yield None
            return
        try:
            yield None
        finally:
            try:
                await held.__aexit__(None, None, None)
            except REDIS_ERRORS as error:  # the lock expires by itself
                self.health.failed(error)

    @asynccontextmanager
    async def _lock_with_state(
        self, primary: RedisEventIsolation, storage: FallbackStorage, key: StorageKey
    ) -> AsyncGenerator[None, None]:
        token: bytes | None = None
        if self.health.usable():
            try:
                token, state = await self._acquire(primary, storage, key)
            except REDIS_ERRORS as error:
                self.health.failed(error)
            else:
                self.health.worked()
        if token is None:
            async with self.local.lock(key):
                yield None
            return
        storage.prefetched[key] = state
        try:
            yield None
        finally:
            storage.prefetched.pop(key, None)
            try:
                if self._release is None:
                    self._release = primary.redis.register_script(_RELEASE)
                if not await self._release(keys=[primary.key_builder.build(key, "lock")],
                                           args=[token]):
                    log.warning("fsm.lock_expired_before_release key=%s", key)
            except REDIS_ERRORS as error:  # the lock expires by itself
                self.health.failed(error)

    @staticmethod
    async def _acquire(
        primary: RedisEventIsolation, storage: FallbackStorage, key: StorageKey
    ) -> tuple[bytes, str | None]:
        """Take the lock (waiting while another update of this user holds it) and read the
        state with it: SET NX and GET in one pipeline, the GET only used once SET took it."""
        lock_key = primary.key_builder.build(key, "lock")
        state_key = storage.primary.key_builder.build(key, "state")
        timeout = primary.lock_kwargs.get("timeout", 60)
        token = uuid.uuid4().hex.encode()
        while True:
            async with primary.redis.pipeline(transaction=False) as pipe:
                pipe.set(lock_key, token, nx=True, px=int(float(timeout) * 1000))
                pipe.get(state_key)
                taken, value = await pipe.execute()
            if taken:
                state = value.decode("utf-8") if isinstance(value, bytes) else value
                return token, state
            await asyncio.sleep(LOCK_RETRY_SECONDS)

    async def close(self) -> None:
        await self.local.close()
