"""The mentor queue: what the bot cannot answer, a mentor answers.

Every use case is one unit of work: the state change and the messages it causes (the card in
the mentor group, its edits, the answer to the clerk, reminders) are written together, the
messages as outbox rows that the dispatcher delivers exactly once. A request is stored before the
clerk hears "received". Privileged actions check the actor's role as stored in the database;
refusals are polite and logged. Replies are channel-neutral; the group's texts are Serbian Latin.

Action tokens (kept short for Telegram's 64-byte callback data):
  mq:c:<n> claim · mq:u:<n> release · mq:z:<n> close · mq:k:<n> add to the KB · mq:a:<n> attachments
  mr:<n>:ok  "Rešeno, hvala" · mr:<n>:more  "Imam dodatno pitanje" · mrt:<n>:<1-5> rating
  ms:send / ms:cancel  the clerk sends or drops the request being written
  mo:<n> a follower opens their own request after all · mc:<n> leave a call-back contact
  mh:<n>:0 hand-over choices · mh:<n>:<user id> forward to that mentor · mh:<n>:-1 for ITE ·
  mh:<n>:-2 for the Ministry

Followers instead of duplicates: an escalation close to an open, not yet answered request (same
service, `similarity` at least `follow_similarity` by the knowledge-base matcher's own measure,
created within `follow_window`) does not open a second request: the clerk follows that one (one
tap opens their own after all). The card shows the followers and their municipalities; the
mentor's answer is queued to the asker and every follower in the same transaction (each on
their own channel, in their language); a follower rates it and may ask a follow-up, which opens
their own request with the mentor who answered. Their phrasings go into the KB draft.

Hand-over: a mentor forwards a request to another mentor, or marks it for ITE / the Ministry
with a note. The clerk (and the followers) hear who handles it and when to expect an answer;
the SLA clock is paused while it is handed over, and the mentor who handed it over is reminded
(working days, once a day) when the expected time has passed without an answer.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.i18n import N_, tr
from bot.services import signals
from bot.services.audit import (
    KB_DRAFT,
    REQUEST_ANSWER,
    REQUEST_CLAIM,
    REQUEST_CLOSE,
    REQUEST_FORWARD,
    audit_record,
)
from bot.services.desk import DeskService
from bot.services.messages import reply_to_payload
from bot.services.pii import scrub
from bot.services.replies import Button, Reply
from bot.services.roles import refusal
from bot.services.users import UserProfile
from bot.services.working_hours import WorkingHours, parse_holidays
from knowledge_base.model import KnowledgeBase
from storage.clock import Clock
from storage.mentor import (
    CARD_KIND,
    KnowledgeDraft,
    MentorFollower,
    MentorMessage,
    MentorRepository,
    MentorRequest,
)
from storage.models import User
from storage.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

GROUP_LANGUAGE = "sr-Latn"
MAX_TEXT = 3500
CARD_THREAD = 4  # messages of the thread shown on the card
# Kinds of outbox rows that go to the clerk: a 403 on them means the clerk blocked the bot.
CLERK_KINDS = ("mentor_answer", "mentor_notice")
REDACTED_TEXT = "[obrisano]"  # what retention and deletion leave of a text (storage.operations)
# Outside parties a request can be handed to, as the clerk and the card name them.
PARTIES = {"ite": N_("Kancelarija za IT i eUpravu (ITE)"), "ministry": N_("nadležno ministarstvo")}
PARTY_WORDS = {
    "ite": "ite", "kite": "ite", "kancelarija": "ite",
    "ministarstvo": "ministry", "ministry": "ministry", "mdulsu": "ministry",
}
PARTY_CODES = {-1: "ite", -2: "ministry"}  # in the mh:<n>:<target> token
MAX_NOTE = 500
MAX_CONTACT = 120
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
GROUP_KINDS = (CARD_KIND, "mentor_group")

# Accusative, as in "u ponedeljak"; N_ so that they are translated (and written in Cyrillic).
WEEKDAYS = (
    N_("ponedeljak"), N_("utorak"), N_("sredu"), N_("četvrtak"), N_("petak"), N_("subotu"),
    N_("nedelju"),
)
STATE_LABELS = {
    "new": "🆕 novo",
    "claimed": "🙋 preuzeto",
    "answered": "✅ odgovoreno",
    "closed": "🔒 zatvoreno",
}


@dataclass(frozen=True)
class MentorConfig:
    mentor_chat_id: int | None = None
    group_channel: str = "telegram"
    hours: WorkingHours = field(default_factory=WorkingHours)
    expected_answer: timedelta = timedelta(hours=4)  # working time, promised to the clerk
    remind_after: timedelta = timedelta(minutes=30)  # unclaimed, working time -> group
    escalate_after: timedelta = timedelta(hours=4)  # unclaimed, working time -> admins
    auto_close_after: timedelta = timedelta(days=3)  # answered, no reply from the clerk
    blocked_lookback: timedelta = timedelta(days=14)
    # Followers: an escalation this close to an open request made this recently follows it.
    follow_window: timedelta = timedelta(hours=24)
    follow_similarity: float = 0.6
    handover_days: int = 5  # working days ITE / the Ministry are expected to take

    @classmethod
    def from_settings(cls, settings: Any) -> MentorConfig:
        """Reads the optional MENTOR_* settings when the config defines them."""

        def get(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            return default if value is None else value

        hours = WorkingHours(
            start=get("working_hours_start", WorkingHours.start),
            end=get("working_hours_end", WorkingHours.end),
            timezone=get("timezone", "Europe/Belgrade"),
            public_holidays=bool(get("mentor_public_holidays", True)),
            extra_holidays=parse_holidays(get("mentor_extra_holidays", ())),
        )
        return cls(
            mentor_chat_id=get("mentor_chat_id", None),
            hours=hours,
            expected_answer=timedelta(hours=float(get("mentor_expected_answer_hours", 4))),
            remind_after=timedelta(minutes=float(get("mentor_remind_after_minutes", 30))),
            escalate_after=timedelta(minutes=float(get("mentor_escalate_after_minutes", 240))),
            auto_close_after=timedelta(days=float(get("mentor_auto_close_days", 3))),
            follow_window=timedelta(hours=float(get("mentor_follow_window_hours", 24))),
            handover_days=int(get("mentor_handover_days", 5)),
        )


@dataclass(frozen=True)
class Attachment:
    type: str  # photo | document | video | voice ...
    file_id: str
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "file_id": self.file_id, "name": self.name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attachment:
        return cls(str(data.get("type", "document")), str(data["file_id"]), data.get("name"))


@dataclass(frozen=True)
class Created:
    reply: Reply
    number: int | None
    new: bool


@dataclass(frozen=True)
class Result:
    """What the actor sees (`reply`), and a short plain `notice` for a button toast."""

    reply: Reply
    ok: bool
    number: int | None = None

    @property
    def notice(self) -> str:
        return html.unescape(_strip_tags(self.reply.text))[:190]


def to_int_or_none(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 11 else None


def _strip_tags(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class MentoringService:
    def __init__(
        self,
        database: Database,
        config: MentorConfig | None = None,
        *,
        knowledge_base: KnowledgeBase | None = None,
        clock: Clock | None = None,
        desk: DeskService | None = None,
        similarity: Callable[[str, str], float] | None = None,
    ) -> None:
        self._database = database
        self._desk = desk
        # The knowledge-base matcher's measure of how alike two questions are (followers).
        self._similarity = similarity
        self.config = config or MentorConfig()
        self._kb = knowledge_base
        self.clock = clock or database.clock  # the program's one clock
        # (service, step id) -> step title, for the cards of "Zapeli smo" requests
        self._step_titles: dict[tuple[str, str], str] = {}

    def know_roadmap_steps(self, titles: dict[tuple[str, str], str]) -> None:
        self._step_titles = dict(titles)

    # ======================================================================== clerk side

    def compose_prompt(self, user: UserProfile, question: str | None) -> Reply:
        """Shown when the clerk taps "ask a mentor" or sends /mentor: add details, then send."""
        if question:
            text = tr(
                user.language,
                "Pitanje za mentora: <i>{question}</i>\n\nAko želite, dopišite detalje ili "
                "pošaljite snimke ekrana i datoteke, pa pritisnite „Pošalji mentoru“.",
                question=html.escape(_short(question, 300)),
            )
        else:
            text = tr(
                user.language,
                "Napišite pitanje za mentora. Možete dodati i snimke ekrana ili datoteke, pa "
                "pritisnite „Pošalji mentoru“.",
            )
        return Reply(text, self._compose_buttons(user))

    def _compose_buttons(self, user: UserProfile) -> tuple[tuple[Button, ...], ...]:
        return (
            (
                Button(tr(user.language, "Pošalji mentoru"), "ms:send"),
                Button(tr(user.language, "Otkaži"), "ms:cancel"),
            ),
        )

    def noted(self, user: UserProfile, what: str) -> Reply:
        """The clerk added a detail or a file while composing."""
        label = (
            tr(user.language, "Prilog je dodat.")
            if what == "attachment"
            else tr(user.language, "Dodato.")
        )
        return Reply(
            label + " " + tr(user.language, "Kada završite, pritisnite „Pošalji mentoru“."),
            self._compose_buttons(user),
        )

    def cancelled(self, user: UserProfile) -> Reply:
        return Reply(tr(user.language, "U redu, pitanje nije poslato mentoru."))

    def use_knowledge_base(self, knowledge_base: KnowledgeBase) -> None:
        """A newer KB revision (CurationService.refresh): cards and signals use it."""
        self._kb = knowledge_base

    async def question_text(self, user: UserProfile, question_id: int) -> str | None:
        """The text of the clerk's own stored question (None for someone else's)."""
        async with self._database.uow(read_only=True) as uow:
            row = await uow.questions.get(question_id)
            if row is None or row.user_id != user.id:
                return None
            return row.text

    async def create_request(
        self,
        user: UserProfile,
        *,
        question_id: int | None = None,
        text: str | None = None,
        details: Iterable[str] = (),
        attachments: Iterable[Attachment] = (),
        source_key: str | None = None,
        own: bool = False,
        followup_of: MentorRequest | None = None,
        service: str | None = None,
        roadmap_step: str | None = None,
    ) -> Created:
        """Store the request and queue its card, then say "received" with its number and when
        to expect an answer. The same question (or the same `source_key`, e.g. the update id)
        never opens a second request. Unless `own`, a question close to an open request makes
        the clerk its follower instead. `followup_of`: a follower's follow-up to that request's
        answer, which goes to the mentor who answered it. `service` and `roadmap_step`: a
        municipality stuck on a step of its roadmap ("Zapeli smo"), always its own request."""
        own = own or roadmap_step is not None
        now = self.clock()
        detail_text = "\n".join(d.strip() for d in details if d and d.strip())[:MAX_TEXT]
        files = [a.as_dict() for a in attachments][:20]
        async with self._database.uow() as uow:
            repo = uow.repository(MentorRepository)
            existing = await repo.by_source(source_key) if source_key else None
            if existing is None and question_id is not None:
                existing = await repo.open_for_question(user.id, question_id)
            if existing is not None:
                return Created(self._already(user, existing), existing.id, False)
            if not own:
                follows = await repo.follower_by_source(source_key) if source_key else None
                if follows is None and question_id is not None:
                    follows = await repo.following(user.id, question_id)
                if follows is not None:
                    followed = await repo.get(follows.request_id)
                    if followed is not None:
                        return Created(self._following(user, followed), followed.id, False)
            question_text = (text or "").strip()
            best_guess: str | None = None
            best_score: float | None = None
            if question_id is not None:
                row = await uow.questions.get(question_id)
                if row is None or row.user_id != user.id:
                    return Created(self._stale(user), None, False)
                question_text = question_text or row.text
                await signals.mentor_requested(uow, question_id, row.decision, row.entry_id)
                best_guess = (
                    row.chosen_entry_id
                    or row.entry_id
                    or (row.candidates[0] if row.candidates else None)
                )
                best_score = float(row.score) if best_guess else None
            if not question_text and detail_text:
                question_text, detail_text = detail_text, ""
            if not question_text:
                return Created(self.compose_prompt(user, None), None, False)
            service = (
                service or self._service_of(best_guess) or self._named_service(question_text)
            )
            if not own and followup_of is None:
                similar = await self._similar_request(repo, user, service, question_text, now)
                if similar is not None:
                    request, score = similar
                    if request.user_id == user.id:
                        return Created(self._already(user, request), request.id, False)
                    return Created(
                        await self._follow(
                            uow, user, request, question_text, question_id, source_key, score,
                            now,
                        ),
                        request.id,
                        False,
                    )
            mentor = None
            if followup_of is not None and followup_of.answered_by:
                mentor = await uow.users.get(followup_of.answered_by)
                if mentor is not None and mentor.role not in ("mentor", "admin"):
                    mentor = None
            request = await repo.add_request(
                MentorRequest(
                    user_id=user.id,
                    question_id=question_id,
                    source_key=source_key,
                    state="new" if mentor is None else "claimed",
                    claimed_by=None if mentor is None else mentor.id,
                    claimed_at=None if mentor is None else now,
                    municipality=user.municipality,
                    service=service,
                    roadmap_step=roadmap_step,
                    question=question_text[:MAX_TEXT],
                    details=detail_text or None,
                    attachments=files,
                    best_guess=best_guess,
                    best_guess_score=best_score,
                    card_chat_id=self._group_chat(),
                    created_at=now,
                    updated_at=now,
                )
            )
            if self._desk is not None:  # recorded on an open incident of its service
                services = self._desk.services_in(question_text)
                if request.service:
                    services.add(request.service)
                await self._desk.attach_request(uow, user.id, request.id, services)
            if detail_text or files:
                await repo.add_message(
                    request.id,
                    "clerk",
                    detail_text,
                    user_id=user.id,
                    attachments=files,
                    created_at=now,
                )
            await self._queue_card(uow, request, user.display_name, [], new_card=True)
            number = request.id
            if mentor is not None and followup_of is not None:
                body = tr(
                    GROUP_LANGUAGE,
                    "💬 Dodatno pitanje uz Vaš odgovor na #{original} ({clerk}), otvoreno kao "
                    "#{number}:\n<i>{text}</i>",
                    original=followup_of.id,
                    number=number,
                    clerk=html.escape(user.display_name or "službenik"),
                    text=html.escape(_short(detail_text or question_text, 900)),
                )
                hint = tr(
                    GROUP_LANGUAGE,
                    "Odgovorite odgovorom (reply) na karticu u grupi ili sa /odgovori {number} "
                    "tekst.",
                    number=number,
                )
                await uow.outbox.add(
                    channel=mentor.channel,
                    chat_id=mentor.external_id,
                    kind="mentor_followup",
                    payload=reply_to_payload(Reply(body + "\n\n" + hint)),
                    dedupe_key=f"mentor:followup:new:{number}:m",
                )
            await uow.commit()
        log.info("mentor.request_created user_id=%s number=%s", user.id, number)
        if followup_of is not None:
            return Created(
                Reply(
                    tr(
                        user.language,
                        "Vaše dodatno pitanje je otvoreno kao novo pitanje <b>#{number}</b> i "
                        "prosleđeno mentoru. Odgovor stiže ovde.",
                        number=number,
                    )
                ),
                number,
                True,
            )
        return Created(self._received(user, number, now), number, True)

    # ----------------------------------------------------------------------- followers

    def _named_service(self, text: str) -> str | None:
        """The one KB service a question names ("eZUP", "ePlaćanje"), if it names just one."""
        if self._desk is None:
            return None
        named = self._desk.services_in(text)
        return next(iter(named)) if len(named) == 1 else None

    async def _similar_request(
        self,
        repo: MentorRepository,
        user: UserProfile,
        service: str | None,
        question: str,
        now: datetime,
    ) -> tuple[MentorRequest, float] | None:
        """The open, unanswered request on the same service within the window whose question
        is the closest to this one, if close enough (the matcher's measure)."""
        if self._similarity is None or self.config.follow_window <= timedelta(0):
            return None  # MENTOR_FOLLOW_WINDOW_HOURS=0 turns followers off
        best: tuple[MentorRequest, float] | None = None
        for request in await repo.similar_candidates(service, now - self.config.follow_window):
            if request.question == REDACTED_TEXT:
                continue
            score = self._similarity(question, request.question)
            if score >= self.config.follow_similarity and (best is None or score > best[1]):
                best = (request, score)
        return best

    async def _follow(
        self,
        uow: UnitOfWork,
        user: UserProfile,
        request: MentorRequest,
        question: str,
        question_id: int | None,
        source_key: str | None,
        score: float,
        now: datetime,
    ) -> Reply:
        """Attach the clerk to `request` as a follower (once), update its card."""
        repo = uow.repository(MentorRepository)
        if await repo.follower(request.id, user.id) is None:
            await repo.add_follower(
                MentorFollower(
                    request_id=request.id,
                    user_id=user.id,
                    question_id=question_id,
                    source_key=source_key,
                    state="following",
                    question=question[:MAX_TEXT],
                    municipality=user.municipality,
                    similarity=score,
                    created_at=now,
                )
            )
            if self._desk is not None:  # an open incident on the service hears of them too
                services = self._desk.services_in(question)
                if request.service:
                    services.add(request.service)
                await self._desk.attach_request(uow, user.id, request.id, services)
            await self._queue_card(uow, request)
            log.info(
                "mentor.follower_added user_id=%s number=%s similarity=%.2f",
                user.id, request.id, score,
            )
        await uow.commit()
        return self._following(user, request)

    def _following(self, user: UserProfile, request: MentorRequest) -> Reply:
        text = tr(
            user.language,
            "Isto pitanje je već kod mentora pod brojem <b>#{number}</b>. Pridružili smo Vas "
            "tom pitanju: kada mentor odgovori, odgovor stiže i Vama, ovde.",
            number=request.id,
        )
        if request.handed_to:
            text += "\n" + self._handover_line(user.language, request)
        text += "\n" + tr(
            user.language,
            "Ako je Vaše pitanje ipak drugačije, pošaljite ga kao novo.",
        )
        return Reply(
            text,
            ((Button(tr(user.language, "Pošalji kao novo pitanje"), f"mo:{request.id}"),),),
        )

    async def open_own(self, user: UserProfile, number: int) -> Created:
        """ "Pošalji kao novo pitanje": a follower opens their own request after all (once)."""
        async with self._database.uow(read_only=True) as uow:
            follower = await uow.repository(MentorRepository).follower(number, user.id)
        if follower is None:
            return Created(self._stale(user), None, False)
        if follower.own_request_id is not None:
            async with self._database.uow(read_only=True) as uow:
                own = await uow.repository(MentorRepository).get(follower.own_request_id)
            if own is not None:
                return Created(self._already(user, own), own.id, False)
        created = await self.create_request(
            user,
            question_id=follower.question_id,
            text=follower.question,
            source_key=f"own:{follower.id}",
            own=True,
        )
        if created.number is not None:
            await self._detach(follower.id, created.number)
        return created

    async def _detach(self, follower_id: int, own_number: int) -> None:
        """The follower has their own request now: off the followed request's card."""
        async with self._database.uow() as uow:
            repo = uow.repository(MentorRepository)
            follower = await uow.session.get(MentorFollower, follower_id)
            if follower is None or follower.state == "own":
                return
            follower.state = "own"
            follower.own_request_id = own_number
            request = await repo.get(follower.request_id)
            if request is not None:
                await self._queue_card(uow, request)
            await uow.commit()

    def _group_chat(self) -> str | None:
        chat = self.config.mentor_chat_id
        return None if chat is None else str(chat)

    def _service_of(self, entry_id: str | None) -> str | None:
        if not entry_id or self._kb is None:
            return None
        entry = self._kb.get(entry_id)
        return entry.service if entry is not None else None

    def _received(self, user: UserProfile, number: int, now: datetime) -> Reply:
        hours = self.config.hours
        expected = hours.add_working_time(now, self.config.expected_answer)
        when = self.describe_time(user.language, expected, now)
        text = tr(
            user.language,
            "Primljeno. Vaše pitanje je prosleđeno mentorima pod brojem <b>#{number}</b>. "
            "Odgovor očekujte {when}; stići će ovde, u ovaj razgovor.",
            number=number,
            when=when,
        )
        if not hours.is_open(now):
            # Outside working hours or on a holiday: when a mentor will first see it.
            text += "\n" + tr(
                user.language,
                "Sada je van radnog vremena mentora; pitanje će videti {when}.",
                when=self.describe_opening(user.language, hours.next_opening(now), now),
            )
            text += "\n" + tr(
                user.language,
                "Mentori rade radnim danima od {start} do {end} časova.",
                start=hours.start.strftime("%H"),
                end=hours.end.strftime("%H"),
            )
            text += "\n" + tr(
                user.language,
                "Ako želite da Vas mentor pozove ili Vam piše, ostavite broj telefona ili "
                "e-poštu.",
            )
            return Reply(
                text,
                (
                    (
                        Button(
                            tr(user.language, "📞 Ostavi kontakt za povratni poziv"),
                            f"mc:{number}",
                        ),
                    ),
                ),
            )
        return Reply(text)

    # ------------------------------------------------------------------- call back

    def callback_prompt(self, user: UserProfile, number: int) -> Reply:
        return Reply(
            tr(
                user.language,
                "Napišite broj telefona ili adresu e-pošte na koju mentor može da Vam se javi "
                "povodom pitanja #{number}. Čuvamo ga uz pitanje i brišemo sa ostalim Vašim "
                "podacima (/obrisi_me).",
                number=number,
            ),
            ((Button(tr(user.language, "Otkaži"), "ms:cancel"),),),
        )

    @staticmethod
    def clean_contact(text: str) -> str | None:
        """A phone number (6-15 digits, with + ( ) / - . and spaces) or an e-mail address."""
        value = " ".join((text or "").split())[:MAX_CONTACT]
        if _EMAIL.match(value):
            return value
        digits = re.sub(r"[\s()+/.-]", "", value)
        if digits.isdigit() and 6 <= len(digits) <= 15 and value.isascii():
            return value
        return None

    async def save_callback(self, user: UserProfile, number: int, text: str) -> Result:
        """The clerk's call-back contact for their request: stored with it, shown on the card."""
        contact = self.clean_contact(text)
        if contact is None:
            return Result(
                Reply(
                    tr(
                        user.language,
                        "To ne liči na broj telefona ni na e-poštu. Pokušajte ponovo, npr. "
                        "064 123 4567 ili ime@opstina.rs.",
                    ),
                    ((Button(tr(user.language, "Otkaži"), "ms:cancel"),),),
                ),
                False,
                number,
            )
        now = self.clock()
        async with self._database.uow() as uow:
            request = await uow.repository(MentorRepository).get(number, for_update=True)
            if request is None or request.user_id != user.id or request.state == "closed":
                return Result(self._stale(user), True)
            request.callback_contact = contact
            await self._queue_card(uow, request)
            await uow.commit()
        opening = self.config.hours.next_opening(now) if not self.config.hours.is_open(now) else now
        log.info("mentor.callback_contact user_id=%s number=%s", user.id, number)
        return Result(
            Reply(
                tr(
                    user.language,
                    "Hvala. Mentor će Vam se javiti na {contact} povodom pitanja #{number}, "
                    "najranije {when}.",
                    contact=html.escape(contact),
                    number=number,
                    when=self.describe_opening(user.language, opening, now),
                )
            ),
            True,
            number,
        )

    def describe_opening(self, language: str, moment: datetime, now: datetime) -> str:
        """When mentors start work again: "sutra od 08:00", "u ponedeljak, 08.12. od 08:00"."""
        local = self.config.hours.local(moment)
        today = self.config.hours.local(now).date()
        clock = local.strftime("%H:%M")
        if local.date() == today:
            return tr(language, "danas od {time}", time=clock)
        if local.date() == today + timedelta(days=1):
            return tr(language, "sutra od {time}", time=clock)
        return tr(
            language,
            "u {weekday}, {date} od {time}",
            weekday=tr(language, WEEKDAYS[local.weekday()]),
            date=local.strftime("%d.%m."),
            time=clock,
        )

    def describe_time(self, language: str, moment: datetime, now: datetime) -> str:
        local = self.config.hours.local(moment)
        today = self.config.hours.local(now).date()
        clock = local.strftime("%H:%M")
        if local.date() == today:
            return tr(language, "danas do {time}", time=clock)
        if local.date() == today + timedelta(days=1):
            return tr(language, "sutra do {time}", time=clock)
        return tr(
            language,
            "u {weekday}, {date}, do {time}",
            weekday=tr(language, WEEKDAYS[local.weekday()]),
            date=local.strftime("%d.%m."),
            time=clock,
        )

    def _already(self, user: UserProfile, request: MentorRequest) -> Reply:
        return Reply(
            tr(
                user.language,
                "Ovo pitanje je već kod mentora pod brojem <b>#{number}</b>. Odgovor će stići "
                "ovde.",
                number=request.id,
            )
        )

    def _stale(self, user: UserProfile) -> Reply:
        return Reply(
            tr(
                user.language,
                "Ova opcija više nije dostupna. Napišite pitanje ponovo ili otvorite /teme.",
            )
        )

    async def clerk_resolved(self, user: UserProfile, number: int) -> Result:
        """ "Rešeno, hvala": close, thank, and ask for a rating."""
        now = self.clock()
        async with self._database.uow() as uow:
            repo = uow.repository(MentorRepository)
            request = await repo.get(number, for_update=True)
            if request is not None and request.user_id != user.id:
                follower = await repo.follower(number, user.id, for_update=True)
                if follower is None or follower.answered_at is None:
                    return Result(self._stale(user), False)
                follower.resolved_at = follower.resolved_at or now
                await uow.commit()
                return Result(self.rating_prompt(user, number), True, number)
            if request is None:
                return Result(self._stale(user), False)
            if request.state != "closed":
                request.state = "closed"
                request.closed_at = now
                request.closed_reason = "resolved"
                await self._queue_card(uow, request)
            await uow.commit()
        return Result(self.rating_prompt(user, number), True, number)

    def rating_prompt(self, user: UserProfile, number: int) -> Reply:
        stars = tuple(
            Button("⭐" * k if k <= 1 else f"{k} ⭐", f"mrt:{number}:{k}") for k in range(1, 6)
        )
        return Reply(
            tr(
                user.language,
                "Drago nam je da je rešeno. Kako ocenjujete odgovor mentora na pitanje #{number}? "
                "(1 – slabo, 5 – odlično)",
                number=number,
            ),
            (stars,),
        )

    async def rate(self, user: UserProfile, number: int, rating: int) -> Result:
        if not 1 <= rating <= 5:
            return Result(self._stale(user), False)
        async with self._database.uow() as uow:
            repo = uow.repository(MentorRepository)
            request = await repo.get(number)
            if request is not None and request.user_id != user.id:
                follower = await repo.follower(number, user.id)
                if follower is None or follower.answered_at is None:
                    return Result(self._stale(user), False)
                follower.rating = rating
                await self._queue_card(uow, request)
                await uow.commit()
                return Result(
                    Reply(tr(user.language, "Hvala na oceni! Pomaže nam da budemo bolji.")),
                    True,
                    number,
                )
            if request is None or request.user_id != user.id or request.first_answer_at is None:
                return Result(self._stale(user), False)
            request.rating = rating
            await self._queue_card(uow, request)
            await uow.commit()
        return Result(
            Reply(tr(user.language, "Hvala na oceni! Pomaže nam da budemo bolji.")), True, number
        )

    def followup_prompt(self, user: UserProfile, number: int) -> Reply:
        return Reply(
            tr(
                user.language,
                "Napišite dodatno pitanje o #{number} (možete poslati i snimak ekrana ili "
                "datoteku). Prosleđujem ga mentoru koji Vam je odgovorio.",
                number=number,
            ),
            ((Button(tr(user.language, "Otkaži"), "ms:cancel"),),),
        )

    async def can_follow_up(self, user: UserProfile, number: int) -> bool:
        """The asker, or a follower (whose follow-up opens their own request)."""
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(MentorRepository)
            request = await repo.get(number)
            if request is None:
                return False
            return request.user_id == user.id or await repo.follower(number, user.id) is not None

    async def clerk_followup(
        self,
        user: UserProfile,
        number: int,
        text: str,
        attachments: Iterable[Attachment] = (),
    ) -> Result:
        """A follow-up goes to the mentor who answered (privately), onto the card, and the
        request is theirs again; a closed request is reopened."""
        now = self.clock()
        files = [a.as_dict() for a in attachments]
        text = text.strip()[:MAX_TEXT]
        if not text and not files:
            return Result(self.followup_prompt(user, number), False, number)
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(MentorRepository)
            original = await repo.get(number)
            follower = (
                await repo.follower(number, user.id)
                if original is not None and original.user_id != user.id
                else None
            )
        if original is not None and follower is not None:
            return await self._follower_followup(user, original, follower, text, attachments)
        async with self._database.uow() as uow:
            repo = uow.repository(MentorRepository)
            request = await repo.get(number, for_update=True)
            if request is None or request.user_id != user.id:
                return Result(self._stale(user), False)
            await repo.add_message(
                number, "clerk", text, user_id=user.id, attachments=files, created_at=now
            )
            mentor = await uow.users.get(request.answered_by) if request.answered_by else None
            if mentor is not None:
                request.state = "claimed"
                request.claimed_by = mentor.id
                request.claimed_at = request.claimed_at or now
            else:
                request.state = "new"
                request.claimed_by = None
            request.closed_at = None
            request.closed_reason = None
            body = tr(
                GROUP_LANGUAGE,
                "💬 Dodatno pitanje uz #{number} ({clerk}):\n<i>{text}</i>",
                number=number,
                clerk=html.escape(user.display_name or "službenik"),
                text=html.escape(text or "(prilog)"),
            )
            if files:
                body += "\n" + tr(GROUP_LANGUAGE, "Prilozi: {count}", count=len(files))
            hint = tr(
                GROUP_LANGUAGE,
                "Odgovorite odgovorom (reply) na karticu u grupi ili sa /odgovori {number} tekst.",
                number=number,
            )
            message_id = (await repo.thread(number))[-1].id
            if mentor is not None:
                await uow.outbox.add(
                    channel=mentor.channel,
                    chat_id=mentor.external_id,
                    kind="mentor_followup",
                    payload=reply_to_payload(Reply(body + "\n\n" + hint)),
                    dedupe_key=f"mentor:followup:{message_id}:m",
                )
            await self._group_post(
                uow,
                request,
                body,
                f"mentor:followup:{message_id}:g",
                buttons=self._attach_row(request, files),
            )
            await self._queue_card(uow, request)
            await uow.commit()
        return Result(
            Reply(
                tr(
                    user.language,
                    "Dodatno pitanje je prosleđeno mentoru (#{number}). Odgovor stiže ovde.",
                    number=number,
                )
            ),
            True,
            number,
        )

    async def _follower_followup(
        self,
        user: UserProfile,
        original: MentorRequest,
        follower: MentorFollower,
        text: str,
        attachments: Iterable[Attachment],
    ) -> Result:
        """A follower's follow-up opens their own request (their phrasing, the follow-up as a
        detail), with the mentor who answered; a later one goes to that request."""
        if follower.own_request_id is not None:
            return await self.clerk_followup(user, follower.own_request_id, text, attachments)
        detail = tr(
            GROUP_LANGUAGE,
            "Dodatno pitanje posle odgovora na #{number}: {text}",
            number=original.id,
            text=text or "(prilog)",
        )
        created = await self.create_request(
            user,
            question_id=follower.question_id,
            text=follower.question,
            details=[detail],
            attachments=attachments,
            source_key=f"followup:{follower.id}",
            own=True,
            followup_of=original,
        )
        if created.number is None:
            return Result(created.reply, False)
        await self._detach(follower.id, created.number)
        return Result(created.reply, True, created.number)

    def _attach_row(
        self, request: MentorRequest, files: list[dict[str, Any]]
    ) -> tuple[tuple[Button, ...], ...]:
        if not files:
            return ()
        return ((Button(tr(GROUP_LANGUAGE, "📎 Prilozi"), f"mq:a:{request.id}"),),)

    # ======================================================================= mentor side

    async def _actor(self, uow: UnitOfWork, actor: UserProfile) -> User | None:
        """The actor's row if they are (still) a mentor or admin, as the database says."""
        row = await uow.users.get(actor.id)
        if row is None or row.role not in ("mentor", "admin"):
            return None
        return row

    async def _locked_request(
        self, uow: UnitOfWork, actor: UserProfile, number: int, action: str
    ) -> tuple[User, MentorRequest] | Result:
        """The mentor's row and the request locked for change, or the refusal to give:
        the role is checked against the database on every privileged action."""
        mentor = await self._actor(uow, actor)
        if mentor is None:
            return Result(refusal(actor, action), False)
        request = await uow.repository(MentorRepository).get(number, for_update=True)
        if request is None:
            return Result(self._unknown(actor, number), False)
        return mentor, request

    def queue_action(
        self, action: str
    ) -> Callable[[UserProfile, int], Awaitable[Result]] | None:
        """The service call behind a queue button (`q:c|u|z|k:N`): claim, release, close, or
        turn the answer into a KB draft; None for an unknown action. One table for every
        channel."""
        return {
            "c": self.claim,
            "u": self.release,
            "z": self.close,
            "k": self.add_to_knowledge_base,
        }.get(action)

    async def claim(self, actor: UserProfile, number: int) -> Result:
        now = self.clock()
        async with self._database.uow() as uow:
            found = await self._locked_request(uow, actor, number, "mentor.claim")
            if isinstance(found, Result):
                return found
            mentor, request = found
            if request.state != "new":
                if request.claimed_by == mentor.id and request.state == "claimed":
                    return Result(
                        self._plain(actor, "Već ste preuzeli #{number}.", number), True, number
                    )
                holder = await uow.users.get(request.claimed_by) if request.claimed_by else None
                return Result(
                    Reply(
                        tr(
                            actor.language,
                            "#{number} je već preuzeo/la {name} ({state}).",
                            number=number,
                            name=html.escape(holder.display_name or "mentor") if holder else "—",
                            state=STATE_LABELS[request.state],
                        )
                    ),
                    False,
                    number,
                )
            request.state = "claimed"
            request.claimed_by = mentor.id
            request.claimed_at = now
            await self._queue_card(uow, request)
            await audit_record(uow, actor, REQUEST_CLAIM, f"request:{number}")
            await uow.commit()
        log.info("mentor.claimed user_id=%s number=%s", actor.id, number)
        return Result(
            self._plain(
                actor,
                "Preuzeli ste #{number}. Odgovorite odgovorom (reply) na karticu ili sa "
                "/odgovori {number} tekst.",
                number,
            ),
            True,
            number,
        )

    async def release(self, actor: UserProfile, number: int) -> Result:
        async with self._database.uow() as uow:
            found = await self._locked_request(uow, actor, number, "mentor.release")
            if isinstance(found, Result):
                return found
            mentor, request = found
            if request.state != "claimed" or (
                request.claimed_by != mentor.id and mentor.role != "admin"
            ):
                return Result(
                    self._plain(actor, "#{number} ne možete da oslobodite.", number), False, number
                )
            request.state = "answered" if request.first_answer_at and request.answered_by else "new"
            request.claimed_by = None if request.state == "new" else request.claimed_by
            await self._queue_card(uow, request)
            await uow.commit()
        return Result(self._plain(actor, "#{number} je ponovo slobodno.", number), True, number)

    async def close(self, actor: UserProfile, number: int) -> Result:
        now = self.clock()
        async with self._database.uow() as uow:
            found = await self._locked_request(uow, actor, number, "mentor.close")
            if isinstance(found, Result):
                return found
            mentor, request = found
            if request.state == "closed":
                return Result(
                    self._plain(actor, "#{number} je već zatvoreno.", number), True, number
                )
            if (
                request.claimed_by not in (None, mentor.id)
                and request.state == "claimed"
                and mentor.role != "admin"
            ):
                return Result(
                    self._plain(actor, "#{number} je preuzeo drugi mentor.", number), False, number
                )
            request.state = "closed"
            request.closed_at = now
            request.closed_reason = "mentor"
            await self._notify_clerk(
                uow,
                request,
                "mentor_notice",
                lambda lang: Reply(
                    tr(
                        lang,
                        "Mentor je zatvorio Vaše pitanje #{number}. Ako Vam je još potrebna "
                        "pomoć, napišite novo pitanje ili pritisnite /mentor.",
                        number=request.id,
                    )
                ),
                f"mentor:closed:{number}:{int(now.timestamp())}",
            )
            await self._queue_card(uow, request)
            await audit_record(uow, actor, REQUEST_CLOSE, f"request:{number}", {"reason": "mentor"})
            await uow.commit()
        return Result(self._plain(actor, "#{number} je zatvoreno.", number), True, number)

    async def answer(
        self,
        actor: UserProfile,
        number: int,
        text: str,
        attachments: Iterable[Attachment] = (),
    ) -> Result:
        """The mentor's answer: stored, and queued to the clerk in the same transaction
        (quoting the question, with "Rešeno, hvala" and "Imam dodatno pitanje")."""
        now = self.clock()
        text = text.strip()[:MAX_TEXT]
        if not text:
            return Result(
                self._plain(actor, "Napišite tekst odgovora: /odgovori {number} tekst.", number),
                False,
                number,
            )
        async with self._database.uow() as uow:
            found = await self._locked_request(uow, actor, number, "mentor.answer")
            if isinstance(found, Result):
                return found
            mentor, request = found
            if request.state == "closed":
                return Result(
                    self._plain(actor, "#{number} je zatvoreno; odgovor nije poslat.", number),
                    False,
                    number,
                )
            if (
                request.state == "claimed"
                and request.claimed_by not in (None, mentor.id)
                and mentor.role != "admin"
            ):
                return Result(
                    self._plain(
                        actor, "#{number} je preuzeo drugi mentor; odgovor nije poslat.", number
                    ),
                    False,
                    number,
                )
            files = [a.as_dict() for a in attachments]
            message = await uow.repository(MentorRepository).add_message(
                number, "mentor", text, user_id=mentor.id, attachments=files, created_at=now
            )
            request.state = "answered"
            request.claimed_by = request.claimed_by or mentor.id
            request.claimed_at = request.claimed_at or now
            request.answered_by = mentor.id
            request.first_answer_at = request.first_answer_at or now
            request.last_answer_at = now
            request.handed_to = None  # the hand-over ends with the answer
            request.handover_due = None
            question = request.question
            mentor_name = mentor.display_name or ""

            def build(lang: str, asked: str = question) -> Reply:
                body = tr(
                    lang,
                    "<b>Odgovor mentora na Vaše pitanje #{number}</b>\n„<i>{question}</i>“\n\n"
                    "{answer}",
                    number=number,
                    question=html.escape(_short(asked, 400)),
                    answer=html.escape(text),
                )
                if mentor_name:
                    body += "\n\n— " + html.escape(mentor_name)
                return Reply(
                    body,
                    (
                        (Button(tr(lang, "Rešeno, hvala"), f"mr:{number}:ok"),),
                        (Button(tr(lang, "Imam dodatno pitanje"), f"mr:{number}:more"),),
                    ),
                )

            await signals.mentor_answered(uow, self._kb, request.question_id, text)
            await self._notify_clerk(
                uow, request, "mentor_answer", build, f"mentor:answer:{message.id}"
            )
            # Every follower gets the (first) answer, each on their own channel and language,
            # in this same transaction: one answer reaches all of them exactly once.
            told = 0
            for follower in await uow.repository(MentorRepository).followers_of(number):
                if follower.answered_at is not None:
                    continue
                clerk = await uow.users.get(follower.user_id)
                follower.answered_at = now
                if clerk is None or not clerk.active:
                    continue
                await uow.outbox.add(
                    channel=clerk.channel,
                    chat_id=clerk.external_id,
                    user_id=clerk.id,
                    kind="mentor_answer",
                    payload=reply_to_payload(
                        build(clerk.language, follower.question), meta={"request_id": number}
                    ),
                    dedupe_key=f"mentor:answer:{message.id}:f{follower.id}",
                    priority=50,
                )
                told += 1
            await self._queue_card(uow, request)
            await audit_record(
                uow, actor, REQUEST_ANSWER, f"request:{number}",
                {"message_id": message.id, "attachments": len(files), "followers": told},
            )
            await uow.commit()
        log.info("mentor.answered user_id=%s number=%s", actor.id, number)
        return Result(
            self._plain(actor, "Odgovor na #{number} je sačuvan i šalje se službeniku.", number),
            True,
            number,
        )

    async def answer_with_canned(self, actor: UserProfile, number: int, reply_id: int) -> Result:
        """ "Pošalji ovako" under a canned reply's draft: its filled-in text is the answer."""
        if self._desk is None:
            return Result(self._unknown(actor, number), False)
        text = await self._desk.filled(actor, number, reply_id)
        if not isinstance(text, str):
            return Result(text.reply, False)
        return await self.answer(actor, number, text)

    async def add_to_knowledge_base(self, actor: UserProfile, number: int) -> Result:
        """ "Dodaj u bazu znanja": the question and the mentors' answers as a KB draft, with
        personal data removed; a curator reviews it after `drafts export`."""
        async with self._database.uow() as uow:
            mentor = await self._actor(uow, actor)
            if mentor is None:
                return Result(refusal(actor, "mentor.kb_draft"), False)
            repo = uow.repository(MentorRepository)
            request = await repo.get(number)
            if request is None:
                return Result(self._unknown(actor, number), False)
            answers = [m for m in await repo.thread(number) if m.author == "mentor"]
            if not answers:
                return Result(
                    self._plain(actor, "#{number} još nema odgovor mentora.", number),
                    False,
                    number,
                )
            if await repo.draft_for(number) is not None:
                return Result(
                    self._plain(actor, "#{number} je već u nacrtima baze znanja.", number),
                    True,
                    number,
                )
            clerk = await uow.users.get(request.user_id)
            names = [clerk.display_name] if clerk and clerk.display_name else []
            for message in answers:
                author = await uow.users.get(message.user_id) if message.user_id else None
                if author is not None and author.display_name:
                    names.append(author.display_name)
            followers = await repo.followers_of(number, state=None)
            for follower in followers:
                person = await uow.users.get(follower.user_id)
                if person is not None and person.display_name:
                    names.append(person.display_name)
            question = scrub(request.question, names)
            alternatives: list[str] = []
            for follower in followers:  # every follower's phrasing, personal data removed
                phrasing = scrub(follower.question, names)
                if phrasing != REDACTED_TEXT and phrasing not in (question, *alternatives):
                    alternatives.append(phrasing)
            await repo.add_draft(
                KnowledgeDraft(
                    request_id=number,
                    service=request.service,
                    question=question,
                    alternatives=alternatives,
                    answer=scrub("\n\n".join(m.text for m in answers), names),
                    created_by=mentor.id,
                    created_at=self.clock(),
                )
            )
            await self._queue_card(uow, request)
            await audit_record(
                uow, actor, KB_DRAFT, f"request:{number}", {"service": request.service}
            )
            await uow.commit()
        return Result(
            self._plain(actor, "#{number} je dodato u nacrte baze znanja.", number), True, number
        )

    # ----------------------------------------------------------------------- hand-over

    def handover_usage(self, actor: UserProfile) -> Reply:
        return Reply(
            tr(
                actor.language,
                "Upotreba: /prosledi broj mentor [napomena] (mentor: ime ili Telegram id), "
                "ili /prosledi broj ITE napomena, /prosledi broj ministarstvo napomena. "
                "„Prosledi“ na kartici nudi izbor.",
            )
        )

    def party_name(self, language: str, party: str) -> str:
        return tr(language, PARTIES[party]) if party in PARTIES else party

    def _handover_line(self, language: str, request: MentorRequest) -> str:
        """What the clerk hears about a handed-over request: who handles it, and when."""
        now = self.clock()
        when = self.describe_time(language, request.handover_due or now, now)
        if request.handed_to in PARTIES:
            return tr(
                language,
                "Pitanje je prosleđeno: {party}. Odgovor očekujte {when}; mentor ga prati i "
                "javiće Vam ovde.",
                party=self.party_name(language, request.handed_to or ""),
                when=when,
            )
        return tr(
            language,
            "Pitanje je preuzeo/la drugi mentor. Odgovor očekujte {when}.",
            when=when,
        )

    def _handover_card_line(self, request: MentorRequest, names: dict[int, str]) -> str:
        lang = GROUP_LANGUAGE
        due = (
            self.config.hours.local(request.handover_due).strftime("%d.%m. %H:%M")
            if request.handover_due
            else "—"
        )
        by = html.escape(names.get(request.handed_by or 0, "—"))
        if request.handed_to in PARTIES:
            line = tr(
                lang,
                "➡️ Za: {party} (prosledio/la {by}), očekivano do {due}",
                party=html.escape(self.party_name(lang, request.handed_to or "")),
                by=by,
                due=due,
            )
        else:
            line = tr(
                lang,
                "🔁 Prosledio/la {by} mentoru {to}, očekivano do {due}",
                by=by,
                to=html.escape(names.get(request.claimed_by or 0, "—")),
                due=due,
            )
        if request.handover_note and request.handover_note != REDACTED_TEXT:
            line += "\n" + tr(
                lang, "Napomena: {note}", note=html.escape(_short(request.handover_note, 300))
            )
        return line

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
            label = _short(person.display_name or person.external_id, 40)
            rows.append((Button(label, f"mh:{number}:{person.id}"),))
        rows = rows[:20]
        rows.append(
            (
                Button(tr(actor.language, "Za ITE"), f"mh:{number}:-1"),
                Button(tr(actor.language, "Za ministarstvo"), f"mh:{number}:-2"),
            )
        )
        return Result(
            Reply(
                tr(
                    actor.language,
                    "Kome prosleđujete pitanje #{number}?\n<i>{question}</i>",
                    number=number,
                    question=html.escape(_short(request.question, 200)),
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
            found = await self._locked_request(uow, actor, number, "mentor.forward")
            if isinstance(found, Result):
                return found
            mentor, request = found
            refused = self._cannot_hand_over(actor, mentor, request)
            if refused is not None:
                return refused
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
                question=html.escape(_short(request.question, 600)),
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
            found = await self._locked_request(uow, actor, number, "mentor.forward")
            if isinstance(found, Result):
                return found
            mentor, request = found
            refused = self._cannot_hand_over(actor, mentor, request)
            if refused is not None:
                return refused
            if not note:
                return Result(self.note_prompt(actor, number, party), False, number)
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

    def _cannot_hand_over(
        self, actor: UserProfile, mentor: User, request: MentorRequest
    ) -> Result | None:
        if request.state not in ("new", "claimed"):
            return Result(
                self._plain(actor, "#{number} se više ne može proslediti.", request.id),
                False,
                request.id,
            )
        if (
            request.state == "claimed"
            and request.claimed_by not in (None, mentor.id)
            and mentor.role != "admin"
        ):
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
            await uow.outbox.add(
                channel=clerk.channel,
                chat_id=clerk.external_id,
                user_id=clerk.id,
                kind="mentor_notice",
                payload=reply_to_payload(note(clerk.language), meta={"request_id": request.id}),
                dedupe_key=f"mentor:handover:{request.id}:{stamp}:f{follower.id}",
                priority=50,
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
                    question=html.escape(_short(request.question, 200)),
                )
                if request.handover_note and request.handover_note != REDACTED_TEXT:
                    text += "\n" + tr(
                        mentor.language,
                        "Napomena: {note}",
                        note=html.escape(_short(request.handover_note, 300)),
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

    async def attachments(self, actor: UserProfile, number: int) -> list[Attachment] | Result:
        """The files of a request (to show to a mentor on demand)."""
        async with self._database.uow(read_only=True) as uow:
            if await self._actor(uow, actor) is None:
                return Result(refusal(actor, "mentor.attachments"), False)
            repo = uow.repository(MentorRepository)
            request = await repo.get(number)
            if request is None:
                return Result(self._unknown(actor, number), False)
            files = list(request.attachments or [])
            for message in await repo.thread(number):
                files.extend(message.attachments or [])
        seen: set[str] = set()
        found: list[Attachment] = []
        for item in files:
            if item.get("file_id") and item["file_id"] not in seen:
                seen.add(item["file_id"])
                found.append(Attachment.from_dict(item))
        return found

    async def number_for_card(self, chat_id: int | str, message_id: int) -> int | None:
        """The request a group message (its card, or a bot post about it) belongs to."""
        async with self._database.uow(read_only=True) as uow:
            request = await uow.repository(MentorRepository).by_card(chat_id, message_id)
            return request.id if request is not None else None

    # ----------------------------------------------------------------------- lists

    async def queue_list(self, actor: UserProfile, *, mine: bool = False) -> Reply:
        """/red: open requests, oldest first; /moji: the mentor's own."""
        now = self.clock()
        async with self._database.uow(read_only=True) as uow:
            mentor = await self._actor(uow, actor)
            if mentor is None:
                return refusal(actor, "mentor.moji" if mine else "mentor.red")
            repo = uow.repository(MentorRepository)
            rows = await repo.open_requests(claimed_by=mentor.id if mine else None, limit=30)
            holders = {r.claimed_by for r in rows if r.claimed_by}
            names = {}
            for holder_id in holders:
                holder = await uow.users.get(holder_id)
                if holder is not None:
                    names[holder_id] = holder.display_name or str(holder.external_id)
        if not rows:
            return Reply(
                tr(actor.language, "Nemate otvorenih pitanja.")
                if mine
                else tr(actor.language, "Nema otvorenih pitanja. 🎉")
            )
        title = (
            tr(actor.language, "<b>Moja otvorena pitanja</b>")
            if mine
            else tr(actor.language, "<b>Otvorena pitanja</b> (najstarija prva)")
        )
        lines = [title]
        buttons: list[tuple[Button, ...]] = []
        for request in rows:
            waited = self._age(now - request.created_at)
            holder_name = names.get(request.claimed_by or 0)
            parts = [
                f"<b>#{request.id}</b>",
                STATE_LABELS[request.state],
                waited,
                html.escape(request.municipality or "—"),
            ]
            if request.service:
                parts.append(html.escape(request.service))
            if holder_name and request.state != "new":
                parts.append("👤 " + html.escape(holder_name))
            lines.append(" · ".join(parts) + "\n   " + html.escape(_short(request.question, 90)))
            if request.state == "new" and len(buttons) < 8:
                buttons.append(
                    (
                        Button(
                            tr(actor.language, "Preuzmi #{n}", n=request.id), f"mq:c:{request.id}"
                        ),
                    )
                )
        return Reply("\n".join(lines), tuple(buttons))

    @staticmethod
    def _age(delta: timedelta) -> str:
        minutes = int(delta.total_seconds() // 60)
        if minutes < 60:
            return f"{max(minutes, 0)} min"
        hours = minutes // 60
        if hours < 48:
            return f"{hours} h"
        return f"{hours // 24} d"

    def answer_usage(self, actor: UserProfile) -> Reply:
        return Reply(
            tr(
                actor.language,
                "Upotreba: /odgovori broj tekst odgovora, npr. /odgovori 12 Pristup se traži "
                "preko portala.",
            )
        )

    def _unknown(self, actor: UserProfile, number: int) -> Reply:
        return self._plain(actor, "Pitanje #{number} ne postoji.", number)

    def _plain(self, actor: UserProfile, message: str, number: int) -> Reply:
        return Reply(tr(actor.language, message, number=number))

    # ================================================================== outbox helpers

    async def _notify_clerk(
        self,
        uow: UnitOfWork,
        request: MentorRequest,
        kind: str,
        build: Callable[[str], Reply],
        dedupe_key: str,
    ) -> None:
        clerk = await uow.users.get(request.user_id)
        if clerk is None:
            return
        await uow.outbox.add(
            channel=clerk.channel,
            chat_id=clerk.external_id,
            user_id=clerk.id,
            kind=kind,
            payload=reply_to_payload(build(clerk.language), meta={"request_id": request.id}),
            dedupe_key=dedupe_key,
            priority=50,
        )

    async def _group_post(
        self,
        uow: UnitOfWork,
        request: MentorRequest,
        text: str,
        dedupe_key: str,
        buttons: tuple[tuple[Button, ...], ...] = (),
    ) -> bool:
        chat = self._group_chat()
        if chat is None:
            return False
        extra: dict[str, Any] = {"meta": {"request_id": request.id}}
        card_id = await self._card_message_id(uow, request)
        if card_id is not None:
            extra["reply_to_message_id"] = card_id
        row = await uow.outbox.add(
            channel=self.config.group_channel,
            chat_id=chat,
            kind="mentor_group",
            payload=reply_to_payload(Reply(text, buttons), **extra),
            dedupe_key=dedupe_key,
        )
        return row is not None

    async def _card_message_id(self, uow: UnitOfWork, request: MentorRequest) -> int | None:
        if request.card_message_id is None:
            await uow.repository(MentorRepository).sync_card_ids()
        return request.card_message_id

    async def _queue_card(
        self,
        uow: UnitOfWork,
        request: MentorRequest,
        clerk_name: str | None = None,
        thread: list[MentorMessage] | None = None,
        *,
        new_card: bool = False,
    ) -> None:
        """Post the card (new request) or queue an edit showing the current state. An edit of
        a card that has not been sent yet is skipped: the card is refreshed once it is sent."""
        chat = self._group_chat()
        if chat is None:
            return
        await uow.flush()
        repo = uow.repository(MentorRepository)
        if thread is None:
            thread = await repo.thread(request.id)
        if clerk_name is None:
            clerk = await uow.users.get(request.user_id)
            clerk_name = clerk.display_name if clerk else ""
        names: dict[int, str] = {}
        for user_id in {request.claimed_by, request.answered_by, *(m.user_id for m in thread)}:
            if user_id:
                row = await uow.users.get(user_id)
                if row is not None:
                    names[user_id] = row.display_name or row.external_id
        for user_id in (request.handed_by,):
            if user_id and user_id not in names:
                row = await uow.users.get(user_id)
                if row is not None:
                    names[user_id] = row.display_name or row.external_id
        has_draft = (await repo.draft_for(request.id)) is not None if not new_card else False
        followers = [] if new_card else await repo.followers_of(request.id)
        card = self.render_card(request, clerk_name or "", thread, names, has_draft, followers)
        if new_card:
            await uow.outbox.add(
                channel=self.config.group_channel,
                chat_id=chat,
                kind=CARD_KIND,
                payload=reply_to_payload(card, meta={"request_id": request.id}),
                dedupe_key=f"{CARD_KIND}:{request.id}",
                priority=60,
            )
            return
        card_id = await self._card_message_id(uow, request)
        if card_id is None:
            return
        await uow.outbox.add(
            channel=self.config.group_channel,
            chat_id=request.card_chat_id or chat,
            kind="mentor_card_edit",
            payload=reply_to_payload(
                card, edit_message_id=card_id, meta={"request_id": request.id}
            ),
            priority=60,
        )

    def render_card(
        self,
        request: MentorRequest,
        clerk_name: str,
        thread: list[MentorMessage],
        names: dict[int, str],
        has_draft: bool = False,
        followers: list[MentorFollower] | None = None,
    ) -> Reply:
        lang = GROUP_LANGUAGE
        hours = self.config.hours
        created = hours.local(request.created_at).strftime("%d.%m. %H:%M")
        lines = [
            f"<b>#{request.id}</b> · {STATE_LABELS[request.state]} · {created}",
            tr(lang, "Opština: {value}", value=html.escape(request.municipality or "—")),
            tr(lang, "Službenik: {value}", value=html.escape(clerk_name or "—")),
        ]
        if request.service:
            lines.append(tr(lang, "Usluga: {value}", value=html.escape(request.service)))
        if request.roadmap_step:
            step = self._step_titles.get((request.service or "", request.roadmap_step))
            lines.append(
                tr(lang, "Korak plana: {value}", value=html.escape(step or request.roadmap_step))
            )
        lines.append(
            tr(lang, "Pitanje: <i>{value}</i>", value=html.escape(_short(request.question, 900)))
        )
        if request.details:
            lines.append(
                tr(lang, "Detalji: {value}", value=html.escape(_short(request.details, 600)))
            )
        files = list(request.attachments or [])
        if files:
            lines.append(tr(lang, "Prilozi: {count}", count=len(files)))
        if followers:
            places = sorted({f.municipality or "—" for f in followers})
            line = tr(
                lang,
                "👥 Isto pita još {count}: {places}",
                count=len(followers),
                places=html.escape(", ".join(places)),
            )
            ratings = [f.rating for f in followers if f.rating]
            if ratings:
                line += " · " + tr(
                    lang, "ocene: {average}", average=f"{sum(ratings) / len(ratings):.1f}"
                )
            lines.append(line)
        if request.callback_contact and request.callback_contact != REDACTED_TEXT:
            lines.append(
                tr(
                    lang,
                    "📞 Povratni poziv: {contact}",
                    contact=html.escape(request.callback_contact),
                )
            )
        if request.best_guess:
            guess = request.best_guess
            entry = self._kb.get(guess) if self._kb is not None else None
            label = f"{entry.question} ({guess})" if entry is not None else guess
            score = f", {request.best_guess_score:.2f}" if request.best_guess_score else ""
            lines.append(
                tr(lang, "Predlog bota: {value}", value=html.escape(_short(label, 200)) + score)
            )
        initial = (
            thread[0].id
            if thread
            and thread[0].author == "clerk"
            and (request.details or request.attachments)
            and thread[0].created_at == request.created_at
            else None
        )
        followups = [m for m in thread if m.id != initial]
        if followups:
            lines.append("—")
            for message in followups[-CARD_THREAD:]:
                who = names.get(message.user_id or 0, "")
                prefix = "👤" if message.author == "clerk" else "🧑‍🏫"
                when = hours.local(message.created_at).strftime("%d.%m. %H:%M")
                lines.append(
                    f"{prefix} {html.escape(who)} {when}: "
                    f"{html.escape(_short(message.text or '(prilog)', 500))}"
                )
        lines.append("—")
        holder = names.get(request.claimed_by or 0)
        if request.handed_to is not None and request.state != "closed":
            lines.append(self._handover_card_line(request, names))
        if request.state == "claimed":
            lines.append(tr(lang, "Preuzeo/la: {name}", name=html.escape(holder or "—")))
        elif request.state == "answered":
            lines.append(
                tr(
                    lang,
                    "Odgovorio/la: {name}",
                    name=html.escape(names.get(request.answered_by or 0, "—")),
                )
            )
        elif request.state == "closed":
            reason = {
                "resolved": tr(lang, "službenik je potvrdio da je rešeno"),
                "mentor": tr(lang, "zatvorio mentor"),
                "auto": tr(lang, "automatski, bez odgovora službenika"),
            }.get(request.closed_reason or "", "")
            lines.append(tr(lang, "Zatvoreno: {reason}", reason=reason))
        if request.rating:
            lines.append(tr(lang, "Ocena: {stars}", stars="⭐" * request.rating))
        rows: list[tuple[Button, ...]] = []
        n = request.id
        if request.state == "new":
            rows.append((Button(tr(lang, "Preuzmi"), f"mq:c:{n}"),))
        elif request.state == "claimed":
            rows.append(
                (
                    Button(tr(lang, "Oslobodi"), f"mq:u:{n}"),
                    Button(tr(lang, "Zatvori"), f"mq:z:{n}"),
                )
            )
        elif request.state == "answered":
            rows.append((Button(tr(lang, "Zatvori"), f"mq:z:{n}"),))
        if request.state in ("new", "claimed"):
            rows.append((Button(tr(lang, "Prosledi"), f"mh:{n}:0"),))
        if request.state != "closed" and self._desk is not None:
            rows.append((Button(tr(lang, "Šablon"), f"sab:{n}:0:0"),))
        if request.first_answer_at is not None and not has_draft:
            rows.append((Button(tr(lang, "Dodaj u bazu znanja"), f"mq:k:{n}"),))
        if files:
            rows.append((Button(tr(lang, "📎 Prilozi"), f"mq:a:{n}"),))
        return Reply("\n".join(lines), tuple(rows))

    # ==================================================================== periodic work

    async def on_delivered(self, message: Any, outcome: Any) -> None:
        """OutboxDispatcher.on_delivered hook: remember the card's message id (and refresh it
        if the request moved on meanwhile); tell the mentor when the clerk blocked the bot."""
        meta = (message.payload or {}).get("meta") or {}
        number = meta.get("request_id")
        if number is None:
            return
        if message.kind == CARD_KIND and outcome.status == "sent" and outcome.external_id:
            await self._card_sent(int(number), str(message.chat_id), int(outcome.external_id))
        elif message.kind in CLERK_KINDS and outcome.status == "blocked":
            await self._tell_blocked(int(number), int(message.id))

    async def _card_sent(self, number: int, chat_id: str, message_id: int) -> None:
        async with self._database.uow() as uow:
            request = await uow.repository(MentorRepository).get(number)
            if request is None or request.card_message_id is not None:
                return
            request.card_chat_id = chat_id
            request.card_message_id = message_id
            if request.state != "new" or await self._changed_since_posted(uow, request):
                await self._queue_card(uow, request)
            await uow.commit()

    async def _changed_since_posted(self, uow: UnitOfWork, request: MentorRequest) -> bool:
        """A new request's card was posted before followers joined or a contact was left."""
        if request.callback_contact or request.handed_to:
            return True
        return bool(await uow.repository(MentorRepository).followers_of(request.id))

    async def _tell_blocked(self, number: int, outbox_id: int) -> None:
        async with self._database.uow() as uow:
            request = await uow.repository(MentorRepository).get(number)
            if request is None:
                return
            await self._queue_blocked_notice(uow, request, outbox_id)
            await uow.commit()

    async def _queue_blocked_notice(
        self, uow: UnitOfWork, request: MentorRequest, outbox_id: int
    ) -> None:
        text = tr(
            GROUP_LANGUAGE,
            "⚠️ Poruka službeniku uz #{number} nije isporučena: službenik je blokirao bota. "
            "Javite mu se drugim putem (telefon, e-pošta).",
            number=request.id,
        )
        await self._group_post(uow, request, text, f"mentor:blocked:{outbox_id}:g")
        mentor = await uow.users.get(request.answered_by) if request.answered_by else None
        if mentor is not None:
            await uow.outbox.add(
                channel=mentor.channel,
                chat_id=mentor.external_id,
                kind="mentor_group",
                payload=reply_to_payload(Reply(text)),
                dedupe_key=f"mentor:blocked:{outbox_id}:m",
            )

    async def run_periodic(self) -> dict[str, int]:
        """The scheduled job: sync card ids, SLA reminders, blocked clerks, auto-close."""
        return {
            "cards": await self.sync_cards(),
            "reminders": await self.check_sla(),
            "handovers": await self.check_handovers(),
            "blocked": await self.check_blocked(),
            "closed": await self.auto_close(),
        }

    async def sync_cards(self) -> int:
        async with self._database.uow() as uow:
            repo = uow.repository(MentorRepository)
            before = {r.id: r.card_message_id for r in await repo.open_requests(limit=500)}
            synced = await repo.sync_card_ids()
            for request in await repo.open_requests(limit=500):
                if (
                    before.get(request.id) is None
                    and request.card_message_id is not None
                    and (
                        request.state != "new"
                        or await self._changed_since_posted(uow, request)
                    )
                ):
                    await self._queue_card(uow, request)
            await uow.commit()
            return synced

    async def check_sla(self) -> int:
        """Unclaimed for `remind_after` of working time -> the group; `escalate_after` -> every
        admin. Each reminder is queued once (dedupe keys)."""
        now = self.clock()
        hours = self.config.hours
        queued = 0
        async with self._database.uow() as uow:
            repo = uow.repository(MentorRepository)
            admins: list[User] | None = None
            for request in await repo.in_state("new"):
                if request.handed_to is not None:  # the SLA clock is paused while handed over
                    continue
                waited = hours.working_time_between(request.created_at, now)
                if waited >= self.config.remind_after and self._group_chat() is not None:
                    text = tr(
                        GROUP_LANGUAGE,
                        "⏰ Pitanje #{number} čeka već {minutes} min radnog vremena i niko ga nije "
                        "preuzeo.",
                        number=request.id,
                        minutes=int(waited.total_seconds() // 60),
                    )
                    queued += await self._group_post(
                        uow,
                        request,
                        text,
                        f"mentor:sla:remind:{request.id}",
                        buttons=((Button(tr(GROUP_LANGUAGE, "Preuzmi"), f"mq:c:{request.id}"),),),
                    )
                if waited >= self.config.escalate_after:
                    if admins is None:
                        admins = await repo.users_with_role("admin")
                    for admin in admins:
                        text = tr(
                            admin.language,
                            "⚠️ Pitanje #{number} ({municipality}) niko od mentora nije preuzeo "
                            "već {hours} h radnog vremena.\n<i>{question}</i>",
                            number=request.id,
                            municipality=html.escape(request.municipality or "—"),
                            hours=round(waited.total_seconds() / 3600, 1),
                            question=html.escape(_short(request.question, 200)),
                        )
                        row = await uow.outbox.add(
                            channel=admin.channel,
                            chat_id=admin.external_id,
                            kind="mentor_sla",
                            payload=reply_to_payload(
                                Reply(
                                    text,
                                    (
                                        (
                                            Button(
                                                tr(admin.language, "Preuzmi"), f"mq:c:{request.id}"
                                            ),
                                        ),
                                    ),
                                ),
                                meta={"request_id": request.id},
                            ),
                            dedupe_key=f"mentor:sla:admin:{request.id}:{admin.id}",
                        )
                        queued += row is not None
            await uow.commit()
        return queued

    async def check_blocked(self) -> int:
        """Sweep for answers that bounced because the clerk blocked the bot (in case the
        dispatcher hook is not wired); the notice is queued once per bounced message."""
        since = self.clock() - self.config.blocked_lookback
        count = 0
        async with self._database.uow() as uow:
            repo = uow.repository(MentorRepository)
            for row in await repo.blocked_deliveries(CLERK_KINDS, since):
                number = (row.payload.get("meta") or {}).get("request_id")
                request = await repo.get(int(number)) if number else None
                if request is not None:
                    await self._queue_blocked_notice(uow, request, row.id)
                    count += 1
            await uow.commit()
        return count

    async def auto_close(self) -> int:
        now = self.clock()
        closed = 0
        async with self._database.uow() as uow:
            repo = uow.repository(MentorRepository)
            for request in await repo.answered_before(now - self.config.auto_close_after):
                request.state = "closed"
                request.closed_at = now
                request.closed_reason = "auto"
                days = int(self.config.auto_close_after.total_seconds() // 86400)

                def note(lang: str, r: MentorRequest = request, d: int = days) -> Reply:
                    return Reply(
                        tr(
                            lang,
                            "Pitanje #{number} je zatvoreno jer {days} dana nije bilo odgovora. "
                            "Ako Vam je još potrebna pomoć, pritisnite „Imam dodatno pitanje“ "
                            "ili napišite novo pitanje.",
                            number=r.id,
                            days=d,
                        ),
                        ((Button(tr(lang, "Imam dodatno pitanje"), f"mr:{r.id}:more"),),),
                    )

                await self._notify_clerk(
                    uow,
                    request,
                    "mentor_notice",
                    note,
                    f"mentor:autoclose:{request.id}:{int(now.timestamp())}",
                )
                await self._queue_card(uow, request)
                closed += 1
            await uow.commit()
        if closed:
            log.info("mentor.auto_closed count=%s", closed)
        return closed
