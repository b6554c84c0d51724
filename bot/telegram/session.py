"""Outgoing Bot API calls that survive Telegram's bad moments.

A request middleware on the Bot's session:
- 429 Too Many Requests: waits `retry_after` seconds, then retries;
- 5xx and network errors (timeouts, dropped connections): retries with exponential back-off;
- 403 Forbidden (the clerk blocked the bot): tells `on_blocked(chat_id)` so the user is marked
  inactive, then re-raises (there is nobody to talk to);
- everything else (400 and friends) is raised at once: retrying would not help.
getUpdates is left alone: aiogram's polling loop has its own back-off.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import (
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response

    from bot.telegram.metrics import Metrics

log = logging.getLogger(__name__)

BlockedCallback = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # total tries of one call, the first included
    base_delay: float = 0.5  # first back-off after a 5xx / network error, in seconds
    max_delay: float = 10.0
    max_retry_after: float = 60.0  # never park a call longer than this for a 429


class RetryMiddleware(BaseRequestMiddleware):
    def __init__(
        self,
        policy: RetryPolicy | None = None,
        on_blocked: BlockedCallback | None = None,
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.on_blocked = on_blocked
        self.metrics = metrics
        self._sleep = sleep

    def _count(self, method: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.api_calls.labels(method=method, outcome=outcome).inc()

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        if name == GetUpdates.__api_method__:
            return await make_request(bot, method)
        attempt = 1
        while True:
            try:
                response = await make_request(bot, method)
            except TelegramRetryAfter as exc:
                self._count(name, "429")
                if attempt >= self.policy.attempts:
                    raise
                delay = min(float(exc.retry_after), self.policy.max_retry_after)
                log.warning("telegram.retry_after method=%s wait=%.1fs", name, delay)
            except (TelegramServerError, TelegramNetworkError) as exc:
                self._count(name, "5xx" if isinstance(exc, TelegramServerError) else "network")
                if attempt >= self.policy.attempts:
                    raise
                delay = min(self.policy.base_delay * 2 ** (attempt - 1), self.policy.max_delay)
                delay *= random.uniform(0.8, 1.2)
                log.warning(
                    "telegram.retry method=%s attempt=%d error=%s wait=%.2fs",
                    name,
                    attempt,
                    type(exc).__name__,
                    delay,
                )
            except TelegramForbiddenError:
                self._count(name, "403")
                chat_id = getattr(method, "chat_id", None)
                if isinstance(chat_id, int) and chat_id > 0 and self.on_blocked is not None:
                    try:
                        await self.on_blocked(chat_id)
                    except Exception:
                        log.exception("telegram.mark_blocked_failed chat_id=%s", chat_id)
                raise
            else:
                self._count(name, "ok")
                return response
            await self._sleep(delay)
            attempt += 1
