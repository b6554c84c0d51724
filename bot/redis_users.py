"""The user cache kept right across instances (REDIS_URL): every committed change of a users row
is published over Redis, and every instance drops those users from its cache on receipt.

- Publishing: `UserCacheSync.publish` listens to `Database.on_users_changed`, so it sees every
  commit of this process that changed or deleted a user (roles, language, deletion, blocked
  marks), and the commit returns only after the message went out. A publish that fails (Redis
  unreachable) is logged and kept, and goes out with the next one or once this process is
  subscribed again.
- Receiving: one subscription per process. Until it is confirmed, and whenever it is lost (an
  error, a reconnect, or no answer to its pings within `lost_after` seconds), the cache is
  suspended: emptied and not used, so every update reads its sender's row as without a cache.
  Each (re)subscription starts the cache from empty, because what was published meanwhile was
  not heard.
- What remains: a process that commits a change and dies before publishing it, or a publish
  lost while the subscribers stay connected; the cache's TTL bounds both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bot.services.users import UserCache

log = logging.getLogger(__name__)

__all__ = ["CHANNEL", "UserCacheSync"]

# Pub/sub channels are not per Redis database: the database number is in the name, so
# deployments on separate databases of one server do not hear each other.
CHANNEL = "bot:users-changed:{db}"
# Redis down, refusing, timing out (the same family as bot.telegram.fsm.REDIS_ERRORS).
_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
_TIMEOUT = 2.0


def encode(user_ids: Iterable[int]) -> str:
    return ",".join(str(user_id) for user_id in sorted(user_ids))


def decode(data: Any) -> list[int]:
    text = data.decode() if isinstance(data, bytes) else str(data)
    return [int(part) for part in text.split(",") if part.strip()]


class UserCacheSync:
    """Publishes this process's user changes and applies everyone's to `cache` (None: only
    publish, for a process without a cache)."""

    def __init__(
        self,
        redis: Redis,
        cache: UserCache | None,
        *,
        ping_every: float = 0.5,
        lost_after: float = 2.0,
        retry_after: float = 1.0,
    ) -> None:
        self._redis = redis
        self.channel = CHANNEL.format(db=redis.connection_pool.connection_kwargs.get("db", 0))
        self.cache = cache
        self._ping_every = ping_every
        self._lost_after = lost_after
        self._retry_after = retry_after
        self._unsent: set[int] = set()
        self._failures = 0
        self._publish_after = 0.0  # monotonic
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()  # set while the subscription is confirmed
        if cache is not None:
            cache.suspend()  # until subscribed

    @classmethod
    def from_url(cls, url: str, cache: UserCache | None, **options: Any) -> UserCacheSync:
        # No silent reconnects: a lost connection must reach `_run`, which suspends the cache.
        redis = Redis.from_url(
            url,
            socket_connect_timeout=_TIMEOUT,
            socket_timeout=_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(redis, cache, **options)

    # -- publishing -----------------------------------------------------------------------

    async def publish(self, user_ids: frozenset[int]) -> None:
        """Tell every instance (this one too) that these users' rows changed. Never raises."""
        self._unsent.update(user_ids)
        await self._flush()

    async def _flush(self) -> None:
        # After a failure Redis is left alone for `retry_after`: a dead server must not make
        # every user-changing commit wait for its connect timeout.
        if not self._unsent or time.monotonic() < self._publish_after:
            return
        ids, self._unsent = self._unsent, set()
        try:
            await self._redis.publish(self.channel, encode(ids))
        except _ERRORS as error:
            self._unsent |= ids
            self._publish_after = time.monotonic() + self._retry_after
            log.warning("users.publish_failed count=%s error=%r", len(ids), error)

    # -- receiving ------------------------------------------------------------------------

    async def start(self) -> None:
        if self.cache is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="user-cache-sync")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(*_ERRORS):
            await self._flush()
        with contextlib.suppress(*_ERRORS):
            await self._redis.aclose()

    async def _run(self) -> None:
        assert self.cache is not None
        while True:
            try:
                await self._listen(self.cache)
            except _ERRORS as error:
                if self._failures == 0:
                    log.warning("users.subscription_lost error=%r; user cache off", error)
                self._failures += 1
            finally:
                self.subscribed.clear()
                self.cache.suspend()
            await asyncio.sleep(self._retry_after)

    async def _listen(self, cache: UserCache) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            heard = time.monotonic()
            pinged = heard
            while True:
                message = await pubsub.get_message(timeout=self._ping_every / 2)
                now = time.monotonic()
                if message is not None:
                    heard = now
                    kind = message.get("type")
                    if kind == "message":
                        cache.invalidate(decode(message.get("data", b"")))
                    elif kind == "subscribe":  # (again): what was sent meanwhile is unknown
                        cache.resume()
                        self.subscribed.set()
                        self._failures = 0
                        log.info("users.subscribed; user cache on")
                        await self._flush()
                if now - heard > self._lost_after:
                    raise TimeoutError(f"no answer on the subscription for {now - heard:.1f} s")
                if now - pinged >= self._ping_every:
                    pinged = now
                    await pubsub.ping()
        finally:
            with contextlib.suppress(*_ERRORS):
                await pubsub.aclose()
