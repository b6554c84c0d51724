"""What the queue writes to the outbox: the card in the mentor group (posted, then edited as
the request moves on), posts under it, and notices to the clerk. One place renders the card."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from bot.i18n import tr
from bot.services.buttons import pack
from bot.services.buttons_mentoring import CannedChoice, HandOver, QueueAction
from bot.services.mentoring.base import MentorBase
from bot.services.mentoring.common import (
    CARD_THREAD,
    GROUP_LANGUAGE,
    PARTIES,
    REDACTED_TEXT,
    STATE_LABELS,
)
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply, shorten
from storage.mentor import (
    CARD_KIND,
    MentorFollower,
    MentorMessage,
    MentorRepository,
    MentorRequest,
)
from storage.models import User
from storage.uow import UnitOfWork


class MentorCards(MentorBase):
    """Outbox writes for the group card and the clerk, in the caller's unit of work."""

    async def _notify_clerk(
        self,
        uow: UnitOfWork,
        request: MentorRequest,
        kind: str,
        build: Callable[[str], Reply],
        dedupe_key: str,
    ) -> None:
        """The asker hears of their request (in their language, on their channel)."""
        clerk = await uow.users.get(request.user_id)
        if clerk is None:
            return
        await self._queue_to_clerk(uow, clerk, request.id, kind, build(clerk.language), dedupe_key)

    async def _queue_to_clerk(
        self, uow: UnitOfWork, clerk: User, number: int, kind: str, reply: Reply, dedupe_key: str
    ) -> None:
        """One message about request `number` to a clerk, asker or follower alike."""
        await uow.outbox.add(
            channel=clerk.channel,
            chat_id=clerk.external_id,
            user_id=clerk.id,
            kind=kind,
            payload=reply_to_payload(reply, meta={"request_id": number}),
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
        people = {request.claimed_by, request.answered_by, request.handed_by}
        for user_id in people | {m.user_id for m in thread}:
            if user_id:
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
            tr(lang, "Pitanje: <i>{value}</i>", value=html.escape(shorten(request.question, 900)))
        )
        if request.details:
            lines.append(
                tr(lang, "Detalji: {value}", value=html.escape(shorten(request.details, 600)))
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
                average = f"{sum(ratings) / len(ratings):.1f}"
                line += " · " + tr(lang, "ocene: {average}", average=average)
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
                tr(lang, "Predlog bota: {value}", value=html.escape(shorten(label, 200)) + score)
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
                    f"{html.escape(shorten(message.text or '(prilog)', 500))}"
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
            rows.append((Button(tr(lang, "Preuzmi"), pack(QueueAction("c", n))),))
        elif request.state == "claimed":
            rows.append(
                (
                    Button(tr(lang, "Oslobodi"), pack(QueueAction("u", n))),
                    Button(tr(lang, "Zatvori"), pack(QueueAction("z", n))),
                )
            )
        elif request.state == "answered":
            rows.append((Button(tr(lang, "Zatvori"), pack(QueueAction("z", n))),))
        if request.state in ("new", "claimed"):
            rows.append((Button(tr(lang, "Prosledi"), pack(HandOver(n, 0))),))
        if request.state != "closed" and self._desk is not None:
            rows.append((Button(tr(lang, "Šablon"), pack(CannedChoice(n, 0, 0))),))
        if request.first_answer_at is not None and not has_draft:
            rows.append((Button(tr(lang, "Dodaj u bazu znanja"), pack(QueueAction("k", n))),))
        if files:
            rows.append((Button(tr(lang, "📎 Prilozi"), pack(QueueAction("a", n))),))
        return Reply("\n".join(lines), tuple(rows))

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
                lang, "Napomena: {note}", note=html.escape(shorten(request.handover_note, 300))
            )
        return line

    def _attach_row(
        self, request: MentorRequest, files: list[dict[str, Any]]
    ) -> tuple[tuple[Button, ...], ...]:
        if not files:
            return ()
        return ((Button(tr(GROUP_LANGUAGE, "📎 Prilozi"), pack(QueueAction("a", request.id))),),)
