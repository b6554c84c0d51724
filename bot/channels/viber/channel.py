"""The Viber channel itself: one callback at a time (claimed once, kept until handled, handed
again by the inbox if a process died), registration, and where each message goes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from bot.channels.viber.actions import ViberActions
from bot.channels.viber.common import (
    AWAIT_MUNICIPALITY,
    CHANNEL,
    LOGGER,
    TRAINING_COMMENT,
    ViberServices,
    _number,
    stand_in,
)
from bot.channels.viber.drafts import CALL_BACK, FOLLOW_UP, Draft, viber_attachment
from bot.channels.viber.webhook import EventNotKept, ViberWebhook, token_id
from bot.channels.viber_client import ViberClient, ViberSettings
from bot.channels.viber_render import ACTION_PREFIX, Sender, render, welcome_body
from bot.i18n import normalize_language
from bot.inbox import UpdateInbox, storable
from bot.services.errors import StorageUnavailable
from bot.services.flood import FloodWindow
from bot.services.onboarding import OnboardingService
from bot.services.replies import Reply
from bot.services.users import UserProfile

log = logging.getLogger(LOGGER)

UNSUPPORTED_TYPES = frozenset(
    {"picture", "sticker", "file", "location", "contact", "video", "url", "rich_media", "gif"}
)


class ViberChannel(ViberWebhook, ViberActions):
    """Viber callbacks -> services -> Viber messages."""

    def __init__(
        self,
        services: ViberServices,
        client: ViberClient,
        settings: ViberSettings,
        *,
        messages_per_minute: int = 20,  # USER_MESSAGES_PER_MINUTE
        replay_after: float = 60.0,  # INBOX_REPLAY_AFTER_SECONDS
        onboarding: OnboardingService | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services = services
        self.client = client
        self.settings = settings
        self.onboarding = onboarding or OnboardingService(services.users)
        self.sender = Sender(settings.bot_name, settings.bot_avatar)
        self._limit = FloodWindow(messages_per_minute, clock=clock)
        self.in_flight = 0
        self.handled = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Each claimed message is kept until its handling ends; a process that died leaves
        # it to be handled again (Viber does not resend what we answered 200 to).
        self.inbox = UpdateInbox(
            services.delivery,
            channel=CHANNEL,
            replay_after=replay_after,
        )

    async def wait_idle(self, timeout: float) -> bool:
        """For a clean shutdown: until no callback is being handled (False on timeout)."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        await self.inbox.stop()
        await self.client.close()

    # -- events -------------------------------------------------------------------------------

    async def handle_event(
        self, event: dict[str, Any], *, replay: bool = False
    ) -> dict[str, Any] | None:
        """One callback; returns the JSON to answer with (only for conversation_started).
        Raises EventNotKept when a message could not even be claimed (the database is down):
        the webhook then answers 503 so that Viber sends it again. `replay`: an unfinished
        message from the inbox, already claimed."""
        kind = str(event.get("event", ""))
        update_id = token_id(event.get("message_token")) if kind == "message" else None
        ended = True
        self.in_flight += 1
        self._idle.clear()
        try:
            if kind == "message":
                if replay and update_id is not None:
                    self.inbox.started(update_id)
                await self._on_message(event, replay=replay)
            elif kind == "conversation_started":
                return await self._on_conversation_started(event)
            elif kind == "subscribed":
                await self._on_subscribed(event)
            elif kind == "unsubscribed":
                await self._on_unsubscribed(event)
            elif kind in ("delivered", "seen"):
                log.debug("viber.%s token=%s", kind, event.get("message_token"))
            elif kind == "failed":
                log.warning(
                    "viber.failed token=%s desc=%s",
                    event.get("message_token"),
                    str(event.get("desc", ""))[:200],
                )
            elif kind == "webhook":
                log.info("viber.webhook_confirmed")
            else:
                log.info("viber.event_ignored event=%s", kind[:40])
            return None
        except StorageUnavailable as exc:
            log.warning("viber.storage_unavailable event=%s error=%s", kind, exc)
            if update_id is not None and not self.inbox.handling(update_id) and not replay:
                raise EventNotKept from exc
            ended = False  # kept: handled again by the inbox scan
            if not replay:  # told once, when it first failed
                await self._apologise(event)
            return None
        except Exception:
            log.exception("viber.event_failed event=%s", kind)
            return None
        finally:
            if update_id is not None and self.inbox.handling(update_id):
                if ended:
                    self.inbox.finished(update_id)
                else:
                    self.inbox.left_unfinished(update_id)
            self.in_flight -= 1
            self.handled += 1
            if self.in_flight == 0:
                self._idle.set()

    async def _apologise(self, event: dict[str, Any]) -> None:
        person = event.get("sender") or event.get("user") or {}
        viber_id = str(person.get("id") or "")
        if viber_id and event.get("event") == "message":
            profile = stand_in(viber_id, normalize_language(person.get("language")))
            # a tap on Viber is a message too, kept and replayed like one
            reply = self.services.delivery.storage_failed(profile.language, tap=False)
            await self.send(profile, reply, queue=False)

    async def _claim(self, event: dict[str, Any]) -> bool:
        """Claim the message once, keeping it (the inbox) until its handling ends."""
        token = event.get("message_token")
        update_id = token_id(token)
        if update_id is None:
            return True
        claimed = await self.services.delivery.claim(CHANNEL, update_id, storable(event))
        if claimed:
            self.inbox.started(update_id)
        else:
            log.info("viber.duplicate token=%s", token)
        return claimed

    async def replay(self, event: dict[str, Any]) -> None:
        """The inbox's feed: a message whose handling never ended."""
        await self.handle_event(event, replay=True)

    async def _register(self, person: dict[str, Any]) -> UserProfile:
        return await self.services.users.get_or_register(
            CHANNEL,
            str(person["id"]),
            display_name=str(person.get("name") or ""),
            language_hint=person.get("language"),
        )

    async def _on_conversation_started(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The user opened the chat: welcome and the script/language choice, as the response.
        Nobody is registered yet: until they write (or subscribe), we may not message them."""
        person = event.get("user") or {}
        if not person.get("id"):
            return None
        if event.get("subscribed"):
            user = await self._register(person)
        else:
            user = stand_in(str(person["id"]), normalize_language(person.get("language")))
        welcome = self.services.answers.welcome(user)
        prompt = self.onboarding.language_prompt(user)
        reply = Reply(f"{welcome.text}\n\n{prompt.text}", prompt.buttons)
        log.info("viber.conversation_started subscribed=%s", bool(event.get("subscribed")))
        return welcome_body(render(reply, self.sender, language=user.language))

    async def _on_subscribed(self, event: dict[str, Any]) -> None:
        person = event.get("user") or {}
        if person.get("id"):
            user = await self._register(person)
            log.info("viber.subscribed user_id=%s", user.id)

    async def _on_unsubscribed(self, event: dict[str, Any]) -> None:
        viber_id = event.get("user_id")
        if viber_id:
            await self.services.users.mark_inactive(CHANNEL, str(viber_id))
            log.info("viber.unsubscribed")

    async def _on_message(self, event: dict[str, Any], *, replay: bool = False) -> None:
        person = event.get("sender") or {}
        message = event.get("message") or {}
        if not person.get("id"):
            return
        viber_id = str(person["id"])
        allowed, warn = self._limit.check(viber_id)
        if not allowed:
            log.info("viber.rate_limited")
            if warn:
                profile = stand_in(viber_id, normalize_language(person.get("language")))
                await self.send(profile, self.services.answers.rate_limited(profile), queue=False)
            return
        if not replay and not await self._claim(event):
            return
        user = await self._register(person)
        kind = str(message.get("type", ""))
        tracking = str(message.get("tracking_data") or "")
        if kind != "text":
            await self._on_media(user, kind, message, tracking)
            return
        text = str(message.get("text") or "")
        if text.startswith(ACTION_PREFIX):
            await self._on_action(user, text[len(ACTION_PREFIX) :].strip(), tracking=tracking)
        elif text.lstrip().startswith("/"):
            await self._on_command(user, text.strip())
        elif tracking == AWAIT_MUNICIPALITY:
            await self._on_municipality_typed(user, text)
        elif tracking.startswith(Draft.PREFIX) and self._mentoring is not None:
            await self._add_to_draft(user, tracking, text=text)
        elif tracking.startswith(FOLLOW_UP) and self._mentoring is not None:
            await self._follow_up(user, tracking, text=text)
        elif tracking.startswith(CALL_BACK) and self._mentoring is not None:
            await self._call_back(user, tracking, text)
        elif tracking.startswith(TRAINING_COMMENT) and self._trainings is not None:
            number = _number(tracking[len(TRAINING_COMMENT) :])
            if number is None:
                await self._ask(user, text)
            else:
                await self.send(user, await self._trainings.attendance.comment(user, number, text))
        else:
            await self._ask(user, text)

    async def _on_media(
        self, user: UserProfile, kind: str, message: dict[str, Any], tracking: str
    ) -> None:
        """Pictures, files and videos are attachments while a mentor request or a follow-up is
        being written; otherwise (and stickers, locations, contacts always) a polite answer."""
        attachment = viber_attachment(kind, message)
        caption = str(message.get("text") or "").strip()
        if kind == "url" and message.get("media"):
            caption = str(message["media"])
        writing = self._mentoring is not None and (
            tracking.startswith(Draft.PREFIX) or tracking.startswith(FOLLOW_UP)
        )
        if writing and (attachment is not None or caption):
            if tracking.startswith(Draft.PREFIX):
                await self._add_to_draft(user, tracking, text=caption, attachment=attachment)
            else:
                await self._follow_up(user, tracking, text=caption, attachment=attachment)
            return
        if kind not in UNSUPPORTED_TYPES:
            log.info("viber.unknown_message_type type=%s", kind[:20])
        await self.send(user, self.services.answers.unsupported_input(user))

    async def _on_municipality_typed(self, user: UserProfile, text: str) -> None:
        step = self.onboarding.search(user, text)
        if step.is_question:
            await self._ask(user, text)
            return
        await self._show_step(step)
