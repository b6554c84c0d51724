"""The clerk asks: composing a request, storing it (or following a close one) and saying
"received" with its number and when to expect the answer."""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable
from datetime import datetime

from bot.i18n import tr
from bot.services import signals
from bot.services.buttons import pack
from bot.services.buttons_mentoring import ComposeChoice, LeaveContact
from bot.services.mentoring.common import (
    GROUP_LANGUAGE,
    MAX_TEXT,
    Attachment,
    Created,
)
from bot.services.mentoring.followers import MentorFollowers
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply, shorten
from bot.services.users import UserProfile
from storage.mentor import (
    MentorRepository,
    MentorRequest,
)

log = logging.getLogger(__name__)


class ClerkSide(MentorFollowers):
    """Opening a request, from the clerk's side."""

    def compose_prompt(self, user: UserProfile, question: str | None) -> Reply:
        """Shown when the clerk taps "ask a mentor" or sends /mentor: add details, then send."""
        if question:
            text = tr(
                user.language,
                "Pitanje za mentora: <i>{question}</i>\n\nAko želite, dopišite detalje ili "
                "pošaljite snimke ekrana i datoteke, pa pritisnite „Pošalji mentoru“.",
                question=html.escape(shorten(question, 300)),
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
                Button(tr(user.language, "Pošalji mentoru"), pack(ComposeChoice("send"))),
                Button(tr(user.language, "Otkaži"), pack(ComposeChoice("cancel"))),
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
                    text=html.escape(shorten(detail_text or question_text, 900)),
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
                            pack(LeaveContact(number)),
                        ),
                    ),
                ),
            )
        return Reply(text)
