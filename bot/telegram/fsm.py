"""FSM storage and per-user event isolation that survive Redis going away (issue #13).

aiogram reads the FSM state and takes the per-user isolation lock before any of our
middlewares run, so with plain RedisStorage a Redis outage fails every update before it is
claimed and kept: each would be lost. Here a Redis error turns into this process's memory for a
while (`retry_after` seconds, then Redis is tried again): the clerk is answered, and the only
cost is that a dialog begun on another instance (a mentor request being written) may have to
be started again, and one user's updates are serialised per instance only.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Redis down, refusing, timing out, or a lock lost with it.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
# A dead server must not hold an update for long: connect and read give up after this.
REDIS_TIMEOUT = 2.0


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
    """RedisStorage, with this process's memory while Redis is unreachable."""

    def __init__(self, primary: RedisStorage, health: RedisHealth | None = None) -> None:
        self.primary = primary
        self.local = MemoryStorage()
        self.health = health or RedisHealth()

    @classmethod
    def from_url(cls, url: str) -> FallbackStorage:
        return cls(RedisStorage.from_url(url, connection_kwargs={
            "socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT,
        }))

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

    async def set_state(self, key: StorageKey, state: str | State | None = None) -> None:
        await self._call("set_state", key, state)

    async def get_state(self, key: StorageKey) -> str | None:
        state: str | None = await self._call("get_state", key)
        return state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._call("set_data", key, data)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("get_data", key)
        return data

    async def ping(self) -> None:
        """Raises when Redis does not answer (for /healthz)."""
        await self.primary.redis.ping()

    def create_isolation(self) -> FallbackIsolation:
        return FallbackIsolation(self.primary.create_isolation(), self.health)

    async def close(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await self.primary.close()
        await self.local.close()


class FallbackIsolation(BaseEventIsolation):
    """Redis' per-user lock across instances; a per-process lock while Redis is down."""

    def __init__(self, primary: BaseEventIsolation, health: RedisHealth) -> None:
        self.primary = primary
        self.local = SimpleEventIsolation()
        self.health = health

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
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

    async def close(self) -> None:
        await self.local.close()
