"""The scheduled side of the queue: card ids from the outbox, SLA reminders and escalations,
clerks who blocked the bot, and auto-closing answered requests."""

from __future__ import annotations

import html
import logging
from typing import Any

from bot.i18n import tr
from bot.services.buttons import MentorResolved, pack
from bot.services.mentoring.common import (
    CLERK_KINDS,
    GROUP_LANGUAGE,
)
from bot.services.mentoring.handover import MentorHandover
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply, shorten
from storage.mentor import (
    CARD_KIND,
    MentorRepository,
    MentorRequest,
)
from storage.models import User
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)


class MentorPeriodic(MentorHandover):
    """Jobs the scheduler runs, and the outbox's delivery hook."""

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
                            question=html.escape(shorten(request.question, 200)),
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
                    follow_up = pack(MentorResolved(r.id, "more"))
                    return Reply(
                        tr(
                            lang,
                            "Pitanje #{number} je zatvoreno jer {days} dana nije bilo odgovora. "
                            "Ako Vam je još potrebna pomoć, pritisnite „Imam dodatno pitanje“ "
                            "ili napišite novo pitanje.",
                            number=r.id,
                            days=d,
                        ),
                        ((Button(tr(lang, "Imam dodatno pitanje"), follow_up),),),
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
