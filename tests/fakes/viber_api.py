"""A fake Viber REST bot API on 127.0.0.1, and a harness that plays Viber's side of the webhook.

`FakeViberAPI` answers POST {base}/send_message, /set_webhook, /get_account_info like Viber:
HTTP 200 with a `status` in the JSON body. It checks X-Viber-Auth-Token (status 2), the
request size (about 30 KB, status 3), the text length (7,000), the sender name (28) and the
keyboard (at most 24 buttons, ActionType/ActionBody on each); answers status 6 to users who
unsubscribed; on set_webhook it calls the URL with a signed "webhook" event, as Viber does. It
records every call and can fail the next calls with a Viber status (12 = too many requests),
an HTTP error or a dropped connection.

`ViberBotUnderTest` runs the real Viber channel (services from bot.app.build_services, a real
database, the real aiohttp webhook app) against the fake API; `ViberUser` sends what a Viber
user's phone would (signed callbacks) and reads what arrived in their chat.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bot.app import AppServices, build_services
from bot.channels.viber import ViberChannel, build_viber_app, build_viber_channel, viber_sender
from bot.channels.viber_client import ViberSettings
from bot.config import Settings
from bot.outbox import OutboxDispatcher
from bot.ratelimit import LocalRateLimiter
from bot.services.users import UserProfile
from storage.clock import utcnow

AUTH_TOKEN = "4453b6ac12345678-e02c5f12174805f9-daec9cbb5448c51f"
MAX_REQUEST_BYTES = 30_000


def sign(body: bytes, token: str = AUTH_TOKEN) -> str:
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class ViberCall:
    method: str
    body: dict[str, Any]
    token: str
    http_status: int = 200
    status: int = 0
    size: int = 0
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and self.status == 0


@dataclass
class ViberMessage:
    """A message as the user's chat shows it."""

    receiver: str
    body: dict[str, Any]
    token: int
    file: bytes | None = None  # a "file" message: what Viber fetched from its media URL

    @property
    def text(self) -> str:
        return str(self.body.get("text", ""))

    @property
    def type(self) -> str:
        return str(self.body.get("type", ""))

    @property
    def tracking_data(self) -> str | None:
        value = self.body.get("tracking_data")
        return str(value) if value is not None else None

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return list((self.body.get("keyboard") or {}).get("Buttons", []))

    @property
    def button_labels(self) -> list[str]:
        return [str(b.get("Text", "")) for b in self.buttons]

    @property
    def actions(self) -> list[str]:
        return [str(b.get("ActionBody", "")) for b in self.buttons]

    def action(self, label_part: str) -> str:
        """The ActionBody of the first button whose label contains `label_part`."""
        for button in self.buttons:
            if label_part in str(button.get("Text", "")):
                return str(button["ActionBody"])
        raise LookupError(f"no button with {label_part!r} in {self.button_labels}")


@dataclass
class _Failure:
    remaining: int
    method: str | None
    status: int | None
    http_status: int | None
    drop_connection: bool


def _keyboard_problem(keyboard: Any) -> str | None:
    if not isinstance(keyboard, dict) or keyboard.get("Type") != "keyboard":
        return "keyboard.Type must be 'keyboard'"
    buttons = keyboard.get("Buttons")
    if not isinstance(buttons, list) or not buttons:
        return "keyboard.Buttons must be a non-empty list"
    if len(buttons) > 24:
        return f"keyboard has {len(buttons)} buttons (max 24)"
    for button in buttons:
        if button.get("ActionType") not in ("reply", "open-url", "location-picker", "none"):
            return "bad ActionType"
        if not button.get("ActionBody") or len(str(button["ActionBody"])) > 4000:
            return "bad ActionBody"
        if not 1 <= int(button.get("Columns", 6)) <= 6 or not 1 <= int(button.get("Rows", 1)) <= 2:
            return "bad Columns/Rows"
        if len(str(button.get("Text", ""))) > 250:
            return "button Text longer than 250"
    return None


class FakeViberAPI:
    def __init__(self, token: str = AUTH_TOKEN) -> None:
        self.token = token
        self.calls: list[ViberCall] = []
        self.chats: dict[str, list[ViberMessage]] = {}
        self.unsubscribed: set[str] = set()
        self.webhook: dict[str, Any] | None = None
        self.webhook_answer: int | None = None  # HTTP status our webhook gave the check
        self._failures: list[_Failure] = []
        self._tokens = itertools.count(5_741_311_803_571_000_000)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.listeners: list[Callable[[ViberCall], None]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/pa"

    async def start(self) -> FakeViberAPI:
        app = web.Application()
        app.router.add_post("/pa/{method}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = (getattr(server, "sockets", None) or [])[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeViberAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- arranging ----------------------------------------------------------------------------
    def fail_next(
        self,
        times: int = 1,
        *,
        status: int | None = None,
        http_status: int | None = None,
        drop_connection: bool = False,
        method: str | None = "send_message",
    ) -> None:
        """Fail the next `times` calls: with a Viber status (12 too many requests, 6 not
        subscribed ...), an HTTP status (500, 502 ...), or by dropping the connection."""
        self._failures.append(_Failure(times, method, status, http_status, drop_connection))

    def next_token(self) -> int:
        return next(self._tokens)

    # -- observing ----------------------------------------------------------------------------
    def calls_of(self, method: str) -> list[ViberCall]:
        return [c for c in self.calls if c.method == method]

    def seen_by(self, receiver: str) -> list[ViberMessage]:
        return list(self.chats.get(receiver, []))

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            recent = [(c.method, c.http_status, c.status) for c in self.calls[-8:]]
            raise AssertionError(f"timed out waiting for {what}; last calls: {recent}") from None

    async def wait_for_messages(
        self, receiver: str, count: int, timeout: float = 5.0
    ) -> list[ViberMessage]:
        await self.wait_until(
            lambda: len(self.seen_by(receiver)) >= count, timeout, f"{count} messages to {receiver}"
        )
        return self.seen_by(receiver)

    # -- serving ------------------------------------------------------------------------------
    def _take_failure(self, method: str) -> _Failure | None:
        for failure in self._failures:
            if failure.method in (None, method) and failure.remaining > 0:
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._failures.remove(failure)
                return failure
        return None

    async def _record(self, call: ViberCall) -> None:
        async with self._changed:
            self.calls.append(call)
            for listener in self.listeners:
                listener(call)
            self._changed.notify_all()

    async def _answer(self, call: ViberCall, payload: dict[str, Any]) -> web.Response:
        call.status = int(payload.get("status", 0))
        await self._record(call)
        return web.json_response(payload)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        raw = await request.read()
        token = request.headers.get("X-Viber-Auth-Token", "")
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:
            body = {}
        call = ViberCall(method, body if isinstance(body, dict) else {}, token, size=len(raw))
        failure = self._take_failure(method)
        if failure is not None:
            if failure.drop_connection:
                await self._record(call)
                transport = request.transport
                if transport is not None:
                    transport.close()
                return web.Response(status=500)
            if failure.http_status is not None:
                call.http_status = failure.http_status
                await self._record(call)
                return web.Response(status=failure.http_status, text="error")
            return await self._answer(
                call, {"status": failure.status or 1, "status_message": "injected failure"}
            )
        if token != self.token:
            return await self._answer(call, {"status": 2, "status_message": "invalidAuthToken"})
        if len(raw) > MAX_REQUEST_BYTES:
            return await self._answer(call, {"status": 3, "status_message": "request too large"})
        if method == "send_message":
            return await self._send_message(call)
        if method == "set_webhook":
            return await self._set_webhook(call)
        if method == "get_account_info":
            return await self._answer(
                call,
                {
                    "status": 0,
                    "status_message": "ok",
                    "id": "pa:75346594275468546724",
                    "name": "eUprava za sve",
                    "uri": "euprava",
                    "webhook": (self.webhook or {}).get("url", ""),
                    "subscribers_count": 0,
                },
            )
        return await self._answer(call, {"status": 3, "status_message": f"unknown {method}"})

    async def _send_message(self, call: ViberCall) -> web.Response:
        body = call.body
        receiver = str(body.get("receiver", ""))
        problem = None
        sender = body.get("sender")
        if not receiver:
            problem = "receiver missing"
        elif not isinstance(sender, dict) or not sender.get("name"):
            problem = "sender.name missing"
        elif len(str(sender["name"])) > 28:
            problem = "sender.name longer than 28"
        elif body.get("type") == "file" and not (
            body.get("media") and body.get("file_name") and int(body.get("size") or 0) > 0
        ):
            problem = "file needs media, size and file_name"
        elif body.get("type") == "text" and not str(body.get("text", "")).strip():
            problem = "text missing"
        elif len(str(body.get("text", ""))) > 7000:
            problem = "text longer than 7000"
        elif "keyboard" in body:
            problem = _keyboard_problem(body["keyboard"])
        if problem:
            return await self._answer(call, {"status": 3, "status_message": problem})
        if receiver in self.unsubscribed:
            return await self._answer(call, {"status": 6, "status_message": "notSubscribed"})
        token = self.next_token()
        fetched = None
        if body.get("type") == "file":
            fetched = await self._fetch(str(body["media"]))
            if fetched is None:
                return await self._answer(call, {"status": 3, "status_message": "media not found"})
        self.chats.setdefault(receiver, []).append(ViberMessage(receiver, body, token, fetched))
        return await self._answer(
            call,
            {
                "status": 0,
                "status_message": "ok",
                "message_token": token,
                "chat_hostname": "SN-CHAT-01_",
            },
        )

    async def _fetch(self, url: str) -> bytes | None:
        """Viber downloads a file message's media from the bot's public URL."""
        try:
            async with aiohttp.ClientSession() as http, http.get(url) as response:
                return await response.read() if response.status == 200 else None
        except aiohttp.ClientError:
            return None

    async def _set_webhook(self, call: ViberCall) -> web.Response:
        url = str(call.body.get("url", ""))
        if not url:
            self.webhook = None
            return await self._answer(call, {"status": 0, "status_message": "ok"})
        event = {
            "event": "webhook",
            "timestamp": int(time.time() * 1000),
            "chat_hostname": "SN-CHAT-01_",
            "message_token": self.next_token(),
        }
        raw = json.dumps(event).encode()
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    url,
                    data=raw,
                    headers={
                        "X-Viber-Content-Signature": sign(raw, self.token),
                        "Content-Type": "application/json",
                    },
                ) as response,
            ):
                self.webhook_answer = response.status
        except aiohttp.ClientError:
            self.webhook_answer = None
        if self.webhook_answer != 200:
            return await self._answer(call, {"status": 1, "status_message": "invalidUrl"})
        self.webhook = dict(call.body)
        return await self._answer(
            call,
            {
                "status": 0,
                "status_message": "ok",
                "event_types": call.body.get("event_types", []),
            },
        )


# -- the bot under test -------------------------------------------------------------------------


class ViberBotUnderTest:
    def __init__(
        self,
        api: FakeViberAPI,
        database_url: str,
        *,
        services: AppServices | None = None,
        **viber: Any,
    ) -> None:
        self.api = api
        self.database_url = database_url
        self.services = services
        self._own_services = services is None
        self.viber_options = viber
        self.channel: ViberChannel | None = None
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.port = 0
        self._ids = itertools.count(1)

    def viber_settings(self) -> ViberSettings:
        values: dict[str, Any] = {
            "auth_token": SecretStr(self.api.token),
            "api_base": self.api.base_url,
        }
        values.update(self.viber_options)
        return ViberSettings(_env_file=None, **values)  # type: ignore[call-arg]

    async def start(self) -> ViberBotUnderTest:
        if self.services is None:
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None,
                database_url=self.database_url,
                viber_auth_token=SecretStr(self.api.token),
                viber_api_base=self.api.base_url,
            )
            self.services = await build_services(settings)
        settings_v = self.viber_settings()
        self.channel = build_viber_channel(self.services, settings_v)
        assert self.channel is not None  # the test's Viber settings carry a token
        self._runner = web.AppRunner(
            build_viber_app(self.channel), handle_signals=False, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = (getattr(server, "sockets", None) or [])[0].getsockname()[1]
        self._http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.channel is not None:
            await self.channel.close()
        if self.services is not None and self._own_services:
            await self.services.close()

    async def __aenter__(self) -> ViberBotUnderTest:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def webhook_url(self) -> str:
        assert self.channel is not None
        return f"http://127.0.0.1:{self.port}{self.channel.settings.webhook_path}"

    async def post(
        self, event: dict[str, Any], *, signature: str | None = "sign", raw: bytes | None = None
    ) -> tuple[int, Any]:
        """POST a callback as Viber would; `signature=None` sends none, any other string than
        "sign" is sent as given. Returns (HTTP status, JSON answer or None)."""
        assert self._http is not None
        body = raw if raw is not None else json.dumps(event, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            headers["X-Viber-Content-Signature"] = sign(body, self.api.token)
        elif signature is not None:
            headers["X-Viber-Content-Signature"] = signature
        async with self._http.post(self.webhook_url, data=body, headers=headers) as response:
            text = await response.text()
            data = (
                json.loads(text) if text and response.content_type == "application/json" else None
            )
            return response.status, data

    def user(
        self, viber_id: str | None = None, name: str = "Milica", language: str | None = None
    ) -> ViberUser:
        """A Viber user; `language` is what their phone reports ("sr", "en"; None: not given,
        Serbian Latin)."""
        return ViberUser(self, viber_id or f"vU{next(self._ids):04d}+fake=", name, language)

    def dispatcher(self, clock: Callable[[], datetime] = utcnow) -> OutboxDispatcher:
        """An outbox dispatcher with only the Viber sender (rows of other channels are left)."""
        assert self.channel is not None and self.services is not None
        limiter = LocalRateLimiter(
            per_second=1000,
            per_chat_interval=0,
            per_group_interval=0,
            clock=lambda: clock().timestamp(),
        )
        return OutboxDispatcher(
            self.services.database, {"viber": viber_sender(self.channel)}, limiter, clock=clock
        )


class ViberUser:
    """One person in Viber chatting with the bot."""

    def __init__(
        self, bot: ViberBotUnderTest, viber_id: str, name: str, language: str | None
    ) -> None:
        self.bot = bot
        self.id = viber_id
        self.name = name
        self.language = language

    @property
    def chat(self) -> list[ViberMessage]:
        return self.bot.api.seen_by(self.id)

    @property
    def last(self) -> ViberMessage:
        return self.chat[-1]

    def _person(self) -> dict[str, Any]:
        person: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "country": "RS",
            "avatar": "https://example.org/a.jpg",
            "api_version": 10,
        }
        if self.language:
            person["language"] = self.language
        return person

    async def open(self, subscribed: bool = False) -> tuple[int, Any]:
        """Open the chat (conversation_started); returns Viber's (status, welcome body)."""
        return await self.bot.post(
            {
                "event": "conversation_started",
                "timestamp": int(time.time() * 1000),
                "message_token": self.bot.api.next_token(),
                "type": "open",
                "context": "",
                "user": self._person(),
                "subscribed": subscribed,
            }
        )

    def message_event(
        self, message: dict[str, Any], token: int | None = None, tracking: str | None = None
    ) -> dict[str, Any]:
        """A message event; Viber adds the tracking_data of the bot's last message (or
        `tracking`, to replay an older one: a second tap on a keyboard still on screen)."""
        if tracking is None and self.chat:
            tracking = self.last.tracking_data
        if tracking is not None:
            message = {**message, "tracking_data": tracking}
        return {
            "event": "message",
            "timestamp": int(time.time() * 1000),
            "message_token": token if token is not None else self.bot.api.next_token(),
            "sender": self._person(),
            "message": message,
            "silent": False,
        }

    async def send(
        self, message: dict[str, Any], token: int | None = None, tracking: str | None = None
    ) -> list[ViberMessage]:
        """Send a message; returns the messages that arrived in the chat because of it."""
        before = len(self.chat)
        status, _ = await self.bot.post(self.message_event(message, token, tracking))
        assert status == 200, status
        return self.chat[before:]

    async def say(self, text: str) -> list[ViberMessage]:
        return await self.send({"type": "text", "text": text})

    async def tap(self, label_part: str, message: ViberMessage | None = None) -> list[ViberMessage]:
        """Tap a keyboard button: Viber sends its ActionBody as a text message."""
        target = message or self.last
        return await self.say(target.action(label_part))

    async def tap_action(self, action_body: str) -> list[ViberMessage]:
        return await self.say(action_body)

    async def unsubscribe(self) -> int:
        self.bot.api.unsubscribed.add(self.id)
        status, _ = await self.bot.post(
            {
                "event": "unsubscribed",
                "timestamp": int(time.time() * 1000),
                "user_id": self.id,
                "message_token": self.bot.api.next_token(),
            }
        )
        return status

    async def subscribe(self) -> int:
        self.bot.api.unsubscribed.discard(self.id)
        status, _ = await self.bot.post(
            {
                "event": "subscribed",
                "timestamp": int(time.time() * 1000),
                "user": self._person(),
                "message_token": self.bot.api.next_token(),
            }
        )
        return status


async def telegram_user_with_role(
    bot: ViberBotUnderTest, telegram_id: str, name: str, role: str
) -> UserProfile:
    """A Telegram user (a mentor, an admin) given `role` in the database, as the bot sees them."""
    assert bot.services is not None
    profile = await bot.services.users.get_or_register("telegram", telegram_id, name)
    async with bot.services.database.uow() as uow:
        row = await uow.users.get(profile.id)
        assert row is not None
        row.role = role
        await uow.commit()
    found = await bot.services.users.get(profile.id)
    assert found is not None
    return found
