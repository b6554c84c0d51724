"""Driving the real bot end to end: real runtime, real database, fake Bot API over HTTP.

    async with FakeBotAPI() as api, BotUnderTest(api, database_url) as bot:
        ana = bot.clerk(1001)
        seen = await ana.say("kako da dobijem pristup ezupu")
        assert "eZUP" in seen[-1].text
        await ana.tap("👍")

`BotUnderTest` builds Settings from the fake server's address and the test database, wires the
services with bot.app.build_services (migrations included) and starts bot.runtime.Runtime in polling
mode (updates go through getUpdates) or webhook mode (updates are POSTed to the bot's aiohttp
app with the secret header). `Clerk` says things and taps buttons and returns what the chat shows
afterwards, once the bot has finished handling the update.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiogram.utils.backoff import BackoffConfig

from bot.app import AppServices, build_services
from bot.config import Settings
from bot.runtime import Runtime, RuntimeOptions
from bot.telegram.runner import webhook_path
from bot.telegram.session import RetryPolicy
from storage.clock import Clock, utcnow
from tests.fakes.bot_api import FakeBotAPI, SentMessage, callback_update, message_update

WEBHOOK_SECRET = "test-secret_123"
FAST_RETRIES = RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.05, max_retry_after=2)


@dataclass(frozen=True)
class StoredUser:
    id: int
    language: str
    municipality: str | None
    onboarded: bool
    active: bool


@dataclass(frozen=True)
class StoredQuestion:
    id: int
    text: str
    decision: str
    entry_id: str | None


class BotUnderTest:
    def __init__(
        self,
        api: FakeBotAPI,
        database_url: str,
        *,
        webhook: bool = False,
        options: RuntimeOptions | None = None,
        background_work: bool = False,
        clock: Clock = utcnow,
        **settings: Any,
    ) -> None:
        self.api = api
        self.clock = clock  # the program's one clock (build_services hands it to everything)
        self.database_url = database_url
        self.webhook = webhook
        self.options = options or RuntimeOptions(
            retry=FAST_RETRIES,
            polling_timeout=1,
            polling_backoff=BackoffConfig(min_delay=0.01, max_delay=0.05, factor=2, jitter=0),
            shutdown_grace=5,
            publish_commands=True,
            # Tests deliver the outbox when they choose (see mentor_harness); a test of the
            # running scheduler and dispatcher turns this on.
            background_work=background_work,
        )
        self.extra_settings = settings
        self.services: AppServices | None = None
        self.runtime: Runtime | None = None
        self._http: aiohttp.ClientSession | None = None
        self._update_ids = itertools.count(1)

    def settings(self) -> Settings:
        values: dict[str, Any] = {
            "telegram_bot_token": self.api.token,
            "telegram_api_base": self.api.base_url,
            "database_url": self.database_url,
            "http_host": "127.0.0.1",
            "http_port": 0,
            "user_messages_per_minute": 20,
        }
        if self.webhook:
            values["webhook_url"] = "https://bot.example.rs/telegram/webhook"
            values["webhook_secret"] = WEBHOOK_SECRET
        values.update(self.extra_settings)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    async def start(self) -> BotUnderTest:
        settings = self.settings()
        self.services = await build_services(settings, clock=self.clock)
        self.runtime = Runtime(settings, self.services, self.options)
        await self.runtime.start()
        self._http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None
        if self.services is not None:
            await self.services.close()
            self.services = None

    async def __aenter__(self) -> BotUnderTest:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- plumbing -------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        assert self.runtime is not None and self.runtime.http_port
        return f"http://127.0.0.1:{self.runtime.http_port}"

    @property
    def webhook_url(self) -> str:
        assert self.runtime is not None
        return self.http_url + webhook_path(self.runtime.settings)

    @property
    def completed(self) -> int:
        assert self.runtime is not None
        return self.runtime.telegram.guard.completed

    async def wait_completed(self, count: int, timeout: float = 30.0) -> None:
        """Until `count` updates in total have been fully handled (answered or skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.completed < count:
            if loop.time() > deadline:
                raise AssertionError(f"bot handled {self.completed} updates, expected {count}")
            await asyncio.sleep(0.005)

    async def post_update(
        self, update: dict[str, Any], secret: str | None = WEBHOOK_SECRET
    ) -> aiohttp.ClientResponse:
        assert self._http is not None
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        async with self._http.post(self.webhook_url, json=update, headers=headers) as response:
            await response.read()
            return response

    async def post_raw(self, body: bytes) -> tuple[int, Any]:
        """POST any body to the webhook with the right secret: (status, JSON answer)."""
        assert self._http is not None
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET,
                   "Content-Type": "application/json"}
        async with self._http.post(self.webhook_url, data=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def deliver(self, update: dict[str, Any], *, wait: bool = True) -> None:
        """Hand an update to the bot the way Telegram would in this mode; wait until handled."""
        before = self.completed
        if self.webhook:
            response = await self.post_update(update)
            assert response.status == 200, response.status
        else:
            await self.api.queue_update(update)
        if wait:
            await self.wait_completed(before + 1)

    def next_update_id(self) -> int:
        return self.api.next_update_id()

    def clerk(self, user_id: int, language_code: str | None = "sr") -> Clerk:
        return Clerk(self, user_id, language_code)

    async def stored_user(self, telegram_id: int) -> StoredUser | None:
        """The clerk's row as the database has it (read through the storage layer)."""
        assert self.services is not None
        async with self.services.database.uow() as uow:
            row = await uow.users.get_by_external("telegram", str(telegram_id))
            if row is None:
                return None
            return StoredUser(row.id, row.language, row.municipality, row.onboarded, row.active)

    async def stored_questions(self, telegram_id: int) -> list[StoredQuestion]:
        """The clerk's questions, oldest first."""
        user = await self.stored_user(telegram_id)
        assert self.services is not None and user is not None
        async with self.services.database.uow() as uow:
            rows = await uow.questions.for_user(user.id)
            found = [StoredQuestion(q.id, q.text, q.decision, q.entry_id) for q in rows]
        return sorted(found, key=lambda q: q.id)

    async def get(self, path: str) -> tuple[int, str]:
        assert self._http is not None
        async with self._http.get(self.http_url + path) as response:
            return response.status, await response.text()


class Clerk:
    """One clerk in a private chat with the bot."""

    def __init__(self, bot: BotUnderTest, user_id: int, language_code: str | None) -> None:
        self.bot = bot
        self.user_id = user_id
        self.language_code = language_code

    @property
    def chat(self) -> list[SentMessage]:
        return self.bot.api.seen_by(self.user_id)

    @property
    def last(self) -> SentMessage:
        return self.bot.api.last_seen(self.user_id)

    async def say(self, text: str) -> list[SentMessage]:
        """Send a text message; returns the messages that appeared in the chat because of it."""
        return await self.send(text=text)

    async def send(
        self, text: str | None = None, content: dict[str, Any] | None = None
    ) -> list[SentMessage]:
        """Send a message (text, or `content` such as STICKER or PHOTO); returns what appeared."""
        before = len(self.chat)
        update = message_update(
            self.bot.next_update_id(),
            self.user_id,
            text,
            language_code=self.language_code,
            **(content or {}),
        )
        await self.bot.deliver(update)
        return self.chat[before:]

    async def tap(self, label_part: str, message: SentMessage | None = None) -> list[SentMessage]:
        """Tap the button whose label contains `label_part` on `message` (default: the newest
        message that has such a button). Returns messages that are new or were edited."""
        target = message or self._message_with(label_part)
        data = target.callback_data(label_part)
        return await self.tap_data(data, target)

    async def tap_data(self, data: str, message: SentMessage) -> list[SentMessage]:
        before = len(self.chat)
        snapshot = {m.message_id: (m.text, str(m.keyboard)) for m in self.chat}
        update = callback_update(
            self.bot.next_update_id(),
            self.user_id,
            data,
            message_id=message.message_id,
            message_text=message.text,
            language_code=self.language_code,
        )
        if message.keyboard:
            update["callback_query"]["message"]["reply_markup"] = {
                "inline_keyboard": message.keyboard
            }
        await self.bot.deliver(update)
        chat = self.chat
        edited = [
            m for m in chat[:before] if snapshot.get(m.message_id) != (m.text, str(m.keyboard))
        ]
        return edited + chat[before:]

    def _message_with(self, label_part: str) -> SentMessage:
        for message in reversed(self.chat):
            if any(label_part in label for label in message.button_labels):
                return message
        raise LookupError(f"no message in chat {self.user_id} has a button with {label_part!r}")
