"""The mentor works a request: claim, release, close, answer (to the asker and every follower in
one transaction) and turn the answer into a knowledge-base draft."""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable, Iterable

from bot.i18n import tr
from bot.services import signals
from bot.services.audit import (
    KB_DRAFT,
    REQUEST_ANSWER,
    REQUEST_CLAIM,
    REQUEST_CLOSE,
    audit_record,
)
from bot.services.buttons import MentorResolved, pack
from bot.services.mentoring.cards import MentorCards
from bot.services.mentoring.common import (
    MAX_TEXT,
    REDACTED_TEXT,
    STATE_LABELS,
    Attachment,
    Result,
    held_by_another,
)
from bot.services.pii import scrub
from bot.services.replies import Button, Reply, shorten
from bot.services.roles import refusal
from bot.services.users import UserProfile
from storage.mentor import (
    KnowledgeDraft,
    MentorRepository,
)

log = logging.getLogger(__name__)


class MentorSide(MentorCards):
    """The mentor's actions on one request; the role is checked in the database each time."""

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
            if request.state != "claimed" or held_by_another(request, mentor):
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
            if held_by_another(request, mentor):
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
            if held_by_another(request, mentor):
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
                    question=html.escape(shorten(asked, 400)),
                    answer=html.escape(text),
                )
                if mentor_name:
                    body += "\n\n— " + html.escape(mentor_name)
                return Reply(
                    body,
                    (
                        (Button(tr(lang, "Rešeno, hvala"), pack(MentorResolved(number, "ok"))),),
                        (
                            Button(
                                tr(lang, "Imam dodatno pitanje"),
                                pack(MentorResolved(number, "more")),
                            ),
                        ),
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
                await self._queue_to_clerk(
                    uow,
                    clerk,
                    number,
                    "mentor_answer",
                    build(clerk.language, follower.question),
                    f"mentor:answer:{message.id}:f{follower.id}",
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
