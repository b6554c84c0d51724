"""Pacing of outgoing messages within Telegram's limits.

Telegram allows about 30 messages a second overall, one a second to one chat and 20 a minute
to one group. Rather than sending in bursts and reacting to 429s, each send reserves the next
free slot and waits for it, so a broadcast runs just under the limit without a single 429.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class SendRateLimiter(Protocol):
    async def acquire(self, chat_id: str) -> None:
        """Wait until a message to `chat_id` may be sent."""

    def pause(self, seconds: float) -> None:
        """Telegram said 429: nobody sends for `seconds`."""


def is_group_chat(chat_id: str) -> bool:
    """Telegram group and channel ids are negative."""
    return chat_id.startswith("-")


class LocalRateLimiter:
    """Slot reservation in one process: a global rate plus a minimum interval per chat."""

    def __init__(
        self,
        per_second: float = 30.0,
        per_chat_interval: float = 1.0,
        per_group_interval: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = 1.0 / per_second
        self._per_chat = per_chat_interval
        self._per_group = per_group_interval
        self._clock = clock
        self._next_global = 0.0
        self._next_for_chat: dict[str, float] = {}
        # Real send moments: if the event loop stalled, reserved slots would bunch up, so no
        # more than `per_second` messages are ever let through within any one second.
        self._window = max(1, int(per_second))
        self._recent: deque[float] = deque(maxlen=self._window)
        # Sends that fell behind (a stall) catch up at most 25 % faster than the rate, never in
        # a burst that Telegram, counting arrivals, could see as more than its limit.
        self._min_spacing = 0.8 * self._interval
        self._last_sent = float("-inf")
        self._gate = asyncio.Lock()  # FIFO

    def try_reserve(self, chat_id: str) -> tuple[float, bool]:
        """(moment on `clock`, reserved). A chat still within its gap gets the moment it is
        free and no global slot: one chat waiting must not hold up messages to everybody else
        (a broadcast's progress edits to the admin would otherwise stall the whole broadcast).
        """
        now = self._clock()
        chat_free = self._next_for_chat.get(chat_id, 0.0)
        if chat_free > now:
            return chat_free, False
        chat_gap = self._per_group if is_group_chat(chat_id) else self._per_chat
        slot = max(now, self._next_global)
        self._next_global = slot + self._interval
        self._next_for_chat[chat_id] = slot + chat_gap
        if len(self._next_for_chat) > 50_000:
            self._next_for_chat = {k: v for k, v in self._next_for_chat.items() if v > now}
        return slot, True

    async def acquire(self, chat_id: str) -> None:
        while True:
            moment, reserved = self.try_reserve(chat_id)
            delay = moment - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if reserved:
                break
        # The real send moments: no burst after a stall, at most N in any second. Through a
        # gate, one at a time in the order they arrive: waiting here in a free-for-all, an
        # unlucky message could lose every race, outlive its lease and be sent twice.
        async with self._gate:
            while True:
                now = self._clock()
                wait = self._last_sent + self._min_spacing - now
                if len(self._recent) == self._window:
                    wait = max(wait, self._recent[0] + 1.0 - now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self._last_sent = self._clock()
            self._recent.append(self._last_sent)

    def pause(self, seconds: float) -> None:
        self._next_global = max(self._next_global, self._clock() + seconds)
