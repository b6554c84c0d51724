"""Send pacing shared through Redis, so several bot instances stay under Telegram's limits
together (about 30 messages/s overall, 1/s per chat, 20/min per group).

Each send runs one Lua script that, atomically on the Redis server, reserves the next free
global slot and the chat's next slot and returns how long to wait; a chat still within its gap
is told to come back later without taking a global slot.
Time is Redis' own clock (`TIME`), so instances on hosts whose clocks differ still agree.
A 429 (`pause`) pushes the global slot past `retry_after` for everyone.

If Redis cannot be reached the limiter falls back to in-process pacing (logged), so messages
keep flowing; the shared guarantee returns with Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.ratelimit import LocalRateLimiter, is_group_chat

log = logging.getLogger(__name__)

__all__ = ["RedisRateLimiter"]

# KEYS[1] global slot, KEYS[2] the chat's slot; ARGV[1] global interval, ARGV[2] chat gap (s).
# Returns "wait:1" (a global slot reserved, send after `wait` seconds) or "wait:0" (the chat is
# still within its gap: try again after `wait`, no global slot taken, so one busy chat does not
# hold up everybody else). As a string: Lua numbers would be truncated to integers.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local gap = tonumber(ARGV[2])
local c = tonumber(redis.call('GET', KEYS[2]) or '0')
if c > now then
  return string.format('%.6f:0', c - now)
end
local g = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, g)
redis.call('SET', KEYS[1], string.format('%.6f', slot + interval), 'PX', 600000)
if gap > 0 then
  redis.call('SET', KEYS[2], string.format('%.6f', slot + gap), 'PX', math.ceil(gap * 1000) + 1000)
end
return string.format('%.6f:1', slot - now)
"""

# KEYS[1] global slot; ARGV[1] seconds nobody may send.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local g = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > g then
  redis.call('SET', KEYS[1], string.format('%.6f', until_), 'PX', 600000)
end
return 1
"""


class RedisRateLimiter:
    """`SendRateLimiter` over Redis: one global budget for every instance sharing `prefix`."""

    def __init__(
        self,
        redis: Redis,
        per_second: float = 30.0,
        per_chat_interval: float = 1.0,
        per_group_interval: float = 3.0,
        *,
        prefix: str = "euprava:send",
    ) -> None:
        self._redis = redis
        self._interval = 1.0 / per_second
        self._per_chat = per_chat_interval
        self._per_group = per_group_interval
        self._prefix = prefix
        self._reserve: Any = redis.register_script(_RESERVE)
        self._pause: Any = redis.register_script(_PAUSE)
        self._fallback = LocalRateLimiter(per_second, per_chat_interval, per_group_interval)
        self._degraded = False
        self._tasks: set[asyncio.Task[None]] = set()
        # A dispatcher reserves many slots at once; more concurrent calls than the Redis pool
        # has connections would fail and fall back to local pacing, breaking the shared limit.
        self._in_flight = asyncio.Semaphore(32)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisRateLimiter:
        return cls(Redis.from_url(url), **options)

    @property
    def global_key(self) -> str:
        return f"{self._prefix}:global"

    def _chat_key(self, chat_id: str) -> str:
        return f"{self._prefix}:chat:{chat_id}"

    async def try_reserve(self, chat_id: str) -> tuple[float, bool]:
        """(seconds to wait, reserved): as `LocalRateLimiter.try_reserve`, shared."""
        gap = self._per_group if is_group_chat(chat_id) else self._per_chat
        try:
            async with self._in_flight:
                answer = await self._reserve(
                    keys=[self.global_key, self._chat_key(chat_id)], args=[self._interval, gap]
                )
        except (RedisError, OSError) as error:
            if not self._degraded:
                log.warning("rate limiter: Redis unavailable, pacing locally",
                            extra={"error": type(error).__name__})
                self._degraded = True
            moment, reserved = self._fallback.try_reserve(chat_id)
            return max(0.0, moment - time.monotonic()), reserved
        if self._degraded:
            log.info("rate limiter: Redis is back, pacing shared again")
            self._degraded = False
        text = answer.decode() if isinstance(answer, bytes) else str(answer)
        wait, _, flag = text.partition(":")
        return max(0.0, float(wait)), flag == "1"

    async def acquire(self, chat_id: str) -> None:
        while True:
            delay, reserved = await self.try_reserve(chat_id)
            if delay > 0:
                await asyncio.sleep(delay)
            if reserved:
                return

    def pause(self, seconds: float) -> None:
        """Telegram answered 429: every instance holds off for `seconds`."""
        self._fallback.pause(seconds)
        task = asyncio.get_running_loop().create_task(self._pause_shared(seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pause_shared(self, seconds: float) -> None:
        try:
            await self._pause(keys=[self.global_key], args=[seconds])
        except (RedisError, OSError):
            log.warning("rate limiter: could not share a pause through Redis")

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()
