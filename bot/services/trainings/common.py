"""The trainings' vocabulary: validation of what an admin types (`Invalid` carries the polite
message), dates and times in words, and the draft and view values the service works with."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from bot.digits import is_digits
from bot.i18n import tr
from bot.services.audience import (
    DEFAULT_SERVICES,
    Audience,
    ServiceInfo,
)
from bot.services.municipalities import fold
from knowledge_base.translit import to_latin
from storage.trainings import Training

BELGRADE = ZoneInfo("Europe/Belgrade")
DEFAULT_REMINDER_OFFSETS: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(hours=1))
ANNOUNCE_CHUNK = 1000


# --------------------------------------------------------------------------- validation


class Invalid(ValueError):
    """An answer in the dialogue that cannot be used; `message(language)` explains why."""

    def __init__(self, msgid: str, **values: object) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.values = values

    def message(self, language: str) -> str:
        return tr(language, self.msgid, **self.values)


def parse_title(text: str) -> str:
    title = " ".join(text.split())
    if len(title) < 3:
        raise Invalid("Naziv je prekratak; napišite bar tri slova.")
    if len(title) > 200:
        raise Invalid("Naziv je predugačak (najviše 200 znakova).")
    return title


def parse_service(text: str, services: Sequence[ServiceInfo] = DEFAULT_SERVICES) -> str:
    folded = fold(text).replace(" ", "").replace("-", "")
    for service in services:
        if folded in (service.id, fold(service.title_sr).replace(" ", "")):
            return service.id
    raise Invalid(
        "Ne poznajem uslugu „{text}“. Izaberite jednu od: {known}.",
        text=text.strip()[:40], known=", ".join(s.id for s in services),
    )


_SR_DATE = re.compile(
    r"^(?P<d>\d{1,2})\s*\.\s*(?P<m>\d{1,2})\s*\.\s*(?P<y>\d{4})\s*\.?\s*,?\s*"
    r"(?:u\s*|at\s*)?(?P<H>\d{1,2})(?:\s*[:.h]\s*(?P<M>\d{2}))?\s*"
    r"(?:h|č|c|čas(?:ova)?|sati?|časova)?\.?$"
)
_ISO_DATE = re.compile(
    r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?:\s+|t)(?:u\s*|at\s*)?"
    r"(?P<H>\d{1,2})(?:\s*[:.h]\s*(?P<M>\d{2}))?\s*h?$"
)


def parse_when(text: str, now: datetime, tz: ZoneInfo = BELGRADE) -> datetime:
    """`15.12.2026 10:00`, `15.12.2026. u 10h`, `15. 12. 2026. u 10.30`, `2026-12-15 10:00`
    (Belgrade time; Cyrillic too) -> an aware UTC datetime, which must lie in the future."""
    cleaned = " ".join(to_latin(text).strip().lower().split())
    match = _SR_DATE.match(cleaned) or _ISO_DATE.match(cleaned)
    if match is None:
        raise Invalid("Ne razumem datum. Napišite ga ovako: 15.12.2026 10:00")
    try:
        local = datetime(
            int(match["y"]), int(match["m"]), int(match["d"]),
            int(match["H"]), int(match["M"] or 0), tzinfo=tz,
        )
    except ValueError:
        raise Invalid("Takav datum ne postoji. Napišite ga ovako: 15.12.2026 10:00") from None
    when = local.astimezone(now.tzinfo)
    if when <= now:
        raise Invalid("Taj datum je prošao. Unesite datum i vreme u budućnosti.")
    if when > now + timedelta(days=730):
        raise Invalid("Datum je predaleko u budućnosti (najviše dve godine).")
    return when


_DURATION = re.compile(
    r"^(?:(?P<h>\d+(?:[.,]\d+)?)\s*(?:h|sat[ai]?|č|časa|hours?)\s*)?"
    r"(?:(?P<m>\d+)\s*(?:min(?:uta)?|m|minutes?)?)?$"
)


def parse_duration(text: str) -> int:
    """`90`, `90 min`, `1h`, `1,5 h`, `1h30`, `2 sata` -> minutes (15 to 600)."""
    cleaned = to_latin(text).strip().lower().replace(" ", "")
    match = _DURATION.match(cleaned) if cleaned else None
    if match is None or not (match["h"] or match["m"]):
        raise Invalid("Ne razumem trajanje. Napišite broj minuta (npr. 90) ili sati (npr. 1,5h).")
    minutes = round(float((match["h"] or "0").replace(",", ".")) * 60) + int(match["m"] or 0)
    if not 15 <= minutes <= 600:
        raise Invalid("Trajanje mora biti između 15 minuta i 10 sati.")
    return minutes


def parse_place(text: str) -> tuple[str | None, str | None]:
    """An online link (https://...) or an address -> (link, address)."""
    value = text.strip()
    looks_like_link = "://" in value or value.lower().startswith("www.") or (" " not in value and (
        "/" in value or value.lower().endswith((".rs", ".com", ".org", ".net"))
    ))
    if looks_like_link:
        if value.lower().startswith("www."):
            value = "https://" + value
        parts = urlsplit(value)
        host = parts.hostname or ""
        if (
            parts.scheme not in ("http", "https")
            or "." not in host
            or any(ch.isspace() for ch in value)
            or len(value) > 500
        ):
            raise Invalid(
                "Link nije ispravan. Napišite ceo link, npr. https://meet.example.rs/obuka"
            )
        return value, None
    if len(value) < 5:
        raise Invalid("Napišite adresu (ulica, broj, mesto) ili link za onlajn obuku.")
    if len(value) > 300:
        raise Invalid("Adresa je predugačka (najviše 300 znakova).")
    return None, value


def parse_capacity(text: str) -> int | None:
    """A number of seats, or `-`/`bez`/`ne`/`0` for no limit."""
    cleaned = fold(text)
    if cleaned in ("", "ne", "bez", "bez ogranicenja", "nema", "no", "none", "0", "neograniceno"):
        return None
    if not is_digits(cleaned):
        raise Invalid("Napišite broj mesta (npr. 30) ili „bez“ ako nema ograničenja.")
    seats = int(cleaned) if len(cleaned) <= 6 else 10_001
    if seats > 10_000:
        raise Invalid("Najviše 10000 mesta.")
    return seats


def parse_offsets(text: str) -> tuple[timedelta, ...]:
    """`24h,1h` / `1d,2h,30m` -> reminder offsets (for configuration)."""
    offsets: list[timedelta] = []
    for part in text.replace(";", ",").split(","):
        item = part.strip().lower()
        if not item:
            continue
        number, unit = item[:-1], item[-1]
        if not is_digits(number) or len(number) > 6 or unit not in "dhm":
            raise ValueError(f"bad reminder offset {part!r}: use e.g. 24h, 1h, 30m, 2d")
        name = {"d": "days", "h": "hours", "m": "minutes"}[unit]
        offsets.append(timedelta(**{name: int(number)}))
    return tuple(sorted(set(offsets), reverse=True))


# --------------------------------------------------------------------------- presentation


def format_when(when: datetime, language: str, tz: ZoneInfo = BELGRADE) -> str:
    local = when.astimezone(tz)
    date = local.strftime("%d.%m.%Y.") if language != "en" else local.strftime("%d %b %Y")
    return tr(language, "{date} u {time}", date=date, time=local.strftime("%H:%M"))


def hours_text(language: str, hours: int) -> str:
    """"24 sata" / "1 sat" / "5 sati" / "24 hours": Serbian plural forms."""
    if language == "en":
        return f"{hours} hour" + ("" if hours == 1 else "s")
    if hours % 10 == 1 and hours % 100 != 11:
        return tr(language, "{n} sat", n=hours)
    if hours % 10 in (2, 3, 4) and hours % 100 not in (12, 13, 14):
        return tr(language, "{n} sata", n=hours)
    return tr(language, "{n} sati", n=hours)


def duration_text(language: str, offset: timedelta) -> str:
    """How long, in whole hours where it can: "24 sata", "90 min"."""
    minutes = int(offset.total_seconds() // 60)
    if minutes % 60 == 0:
        return hours_text(language, minutes // 60)
    return tr(language, "{n} min", n=minutes)


def relative_time(language: str, offset: timedelta) -> str:
    """How far ahead: "za 24 sata", "in 24 hours"."""
    return tr(language, "za {duration}", duration=duration_text(language, offset))


@dataclass(frozen=True)
class TrainingDraft:
    title: str
    service: str
    starts_at: datetime
    duration_minutes: int
    link: str | None = None
    address: str | None = None
    capacity: int | None = None
    audience: Audience = field(default_factory=Audience)


@dataclass(frozen=True)
class TrainingView:
    id: int
    title: str
    service: str
    starts_at: datetime
    duration_minutes: int
    link: str | None
    address: str | None
    capacity: int | None
    audience: Audience
    status: str
    revision: int
    registered: int = 0
    waitlisted: int = 0
    materials_link: str | None = None
    created_by: int | None = None

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    @property
    def full(self) -> bool:
        return self.capacity is not None and self.registered >= self.capacity


def view_of(row: Training, registered: int = 0, waitlisted: int = 0) -> TrainingView:
    return TrainingView(
        row.id, row.title, row.service, row.starts_at, row.duration_minutes, row.link,
        row.address, row.capacity, Audience.from_row(row.audience_kind, row.audience_values),
        row.status, row.revision, registered, waitlisted, row.materials_link, row.created_by,
    )



def with_audience(draft: TrainingDraft, audience: Audience) -> TrainingDraft:
    return replace(draft, audience=audience)
