"""What deleting a clerk does to the mentor queue: their open requests are closed with a note to
the mentor, the card no longer shows the question, and followers hear of it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.digits import is_digits
from bot.i18n import tr
from bot.services.buttons import pack
from bot.services.buttons_mentoring import OpenOwn
from bot.services.messages import reply_to_payload
from bot.services.privacy.base import PrivacyBase
from bot.services.privacy.common import (
    DELETED_CLOSE_REASON,
    OPEN_REQUEST_STATES,
    is_tombstone,
)
from bot.services.replies import Button, Reply
from storage.models import OutboxMessage, User
from storage.operations import REDACTED, PrivacyRepository
from storage.uow import UnitOfWork


class PrivacyMentorRequests(PrivacyBase):
    """Withdrawing a deleted clerk's requests from the mentors."""

    async def _close_open_requests(self, uow: UnitOfWork, user: User, now: datetime) -> list[int]:
        """Close the user's open mentor requests; tell the mentor who has it, and take the
        question off the mentor group's card."""
        try:
            from storage.mentor import MentorRequest
        except ImportError:  # pragma: no cover - the mentor feature is not installed
            return []
        stmt = select(MentorRequest).where(
            MentorRequest.user_id == user.id, MentorRequest.state.in_(OPEN_REQUEST_STATES)
        )
        requests = list(await uow.session.scalars(stmt.order_by(MentorRequest.id)))
        closed: list[int] = []
        for request in requests:
            number = request.id
            mentor_ids = {i for i in (request.claimed_by, request.answered_by) if i is not None}
            for mentor_id in sorted(mentor_ids):
                mentor = await uow.users.get(mentor_id)
                if mentor is None or not mentor.active or is_tombstone(mentor.external_id):
                    continue
                note = tr(
                    mentor.language,
                    "Zahtev #{number} je zatvoren: službenik je obrisao svoje podatke iz bota, "
                    "pa odgovor više nije potreban.",
                    number=number,
                )
                await uow.outbox.add(
                    channel=mentor.channel,
                    chat_id=mentor.external_id,
                    user_id=mentor.id,
                    kind="privacy_note",
                    payload=reply_to_payload(Reply(note)),
                    dedupe_key=f"privacy_note:{number}:{mentor.id}",
                    priority=50,
                )
            await self._tell_followers(uow, number)
            request.state = "closed"
            request.closed_at = now
            request.closed_reason = DELETED_CLOSE_REASON
            closed.append(number)
        await uow.flush()
        return closed

    async def _tell_followers(self, uow: UnitOfWork, number: int) -> None:
        """Clerks following the closed request (the same question) will get no answer from it:
        each is told once, with the button that sends their own question as a new request."""
        from storage.mentor import MentorRepository

        for follower in await uow.repository(MentorRepository).followers_of(number):
            clerk = await uow.users.get(follower.user_id)
            if clerk is None or not clerk.active or is_tombstone(clerk.external_id):
                continue
            note = Reply(
                tr(
                    clerk.language,
                    "Pitanje #{number}, kojem ste bili pridruženi, je zatvoreno bez odgovora. "
                    "Pošaljite svoje pitanje mentoru kao novo.",
                    number=number,
                ),
                ((Button(tr(clerk.language, "Pošalji kao novo pitanje"), pack(OpenOwn(number))),),),
            )
            await uow.outbox.add(
                channel=clerk.channel,
                chat_id=clerk.external_id,
                user_id=clerk.id,
                kind="mentor_notice",
                payload=reply_to_payload(note),
                dedupe_key=f"privacy_note:{number}:f{follower.id}",
                priority=50,
            )

    async def _withdraw_from_mentors(
        self, uow: UnitOfWork, user: User, now: datetime
    ) -> dict[str, int]:
        """Nothing of the clerk stays with the mentors: messages about any of their requests
        (open or closed) not sent yet are cancelled (a queued card edit would put the question
        back on the card, a follow-up would still reach the mentor), every such outbox row
        loses its text, the cards and posts already sent are edited into a one-line note, and
        KB drafts lose the clerk's question. The notes wait until any message a dispatcher may
        still be sending (claimed before the deletion) has gone, so none overwrites them."""
        try:
            from storage.mentor import MentorRepository
        except ImportError:  # pragma: no cover - the mentor feature is not installed
            return {}
        mentor = uow.repository(MentorRepository)
        requests = await mentor.requests_of(user.id)
        if not requests:
            return {}
        request_ids = [request.id for request in requests]
        followups = [f"mentor:followup:{message_id}:m"
                     for message_id in await mentor.message_ids_of(request_ids)]
        withdrawn = await uow.repository(PrivacyRepository).withdraw_messages_about(
            request_ids, followups
        )
        not_before = now
        if withdrawn.in_flight_until is not None and withdrawn.in_flight_until > now:
            not_before = withdrawn.in_flight_until + timedelta(seconds=1)
        edited: set[tuple[str, int]] = set()
        for request in requests:
            target = await self._retire_card(uow, request, request.id, not_before)
            if target is not None:
                edited.add(target)
        note = tr("sr-Latn", "Poruka je obrisana: službenik je obrisao svoje podatke.")
        for channel, chat_id, message_id in withdrawn.sent_posts:
            if channel != "telegram" or (chat_id, message_id) in edited:
                continue
            edited.add((chat_id, message_id))
            await uow.outbox.add(
                channel="telegram",
                chat_id=chat_id,
                kind="privacy_card",
                payload=reply_to_payload(Reply(note), edit_message_id=message_id),
                dedupe_key=f"privacy_post:{chat_id}:{message_id}",
                priority=50,
                not_before=not_before,
            )
        drafts = await mentor.forget_draft_questions(request_ids, REDACTED)
        return {"outbox_about_requests": withdrawn.redacted,
                "outbox_about_requests_cancelled": withdrawn.cancelled,
                "messages_retracted": len(edited), "drafts": drafts}

    async def _retire_card(
        self, uow: UnitOfWork, request: Any, number: int, not_before: datetime | None = None
    ) -> tuple[str, int] | None:
        """The group card must no longer show the question: cancel it if not sent yet, else
        edit it into a one-line note. Returns the (chat, message) edited."""
        card = await uow.session.scalar(
            select(OutboxMessage).where(OutboxMessage.dedupe_key == f"mentor_card:{number}")
        )
        if card is not None and card.status == "pending":
            card.status = "cancelled"
            card.last_error = "user data deleted"
            return None
        chat_id = request.card_chat_id or (card.chat_id if card is not None else None)
        message_id = request.card_message_id or (
            int(card.external_message_id)
            if card is not None
            and card.status == "sent"
            and card.external_message_id
            and is_digits(str(card.external_message_id))
            else None
        )
        if not chat_id or not message_id:
            return None
        text = tr(
            "sr-Latn",
            "Zahtev #{number} – zatvoren: službenik je obrisao svoje podatke.",
            number=number,
        )
        await uow.outbox.add(
            channel="telegram",
            chat_id=chat_id,
            kind="privacy_card",
            payload=reply_to_payload(Reply(text), edit_message_id=int(message_id)),
            dedupe_key=f"privacy_card:{number}",
            priority=50,
            not_before=not_before,
        )
        return str(chat_id), int(message_id)
