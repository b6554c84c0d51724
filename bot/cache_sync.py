"""The in-process caches kept right across instances (REDIS_URL): every committed change of a
users row or of an incident is published over Redis, and every instance drops what changed
from its caches on receipt (the user cache, bot.services.users.UserCache, and the services
with an open incident, bot.services.desk.base.OpenServices).

- Publishing: `CacheSync.publish_users` and `publish_incidents` listen to the database's
  change reports (`Database.on_users_changed`, `on_table_changed`), so they see every commit
  of this process that changed a user (roles, language, deletion, blocked marks) or an
  incident, and the commit returns only after the message went out. A publish that fails
  (Redis unreachable) is logged and kept, and goes out with the next one or once this process
  is subscribed again.
- Receiving: one subscription per process. Until it is confirmed, and whenever it is lost (an
  error, a reconnect, or no answer to its pings within `lost_after` seconds), the caches are
  suspended: emptied and not used, so every update reads the database as without them. Each
  (re)subscription starts them from empty, because what was published meanwhile was not heard.
- What remains: a process that commits a change and dies before publishing it, or a publish
  lost while the subscribers stay connected; the caches' TTL bounds both.

A message is `u:ID,ID,...` (those users changed), `i` (an incident changed), or both joined
by `;`.
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

from bot.services.desk.base import OpenServices
from bot.services.users import UserCache

log = logging.getLogger(__name__)

__all__ = ["CHANNEL", "CacheSync"]

# Pub/sub channels are not per Redis database: the database number is in the name, so
# deployments on separate databases of one server do not hear each other.
CHANNEL = "bot:cache-changed:{db}"
# Redis down, refusing, timing out (the same family as bot.telegram.fsm.REDIS_ERRORS).
_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
_TIMEOUT = 2.0


def encode(user_ids: Iterable[int], incidents: bool) -> str:
    parts = []
    if user_ids:
        parts.append("u:" + ",".join(str(user_id) for user_id in sorted(user_ids)))
    if incidents:
        parts.append("i")
    return ";".join(parts)


def decode(data: Any) -> tuple[list[int], bool]:
    """(the users that changed, whether an incident did)."""
    text = data.decode() if isinstance(data, bytes) else str(data)
    users: list[int] = []
    incidents = False
    for part in text.split(";"):
        if part.startswith("u:"):
            users.extend(int(item) for item in part[2:].split(",") if item.strip())
        elif part == "i":
            incidents = True
    return users, incidents


class CacheSync:
    """Publishes this process's changes and applies everyone's to `users` and `open_services`
    (None, or both None: that cache is off; this process only publishes)."""

    def __init__(
        self,
        redis: Redis,
        users: UserCache | None,
        open_services: OpenServices | None = None,
        *,
        ping_every: float = 0.5,
        lost_after: float = 2.0,
        retry_after: float = 1.0,
    ) -> None:
        self._redis = redis
        self.channel = CHANNEL.format(db=redis.connection_pool.connection_kwargs.get("db", 0))
        self.users = users
        self.open_services = open_services
        self._ping_every = ping_every
        self._lost_after = lost_after
        self._retry_after = retry_after
        self._unsent: set[int] = set()
        self._unsent_incidents = False
        self._failures = 0
        self._stopping = False
        self._publish_after = 0.0  # monotonic
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()  # set while the subscription is confirmed
        self._suspend()  # until subscribed

    @classmethod
    def from_url(
        cls,
        url: str,
        users: UserCache | None,
        open_services: OpenServices | None = None,
        **options: Any,
    ) -> CacheSync:
        # No silent reconnects: a lost connection must reach `_run`, which suspends the cache.
        redis = Redis.from_url(
            url,
            socket_connect_timeout=_TIMEOUT,
            socket_timeout=_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(redis, users, open_services, **options)

    @property
    def caching(self) -> bool:
        return self.users is not None or self.open_services is not None

    def _suspend(self) -> None:
        for cache in (self.users, self.open_services):
            if cache is not None:
                cache.suspend()

    def _resume(self) -> None:
        for cache in (self.users, self.open_services):
            if cache is not None:
                cache.resume()

    # -- publishing -----------------------------------------------------------------------

    async def publish_users(self, user_ids: frozenset[int]) -> None:
        """Tell every instance (this one too) that these users' rows changed. Never raises."""
        self._unsent.update(user_ids)
        await self._flush()

    async def publish_incidents(self) -> None:
        """Tell every instance (this one too) that an incident changed. Never raises."""
        self._unsent_incidents = True
        await self._flush()

    async def _flush(self) -> None:
        # After a failure Redis is left alone for `retry_after`: a dead server must not make
        # every such commit wait for its connect timeout.
        if not (self._unsent or self._unsent_incidents) or time.monotonic() < self._publish_after:
            return
        ids, self._unsent = self._unsent, set()
        incidents, self._unsent_incidents = self._unsent_incidents, False
        try:
            await self._redis.publish(self.channel, encode(ids, incidents))
        except _ERRORS as error:
            self._unsent |= ids
            self._unsent_incidents = self._unsent_incidents or incidents
            self._publish_after = time.monotonic() + self._retry_after
            log.warning("cache.publish_failed users=%s incidents=%s error=%r",
                        len(ids), incidents, error)

    # -- receiving ------------------------------------------------------------------------

    async def start(self) -> None:
        if self.caching and self._task is None:
            self._task = asyncio.create_task(self._run(), name="cache-sync")

    async def close(self) -> None:
        self._stopping = True  # the loops end by themselves too, should a cancel be swallowed
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=_TIMEOUT + self._ping_every)
            if task in done:
                with contextlib.suppress(asyncio.CancelledError, *_ERRORS):
                    task.result()
            else:
                log.warning("cache.sync_did_not_stop")
        with contextlib.suppress(*_ERRORS):
            await self._flush()
        with contextlib.suppress(*_ERRORS):
            await self._redis.aclose()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._listen()
            except _ERRORS as error:
                if self._failures == 0:
                    log.warning("cache.subscription_lost error=%r; caches off", error)
                self._failures += 1
            finally:
                self.subscribed.clear()
                self._suspend()
            await asyncio.sleep(self._retry_after)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            heard = time.monotonic()
            pinged = heard
            while not self._stopping:
                message = await pubsub.get_message(timeout=self._ping_every / 2)
                now = time.monotonic()
                if message is not None:
                    heard = now
                    kind = message.get("type")
                    if kind == "message":
                        self._apply(message.get("data", b""))
                    elif kind == "subscribe":  # (again): what was sent meanwhile is unknown
                        self._resume()
                        self.subscribed.set()
                        self._failures = 0
                        log.info("cache.subscribed; caches on")
                        await self._flush()
                if now - heard > self._lost_after:
                    raise TimeoutError(f"no answer on the subscription for {now - heard:.1f} s")
                if now - pinged >= self._ping_every:
                    pinged = now
                    await pubsub.ping()
        finally:
            with contextlib.suppress(*_ERRORS):
                await pubsub.aclose()

    def _apply(self, data: Any) -> None:
        try:
            users, incidents = decode(data)
        except ValueError:
            log.warning("cache.bad_message data=%r", data)
            return
        if users and self.users is not None:
            self.users.invalidate(users)
        if incidents and self.open_services is not None:
            self.open_services.invalidate()
