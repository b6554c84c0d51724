"""Training attendance and feedback (issue #16), so the programme report can count them.

- At a training's start each registered clerk gets a check-in message with "Prisutan/na sam"
  (`tr:in:<training>`): an outbox row armed with the reminders (dedupe key
  ``checkin:<training>:<user>``, `not_before` = start, `expires_at` = end), so it moves with a
  changed time and is cancelled with the registration or the training.
- The trainer (the admin who created the training, or any mentor/admin; the role is read from
  the database) marks attendance from a list with toggle buttons (`tr:a:<t>`, `tr:at:<t>:<u>`).
- Recording attendance queues the one feedback question (``tfeedback:<training>:<user>``,
  `not_before` = end): 1-5 (`tr:f:<t>:<n>`), an optional comment (`tr:fc:<t>`, the channel asks
  for the text) and the materials link if the trainer added one (`tr:mat:<t>`). Un-marking
  before it went out cancels it.
- A repeated tap changes nothing twice: every write is one conditional UPDATE.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.i18n import tr
from bot.services.audit import TRAINING_ATTENDANCE, TRAINING_MATERIALS, audit_record
from bot.services.buttons import pack
from bot.services.buttons_trainings import (
    AttendanceList,
    AttendanceToggle,
    CheckIn,
    TrainingComment,
    TrainingRating,
)
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply
from bot.services.users import UserProfile
from storage.clock import Clock
from storage.models import User
from storage.trainings import Training, TrainingRepository
from storage.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

__all__ = [
    "CHECKIN_EARLY",
    "FEEDBACK_VALID",
    "AttendanceService",
    "checkin_key",
    "feedback_key",
]

BELGRADE = ZoneInfo("Europe/Belgrade")
CHECKIN_EARLY = timedelta(minutes=15)  # the button works from 15 minutes before the start
FEEDBACK_VALID = timedelta(days=14)  # an unsent feedback question expires after this
MAX_COMMENT = 1000
LIST_LIMIT = 40  # the attendance list shows at most this many clerks (Telegram's keyboard)


class TrainingLike(Protocol):
    """A training row or view: what the check-in and feedback messages need."""

    @property
    def id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def duration_minutes(self) -> int: ...
    @property
    def materials_link(self) -> str | None: ...


def checkin_key(training_id: int, user_id: int) -> str:
    return f"checkin:{training_id}:{user_id}"


def feedback_key(training_id: int, user_id: int) -> str:
    return f"tfeedback:{training_id}:{user_id}"


def _ends(row: TrainingLike) -> datetime:
    return row.starts_at + timedelta(minutes=row.duration_minutes)


def _short(title: str, limit: int = 40) -> str:
    return title if len(title) <= limit else title[: limit - 1] + "…"


def _anchor(link: str) -> str:
    escaped = html.escape(link, quote=True)
    return f'<a href="{escaped}">{escaped}</a>'


def _name(member: User) -> str:
    return member.display_name or f"#{member.id}"


@dataclass(frozen=True)
class TrainingAttendance:
    id: int
    title: str
    starts_at: datetime
    registered: int
    attended: int


@dataclass(frozen=True)
class AttendanceLine:
    user_id: int
    name: str
    municipality: str | None
    attended: bool
    rating: int | None
    comment: str | None


class AttendanceService:
    def __init__(
        self, database: Database, *, clock: Clock | None = None,
        tz: ZoneInfo = BELGRADE,
    ) -> None:
        self._database = database
        self._clock = clock or database.clock
        self._tz = tz

    # ---- messages --------------------------------------------------------------------------
    def checkin_message(self, row: TrainingLike, language: str) -> Reply:
        text = "🟢 " + tr(language, "Obuka „{title}“ počinje. Ako ste na obuci, potvrdite "
                                     "prisustvo jednim dodirom.", title=html.escape(row.title))
        return Reply(text, ((Button(tr(language, "Prisutan/na sam"), pack(CheckIn(row.id))),),))

    def feedback_message(self, row: TrainingLike, language: str) -> Reply:
        text = "🙏 " + tr(language, "Hvala što ste bili na obuci „{title}“. Kako biste je "
                                     "ocenili, od 1 (slabo) do 5 (odlično)?",
                          title=html.escape(row.title))
        if row.materials_link:
            text += "\n📎 " + tr(language, "Materijali: {link}", link=_anchor(row.materials_link))
        return Reply(text, (
            tuple(Button(str(n), pack(TrainingRating(row.id, n))) for n in range(1, 6)),
        ))

    async def arm_checkin(self, uow: UnitOfWork, row: TrainingLike, member: User) -> None:
        """The check-in message for one registrant (called with the reminders)."""
        if not member.active:
            return
        await uow.repository(TrainingRepository).put_reminder(
            dedupe_key=checkin_key(row.id, member.id), kind="training_checkin",
            channel=member.channel, chat_id=member.external_id, user_id=member.id,
            payload=reply_to_payload(self.checkin_message(row, member.language)),
            not_before=row.starts_at, expires_at=_ends(row),
        )

    async def cancel_for(self, uow: UnitOfWork, training_id: int, user_id: int | None) -> int:
        """Cancel unsent check-in and feedback messages (a registration or training cancelled)."""
        repo = uow.repository(TrainingRepository)
        suffix = "" if user_id is None else str(user_id)
        count = 0
        for prefix in (f"checkin:{training_id}:", f"tfeedback:{training_id}:"):
            exact = user_id is not None
            count += await repo.cancel_keyed(prefix + suffix, "training changed", exact=exact)
        return count

    async def _queue_feedback(self, uow: UnitOfWork, row: Training, member: User) -> None:
        repo = uow.repository(TrainingRepository)
        key = feedback_key(row.id, member.id)
        existing = await repo.keyed(key, exact=True)
        if any(m.status in ("sent", "sending") for m in existing) or not member.active:
            return  # asked once already: never twice
        ends = _ends(row)
        await repo.put_reminder(
            dedupe_key=key, kind="training_feedback",
            channel=member.channel, chat_id=member.external_id, user_id=member.id,
            payload=reply_to_payload(self.feedback_message(row, member.language)),
            not_before=ends, expires_at=max(ends, self._clock()) + FEEDBACK_VALID,
        )

    # ---- the clerk ------------------------------------------------------------------------
    async def check_in(self, user: UserProfile, training_id: int) -> Reply:
        lang = user.language
        now = self._clock()
        async with self._database.uow() as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id)
            reg = await repo.registration(training_id, user.id, fresh=True)
            if row is None or row.status == "cancelled":
                return Reply(tr(lang, "Ta obuka je otkazana."))
            if reg is None or reg.status != "registered":
                return Reply(tr(lang, "Niste prijavljeni na ovu obuku."))
            if reg.attended_at is not None:
                return Reply(tr(lang, "Vaše prisustvo je već zabeleženo. Hvala!"))
            if not row.starts_at - CHECKIN_EARLY <= now <= _ends(row):
                return Reply(tr(lang, "Prisustvo se potvrđuje tokom obuke (od 15 minuta pre "
                                       "početka do kraja)."))
            if not await repo.mark_attended(training_id, user.id, user.id):
                return Reply(tr(lang, "Vaše prisustvo je već zabeleženo. Hvala!"))
            member = await uow.users.get(user.id)
            if member is not None:
                await self._queue_feedback(uow, row, member)
            await uow.commit()
        log.info("training check-in", extra={"user_id": user.id, "training_id": training_id})
        return Reply("✅ " + tr(lang, "Prisustvo je zabeleženo. Hvala i uspešan rad na obuci!"))

    async def rate(self, user: UserProfile, training_id: int, rating: int) -> Reply:
        lang = user.language
        if not 1 <= rating <= 5:
            return Reply(tr(lang, "Ovo dugme više ne važi."))
        async with self._database.uow() as uow:
            repo = uow.repository(TrainingRepository)
            reg = await repo.registration(training_id, user.id, fresh=True)
            if reg is None or reg.attended_at is None:
                return Reply(tr(lang, "Ocenu mogu da daju samo polaznici obuke."))
            if reg.rating is not None:
                return Reply(tr(lang, "Vaša ocena ({rating}) je već zabeležena. Hvala!",
                                 rating=reg.rating))
            if not await repo.record_rating(training_id, user.id, rating):
                return Reply(tr(lang, "Vaša ocena je već zabeležena. Hvala!"))
            await uow.commit()
        log.info("training rated", extra={"user_id": user.id, "training_id": training_id,
                                          "rating": rating})
        return Reply(
            tr(lang, "Hvala na oceni {rating}! Ako želite, dodajte kratak komentar.",
                rating=rating),
            ((Button(tr(lang, "Dodaj komentar"), pack(TrainingComment(training_id))),),),
        )

    def comment_prompt(self, user: UserProfile) -> Reply:
        return Reply(tr(user.language, "Napišite komentar o obuci (šta je bilo korisno, šta "
                                        "bi trebalo poboljšati)."))

    async def comment(self, user: UserProfile, training_id: int, text: str) -> Reply:
        lang = user.language
        cleaned = " ".join(text.split())[:MAX_COMMENT]
        if not cleaned:
            return self.comment_prompt(user)
        async with self._database.uow() as uow:
            saved = await uow.repository(TrainingRepository).record_comment(
                training_id, user.id, cleaned)
            await uow.commit()
        if not saved:
            return Reply(tr(lang, "Komentar se dodaje posle ocene obuke."))
        log.info("training comment", extra={"user_id": user.id, "training_id": training_id})
        return Reply(tr(lang, "Komentar je zabeležen. Hvala što pomažete da obuke budu bolje!"))

    # ---- the trainer ----------------------------------------------------------------------
    async def _trainer(
        self, uow: UnitOfWork, actor: UserProfile, row: Training | None
    ) -> User | None:
        """The actor's row when they may mark attendance: the training's creator, or a
        mentor/admin (read from the database now, not from the profile)."""
        me = await uow.users.get(actor.id)
        if me is None or not me.active or row is None:
            return None
        if me.role in ("mentor", "admin") or row.created_by == me.id:
            return me
        return None

    def _refusal(self, actor: UserProfile, action: str) -> Reply:
        log.warning("attendance: refused", extra={"user_id": actor.id, "action": action})
        return Reply(tr(actor.language, "Ovu radnju mogu da obave samo predavač, mentori i "
                                         "administratori. Hvala na razumevanju."))

    async def recent(self, actor: UserProfile) -> Reply:
        """`/prisustvo`: trainings from the last 7 days to the next day, each with its list."""
        lang = actor.language
        now = self._clock()
        async with self._database.uow(read_only=True) as uow:
            me = await uow.users.get(actor.id)
            rows = await uow.repository(TrainingRepository).starting_between(
                now - timedelta(days=7), now + timedelta(days=1))
            if me is None or not me.active:
                return self._refusal(actor, "attendance.list")
            mine = [r for r in rows if me.role in ("mentor", "admin") or r.created_by == me.id]
        if me.role not in ("mentor", "admin") and not mine:
            return self._refusal(actor, "attendance.list")
        if not mine:
            return Reply(tr(lang, "Nema obuka u poslednjih sedam dana ni sutra."))
        buttons = tuple(
            (Button(r.starts_at.astimezone(self._tz).strftime("%d.%m. %H:%M") + " · "
                    + _short(r.title, 30), pack(AttendanceList(r.id))),)
            for r in mine[:20]
        )
        return Reply(tr(lang, "Izaberite obuku za evidenciju prisustva:"), buttons)

    async def trainings_for(self, actor: UserProfile) -> list[TrainingAttendance] | None:
        """Trainings of the last 30 days and the next day with their counts (console); None
        when the actor may mark none of them."""
        now = self._clock()
        items = []
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(TrainingRepository)
            me = await uow.users.get(actor.id)
            if me is None or not me.active:
                return None
            for row in await repo.starting_between(now - timedelta(days=30),
                                                   now + timedelta(days=1)):
                if me.role not in ("mentor", "admin") and row.created_by != me.id:
                    continue
                people = await repo.participants(row.id, ("registered",))
                items.append(TrainingAttendance(
                    row.id, row.title, row.starts_at, len(people),
                    sum(1 for r, _m in people if r.attended_at is not None)))
        if me.role not in ("mentor", "admin") and not items:
            return None
        return items[::-1]  # the newest first

    async def lines(self, actor: UserProfile, training_id: int) -> list[AttendanceLine] | None:
        """The registrants with attendance and feedback (console); None when not allowed."""
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id)
            if await self._trainer(uow, actor, row) is None:
                return None
            return [
                AttendanceLine(m.id, _name(m), m.municipality, r.attended_at is not None,
                               r.rating, r.comment)
                for r, m in await repo.participants(training_id, ("registered",))
            ]

    async def attendance_list(self, actor: UserProfile, training_id: int) -> Reply:
        lang = actor.language
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id)
            if row is None:
                return Reply(tr(lang, "Ta obuka ne postoji."))
            if await self._trainer(uow, actor, row) is None:
                return self._refusal(actor, "attendance.list")
            people = await repo.participants(training_id, ("registered",))
            title, starts = row.title, row.starts_at
        present = sum(1 for r, _m in people if r.attended_at is not None)
        text = "<b>" + html.escape(title) + "</b> · " + starts.astimezone(self._tz).strftime(
            "%d.%m.%Y. %H:%M") + "\n" + tr(
            lang, "Prisutno: {present} od {total} prijavljenih. Dodirnite ime da promenite.",
            present=present, total=len(people))
        buttons = tuple(
            (Button(("✅ " if r.attended_at is not None else "▫️ ") + _short(_name(m), 48),
                    pack(AttendanceToggle(training_id, m.id))),)
            for r, m in people[:LIST_LIMIT]
        )
        if len(people) > LIST_LIMIT:
            text += "\n" + tr(lang, "Prikazano prvih {n}; ostale označite u konzoli.",
                               n=LIST_LIMIT)
        return Reply(text, buttons)

    async def toggle(self, actor: UserProfile, training_id: int, user_id: int) -> Reply:
        """Mark a registrant present, or absent again; the list comes back with the change."""
        lang = actor.language
        now = self._clock()
        async with self._database.uow() as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id)
            me = await self._trainer(uow, actor, row)
            if row is None or me is None:
                return self._refusal(actor, "attendance.mark")
            if row.starts_at - CHECKIN_EARLY > now:
                return Reply(tr(lang, "Prisustvo se beleži kada obuka počne."))
            reg = await repo.registration(training_id, user_id, fresh=True)
            if reg is None or reg.status != "registered":
                return Reply(tr(lang, "Ovo dugme više ne važi."))
            present = reg.attended_at is None
            if present:
                await repo.mark_attended(training_id, user_id, me.id)
                member = await uow.users.get(user_id)
                if member is not None:
                    await self._queue_feedback(uow, row, member)
            else:
                await repo.unmark_attended(training_id, user_id)
                await repo.cancel_keyed(feedback_key(training_id, user_id), "not present",
                                        exact=True)
            await audit_record(uow, me, TRAINING_ATTENDANCE, f"training:{training_id}",
                               {"user_id": user_id, "present": present})
            await uow.commit()
        log.info("training attendance marked", extra={
            "user_id": actor.id, "training_id": training_id, "clerk_id": user_id,
            "present": present})
        return await self.attendance_list(actor, training_id)

    async def set_materials(self, actor: UserProfile, training_id: int, link: str) -> Reply:
        """The materials link; feedback questions not sent yet carry it, attendees already
        asked get it in a message of its own (once)."""
        lang = actor.language
        async with self._database.uow() as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id, for_update=True)
            me = await self._trainer(uow, actor, row)
            if row is None or me is None:
                return self._refusal(actor, "training.materials")
            row.materials_link = link
            await uow.flush()
            told = 0
            for reg, member in await repo.participants(training_id, ("registered",)):
                if reg.attended_at is None or not member.active:
                    continue
                key = feedback_key(training_id, member.id)
                if await repo.repayload(key, reply_to_payload(
                        self.feedback_message(row, member.language))):
                    continue
                sent = [m for m in await repo.keyed(key, exact=True) if m.status == "sent"]
                if sent:
                    text = "📎 " + tr(member.language, "Materijali sa obuke „{title}“: {link}",
                                       title=html.escape(row.title), link=_anchor(link))
                    added = await uow.outbox.add(
                        channel=member.channel, chat_id=member.external_id, user_id=member.id,
                        kind="training_materials", payload=reply_to_payload(Reply(text)),
                        dedupe_key=f"tmaterials:{training_id}:{member.id}:{row.revision}",
                        priority=60,
                    )
                    told += added is not None
            await audit_record(uow, me, TRAINING_MATERIALS, f"training:{training_id}",
                               {"told": told})
            await uow.commit()
        return Reply(tr(lang, "Link ka materijalima je sačuvan. Polaznici ga dobijaju uz "
                               "pitanje za ocenu."))

    # ---- button tokens ---------------------------------------------------------------------
    async def perform(
        self, user: UserProfile, token: CheckIn | AttendanceList | AttendanceToggle | TrainingRating
    ) -> Reply:
        """Check-in, the trainer's list and its ticks, the feedback rating."""
        match token:
            case CheckIn(training_id):
                return await self.check_in(user, training_id)
            case AttendanceList(training_id):
                return await self.attendance_list(user, training_id)
            case AttendanceToggle(training_id, user_id):
                return await self.toggle(user, training_id, user_id)
            case TrainingRating(training_id, rating):
                return await self.rate(user, training_id, rating)
