"""The clerk after asking: a call-back contact, "Rešeno, hvala", the rating and follow-up
questions (a follower's follow-up opens their own request)."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable

from bot.i18n import tr
from bot.services.buttons import MentorRating, pack
from bot.services.buttons_mentoring import ComposeChoice
from bot.services.mentoring.clerk_side import ClerkSide
from bot.services.mentoring.common import (
    EMAIL,
    GROUP_LANGUAGE,
    MAX_CONTACT,
    MAX_TEXT,
    Attachment,
    Result,
)
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply
from bot.services.users import UserProfile
from storage.mentor import (
    MentorFollower,
    MentorRepository,
    MentorRequest,
)

log = logging.getLogger(__name__)


class ClerkReplies(ClerkSide):
    """What the clerk (asker or follower) does with an open or answered request."""

    def callback_prompt(self, user: UserProfile, number: int) -> Reply:
        return Reply(
            tr(
                user.language,
                "Napišite broj telefona ili adresu e-pošte na koju mentor može da Vam se javi "
                "povodom pitanja #{number}. Čuvamo ga uz pitanje i brišemo sa ostalim Vašim "
                "podacima (/obrisi_me).",
                number=number,
            ),
            ((Button(tr(user.language, "Otkaži"), pack(ComposeChoice("cancel"))),),),
        )

    @staticmethod
    def clean_contact(text: str) -> str | None:
        """A phone number (6-15 digits, with + ( ) / - . and spaces) or an e-mail address."""
        value = " ".join((text or "").split())[:MAX_CONTACT]
        if EMAIL.match(value):
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
                    ((Button(tr(user.language, "Otkaži"), pack(ComposeChoice("cancel"))),),),
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
            Button("⭐" * k if k <= 1 else f"{k} ⭐", pack(MentorRating(number, k)))
            for k in range(1, 6)
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
            ((Button(tr(user.language, "Otkaži"), pack(ComposeChoice("cancel"))),),),
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
