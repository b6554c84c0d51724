"""Trainings: announce, sign up (with a waiting list), remind, change and cancel.

Reminders are outbox rows written when a clerk signs up: `not_before` = start - offset (24 h
and 1 h by default), `expires_at` = start, dedupe key ``reminder:<training>:<user>:<minutes>``.
So they survive restarts, are claimed by exactly one instance, go out late if the bot was down
but the training has not started, and expire (logged, never sent) otherwise. A change of time
re-arms them; a cancellation cancels them. Nothing lives only in a scheduler's memory.

Every use case takes plain values and returns a channel-neutral Reply; privileged ones check the
role here (not only in the handler) and refuse politely, with a log line.
"""

from __future__ import annotations

import base64
import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from bot.digits import is_digits, to_int
from bot.i18n import tr
from bot.services.attendance import AttendanceService
from bot.services.audience import (
    DEFAULT_SERVICES,
    Audience,
    AudienceError,
    ServiceInfo,
    audience_members,
    parse_audience,
    say,
)
from bot.services.audit import TRAINING_CANCEL, TRAINING_CREATE, TRAINING_UPDATE, audit_record
from bot.services.calendar import CalendarEvent, ics_filename, training_ics
from bot.services.messages import reply_to_payload
from bot.services.municipalities import MunicipalityDirectory, fold
from bot.services.replies import Button, Reply
from bot.services.users import UserProfile
from knowledge_base.translit import to_latin
from storage.clock import Clock
from storage.models import User
from storage.trainings import Registration, Training, TrainingRepository
from storage.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_REMINDER_OFFSETS",
    "Invalid",
    "TrainingDraft",
    "TrainingService",
    "TrainingView",
    "format_when",
    "parse_capacity",
    "parse_duration",
    "parse_offsets",
    "parse_place",
    "parse_service",
    "parse_title",
    "parse_when",
]

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
        return say(language, self.msgid, **self.values)


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
    return say(language, "{date} u {time}", date=date, time=local.strftime("%H:%M"))


def _hours(language: str, hours: int) -> str:
    if language == "en":
        return f"in {hours} hour" + ("" if hours == 1 else "s")
    if hours % 10 == 1 and hours % 100 != 11:
        return say(language, "za {n} sat", n=hours)
    if hours % 10 in (2, 3, 4) and hours % 100 not in (12, 13, 14):
        return say(language, "za {n} sata", n=hours)
    return say(language, "za {n} sati", n=hours)


def _relative(language: str, offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    if minutes % 60 == 0:
        return _hours(language, minutes // 60)
    return say(language, "za {n} min", n=minutes)


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


def _view(row: Training, registered: int = 0, waitlisted: int = 0) -> TrainingView:
    return TrainingView(
        row.id, row.title, row.service, row.starts_at, row.duration_minutes, row.link,
        row.address, row.capacity, Audience.from_row(row.audience_kind, row.audience_values),
        row.status, row.revision, registered, waitlisted, row.materials_link, row.created_by,
    )


# --------------------------------------------------------------------------- the service


class TrainingService:
    def __init__(
        self,
        database: Database,
        *,
        directory: MunicipalityDirectory | None = None,
        services: Sequence[ServiceInfo] = DEFAULT_SERVICES,
        clock: Clock | None = None,
        reminder_offsets: Sequence[timedelta] = DEFAULT_REMINDER_OFFSETS,
        channels: Sequence[str] = ("telegram",),
        tz: ZoneInfo = BELGRADE,
    ) -> None:
        self._database = database
        self._directory = directory or MunicipalityDirectory.from_csv()
        self._services = tuple(services)
        self._clock = clock or database.clock  # the program's one clock
        self._offsets = tuple(sorted(set(reminder_offsets), reverse=True))
        self._channels = tuple(channels)
        self._tz = tz
        self.attendance = AttendanceService(database, clock=self._clock, tz=tz)

    # ---- dialogue helpers (the handler validates each answer through these) --------------
    @property
    def services(self) -> tuple[ServiceInfo, ...]:
        return self._services

    def parse_when(self, text: str) -> datetime:
        return parse_when(text, self._clock(), self._tz)

    def parse_service(self, text: str) -> str:
        return parse_service(text, self._services)

    def parse_audience(self, text: str) -> Audience:
        try:
            return parse_audience(text, self._directory, services=self._services)
        except AudienceError as error:
            raise Invalid(error.msgid, **error.values) from None

    def service_title(self, service_id: str, language: str) -> str:
        for service in self._services:
            if service.id == service_id:
                return service.title(language)
        return service_id

    def describe(
        self, training: TrainingView | TrainingDraft, language: str, *, show_link: bool = True
    ) -> str:
        """The training as a clerk sees it (HTML, user text escaped). The meeting link is
        private: ``show_link=False`` for anyone not confirmed (announcements, lists, the
        waiting list) - they see only that it is online."""
        lines = [
            f"<b>{html.escape(training.title)}</b>",
            "🗓 " + say(language, "{when}, trajanje {minutes} min",
                        when=format_when(training.starts_at, language, self._tz),
                        minutes=training.duration_minutes),
            "🧩 " + html.escape(self.service_title(training.service, language)),
        ]
        if training.link and show_link:
            link = html.escape(training.link, quote=True)
            lines.append("🔗 " + say(language, "Onlajn: {link}",
                                     link=f'<a href="{link}">{link}</a>'))
        elif training.link:
            lines.append("🔗 " + say(language, "Onlajn"))
        if training.address:
            lines.append("📍 " + html.escape(training.address))
        if training.capacity is not None:
            if isinstance(training, TrainingView):
                lines.append("👥 " + say(language, "Mesta: {taken}/{capacity}",
                                         taken=training.registered, capacity=training.capacity))
            else:
                lines.append("👥 " + say(language, "Mesta: {capacity}",
                                         capacity=training.capacity))
        return "\n".join(lines)

    # ---- roles -------------------------------------------------------------------------
    def refusal(self, actor: UserProfile, action: str) -> Reply | None:
        """None for an admin; otherwise the polite refusal (logged). Channels call it
        before starting a dialogue; every privileged use case checks again itself."""
        return self._refused(actor, action)

    def _refused(self, actor: UserProfile, action: str) -> Reply | None:
        if actor.is_admin:
            return None
        log.warning("trainings: refused", extra={"user_id": actor.id, "action": action,
                                                 "role": actor.role})
        return Reply(say(actor.language,
                         "Ovu radnju mogu da obave samo administratori. Hvala na razumevanju."))

    # ---- create and announce -------------------------------------------------------------
    async def create(self, actor: UserProfile, draft: TrainingDraft) -> tuple[int | None, Reply]:
        """Save the training and queue its announcement (with "Prijavi se") to the audience."""
        refused = self._refused(actor, "training.create")
        if refused is not None:
            return None, refused
        if draft.starts_at <= self._clock():
            return None, Reply(say(actor.language, "Taj datum je prošao. Unesite datum i vreme "
                                                   "u budućnosti."))
        kind, values = draft.audience.to_row()
        async with self._database.uow() as uow:
            row = await uow.repository(TrainingRepository).add(Training(
                title=draft.title, service=draft.service, starts_at=draft.starts_at,
                duration_minutes=draft.duration_minutes, link=draft.link, address=draft.address,
                capacity=draft.capacity, audience_kind=kind, audience_values=values,
                status="active", revision=0, created_by=actor.id,
            ))
            training_id = row.id
            await audit_record(uow, actor, TRAINING_CREATE, f"training:{training_id}", {
                "title": draft.title, "service": draft.service, "starts_at": draft.starts_at,
                "audience": kind,
            })
            await uow.commit()
        count = await self._announce(training_id)
        log.info("training created", extra={"user_id": actor.id, "training_id": training_id,
                                            "audience": count})
        text = say(actor.language, "Obuka je objavljena. Obaveštenje ide {count} korisnika.",
                   count=count)
        return training_id, Reply(text, ((Button(say(actor.language, "Upravljaj obukom"),
                                                 f"tr:s:{training_id}"),),))

    async def _announce(self, training_id: int) -> int:
        async with self._database.uow(read_only=True) as uow:
            row = await uow.repository(TrainingRepository).get(training_id)
            assert row is not None
            view = _view(row)
        async for members, _last in audience_members(
            self._database, view.audience, channels=self._channels, page_size=ANNOUNCE_CHUNK
        ):
            rows = [
                {
                    "channel": user.channel, "chat_id": user.external_id, "user_id": user.id,
                    "kind": "training_announce", "batch": f"training:{training_id}",
                    "dedupe_key": f"training-announce:{training_id}:{user.id}",
                    "expires_at": view.starts_at, "priority": 120,
                    "payload": reply_to_payload(self._announcement(view, user.language)),
                }
                for user in members
            ]
            if rows:
                async with self._database.uow() as uow:
                    await uow.outbox.add_many(rows)
                    await uow.commit()
        # Counted from the rows themselves: an INSERT's rowcount is not reliable for
        # executemany on every driver (aiosqlite reports 0).
        async with self._database.uow(read_only=True) as uow:
            counts = await uow.outbox.counts_by_status(f"training:{training_id}")
        return sum(counts.values())

    def _announcement(self, view: TrainingView, language: str) -> Reply:
        text = "📢 " + say(language, "Nova obuka") + "\n" + self.describe(
            view, language, show_link=False)
        return Reply(text, ((Button(say(language, "Prijavi se"), f"tr:j:{view.id}"),),))

    # ---- sign up, waiting list, cancel ---------------------------------------------------
    async def sign_up(
        self, user: UserProfile, training_id: int, *, waitlist: bool = False
    ) -> Reply:
        lang = user.language
        now = self._clock()
        async with self._database.uow() as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id, for_update=True)
            problem = self._not_open(row, lang, now)
            if problem is not None or row is None:
                return problem or Reply(say(lang, "Ta obuka ne postoji."))
            current = await repo.registration(training_id, user.id)
            member = await uow.users.get(user.id)
            if member is None or not self._may_join(row, member, current):
                # A forged or foreign `tr:j`/`tr:w` token: the same answer as a stale button,
                # so it reveals nothing about the training.
                log.info("training sign-up refused: not in the audience",
                         extra={"user_id": user.id, "training_id": training_id})
                return Reply(say(lang, "Ovo dugme više ne važi."))
            if current is not None and current.status == "registered":
                return Reply(say(lang, "Već ste prijavljeni na ovu obuku."),
                             self._my_buttons(lang, training_id, "registered"))
            if current is not None and current.status == "waitlisted":
                place = await self._waitlist_place(repo, current)
                return Reply(say(lang, "Već ste na listi čekanja, {n}. po redu.", n=place),
                             self._my_buttons(lang, training_id, "waitlisted"))
            registered = await repo.count(training_id, "registered")
            full = row.capacity is not None and registered >= row.capacity
            if full and not waitlist:
                return Reply(
                    say(lang, "Sva mesta su popunjena. Želite li na listu čekanja? Javićemo vam "
                              "čim se mesto oslobodi."),
                    ((Button(say(lang, "Upiši me na listu čekanja"), f"tr:w:{training_id}"),),),
                )
            position = await repo.next_position(training_id)
            if full:
                reg = await repo.set_registration(training_id, user.id, "waitlisted", position)
                place = await self._waitlist_place(repo, reg)
                await uow.commit()
                log.info("training waitlisted", extra={"user_id": user.id,
                                                       "training_id": training_id})
                return Reply(say(lang, "Upisani ste na listu čekanja, {n}. po redu. Javićemo vam "
                                       "ako se mesto oslobodi.", n=place),
                             self._my_buttons(lang, training_id, "waitlisted"))
            await repo.set_registration(training_id, user.id, "registered", position)
            view = _view(row, registered + 1)
            await self._arm_reminders(uow, view, member, now)
            await self._queue_calendar(uow, view, member, say(
                member.language, "Dodajte obuku u kalendar: „{title}“, {when}.",
                title=html.escape(view.title), when=format_when(view.starts_at, lang, self._tz)))
            await uow.commit()
        log.info("training registered", extra={"user_id": user.id, "training_id": training_id})
        text = "✅ " + say(lang, "Prijavljeni ste na obuku.") + "\n" + self.describe(view, lang)
        text += "\n" + self._reminder_note(lang, view, now)
        return Reply(text, self._my_buttons(lang, training_id, "registered"))

    @staticmethod
    def _may_join(row: Training, member: User, current: Registration | None) -> bool:
        """The rule of `/obuke`: admins, anyone already on the training's lists, and members
        of the audience the announcement targeted (services / municipalities / roles)."""
        if member.role == "admin" or current is not None:
            return True
        return Audience.from_row(row.audience_kind, row.audience_values).matches(member)

    def _reminder_note(self, lang: str, view: TrainingView, now: datetime) -> str:
        upcoming = [o for o in self._offsets if view.starts_at - o > now]
        if not upcoming:
            return say(lang, "Obuka uskoro počinje; podsetnik ne stiže.")
        return say(lang, "Podsetićemo vas {when} pre početka.", when=", ".join(
            _relative(lang, o).replace("za ", "").replace("in ", "") for o in upcoming))

    def _not_open(self, row: Training | None, lang: str, now: datetime) -> Reply | None:
        if row is None:
            return Reply(say(lang, "Ta obuka ne postoji."))
        if row.status == "cancelled":
            return Reply(say(lang, "Ta obuka je otkazana."))
        if row.starts_at <= now:
            return Reply(say(lang, "Ta obuka je već počela ili je završena."))
        return None

    async def _waitlist_place(self, repo: TrainingRepository, reg: Registration) -> int:
        ahead = [
            r for r, _u in await repo.participants(reg.training_id, ("waitlisted",))
            if (r.position, r.id) < (reg.position, reg.id)
        ]
        return len(ahead) + 1

    def _my_buttons(
        self, lang: str, training_id: int, state: str
    ) -> tuple[tuple[Button, ...], ...]:
        if state == "registered":
            return ((Button(say(lang, "Odjavi se"), f"tr:x:{training_id}"),),)
        if state == "waitlisted":
            return ((Button(say(lang, "Napusti listu čekanja"), f"tr:x:{training_id}"),),)
        return ((Button(say(lang, "Prijavi se"), f"tr:j:{training_id}"),),)

    async def cancel_registration(self, user: UserProfile, training_id: int) -> Reply:
        lang = user.language
        now = self._clock()
        async with self._database.uow() as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id, for_update=True)
            current = await repo.registration(training_id, user.id)
            if row is None or current is None or current.status == "cancelled":
                return Reply(say(lang, "Niste prijavljeni na ovu obuku."))
            was = current.status
            current.status = "cancelled"
            current.updated_at = now
            await repo.cancel_reminders(training_id, user.id)
            await self.attendance.cancel_for(uow, training_id, user.id)
            promoted = 0
            if was == "registered" and row.status == "active" and row.starts_at > now:
                promoted = await self._promote(uow, repo, row, now)
            await uow.commit()
        log.info("training registration cancelled",
                 extra={"user_id": user.id, "training_id": training_id, "promoted": promoted})
        if was == "waitlisted":
            return Reply(say(lang, "Uklonjeni ste sa liste čekanja."))
        return Reply(say(lang, "Odjavljeni ste sa obuke „{title}“.", title=html.escape(row.title)),
                     self._my_buttons(lang, training_id, "none"))

    async def _promote(
        self, uow: UnitOfWork, repo: TrainingRepository, row: Training, now: datetime
    ) -> int:
        """Free seats go to the waiting list in order; each promoted clerk is told (outbox)."""
        promoted = 0
        while True:
            registered = await repo.count(row.id, "registered")
            if row.capacity is not None and registered >= row.capacity:
                return promoted
            nxt = await repo.first_waitlisted(row.id)
            if nxt is None:
                return promoted
            nxt.status = "registered"
            nxt.updated_at = now
            await uow.flush()
            member = await uow.users.get(nxt.user_id)
            if member is None:
                continue
            view = _view(row, registered + 1)
            await self._arm_reminders(uow, view, member, now)
            text = "🎉 " + say(member.language, "Oslobodilo se mesto: prijavljeni ste na obuku "
                                               "sa liste čekanja.") + "\n"
            text += self.describe(view, member.language)
            await self._queue_calendar(uow, view, member, text, kind="training_promoted",
                                       buttons=self._my_buttons(member.language, row.id,
                                                                "registered"))
            promoted += 1
            log.info("training waitlist promoted",
                     extra={"user_id": member.id, "training_id": row.id})

    # ---- reminders and calendar files (outbox rows) --------------------------------------
    def _reminder(self, view: TrainingView, language: str, offset: timedelta) -> Reply:
        text = "⏰ " + say(language, "Podsetnik: obuka počinje {rel}.",
                          rel=_relative(language, offset))
        text += "\n" + self.describe(view, language)
        return Reply(text, ((Button(say(language, "Odjavi se"), f"tr:x:{view.id}"),),))

    async def _arm_reminders(
        self, uow: UnitOfWork, view: TrainingView, member: User, now: datetime
    ) -> int:
        """Reminders for one registrant: one row per offset whose moment is still ahead."""
        repo = uow.repository(TrainingRepository)
        armed = 0
        for offset in self._offsets:
            due = view.starts_at - offset
            if due <= now:
                continue
            minutes = int(offset.total_seconds() // 60)
            await repo.put_reminder(
                dedupe_key=f"reminder:{view.id}:{member.id}:{minutes}",
                channel=member.channel, chat_id=member.external_id, user_id=member.id,
                payload=reply_to_payload(self._reminder(view, member.language, offset)),
                not_before=due, expires_at=view.starts_at,
            )
            armed += 1
        await self.attendance.arm_checkin(uow, view, member)  # "Prisutan/na sam" at the start
        return armed

    async def _queue_calendar(
        self, uow: UnitOfWork, view: TrainingView, member: User, caption: str, *,
        kind: str = "training_ics", cancelled: bool = False,
        buttons: tuple[tuple[Button, ...], ...] = (),
    ) -> None:
        event = CalendarEvent(
            training_id=view.id, title=view.title, starts_at=view.starts_at,
            duration_minutes=view.duration_minutes,
            description=self.service_title(view.service, "sr-Latn"),
            link=view.link, address=view.address, sequence=view.revision, cancelled=cancelled,
        )
        document = {
            "filename": ics_filename(event),
            "content_b64": base64.b64encode(training_ics(event, now=self._clock())).decode(),
        }
        await uow.outbox.add(
            channel=member.channel, chat_id=member.external_id, user_id=member.id, kind=kind,
            payload=reply_to_payload(Reply(caption, buttons), document=document), priority=40,
        )

    # ---- listing ---------------------------------------------------------------------------
    async def upcoming(self, user: UserProfile) -> Reply:
        """`/obuke`: upcoming trainings meant for this clerk, with their state and a button."""
        lang = user.language
        now = self._clock()
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(TrainingRepository)
            member = await uow.users.get(user.id)
            mine = await repo.registrations_of_user(user.id)
            items = []
            for row in await repo.upcoming(now):
                audience = Audience.from_row(row.audience_kind, row.audience_values)
                state = mine[row.id].status if row.id in mine else "none"
                if not (user.is_admin or state != "none" or audience.matches(member)):
                    continue
                items.append((_view(row, await repo.count(row.id, "registered")), state))
        if not items:
            return Reply(say(lang, "Trenutno nema najavljenih obuka."))
        labels = {
            "registered": "✅ " + say(lang, "prijavljeni ste"),
            "waitlisted": "⏳ " + say(lang, "na listi čekanja"),
            "cancelled": say(lang, "niste prijavljeni"),
            "none": say(lang, "niste prijavljeni"),
        }
        lines = ["<b>" + say(lang, "Predstojeće obuke") + "</b>"]
        buttons: list[tuple[Button, ...]] = []
        for index, (view, state) in enumerate(items[:10], start=1):
            full = " " + say(lang, "(popunjeno)") if view.full and state == "none" else ""
            described = self.describe(view, lang,
                                      show_link=user.is_admin or state == "registered")
            lines.append(f"\n{index}. " + described + f"\n{labels[state]}{full}")
            short = view.title if len(view.title) <= 30 else view.title[:29] + "…"
            if state == "registered":
                button = Button(say(lang, "Odjavi se: {title}", title=short), f"tr:x:{view.id}")
            elif state == "waitlisted":
                button = Button(say(lang, "Napusti listu čekanja: {title}", title=short),
                                f"tr:x:{view.id}")
            else:
                button = Button(say(lang, "Prijavi se: {title}", title=short), f"tr:j:{view.id}")
            row_buttons: tuple[Button, ...] = (button,)
            if user.is_admin:
                row_buttons += (Button("⚙️", f"tr:s:{view.id}"),)
            buttons.append(row_buttons)
        return Reply("\n".join(lines), tuple(buttons))

    async def get(self, training_id: int) -> TrainingView | None:
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id)
            if row is None:
                return None
            return _view(row, await repo.count(training_id, "registered"),
                         await repo.count(training_id, "waitlisted"))

    async def manage(self, actor: UserProfile, training_id: int) -> Reply:
        """The admin's view of one training: counts and change / cancel buttons."""
        refused = self._refused(actor, "training.manage")
        if refused is not None:
            return refused
        lang = actor.language
        view = await self.get(training_id)
        if view is None:
            return Reply(say(lang, "Ta obuka ne postoji."))
        text = self.describe(view, lang) + "\n" + say(
            lang, "Prijavljeno: {registered}, na listi čekanja: {waitlisted}.",
            registered=view.registered, waitlisted=view.waitlisted)
        if view.status == "cancelled":
            return Reply(text + "\n" + say(lang, "Ta obuka je otkazana."))
        return Reply(text, (
            (Button(say(lang, "Promeni vreme"), f"tr:t:{training_id}"),
             Button(say(lang, "Promeni mesto/link"), f"tr:p:{training_id}")),
            (Button(tr(lang, "Prisustvo"), f"tr:a:{training_id}"),
             Button(tr(lang, "Materijali"), f"tr:mat:{training_id}")),
            (Button(say(lang, "Otkaži obuku"), f"tr:c:{training_id}"),),
        ))

    # ---- admin: change and cancel --------------------------------------------------------
    async def change(
        self,
        actor: UserProfile,
        training_id: int,
        *,
        starts_at: datetime | None = None,
        duration_minutes: int | None = None,
        link: str | None = None,
        address: str | None = None,
        title: str | None = None,
        capacity: int | None = None,
    ) -> Reply:
        """Change a training; registrants are told (with a new .ics) and their reminders move."""
        refused = self._refused(actor, "training.change")
        if refused is not None:
            return refused
        lang = actor.language
        now = self._clock()
        if starts_at is not None and starts_at <= now:
            return Reply(say(lang, "Taj datum je prošao. Unesite datum i vreme u budućnosti."))
        async with self._database.uow() as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id, for_update=True)
            problem = self._not_open(row, lang, now)
            if problem is not None or row is None:
                return problem or Reply(say(lang, "Ta obuka ne postoji."))
            before = _view(row)
            if starts_at is not None:
                row.starts_at = starts_at
            if duration_minutes is not None:
                row.duration_minutes = duration_minutes
            if link is not None or address is not None:
                row.link, row.address = link, address
            if title is not None:
                row.title = title
            if capacity is not None:
                row.capacity = capacity or None
            row.revision += 1
            row.updated_at = now
            await uow.flush()
            if capacity is not None:
                await self._promote(uow, repo, row, now)
            after = _view(row, await repo.count(training_id, "registered"))
            await repo.cancel_reminders(training_id)
            participants = await repo.participants(training_id)
            for reg, member in participants:
                if not member.active:
                    continue
                changes = self._changes(before, after, member.language)
                text = "✏️ " + say(member.language, "Obuka je promenjena: {changes}.",
                                   changes=changes) + "\n" + self.describe(
                    after, member.language, show_link=reg.status == "registered")
                if reg.status == "registered":
                    await self._arm_reminders(uow, after, member, now)
                    await self._queue_calendar(uow, after, member, text, kind="training_change")
                else:
                    await uow.outbox.add(
                        channel=member.channel, chat_id=member.external_id, user_id=member.id,
                        kind="training_change", payload=reply_to_payload(Reply(text)),
                        priority=40,
                    )
            changed = {
                name: value for name, value in (
                    ("starts_at", starts_at), ("duration_minutes", duration_minutes),
                    ("link", link), ("address", address), ("title", title),
                    ("capacity", capacity),
                ) if value is not None
            }
            await audit_record(uow, actor, TRAINING_UPDATE, f"training:{training_id}",
                               {"changed": changed, "notified": len(participants)})
            await uow.commit()
        log.info("training changed", extra={"user_id": actor.id, "training_id": training_id,
                                            "notified": len(participants)})
        return Reply(say(lang, "Obuka je izmenjena. Obavešteno: {count}.",
                         count=len(participants)) + "\n" + self.describe(after, lang))

    def _changes(self, before: TrainingView, after: TrainingView, lang: str) -> str:
        parts = []
        if before.starts_at != after.starts_at or before.duration_minutes != after.duration_minutes:
            parts.append(say(lang, "novo vreme {when}",
                             when=format_when(after.starts_at, lang, self._tz)))
        if (before.link, before.address) != (after.link, after.address):
            parts.append(say(lang, "novo mesto"))
        if before.title != after.title:
            parts.append(say(lang, "novi naziv"))
        if before.capacity != after.capacity:
            parts.append(say(lang, "broj mesta"))
        return ", ".join(parts) or say(lang, "detalji")

    async def cancel(self, actor: UserProfile, training_id: int) -> Reply:
        """Cancel a training: reminders are cancelled, registrants and the waiting list told."""
        refused = self._refused(actor, "training.cancel")
        if refused is not None:
            return refused
        lang = actor.language
        now = self._clock()
        async with self._database.uow() as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id, for_update=True)
            if row is None:
                return Reply(say(lang, "Ta obuka ne postoji."))
            if row.status == "cancelled":
                return Reply(say(lang, "Ta obuka je otkazana."))
            row.status = "cancelled"
            row.revision += 1
            row.updated_at = now
            await uow.flush()
            view = _view(row)
            cancelled = await repo.cancel_reminders(training_id)
            await uow.outbox.cancel_batch(f"training:{training_id}")  # unsent announcements
            await self.attendance.cancel_for(uow, training_id, None)
            participants = await repo.participants(training_id)
            for reg, member in participants:
                if not member.active:
                    continue
                text = "❌ " + say(member.language, "Obuka „{title}“ ({when}) je otkazana. "
                                                   "Izvinjavamo se.",
                                   title=html.escape(view.title),
                                   when=format_when(view.starts_at, member.language, self._tz))
                if reg.status == "registered":
                    await self._queue_calendar(uow, view, member, text, kind="training_cancel",
                                               cancelled=True)
                else:
                    await uow.outbox.add(
                        channel=member.channel, chat_id=member.external_id, user_id=member.id,
                        kind="training_cancel", payload=reply_to_payload(Reply(text)),
                        priority=40,
                    )
            await audit_record(uow, actor, TRAINING_CANCEL, f"training:{training_id}",
                               {"reminders_cancelled": cancelled, "notified": len(participants)})
            await uow.commit()
        log.info("training cancelled", extra={"user_id": actor.id, "training_id": training_id,
                                              "reminders": cancelled})
        return Reply(say(lang, "Obuka je otkazana. Obavešteno: {count}.",
                         count=len(participants)))

    # ---- button tokens ---------------------------------------------------------------------
    async def perform(self, user: UserProfile, action: str) -> Reply | None:
        """Handle a `tr:*` button token; None for tokens that need a dialogue (`t`, `p`) or
        are not ours. Unknown or stale tokens get a polite reply."""
        kind, _, rest = action.partition(":")
        if kind != "tr":
            return None
        verb, _, number = rest.partition(":")
        if verb == "l":  # the list, as /obuke shows it (a button under the KB answer)
            return await self.upcoming(user)
        attendance = await self.attendance.perform(user, verb, number)
        if attendance is not None:  # check-in, the trainer's list, the feedback rating
            return attendance
        if to_int(number) is None:
            return Reply(say(user.language, "Ovo dugme više ne važi."))
        training_id = int(number)
        if verb == "j":
            return await self.sign_up(user, training_id)
        if verb == "w":
            return await self.sign_up(user, training_id, waitlist=True)
        if verb == "x":
            return await self.cancel_registration(user, training_id)
        if verb == "s":
            return await self.manage(user, training_id)
        if verb == "c":
            refused = self._refused(user, "training.cancel")
            if refused is not None:
                return refused
            return Reply(say(user.language, "Sigurno otkazati obuku? Svi prijavljeni dobiće "
                                            "obaveštenje."),
                         ((Button(say(user.language, "Da, otkaži"), f"tr:cy:{training_id}"),
                           Button(say(user.language, "Ne"), f"tr:s:{training_id}")),))
        if verb == "cy":
            return await self.cancel(user, training_id)
        return None

    # ---- reminders: inspection (tests, admin tools) ---------------------------------------
    async def reminder_rows(self, training_id: int) -> list[dict[str, Any]]:
        async with self._database.uow(read_only=True) as uow:
            rows = await uow.repository(TrainingRepository).reminders(training_id)
            return [
                {"key": r.dedupe_key, "status": r.status, "not_before": r.not_before,
                 "expires_at": r.expires_at, "user_id": r.user_id}
                for r in rows
            ]


def with_audience(draft: TrainingDraft, audience: Audience) -> TrainingDraft:
    return replace(draft, audience=audience)
