"""Viber's per-user flood guard: Viber has no rate limit of its own for a bot's callers, so the
channel counts each user's messages before any database work is done."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class _RateLimit:
    """A sliding one-minute window of messages per Viber user, in memory, before any database
    work; the first message over the limit is answered once, the rest are dropped quietly."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._warned: dict[str, float] = {}

    def check(self, viber_id: str) -> tuple[bool, bool]:
        """(allowed, warn)"""
        if self.per_minute <= 0:
            return True, False
        now = self._clock()
        stamps = self._seen.setdefault(viber_id, deque())
        while stamps and now - stamps[0] >= 60.0:
            stamps.popleft()
        if len(stamps) < self.per_minute:
            stamps.append(now)
            if len(self._seen) > 50_000:
                self._seen = {k: v for k, v in self._seen.items() if v and now - v[-1] < 60}
                self._warned = {k: v for k, v in self._warned.items() if now - v < 60}
            return True, False
        warned = self._warned.get(viber_id)
        if warned is None or now - warned >= 60.0:
            self._warned[viber_id] = now
            return False, True
        return False, False
