"""One clerk's flood guard, for every channel: a sliding window of messages per person, kept in
memory and checked before any database work, so a runaway client costs neither writes nor a
flood of replies. The first message over the limit is answered once a window; the rest are
dropped quietly."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable

MAX_PEOPLE = 50_000  # beyond this many tracked people, the idle ones are forgotten


class FloodWindow:
    """At most `per_minute` messages per person in any `window` seconds (0 or less: no limit)."""

    def __init__(
        self,
        per_minute: int,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.window = window
        self._clock = clock
        self._seen: dict[Hashable, deque[float]] = {}
        self._warned: dict[Hashable, float] = {}

    def check(self, person: Hashable) -> tuple[bool, bool]:
        """(allowed, warn): `warn` is True for the first refusal of a window only."""
        if self.per_minute <= 0:
            return True, False
        now = self._clock()
        stamps = self._seen.setdefault(person, deque())
        while stamps and now - stamps[0] >= self.window:
            stamps.popleft()
        if len(stamps) < self.per_minute:
            stamps.append(now)
            if len(self._seen) > MAX_PEOPLE:
                self._forget_idle(now)
            return True, False
        warned_at = self._warned.get(person)
        if warned_at is None or now - warned_at >= self.window:
            self._warned[person] = now
            return False, True
        return False, False

    def _forget_idle(self, now: float) -> None:
        self._seen = {k: v for k, v in self._seen.items() if v and now - v[-1] < self.window}
        self._warned = {k: v for k, v in self._warned.items() if now - v < self.window}
