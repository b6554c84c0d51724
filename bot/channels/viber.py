"""The Viber channel: Viber's callbacks in, the same services as Telegram, Viber messages out.

Viber POSTs every event to one webhook URL. Each callback's `X-Viber-Content-Signature` (the
HMAC-SHA256 hex digest of the raw body, keyed with the auth token) is checked in constant time
before anything is parsed: a missing or wrong signature gets 403 and nothing is stored.

- `message`: text goes to the AnswerService (or to onboarding while a municipality is awaited);
  keyboard taps arrive as text messages whose text is the button's ActionBody, `act:<token>`,
  with the services' own action tokens ("e:...", "c:...", "fb:...", "lang:...", "mun:..."), so
  a tap is never confused with typed text; `/teme`, `/pomoc` ... typed by hand work as on
  Telegram; pictures, stickers, files, locations, contacts, videos, links get a polite answer.
  Each message_token is handled once (processed_updates, channel "viber").
- `conversation_started`: the welcome and the script/language keyboard, in the HTTP response
  (Viber lets a bot answer this event once, before the user has subscribed).
- `subscribed` registers (or reactivates) the user; `unsubscribed` marks them inactive, so
  broadcasts and reminders skip them; `delivered`, `seen`, `failed` are logged.

- "Ask a mentor" (after escalate, clarify, 👎, or `/mentor`): the clerk may add details and
  pictures or files (their Viber download URLs become the request's attachments), then taps
  "Pošalji mentoru"; the mentor's answer comes back through the outbox, with "resolved",
  follow-up and rating. `/obuke` lists trainings for sign-up (`tr:*` tokens); `/usluge` the
  services the clerk works on (`int:*`). Calendar files are offered to Viber at
  GET /viber/files/<outbox id>/<signature>/<name> (Viber fetches files by URL).
- Privacy, as on Telegram: `/moji_podaci` queues the export file (PrivacyService.queue_export;
  it goes out by the same file link, which works only for EXPORT_LINK_SECONDS); `/obrisi_me`
  asks for confirmation, and the buttons' tokens (`pd:yes:<stamp>`, `pd:no:0`) delete or not.

What the bot is waiting for (a municipality name, a mentor request being written, a follow-up)
travels in the message's `tracking_data`: Viber hands it back with the user's next message, so no
state is kept in the process and any instance can take the next callback.

Wiring (bot/runtime.py owns the aiohttp app and the outbox):
    channel = setup_viber(app, services, senders)      # None when VIBER_AUTH_TOKEN is unset;
                                                       # adds the routes and senders["viber"]
    ... start the HTTP server, OutboxDispatcher(database, senders) ...
    if channel: await start_viber(channel)             # set_webhook when the public URL is set
    ... at exit: await channel.wait_idle(grace); await channel.close()
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from bot.app import AppServices
from bot.channels.viber_client import (
    FILES_PATH,
    ViberClient,
    ViberSettings,
    ViberTransportError,
)
from bot.channels.viber_render import (
    ACTION_PREFIX,
    PAGE_KIND,
    Sender,
    default_rows,
    render,
    welcome_body,
)
from bot.channels.viber_sender import ViberSender, file_signature
from bot.digits import to_int
from bot.i18n import normalize_language, tr
from bot.inbox import UpdateInbox, storable
from bot.services.actions import perform
from bot.services.answering import AnswerService
from bot.services.audience import InterestService
from bot.services.buttons import ChooseMunicipality, SetLanguage, parse
from bot.services.delivery import DeliveryService, QueuedReply
from bot.services.errors import StorageUnavailable
from bot.services.mentoring import Attachment, MentoringService
from bot.services.messages import reply_to_payload
from bot.services.onboarding import OnboardingService, Step
from bot.services.privacy import PrivacyService
from bot.services.replies import Button, Reply
from bot.services.roadmaps import ROADMAP_KINDS, RoadmapService
from bot.services.trainings import TrainingService
from bot.services.users import UserProfile, UserService

log = logging.getLogger(__name__)

CHANNEL = "viber"
SIGNATURE_HEADER = "X-Viber-Content-Signature"
AWAIT_MUNICIPALITY = "mun"  # tracking_data: the next text is (part of) a municipality name
UNSUPPORTED_TYPES = frozenset(
    {"picture", "sticker", "file", "location", "contact", "video", "url", "rich_media", "gif"}
)
PAGEABLE = ("svc", "menu")  # actions whose lists are paged (they only read, never write)
CONTENT_TYPES = {".ics": "text/calendar", ".json": "application/json"}
_INT64 = 2**63


def signature(body: bytes, auth_token: str) -> str:
    """What Viber puts in X-Viber-Content-Signature for `body`."""
    return hmac.new(auth_token.encode("utf-8"), body, hashlib.sha256).hexdigest()


def token_id(value: object) -> int | None:
    """Viber's message_token as a signed 64-bit integer (the processed_updates key)."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    if number >= _INT64:
        number -= 2 * _INT64
    return number if -_INT64 <= number < _INT64 else None


def stand_in(viber_id: str, language: str) -> UserProfile:
    """A profile to reply with when the real one cannot be loaded (database down)."""
    return UserProfile(
        id=0,
        channel=CHANNEL,
        external_id=viber_id,
        display_name="",
        language=language,
        municipality=None,
        role="clerk",
        active=True,
        onboarded=False,
    )


FOLLOW_UP = "fu:"  # tracking_data: the next text is a follow-up to mentor request <n>
CALL_BACK = "cb:"  # tracking_data: the next text is a call-back contact for request <n>
TRAINING_COMMENT = "tc:"  # tracking_data: the next text is a comment on training <n>
TRACKING_MAX = 4000  # Viber keeps up to 4,096 characters of tracking_data


def _number(text: str) -> int | None:
    return to_int(text, 11)


def _offers(reply: Reply, action: str) -> bool:
    return any(button.action == action for row in reply.buttons for button in row)


def viber_attachment(kind: str, message: dict[str, Any]) -> dict[str, Any] | None:
    """A picture, file or video the clerk sent, as a mentor attachment: Viber gives a download
    URL (`media`), which goes where Telegram's file_id would."""
    media = message.get("media")
    if not media or kind not in ("picture", "file", "video"):
        return None
    kinds = {"picture": "photo", "file": "document", "video": "video"}
    name = message.get("file_name")
    return {"type": kinds[kind], "file_id": str(media), "name": str(name) if name else None}


def _attachment_of(data: dict[str, Any]) -> Attachment:
    return Attachment.from_dict(data)


@dataclass
class Draft:
    """A mentor request being written: the question it is about, the details typed and the
    files sent so far. Carried in the messages' tracking_data (Viber returns it with the user's
    next message), so no instance has to remember it."""

    question_id: int | None
    details: list[str] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    # Names this draft: sending it twice (a double tap) finds the request the first send made.
    key: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    PREFIX: ClassVar[str] = "ms:"

    def source_key(self, user: UserProfile) -> str:
        return f"viber:{user.id}:{self.key}"

    def encode(self) -> str:
        data = {"k": self.key, "q": self.question_id, "d": self.details, "a": self.attachments}
        return self.PREFIX + json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def decode(cls, tracking: str) -> Draft | None:
        if not tracking.startswith(cls.PREFIX):
            return None
        try:
            data = json.loads(tracking[len(cls.PREFIX) :])
            question = data.get("q")
            key = str(data.get("k") or "")[:32]
            return cls(
                question if isinstance(question, int) else None,
                [str(d) for d in data.get("d") or []],
                [dict(a) for a in data.get("a") or [] if isinstance(a, dict) and a.get("file_id")],
                key or uuid.uuid4().hex[:16],
            )
        except (ValueError, AttributeError, TypeError):
            return None

    def _room(self) -> int:
        return TRACKING_MAX - len(self.encode())

    def add_detail(self, text: str) -> None:
        room = self._room() - 8
        if room > 20:
            self.details.append(text[:room])

    def add_attachment(self, attachment: dict[str, Any]) -> None:
        if len(json.dumps(attachment, ensure_ascii=False)) + 8 < self._room():
            self.attachments.append(attachment)


class _RateLimit:
    """A sliding one-minute window of messages per Viber user, in memory, before any database
    work; the first message over the limit is answered once, the rest are dropped quietly."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._warned: dict[str, float] = {}

    def check(self, viber_id: str) -> tuple[bool, bool]:
        """(allowed, warn)"""
        if self.per_minute <= 0:
            return True, False
        now = self._clock()
        stamps = self._seen.setdefault(viber_id, deque())
        while stamps and now - stamps[0] >= 60.0:
            stamps.popleft()
        if len(stamps) < self.per_minute:
            stamps.append(now)
            if len(self._seen) > 50_000:
                self._seen = {k: v for k, v in self._seen.items() if v and now - v[-1] < 60}
                self._warned = {k: v for k, v in self._warned.items() if now - v < 60}
            return True, False
        warned = self._warned.get(viber_id)
        if warned is None or now - warned >= 60.0:
            self._warned[viber_id] = now
            return False, True
        return False, False


class EventNotKept(Exception):
    """A message could not be claimed (the database is unreachable): let Viber resend it."""


@dataclass(frozen=True)
class ViberServices:
    """What the Viber channel uses of the app's services, and nothing more."""

    users: UserService
    answers: AnswerService
    mentoring: MentoringService
    trainings: TrainingService
    interests: InterestService
    privacy: PrivacyService
    roadmaps: RoadmapService
    delivery: DeliveryService

    @classmethod
    def of(cls, services: AppServices) -> ViberServices:
        return cls(
            users=services.users,
            answers=services.answers,
            mentoring=services.mentoring,
            trainings=services.trainings,
            interests=services.interests,
            privacy=services.privacy,
            roadmaps=services.roadmaps,
            delivery=services.delivery,
        )


class ViberChannel:
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
        self._limit = _RateLimit(messages_per_minute, clock)
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

    # -- HTTP ---------------------------------------------------------------------------------

    def verify(self, body: bytes, given: str | None) -> bool:
        token = self.settings.token
        if not token or not given:
            return False
        return hmac.compare_digest(signature(body, token), given.strip().lower())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The webhook endpoint."""
        body = await request.read()
        if not self.verify(body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("viber.bad_signature remote=%s", request.remote)
            return web.Response(status=403, text="bad signature")
        try:
            event = json.loads(body)
        except ValueError:
            return web.Response(status=400, text="not JSON")
        if not isinstance(event, dict):
            return web.Response(status=400, text="not an event")
        try:
            answer = await self.handle_event(event)
        except EventNotKept:
            # the database could not keep the message: Viber retries a callback that fails
            return web.Response(status=503, text="try again")
        if answer is None:
            return web.Response(status=200)
        return web.Response(
            body=json.dumps(answer, ensure_ascii=False).encode("utf-8"),
            content_type="application/json",
            charset="utf-8",
        )

    async def serve_file(self, request: web.Request) -> web.StreamResponse:
        """A document of an outbox row (a calendar file, a privacy export), for Viber to fetch
        when it delivers our "file" message. Only signed links to Viber rows work, and only
        until the row's `expires_at` (an export's link dies after a few minutes)."""
        raw_id = request.match_info["outbox_id"]
        name = request.match_info["filename"]
        if to_int(raw_id) is None or not self.settings.token:
            raise web.HTTPNotFound()
        expected = file_signature(self.settings.token, int(raw_id), name)
        if not hmac.compare_digest(expected, request.match_info["signature"]):
            raise web.HTTPNotFound()
        document = await self.services.delivery.document(CHANNEL, int(raw_id))
        if document is None or document.get("filename") != name:
            raise web.HTTPNotFound()
        try:
            content = base64.b64decode(str(document.get("content_b64", "")), validate=True)
        except (binascii.Error, ValueError):
            raise web.HTTPNotFound() from None
        extension = name[name.rfind(".") :].lower() if "." in name else ""
        content_type = CONTENT_TYPES.get(extension, "application/octet-stream")
        return web.Response(
            body=content,
            content_type=content_type,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
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
            reply = self.services.delivery.kept_for_later(profile.language)
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

    # -- what the clerk does ----------------------------------------------------------------

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

    async def _on_municipality_typed(self, user: UserProfile, text: str) -> None:
        step = self.onboarding.search(user, text)
        if step.is_question:
            await self._ask(user, text)
            return
        await self._show_step(step)

    async def _show_step(self, step: Step) -> None:
        tracking = AWAIT_MUNICIPALITY if step.awaiting_municipality else None
        await self.send(step.user, step.reply, tracking=tracking)

    async def _on_command(self, user: UserProfile, text: str) -> None:
        command = text.split()[0].lstrip("/").lower()
        await self._run_command(user, command)

    async def _run_command(self, user: UserProfile, command: str) -> None:
        answers = self.services.answers
        if command in ("start", "pocetak", "početak"):
            await self.send(user, answers.welcome(user))
            await self.send(user, self.onboarding.language_prompt(user))
        elif command in ("pomoc", "pomoć", "help"):
            await self.send(user, answers.help(user))
        elif command in ("teme", "topics"):
            await self.send(user, answers.services_menu(user), source="menu")
        elif command in ("jezik", "language"):
            await self.send(user, self.onboarding.language_prompt(user))
        elif command in ("opstina", "opština"):
            await self.send(
                user, self.onboarding.municipality_prompt(user), tracking=AWAIT_MUNICIPALITY
            )
        elif command == "mentor" and self._mentoring is not None:
            await self._start_draft(user, None)
        elif command == "obuke" and self._trainings is not None:
            await self.send(user, await self._trainings.upcoming(user))
        elif command == "plan":
            await self.send(user, await self.services.roadmaps.plan(user))
        elif command == "usluge" and self._interests is not None:
            await self.send(user, await self._interests.menu(user.id, user.language))
        elif command in ("mentor", "obuke"):
            await self.send(user, self._coming_soon(user))
        elif command in ("moji_podaci", "mojipodaci", "my_data"):
            await self.services.privacy.queue_export(user)  # the dispatcher sends it by link
            log.info("viber.export_queued user_id=%s", user.id)
        elif command in ("obrisi_me", "obriši_me", "obrisime", "delete_me"):
            await self.send(user, self.services.privacy.deletion_prompt(user))
        else:
            await self.send(user, answers.unknown_command(user))

    def _coming_soon(self, user: UserProfile) -> Reply:
        return Reply(
            tr(
                user.language,
                "Ova mogućnost stiže uskoro. Do tada napišite pitanje – ako ne znam odgovor, "
                "zabeležiću ga za mentora.",
            )
        )

    async def _on_action(
        self, user: UserProfile, token: str, page: int = 0, tracking: str = ""
    ) -> None:
        """A keyboard tap: the same tokens as Telegram's buttons, plus Viber's own
        (`cmd:<command>`, `pg:<page>:<token>`)."""
        kind, _, rest = token.partition(":")
        answers = self.services.answers
        if kind == "cmd" and rest:
            await self._run_command(user, rest)
            return
        if kind == PAGE_KIND:
            number, _, source = rest.partition(":")
            if to_int(number) is not None and source.partition(":")[0] in PAGEABLE:
                await self._on_action(user, source, page=int(number))
            else:
                await self.send(user, answers.stale_button(user))
            return
        tapped = parse(token)
        if isinstance(tapped, SetLanguage):
            await self._show_step(await self.onboarding.choose_language(user, tapped.code))
            return
        if isinstance(tapped, ChooseMunicipality):
            await self._show_step(await self.onboarding.choose_municipality(user, tapped.token))
            return
        if kind in ("m", "ms", "mr", "mrt", "mo", "mc") and self._mentoring is not None:
            await self._mentor_action(user, kind, rest, tracking)
            return
        if kind == "m":
            question_id = _number(rest)
            if question_id is not None:
                log.info("viber.mentor_requested user_id=%s", user.id)
                await self.send(user, answers.mentor_requested(user, question_id))
                return
        if kind == "tr" and rest.startswith("fc:") and self._trainings is not None:
            training = _number(rest[len("fc:") :])  # a comment after the rating: the next text
            if training is not None:
                prompt = self._trainings.attendance.comment_prompt(user)
                await self.send(user, prompt, tracking=f"{TRAINING_COMMENT}{training}")
                return
        if kind == "tr" and self._trainings is not None:
            reply = await self._trainings.perform(user, token)
            await self.send(user, reply or answers.stale_button(user))
            return
        if kind == "int" and rest and self._interests is not None:
            await self.send(user, await self._interests.toggle(user.id, user.language, rest))
            return
        if kind == "pd":
            await self._deletion_choice(user, rest)
            return
        if kind in ROADMAP_KINDS:  # /plan: "Urađeno", "Zapeli smo" (the service checks who)
            roadmap_reply = await self.services.roadmaps.perform(user, token)
            await self.send(user, roadmap_reply or answers.stale_button(user))
            return
        user, reply = await perform(token, user, answers, self.services.users)
        await self.send(user, reply, source=token if kind in PAGEABLE else None, page=page)

    async def _deletion_choice(self, user: UserProfile, choice: str) -> None:
        """The /obrisi_me buttons: "yes:<stamp when offered>" deletes (if still fresh), "no:0"
        keeps everything."""
        privacy = self.services.privacy
        answer, _, stamp = choice.partition(":")
        if answer == "no":
            await self.send(user, privacy.deletion_cancelled(user))
        elif answer == "yes" and to_int(stamp, 11) is not None:
            reply = await privacy.confirm_deletion(user, int(stamp))
            # Not queued if Viber is busy: a queued reply would store the Viber id of a user
            # who was just deleted.
            await self.send(user, reply, queue=False)
        else:
            await self.send(user, self.services.answers.stale_button(user))

    # -- asking a mentor ----------------------------------------------------------------------

    async def _mentor_action(self, user: UserProfile, kind: str, rest: str, tracking: str) -> None:
        mentoring = self._mentoring
        stale = self.services.answers.stale_button(user)
        if mentoring is None:
            await self.send(user, stale)
            return
        if kind == "m":
            question_id = _number(rest)
            if question_id is None:
                await self.send(user, stale)
                return
            question = await mentoring.question_text(user, question_id)
            if question is None:
                await self.send(user, stale)
                return
            await self._start_draft(user, question_id, question)
        elif kind == "ms" and rest == "send":
            draft = Draft.decode(tracking)
            if draft is None:
                await self.send(user, stale)
                return
            created = await mentoring.create_request(
                user,
                question_id=draft.question_id,
                details=draft.details,
                attachments=[_attachment_of(a) for a in draft.attachments],
                source_key=draft.source_key(user),
            )
            still_writing = created.number is None and _offers(created.reply, "ms:send")
            log.info("viber.mentor_request user_id=%s number=%s", user.id, created.number)
            await self.send(user, created.reply, tracking=draft.encode() if still_writing else None)
        elif kind == "ms" and rest == "cancel":
            await self.send(user, mentoring.cancelled(user))
        elif kind == "mr":
            number_text, _, value = rest.partition(":")
            number = _number(number_text)
            if number is not None and value == "ok":
                await self.send(user, (await mentoring.clerk_resolved(user, number)).reply)
            elif number is not None and value == "more":
                await self.send(
                    user, mentoring.followup_prompt(user, number), tracking=f"{FOLLOW_UP}{number}"
                )
            else:
                await self.send(user, stale)
        elif kind == "mo" and _number(rest) is not None:
            # a follower sends their question as their own request after all
            created = await mentoring.open_own(user, int(rest))
            await self.send(user, created.reply)
        elif kind == "mc" and _number(rest) is not None:
            await self.send(
                user, mentoring.callback_prompt(user, int(rest)), tracking=f"{CALL_BACK}{rest}"
            )
        elif kind == "mrt":
            number_text, _, value = rest.partition(":")
            number, rating = _number(number_text), _number(value)
            if number is None or rating is None:
                await self.send(user, stale)
                return
            await self.send(user, (await mentoring.rate(user, number, rating)).reply)
        else:
            await self.send(user, stale)

    async def _start_draft(
        self, user: UserProfile, question_id: int | None, question: str | None = None
    ) -> None:
        """ "Ask a mentor": the clerk may add details and files, then taps "Pošalji mentoru".
        What they add travels in tracking_data until then."""
        mentoring = self._mentoring
        if mentoring is None:
            await self.send(user, self._coming_soon(user))
            return
        reply = mentoring.compose_prompt(user, question)
        await self.send(user, reply, tracking=Draft(question_id).encode())

    async def _add_to_draft(
        self,
        user: UserProfile,
        tracking: str,
        *,
        text: str = "",
        attachment: dict[str, Any] | None = None,
    ) -> None:
        draft = Draft.decode(tracking)
        mentoring = self._mentoring
        if draft is None or mentoring is None:
            await self._ask(user, text)
            return
        if attachment is not None:
            draft.add_attachment(attachment)
        if text.strip():
            draft.add_detail(text.strip())
        reply = mentoring.noted(user, "attachment" if attachment is not None else "text")
        await self.send(user, reply, tracking=draft.encode())

    async def _follow_up(
        self,
        user: UserProfile,
        tracking: str,
        *,
        text: str = "",
        attachment: dict[str, Any] | None = None,
    ) -> None:
        number = _number(tracking[len(FOLLOW_UP) :])
        mentoring = self._mentoring
        if number is None or mentoring is None:
            await self._ask(user, text)
            return
        files = [_attachment_of(attachment)] if attachment is not None else []
        result = await mentoring.clerk_followup(user, number, text, files)
        log.info("viber.mentor_followup user_id=%s number=%s", user.id, number)
        await self.send(user, result.reply)

    async def _call_back(self, user: UserProfile, tracking: str, text: str) -> None:
        """The clerk's phone number or e-mail for a call back (out of hours)."""
        number = _number(tracking[len(CALL_BACK) :])
        mentoring = self._mentoring
        if number is None or mentoring is None:
            await self._ask(user, text)
            return
        result = await mentoring.save_callback(user, number, text)
        await self.send(user, result.reply, tracking=None if result.ok else tracking)

    # -- sending ------------------------------------------------------------------------------

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


# -- wiring -----------------------------------------------------------------------------------


def build_viber_channel(
    services: AppServices, viber_settings: ViberSettings | None = None, **options: Any
) -> ViberChannel | None:
    """The channel over the app's services, or None when VIBER_AUTH_TOKEN is not set."""
    settings = viber_settings or ViberSettings.from_settings(services.settings)
    if not settings.enabled:
        return None
    options.setdefault("messages_per_minute", services.settings.user_messages_per_minute)
    options.setdefault("replay_after", services.settings.inbox_replay_after_seconds)
    return ViberChannel(
        ViberServices.of(services), ViberClient.from_settings(settings), settings, **options
    )


def add_viber_routes(app: web.Application, channel: ViberChannel) -> None:
    """POST <path of VIBER_WEBHOOK_URL> (default /viber/webhook) on the runner's aiohttp app,
    and GET /viber/files/... (calendar files Viber fetches when it delivers them)."""
    app.router.add_post(channel.settings.webhook_path, channel.handle)
    app.router.add_get(FILES_PATH + "/{outbox_id}/{signature}/{filename}", channel.serve_file)


def build_viber_app(channel: ViberChannel) -> web.Application:
    """A stand-alone aiohttp app with only the Viber webhook (tests, a Viber-only instance)."""
    app = web.Application(client_max_size=1024 * 1024)
    add_viber_routes(app, channel)
    return app


def setup_viber(
    app: web.Application, services: AppServices, senders: dict[str, Any]
) -> ViberChannel | None:
    """All the wiring the runner needs before its HTTP server starts, in one call: the channel
    (None when VIBER_AUTH_TOKEN is unset), its routes on `app`, and `senders["viber"]` for the
    OutboxDispatcher. After the server listens: `await start_viber(channel)`; at shutdown:
    `await channel.wait_idle(grace)` then `await channel.close()`."""
    channel = build_viber_channel(services)
    if channel is None:
        return None
    add_viber_routes(app, channel)
    senders[CHANNEL] = viber_sender(channel)
    return channel


def viber_sender(channel: ViberChannel) -> ViberSender:
    """The outbox sender for channel "viber" (`OutboxDispatcher(db, {"viber": ...})`)."""
    return ViberSender(
        channel.client,
        channel.settings,
        channel.services.delivery,
        mentor=True,
        trainings=True,
    )


async def start_viber(channel: ViberChannel) -> bool:
    """set_webhook when the public URL is known (VIBER_WEBHOOK_URL, or WEBHOOK_URL's origin).
    Viber calls the URL at once, so the HTTP server must already listen. A failure is logged,
    not fatal: the Telegram bot keeps running. Also starts the inbox scan (messages a dead
    process left unfinished are handled again)."""
    channel.inbox.start(channel.replay)
    url = channel.settings.webhook_url
    if not url:
        log.info("viber.webhook_not_set reason=no public URL (VIBER_WEBHOOK_URL)")
        return False
    try:
        response = await channel.client.set_webhook(url)
    except ViberTransportError as exc:
        log.error("viber.set_webhook_failed error=%s", exc)
        return False
    if not response.ok:
        log.error(
            "viber.set_webhook_failed status=%s message=%s",
            response.status,
            response.status_message,
        )
        return False
    log.info("viber.webhook_set url=%s", url)
    return True
