"""Working hours of the mentors: Mon-Fri 08-16 Europe/Belgrade by default, without Serbian
public holidays (the `holidays` package, Orthodox Easter and Christmas included), configurable.

Everything takes and returns timezone-aware datetimes; the arithmetic is done on local days.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

MAX_DAYS = 400  # never loop further than this looking for working time


@cache
def serbian_public_holidays(year: int) -> frozenset[date]:
    try:
        import holidays
    except ImportError:  # pragma: no cover - the dependency is declared
        log.warning("the holidays package is missing: public holidays are treated as workdays")
        return frozenset()
    return frozenset(holidays.Serbia(years=year).keys())


@dataclass(frozen=True)
class WorkingHours:
    start: time = time(8, 0)
    end: time = time(16, 0)
    timezone: str = "Europe/Belgrade"
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    public_holidays: bool = True
    extra_holidays: frozenset[date] = field(default_factory=frozenset)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def is_workday(self, day: date) -> bool:
        if day.weekday() not in self.workdays or day in self.extra_holidays:
            return False
        return not (self.public_holidays and day in serbian_public_holidays(day.year))

    def _window(self, day: date) -> tuple[datetime, datetime]:
        zone = self.zone
        return (datetime.combine(day, self.start, zone), datetime.combine(day, self.end, zone))

    def is_open(self, moment: datetime) -> bool:
        local = self.local(moment)
        if not self.is_workday(local.date()):
            return False
        opens, closes = self._window(local.date())
        return opens <= local < closes

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """How much of [start, end) falls inside working hours."""
        if end <= start:
            return timedelta(0)
        total = timedelta(0)
        day = self.local(start).date()
        last = self.local(end).date()
        for _ in range(MAX_DAYS):
            if day > last:
                break
            if self.is_workday(day):
                opens, closes = self._window(day)
                lo, hi = max(opens, start), min(closes, end)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The moment when `amount` of working time has passed after `start`."""
        remaining = amount
        day = self.local(start).date()
        for _ in range(MAX_DAYS):
            if self.is_workday(day):
                opens, closes = self._window(day)
                lo = max(opens, start)
                if closes > lo:
                    if lo + remaining <= closes:
                        return lo + remaining
                    remaining -= closes - lo
            day += timedelta(days=1)
        return start + amount

    def next_opening(self, moment: datetime) -> datetime:
        """`moment` itself when open, else the start of the next working period."""
        day = self.local(moment).date()
        for _ in range(MAX_DAYS):
            if self.is_workday(day):
                opens, closes = self._window(day)
                if moment < closes:
                    return max(opens, moment)
            day += timedelta(days=1)
        return moment


def parse_holidays(values: Iterable[str]) -> frozenset[date]:
    """'2026-12-31, 2027-01-03' style extra days off."""
    days: set[date] = set()
    for value in values:
        value = value.strip()
        if value:
            days.add(date.fromisoformat(value))
    return frozenset(days)
