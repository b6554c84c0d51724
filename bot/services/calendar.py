"""Calendar files (.ics, RFC 5545) for trainings, built with the icalendar library.

The UID is stable per training, and SEQUENCE grows with each change, so a calendar that
imported the first file updates the event (or removes it on cancellation) instead of adding a
second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from icalendar import Alarm, Calendar, Event, vText

PRODID = "-//eUprava za sve//Podrska bot//SR"
UID_DOMAIN = "euprava-bot.rs"

@dataclass(frozen=True)
class CalendarEvent:
    training_id: int
    title: str
    starts_at: datetime  # aware
    duration_minutes: int
    description: str = ""
    link: str | None = None
    address: str | None = None
    sequence: int = 0
    cancelled: bool = False

def event_uid(training_id: int) -> str:
    return f"training-{training_id}@{UID_DOMAIN}"

def training_ics(event: CalendarEvent, *, now: datetime) -> bytes:
    """One VEVENT in a VCALENDAR, times in UTC (every calendar app converts them)."""
    if event.starts_at.tzinfo is None:
        raise ValueError("starts_at must be timezone-aware")
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "CANCEL" if event.cancelled else "PUBLISH")
    item = Event()
    item.add("uid", event_uid(event.training_id))
    item.add("dtstamp", now)
    item.add("dtstart", event.starts_at)
    item.add("dtend", event.starts_at + timedelta(minutes=event.duration_minutes))
    item.add("summary", event.title)
    item.add("sequence", event.sequence)
    item.add("status", "CANCELLED" if event.cancelled else "CONFIRMED")
    description = event.description
    if event.link:
        item.add("url", event.link)
        item.add("location", vText(event.link))
        description = f"{description}\n{event.link}".strip()
    elif event.address:
        item.add("location", vText(event.address))
    if description:
        item.add("description", description)
    if not event.cancelled:
        alarm_minutes = 60

        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", event.title)
        alarm.add("trigger", timedelta(minutes=-alarm_minutes))
        item.add_component(alarm)
    calendar.add_component(item)
    return calendar.to_ical()

def ics_filename(event: CalendarEvent) -> str:
    return f"obuka-{event.training_id}.ics"
