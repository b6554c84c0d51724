"""The tests' clock, and dates chosen relative to the real today (the suite passes on any date).

    clock = Clock()                     # the Wednesday 10:00 (Belgrade) of the next ordinary week
    clock.advance(minutes=31)
    clock.set(ordinary_week() + ...)    # any aware datetime

Hand the clock to the program where it is wired (`build_services(settings, clock=clock)`,
`Database.from_url(url, clock=clock)`, the `clock` fixture of tests/conftest.py): then the
database stamps rows by the same clock the services ask "what is due?" with.

An "ordinary week" is one whose Monday to Friday and the Monday after are all working days in
Serbia (public holidays computed for the year in question, Orthodox Easter and Christmas
included, by `bot.services.working_hours`), so "Friday afternoon then Monday morning" means
the same thing in every week a test may run in.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.services.working_hours import WorkingHours
from storage.clock import utcnow

BELGRADE = ZoneInfo("Europe/Belgrade")


def today() -> date:
    """The real today in Belgrade."""
    return utcnow().astimezone(BELGRADE).date()


def ordinary_week(after: date | None = None) -> date:
    """The Monday of the first ordinary week starting after `after` (default: the real today)."""
    hours = WorkingHours()
    start = after or today()
    monday = start + timedelta(days=7 - start.weekday())  # next Monday, never today
    while not all(hours.is_workday(monday + timedelta(days=d)) for d in (0, 1, 2, 3, 4, 7)):
        monday += timedelta(days=7)
    return monday


def belgrade(day: date, hour: int, minute: int = 0) -> datetime:
    """`day` at `hour:minute` in Belgrade (aware)."""
    return datetime.combine(day, time(hour, minute), BELGRADE)


def ordinary_wednesday(hour: int = 10, minute: int = 0) -> datetime:
    """Wednesday of the next ordinary week at `hour:minute` in Belgrade: a working morning."""
    return belgrade(ordinary_week() + timedelta(days=2), hour, minute)


class Clock:
    """A clock the test moves by hand; starts at `ordinary_wednesday()` unless told."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = (now or ordinary_wednesday()).astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.astimezone(UTC)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
