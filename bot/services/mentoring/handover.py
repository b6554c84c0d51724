"""Hand-over: a mentor forwards a request to another mentor, or marks it for ITE / the Ministry
with a note; the clerk hears who handles it and when, and the mentor is reminded when late."""

from __future__ import annotations

import html
import logging
from datetime import datetime, timedelta

from bot.i18n import tr
from bot.services.audit import (
    REQUEST_FORWARD,
    audit_record,
)
from bot.services.buttons import pack
from bot.services.buttons_mentoring import HandOver
from bot.services.mentoring.cards import MentorCards
from bot.services.mentoring.common import (
    MAX_NOTE,
    PARTIES,
    PARTY_WORDS,
    REDACTED_TEXT,
    Result,
    held_by_another,
    to_int_or_none,
)
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply, shorten
from bot.services.roles import refusal
from bot.services.users import UserProfile
from storage.mentor import (
    MentorRepository,
    MentorRequest,
)
from storage.models import User
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)


class MentorHandover(MentorCards):
    """Forwarding and handing out requests, and the reminders when they stay unanswered."""

    def handover_usage(self, actor: UserProfile) -> Reply:
        return Reply(
            tr(
                actor.language,
                "Upotreba: /prosledi broj mentor [napomena] (mentor: ime ili Telegram id), "
                "ili /prosledi broj ITE napomena, /prosledi broj ministarstvo napomena. "
                "„Prosledi“ na kartici nudi izbor.",
            )
        )

    async def handover_choices(self, actor: UserProfile, number: int) -> Result:
        """ "Prosledi" on a card: the other mentors, ITE and the Ministry, one button each."""
        async with self._database.uow(read_only=True) as uow:
            mentor = await self._actor(uow, actor)
            if mentor is None:
                return Result(refusal(actor, "mentor.forward"), False)
            repo = uow.repository(MentorRepository)
            request = await repo.get(number)
            if request is None:
                return Result(self._unknown(actor, number), False)
            if request.state not in ("new", "claimed"):
                return Result(
                    self._plain(actor, "#{number} se više ne može proslediti.", number),
                    False,
                    number,
                )
            people = [
                *await repo.users_with_role("mentor"),
                *await repo.users_with_role("admin"),
            ]
        rows: list[tuple[Button, ...]] = []
        for person in people:
            if person.id in (mentor.id, request.claimed_by) or person.channel != "telegram":
                continue
            label = shorten(person.display_name or person.external_id, 40)
            rows.append((Button(label, pack(HandOver(number, person.id))),))
        rows = rows[:20]
        rows.append(
            (
                Button(tr(actor.language, "Za ITE"), pack(HandOver(number, -1))),
                Button(tr(actor.language, "Za ministarstvo"), pack(HandOver(number, -2))),
            )
        )
        return Result(
            Reply(
                tr(
                    actor.language,
                    "Kome prosleđujete pitanje #{number}?\n<i>{question}</i>",
                    number=number,
                    question=html.escape(shorten(request.question, 200)),
                ),
                tuple(rows),
            ),
            True,
            number,
        )

    def private_needed(self, actor: UserProfile) -> Reply:
        return Reply(
            tr(
                actor.language,
                "Izbor šaljem u privatni razgovor: prvo mi pošaljite /start u privatnoj poruci.",
            )
        )

    def sent_privately(self, actor: UserProfile) -> Reply:
        return Reply(tr(actor.language, "Izbor Vam je poslat u privatni razgovor."))

    def note_prompt(self, actor: UserProfile, number: int, party: str) -> Reply:
        return Reply(
            tr(
                actor.language,
                "Napišite napomenu uz pitanje #{number} za: {party} (šta je poslato, kome, broj "
                "predmeta). Službenik dobija obaveštenje ko rešava i kada da očekuje odgovor.",
                number=number,
                party=self.party_name(actor.language, party),
            )
        )

    async def forward_command(self, actor: UserProfile, args: str) -> Result:
        """`/prosledi <broj> <mentor | ITE | ministarstvo> [napomena]`."""
        number_text, _, rest = (args or "").strip().partition(" ")
        target, _, note = rest.strip().partition(" ")
        number = to_int_or_none(number_text.lstrip("#"))
        if number is None or not target:
            async with self._database.uow(read_only=True) as uow:
                if await self._actor(uow, actor) is None:
                    return Result(refusal(actor, "mentor.forward"), False)
            return Result(self.handover_usage(actor), False)
        party = PARTY_WORDS.get(target.lower().strip(".,:;"))
        if party is not None:
            return await self.hand_out(actor, number, party, note)
        return await self.forward(actor, number, target, note)

    async def _find_mentor(self, uow: UnitOfWork, target: str | int) -> User | None:
        """A mentor or admin by user id (int), Telegram id or the start of their name."""
        repo = uow.repository(MentorRepository)
        people = [*await repo.users_with_role("mentor"), *await repo.users_with_role("admin")]
        if isinstance(target, int):
            return next((p for p in people if p.id == target), None)
        wanted = target.strip().lstrip("@").casefold()
        if not wanted:
            return None
        exact = [p for p in people if p.external_id == wanted]
        if exact:
            return exact[0]
        named = [p for p in people if (p.display_name or "").casefold().startswith(wanted)]
        return named[0] if len(named) == 1 else None

    async def forward(
        self, actor: UserProfile, number: int, target: str | int, note: str = ""
    ) -> Result:
        """Forward a request to another mentor: it is theirs now (claimed), the clerk hears who
        handles it and when; the forwarding mentor is reminded if it stays unanswered."""
        now = self.clock()
        note = " ".join(note.split())[:MAX_NOTE]
        async with self._database.uow() as uow:
            found = await self._to_hand_over(uow, actor, number)
            if isinstance(found, Result):
                return found
            mentor, request = found
            other = await self._find_mentor(uow, target)
            if other is None or not other.active:
                return Result(
                    Reply(
                        tr(
                            actor.language,
                            "Ne nalazim tog mentora. Izaberite ga dugmetom „Prosledi“ na kartici "
                            "ili navedite njegov Telegram id.",
                        )
                    ),
                    False,
                    number,
                )
            if other.id == request.claimed_by:
                return Result(
                    self._plain(actor, "#{number} je već kod tog mentora.", number), True, number
                )
            request.state = "claimed"
            request.claimed_by = other.id
            request.claimed_at = now
            due = self.config.hours.add_working_time(now, self.config.expected_answer)
            self._mark_handed(request, "mentor", mentor.id, now, due, note)
            name = other.display_name or other.external_id
            text = tr(
                other.language,
                "🔁 {by} Vam je prosledio/la pitanje #{number} ({municipality}):\n<i>{question}"
                "</i>",
                by=html.escape(mentor.display_name or "mentor"),
                number=number,
                municipality=html.escape(request.municipality or "—"),
                question=html.escape(shorten(request.question, 600)),
            )
            if note:
                text += "\n" + tr(other.language, "Napomena: {note}", note=html.escape(note))
            text += "\n\n" + tr(
                other.language,
                "Odgovorite odgovorom (reply) na karticu u grupi ili sa /odgovori {number} tekst.",
                number=number,
            )
            await uow.outbox.add(
                channel=other.channel,
                chat_id=other.external_id,
                user_id=other.id,
                kind="mentor_handover",
                payload=reply_to_payload(Reply(text), meta={"request_id": number}),
                dedupe_key=f"mentor:handover:{number}:{int(now.timestamp())}:m{other.id}",
            )
            await self._tell_handover(uow, request, now)
            await self._queue_card(uow, request)
            await audit_record(
                uow, actor, REQUEST_FORWARD, f"request:{number}",
                {"to": "mentor", "mentor_id": other.id},
            )
            await uow.commit()
        log.info("mentor.forwarded user_id=%s number=%s to=%s", actor.id, number, other.id)
        return Result(
            Reply(
                tr(
                    actor.language,
                    "#{number} je prosleđeno: {name}. Službenik je obavešten; podsetiću Vas ako "
                    "odgovor ne stigne do {due}.",
                    number=number,
                    name=html.escape(name),
                    due=self.config.hours.local(due).strftime("%d.%m. %H:%M"),
                )
            ),
            True,
            number,
        )

    async def hand_out(self, actor: UserProfile, number: int, party: str, note: str) -> Result:
        """Mark a request "for ITE / the Ministry" with a note: it stays tracked with the
        mentor (claimed), the SLA clock paused; the clerk hears who handles it and when."""
        if party not in PARTIES:
            return Result(self.handover_usage(actor), False)
        now = self.clock()
        note = " ".join((note or "").split())[:MAX_NOTE]
        async with self._database.uow() as uow:
            found = await self._to_hand_over(uow, actor, number)
            if isinstance(found, Result):
                return found
            mentor, request = found
            if not note:
                return Result(
                    self.note_prompt(actor, number, party), False, number, awaits_text=True
                )
            if request.handed_to == party and request.handover_note == note:
                return Result(
                    self._plain(actor, "#{number} je već prosleđeno.", number), True, number
                )
            workday = timedelta(
                hours=self.config.hours.end.hour - self.config.hours.start.hour,
                minutes=self.config.hours.end.minute - self.config.hours.start.minute,
            )
            due = self.config.hours.add_working_time(now, workday * self.config.handover_days)
            request.state = "claimed"
            request.claimed_by = request.claimed_by or mentor.id
            request.claimed_at = request.claimed_at or now
            self._mark_handed(request, party, mentor.id, now, due, note)
            await self._tell_handover(uow, request, now)
            await self._queue_card(uow, request)
            await audit_record(
                uow, actor, REQUEST_FORWARD, f"request:{number}", {"to": party}
            )
            await uow.commit()
        log.info("mentor.handed_out user_id=%s number=%s to=%s", actor.id, number, party)
        return Result(
            Reply(
                tr(
                    actor.language,
                    "#{number} je označeno: {party}. Službenik je obavešten; podsetiću Vas ako "
                    "odgovor ne stigne do {due}. Kada odgovor stigne, pošaljite ga sa /odgovori "
                    "{number} tekst.",
                    number=number,
                    party=self.party_name(actor.language, party),
                    due=self.config.hours.local(due).strftime("%d.%m. %H:%M"),
                )
            ),
            True,
            number,
        )

    async def _to_hand_over(
        self, uow: UnitOfWork, actor: UserProfile, number: int
    ) -> tuple[User, MentorRequest] | Result:
        """The mentor and the request locked for a hand-over, or why it cannot be handed over."""
        found = await self._locked_request(uow, actor, number, "mentor.forward")
        if isinstance(found, Result):
            return found
        mentor, request = found
        refused = self._cannot_hand_over(actor, mentor, request)
        return found if refused is None else refused

    def _cannot_hand_over(
        self, actor: UserProfile, mentor: User, request: MentorRequest
    ) -> Result | None:
        if request.state not in ("new", "claimed"):
            return Result(
                self._plain(actor, "#{number} se više ne može proslediti.", request.id),
                False,
                request.id,
            )
        if held_by_another(request, mentor):
            return Result(
                self._plain(actor, "#{number} je preuzeo drugi mentor.", request.id),
                False,
                request.id,
            )
        return None

    @staticmethod
    def _mark_handed(
        request: MentorRequest,
        to: str,
        by: int,
        now: datetime,
        due: datetime,
        note: str,
    ) -> None:
        request.handed_to = to
        request.handed_by = by
        request.handed_at = now
        request.handover_due = due
        request.handover_note = note or None

    async def _tell_handover(self, uow: UnitOfWork, request: MentorRequest, now: datetime) -> None:
        """The asker and every follower hear who handles the request and when to expect it."""
        stamp = f"{int(now.timestamp())}:{request.handed_to}:{request.claimed_by}"

        def note(lang: str) -> Reply:
            return Reply(
                tr(lang, "Novost o Vašem pitanju #{number}:", number=request.id)
                + " "
                + self._handover_line(lang, request)
            )

        await self._notify_clerk(
            uow, request, "mentor_notice", note, f"mentor:handover:{request.id}:{stamp}:c"
        )
        for follower in await uow.repository(MentorRepository).followers_of(request.id):
            clerk = await uow.users.get(follower.user_id)
            if clerk is None or not clerk.active:
                continue
            await self._queue_to_clerk(
                uow,
                clerk,
                request.id,
                "mentor_notice",
                note(clerk.language),
                f"mentor:handover:{request.id}:{stamp}:f{follower.id}",
            )

    async def check_handovers(self) -> int:
        """A handed-over request still unanswered after its expected time: the mentor who
        handed it over is reminded, once per working day (dedupe keys)."""
        now = self.clock()
        hours = self.config.hours
        if not hours.is_open(now):
            return 0
        today = hours.local(now).strftime("%Y-%m-%d")
        queued = 0
        async with self._database.uow() as uow:
            repo = uow.repository(MentorRepository)
            for request in await repo.handovers_due(now):
                mentor = await uow.users.get(request.handed_by) if request.handed_by else None
                if mentor is None or not mentor.active:
                    continue
                who = (
                    self.party_name(mentor.language, request.handed_to or "")
                    if request.handed_to in PARTIES
                    else tr(mentor.language, "drugi mentor")
                )
                text = tr(
                    mentor.language,
                    "⏰ Pitanje #{number} koje ste prosledili ({who}) još nema odgovor; "
                    "očekivan je do {due}.\n<i>{question}</i>",
                    number=request.id,
                    who=html.escape(who),
                    due=hours.local(request.handover_due or now).strftime("%d.%m. %H:%M"),
                    question=html.escape(shorten(request.question, 200)),
                )
                if request.handover_note and request.handover_note != REDACTED_TEXT:
                    text += "\n" + tr(
                        mentor.language,
                        "Napomena: {note}",
                        note=html.escape(shorten(request.handover_note, 300)),
                    )
                row = await uow.outbox.add(
                    channel=mentor.channel,
                    chat_id=mentor.external_id,
                    user_id=mentor.id,
                    kind="mentor_sla",
                    payload=reply_to_payload(Reply(text), meta={"request_id": request.id}),
                    dedupe_key=(
                        f"mentor:handover:remind:{request.id}:"
                        f"{int((request.handed_at or now).timestamp())}:{today}"
                    ),
                )
                queued += row is not None
            await uow.commit()
        return queued
