"""The Telegram channel: aiogram Bot + Dispatcher over the services, its middlewares and its
update inbox; long polling, or webhook mode when WEBHOOK_URL is set (the route checks
X-Telegram-Bot-Api-Secret-Token against WEBHOOK_SECRET on every request).

- The Bot API root comes from TELEGRAM_API_BASE (calls go to {base}/bot{token}/{method}).
- A missing or malformed token stops start-up with one line (ConfigError).

The process around it (HTTP app, Viber, outbox, scheduler, signals) is assembled in
bot/runtime.py; tests and the bench drive that `Runtime` against a fake Bot API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BotCommand, BotCommandScopeDefault, Update
from aiogram.utils.backoff import BackoffConfig
from aiogram.utils.i18n import I18n
from aiogram.utils.token import TokenValidationError, validate_token
from aiohttp import web

from bot.config import ConfigError, Settings
from bot.inbox import REPLAY, UpdateInbox
from bot.services.answering import AnswerService
from bot.services.commands import CLERK_COMMANDS
from bot.services.delivery import DeliveryService
from bot.services.errors import StorageError
from bot.services.onboarding import OnboardingService
from bot.services.users import UserService
from bot.telegram.i18n import StoredLanguageI18nMiddleware, build_i18n
from bot.telegram.metrics import Metrics
from bot.telegram.middlewares import (
    CHANNEL,
    BatchClaimMiddleware,
    DedupMiddleware,
    GuardMiddleware,
    LanguageMemory,
    RateLimitMiddleware,
    UserMiddleware,
)
from bot.telegram.session import RetryMiddleware, RetryPolicy
from bot.telegram.webhook import CheckedRequestHandler
from handlers import build_router

log = logging.getLogger(__name__)

DEFAULT_WEBHOOK_PATH = "/telegram/webhook"

# The command menu: (command, description msgid), from the channel-neutral list of the clerk's
# commands. Telegram commands are ASCII only.
COMMANDS: tuple[tuple[str, str], ...] = tuple(
    (command.name, command.description)
    for command in CLERK_COMMANDS
    if command.description is not None
)
# Telegram shows the menu by the client's language: no code = default (Serbian Latin),
# "sr" = Serbian clients (Cyrillic is their usual script), "en" = English.
COMMAND_LANGUAGES: tuple[tuple[str | None, str], ...] = (
    (None, "sr_Latn"),
    ("sr", "sr_Cyrl"),
    ("en", "en"),
)


@dataclass(frozen=True)
class TelegramOptions:
    """The Telegram channel's knobs the environment does not set; tests and the bench turn
    some of them (bot.runtime.RuntimeOptions adds the process's own)."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    polling_timeout: int = 10  # seconds a getUpdates long poll may wait
    # getUpdates failing (5xx, network): aiogram's polling loop waits and tries again
    polling_backoff: BackoffConfig = field(
        default_factory=lambda: BackoffConfig(min_delay=1.0, max_delay=30.0, factor=1.5, jitter=0.1)
    )
    shutdown_grace: float = 10.0  # seconds to let in-flight updates finish on SIGTERM
    publish_commands: bool = True
    # Updates left unfinished by a dead process are looked for at start-up and this often
    # (how old they must be: INBOX_REPLAY_AFTER_SECONDS).
    inbox_scan_every: float = 15.0
    fsm_storage: BaseStorage | None = None
    max_concurrent_updates: int = 64  # updates worked on at once (the rest wait their turn)


def check_settings(settings: Settings) -> str:
    """The token, or ConfigError with one line naming the problem."""
    if settings.telegram_bot_token is None or not settings.telegram_bot_token.get_secret_value():
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is not set: put the token from @BotFather into the environment "
            "or .env (e.g. TELEGRAM_BOT_TOKEN=123456789:AA...)."
        )
    token = settings.telegram_bot_token.get_secret_value().strip()
    try:
        validate_token(token)
    except TokenValidationError:
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is malformed: expected <digits>:<secret> as given by @BotFather."
        ) from None
    api = urlsplit(settings.telegram_api_base)
    if api.scheme not in ("http", "https") or not api.netloc:
        raise ConfigError(
            f"TELEGRAM_API_BASE={settings.telegram_api_base!r} is not an http(s) URL "
            "(default https://api.telegram.org)."
        )
    if settings.webhook_url:
        hook = urlsplit(settings.webhook_url)
        if hook.scheme not in ("http", "https") or not hook.netloc:
            raise ConfigError(f"WEBHOOK_URL={settings.webhook_url!r} is not an http(s) URL.")
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        if not secret:
            raise ConfigError(
                "WEBHOOK_SECRET is required when WEBHOOK_URL is set (1-256 characters A-Z a-z "
                "0-9 _ -); Telegram sends it with every update."
            )
        if len(secret) > 256 or not all(ch.isalnum() or ch in "_-" for ch in secret):
            raise ConfigError("WEBHOOK_SECRET may only use A-Z a-z 0-9 _ - (1-256 characters).")
    return token


def webhook_path(settings: Settings) -> str:
    path = urlsplit(settings.webhook_url or "").path
    return path if path and path != "/" else DEFAULT_WEBHOOK_PATH


class TelegramChannel:
    """One bot: aiogram Bot + Dispatcher over the services it is handed, its middlewares, the
    update inbox, and (webhook mode) its route on the process's HTTP app."""

    def __init__(
        self,
        settings: Settings,
        *,
        answers: AnswerService,
        users: UserService,
        delivery: DeliveryService,
        handler_services: Mapping[str, Any],
        metrics: Metrics,
        options: TelegramOptions | None = None,
    ) -> None:
        self.settings = settings
        self.answers = answers
        self.users = users
        self.delivery = delivery
        self.options = options or TelegramOptions()
        token = check_settings(settings)
        self.mode: Literal["polling", "webhook"] = "webhook" if settings.webhook_url else "polling"
        self.metrics = metrics
        self.i18n: I18n = build_i18n()
        self.onboarding = OnboardingService(users)
        self.languages = LanguageMemory()

        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
        session.middleware(
            RetryMiddleware(self.options.retry, on_blocked=self._mark_blocked, metrics=metrics)
        )
        self.bot = Bot(
            token=token,
            session=session,
            default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
        )
        self.guard = GuardMiddleware(
            delivery,
            self.languages,
            metrics,
            max_concurrent=self.options.max_concurrent_updates,
        )
        self.inbox = UpdateInbox(
            delivery,
            replay_after=settings.inbox_replay_after_seconds,
            scan_every=self.options.inbox_scan_every,
        )
        self.fsm_storage = self._fsm_storage()
        self.dispatcher = self._build_dispatcher(handler_services)
        self._polling: asyncio.Task[None] | None = None
        self._started = False

    # -- wiring ---------------------------------------------------------------------------

    def _fsm_storage(self) -> BaseStorage:
        if self.options.fsm_storage is not None:
            return self.options.fsm_storage
        if self.settings.redis_url:
            # Redis down must not fail updates before they are claimed (bot/telegram/fsm.py).
            from bot.telegram.fsm import FallbackStorage

            return FallbackStorage.from_url(self.settings.redis_url)
        return MemoryStorage()

    def _build_dispatcher(self, handler_services: Mapping[str, Any]) -> Dispatcher:
        storage = self.fsm_storage
        # With Redis, one user's updates are handled one at a time across all instances.
        isolation = storage.create_isolation() if hasattr(storage, "create_isolation") else None
        # The services are handed to the handlers by name (`answers`, `users`, `mentoring`,
        # `trainings`, ...): the runtime says which (bot.runtime.handler_services).
        dispatcher = Dispatcher(
            storage=storage,
            events_isolation=isolation,
            **handler_services,
            onboarding=self.onboarding,
            metrics=self.metrics,
        )
        update = dispatcher.update
        update.outer_middleware(self.guard)
        update.outer_middleware(
            RateLimitMiddleware(
                self.answers,
                self.languages,
                self.metrics,
                per_minute=self.settings.user_messages_per_minute,
            )
        )
        update.outer_middleware(DedupMiddleware(self.metrics, self.inbox))
        update.outer_middleware(UserMiddleware(self.users, self.languages))
        update.outer_middleware(StoredLanguageI18nMiddleware(self.i18n))
        dispatcher.include_router(build_router())
        return dispatcher

    def add_routes(self, app: web.Application) -> None:
        """Webhook mode: the update endpoint on the process's HTTP app."""
        if self.mode != "webhook":
            return
        secret = self.settings.webhook_secret
        handler = CheckedRequestHandler(
            self.dispatcher,
            self.bot,
            self.inbox,
            handle_in_background=True,
            secret_token=secret.get_secret_value() if secret else None,
        )
        # Registered by hand: the handler's own register() would close the bot session
        # on app shutdown, and stop() does that itself, after in-flight updates finish.
        app.router.add_post(webhook_path(self.settings), handler.handle)

    async def _replay(self, payload: dict[str, Any]) -> None:
        """An update a dead process had taken but not finished goes through the whole
        pipeline again (flagged, so the dedup claim it already has does not stop it)."""
        update = Update.model_validate(payload, context={"bot": self.bot})
        await self.dispatcher.feed_update(self.bot, update, **{REPLAY: True})

    async def _mark_blocked(self, chat_id: int) -> None:
        log.info("user.blocked_bot telegram_id=%s", chat_id)
        await self.users.mark_inactive(CHANNEL, str(chat_id))

    # -- health ---------------------------------------------------------------------------

    async def health(self) -> dict[str, str]:
        """The inbox's part of /healthz: {name: problem}, empty when all is well (the
        database itself and polling are the runtime's to check)."""
        problems: dict[str, str] = {}
        try:
            async with asyncio.timeout(3):
                overdue = await self.inbox.overdue()
        except (StorageError, TimeoutError):
            problems["database"] = "unavailable"
        else:
            if overdue:
                problems["inbox"] = f"{overdue} updates older than the replay window"
        return problems

    def polling_stopped(self) -> bool:
        """Polling mode and the polling loop is not running (the bot hears nothing)."""
        return self.mode == "polling" and (self._polling is None or self._polling.done())

    # -- lifecycle ------------------------------------------------------------------------

    async def check(self) -> None:
        """Check the token with Telegram and publish the command menu (before serving)."""
        try:
            me = await self.bot.get_me()
        except TelegramUnauthorizedError:
            await self.bot.session.close()
            raise ConfigError(
                "TELEGRAM_BOT_TOKEN was rejected by the Bot API (401 Unauthorized): check the "
                "token with @BotFather."
            ) from None
        log.info("telegram.start mode=%s bot=@%s id=%s", self.mode, me.username, me.id)
        if self.options.publish_commands:
            await self.publish_commands()

    async def start(self) -> None:
        """Start taking updates (set the webhook, or start polling) and the inbox's replays;
        the HTTP server must already listen."""
        if self.mode == "webhook":
            await self.dispatcher.emit_startup(bot=self.bot, dispatcher=self.dispatcher)
            secret = self.settings.webhook_secret
            await self.bot.set_webhook(
                url=self.settings.webhook_url or "",
                secret_token=secret.get_secret_value() if secret else None,
                allowed_updates=self.dispatcher.resolve_used_update_types(),
                drop_pending_updates=False,
            )
        else:
            # A webhook left over from an earlier deployment would make getUpdates fail (409).
            await self.bot.delete_webhook(drop_pending_updates=False)
            self.bot.session.middleware(
                BatchClaimMiddleware(self.inbox, self.languages, self.delivery)
            )
            self._polling = asyncio.create_task(
                self.dispatcher.start_polling(
                    self.bot,
                    polling_timeout=self.options.polling_timeout,
                    backoff_config=self.options.polling_backoff,
                    handle_signals=False,
                    close_bot_session=False,
                ),
                name="telegram-polling",
            )
        self.inbox.start(self._replay)
        self._started = True

    async def publish_commands(self) -> None:
        """setMyCommands for the default menu (Latin), Serbian clients (Cyrillic) and English."""
        for language_code, locale in COMMAND_LANGUAGES:
            commands = [
                BotCommand(command=name, description=self.i18n.gettext(text, locale=locale))
                for name, text in COMMANDS
            ]
            try:
                await self.bot.set_my_commands(
                    commands, scope=BotCommandScopeDefault(), language_code=language_code
                )
            except TelegramAPIError as exc:  # the menu is a nicety; never block start-up
                log.warning("telegram.set_commands_failed language=%s error=%s", language_code, exc)

    @property
    def polling_task(self) -> asyncio.Task[None] | None:
        return self._polling

    async def stop_taking(self) -> None:
        """Stop polling and let in-flight updates finish (bounded); the inbox writes what
        ended. The HTTP server and the session are closed by `close`."""
        if not self._started:
            return
        if self._polling is not None:
            with contextlib.suppress(RuntimeError):  # polling already over
                await self.dispatcher.stop_polling()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._polling
        if not await self.guard.wait_idle(self.options.shutdown_grace):
            log.warning("telegram.stop in_flight=%s gave up waiting", self.guard.in_flight)
        await self.inbox.stop()

    async def close(self) -> None:
        if self._started and self.mode == "webhook":
            await self.dispatcher.emit_shutdown(bot=self.bot, dispatcher=self.dispatcher)
        self._started = False
        await self.bot.session.close()
        log.info("telegram.stopped")
