"""The one clock of the program: where business time ("now") comes from.

Why one clock: what is due (an outbox row, a reminder, an SLA step, an update to replay) is
decided by comparing stored times with "now". When the rows are stamped by one clock and the
comparison uses another, the answer is wrong: a row stamped by the machine's clock is not due
for a service on another clock until that clock catches up. So the clock is chosen once, where
the program is wired (`bot.app.build_services`, tests), handed to `storage.Database`, and the
services, the scheduler's jobs, the outbox dispatcher and the inbox read it from there.

It lives in `storage` because storage stamps rows and must not import `bot`; everything above
storage may import it.

* `Clock`: anything callable returning an aware UTC datetime (the real one is `utcnow`; tests
  pass an object they move by hand).
* `utcnow`: the machine's clock, the default. This module is the only place that reads it;
  `tests/test_clock_guard.py` fails when another module calls datetime.now(), time.time() & co.
* Repositories and column defaults take "now" from the clock of their `Database`
  (`clock_of`, `stamp`), never from the machine directly.

Monotonic clocks (`time.monotonic`, `loop.time()`) measure timeouts and send pacing, not
business time; they are not this clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["CLOCK_OPTION", "Clock", "clock_of", "stamp", "utcnow"]

Clock = Callable[[], datetime]
"""Returns the current business time, timezone-aware (UTC)."""

CLOCK_OPTION = "business_clock"
"""Execution option of the engines a `Database` hands out: its clock."""


def utcnow() -> datetime:
    """The machine's clock, timezone-aware, in UTC (the default `Clock`)."""
    return datetime.now(UTC)


def clock_of(bind: Any) -> Clock:
    """The clock of an engine or connection made by `storage.Database` (`utcnow` for a bare
    engine that no Database configured, e.g. the migration runner's)."""
    clock: Clock = bind.get_execution_options().get(CLOCK_OPTION, utcnow)
    return clock


def stamp(context: Any) -> datetime:
    """Column default / onupdate for timestamps: "now" by the clock of the engine that runs
    the statement (SQLAlchemy passes the execution context to a one-argument default)."""
    clock: Clock = context.execution_options.get(CLOCK_OPTION, utcnow)
    return clock()
