"""What the in-process caches of the services share (`UserCache`, `OpenServices`)."""

from __future__ import annotations

import time
from collections.abc import Callable


class InvalidatedCache:
    """A cache whose entries live `ttl` seconds at most (0: no cache) and are dropped when a
    commit changes what they hold. A value read before an invalidation must not be kept after
    it: `put` callers pass the `generation()` they read at, and each invalidation moves it on.
    While changes made elsewhere may be going unheard (the Redis relay is not known to work)
    the cache is `suspend`ed: emptied, and neither read nor filled until `resume`."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._generation = 0
        self._live = True

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    @property
    def live(self) -> bool:
        """Entries are being served and kept (not suspended)."""
        return self._live

    def generation(self) -> int:
        return self._generation

    def keeps(self, generation: int) -> bool:
        """May a value read at `generation` be kept now?"""
        return self.enabled and self._live and generation == self._generation

    def suspend(self) -> None:
        """Forget everything and cache nothing until `resume`."""
        self._live = False
        self.clear()

    def resume(self) -> None:
        """Cache again, from empty: what was missed while suspended cannot be served."""
        self.clear()
        self._live = True

    def clear(self) -> None:
        """Drop every entry (and move the generation on)."""
        self._generation += 1
        self._forget_all()

    def _forget_all(self) -> None:
        raise NotImplementedError
