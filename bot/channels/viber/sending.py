"""Replies out: the base every part of the Viber channel builds on. A reply is sent at once; when
Viber cannot take it, it goes to the outbox; an unsubscribed user is marked inactive."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from bot.channels.viber.common import AWAIT_MUNICIPALITY, CHANNEL, LOGGER, ViberServices
from bot.channels.viber_client import ViberClient, ViberSettings
from bot.channels.viber_render import Sender, default_rows, render
from bot.i18n import tr
from bot.services.audience import InterestService
from bot.services.delivery import QueuedReply
from bot.services.errors import StorageUnavailable
from bot.services.mentoring import MentoringService
from bot.services.messages import reply_to_payload
from bot.services.onboarding import OnboardingService, Step
from bot.services.replies import Button, Reply
from bot.services.trainings import TrainingService
from bot.services.users import UserProfile

log = logging.getLogger(LOGGER)


class ViberReplies:
    """The channel's collaborators (set by ViberChannel.__init__) and how a reply goes out."""

    services: ViberServices
    client: ViberClient
    settings: ViberSettings
    sender: Sender
    onboarding: OnboardingService

    @property
    def _mentoring(self) -> MentoringService | None:
        return self.services.mentoring

    @property
    def _trainings(self) -> TrainingService | None:
        return self.services.trainings

    @property
    def _interests(self) -> InterestService | None:
        return self.services.interests

    async def _ask(self, user: UserProfile, text: str) -> None:
        reply = await self.services.answers.ask(user, text)
        log.info("viber.question user_id=%s", user.id)
        await self.send(user, reply)

    async def _show_step(self, step: Step) -> None:
        tracking = AWAIT_MUNICIPALITY if step.awaiting_municipality else None
        await self.send(step.user, step.reply, tracking=tracking)

    def _coming_soon(self, user: UserProfile) -> Reply:
        return Reply(
            tr(
                user.language,
                "Ova mogućnost stiže uskoro. Do tada napišite pitanje – ako ne znam odgovor, "
                "zabeležiću ga za mentora.",
            )
        )

    def default_rows(self, user: UserProfile) -> tuple[tuple[Button, ...], ...]:
        return default_rows(
            user.language,
            mentor=self._mentoring is not None,
            trainings=self._trainings is not None,
        )

    async def send(
        self,
        user: UserProfile,
        reply: Reply,
        *,
        tracking: str | None = None,
        source: str | None = None,
        page: int = 0,
        queue: bool = True,
    ) -> bool:
        """Send a reply now. If Viber cannot take it right now (busy, down), it goes to the
        outbox and arrives a little later; if the user unsubscribed, they are marked inactive."""
        bodies = render(
            reply,
            self.sender,
            language=user.language,
            tracking_data=tracking,
            source=source,
            page=page,
            default_rows=self.default_rows(user),
        )
        for index, body in enumerate(bodies):
            outcome = await self.client.send(user.external_id, body)
            if outcome.status == "sent":
                continue
            if outcome.status == "blocked":
                await self.services.users.mark_inactive(CHANNEL, user.external_id)
                return False
            if outcome.status == "retry" and queue and user.id:
                rest = "\n\n".join(str(b.get("text", "")) for b in bodies[index:])
                await self._queue(user, Reply(rest, reply.buttons), tracking)
            else:
                log.warning("viber.reply_lost user_id=%s error=%s", user.id, outcome.error)
            return False
        return True

    async def _queue(self, user: UserProfile, reply: Reply, tracking: str | None) -> None:
        extra: dict[str, Any] = {"viber_tracking_data": tracking} if tracking else {}
        try:
            await self.services.delivery.queue_reply(
                QueuedReply(
                    channel=CHANNEL,
                    chat_id=user.external_id,
                    user_id=user.id,
                    payload=reply_to_payload(reply, **extra),
                    dedupe_key=f"viber:reply:{uuid.uuid4().hex}",
                )
            )
            log.info("viber.reply_queued user_id=%s", user.id)
        except StorageUnavailable:
            log.warning("viber.reply_lost user_id=%s (database unavailable)", user.id)
