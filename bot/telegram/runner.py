"""`python -m bot run`: the Telegram channel as a process.

- Long polling by default; webhook mode when WEBHOOK_URL is set (the aiohttp app checks
  X-Telegram-Bot-Api-Secret-Token against WEBHOOK_SECRET on every request).
- The Bot API root comes from TELEGRAM_API_BASE (calls go to {base}/bot{token}/{method}).
- An aiohttp app on HTTP_HOST:HTTP_PORT serves /healthz and /metrics in both modes.
- SIGTERM / SIGINT: stop taking updates, let those in flight finish, close cleanly.
- A missing or malformed token or database URL stops start-up with one line (ConfigError).

`TelegramRuntime` is the bot itself (dispatcher, session, HTTP app) over already-built services;
tests and the bench drive it directly against a fake Bot API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramUnauthorizedError
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BotCommand, BotCommandScopeDefault, Update
from aiogram.utils.backoff import BackoffConfig
from aiogram.utils.i18n import I18n
from aiogram.utils.token import TokenValidationError, validate_token
from aiohttp import web

from bot.app import AppServices
from bot.channels.viber import setup_viber, start_viber
from bot.config import ConfigError, Settings
from bot.console import setup_console
from bot.i18n import N_
from bot.inbox import REPLAY, UpdateInbox
from bot.services.console_access import console_base_url
from bot.services.errors import InvalidDatabaseURL, StorageError, StorageUnavailable
from bot.services.onboarding import OnboardingService
from bot.telegram.i18n import StoredLanguageI18nMiddleware, build_i18n
from bot.telegram.metrics import CONTENT_TYPE_LATEST, Metrics
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

# The command menu: (command, description msgid). Telegram commands are ASCII only.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", N_("Početak: jezik i opština")),
    ("teme", N_("Pregled tema")),
    ("pomoc", N_("Šta bot ume i kako se koristi")),
    ("mentor", N_("Pitanje za mentora")),
    ("plan", N_("Plan uvođenja usluga u Vašoj opštini")),
    ("obuke", N_("Predstojeće obuke")),
    ("jezik", N_("Latinica, ćirilica ili engleski")),
    ("opstina", N_("Promena opštine")),
    ("moji_podaci", N_("Podaci koje čuvamo o Vama")),
    ("obrisi_me", N_("Brisanje Vaših podataka")),
)
# Telegram shows the menu by the client's language: no code = default (Serbian Latin),
# "sr" = Serbian clients (Cyrillic is their usual script), "en" = English.
COMMAND_LANGUAGES: tuple[tuple[str | None, str], ...] = (
    (None, "sr_Latn"),
    ("sr", "sr_Cyrl"),
    ("en", "en"),
)


@dataclass(frozen=True)
class RuntimeOptions:
    """Knobs the environment does not set; tests and the bench turn some of them."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    polling_timeout: int = 10  # seconds a getUpdates long poll may wait
    # getUpdates failing (5xx, network): aiogram's polling loop waits and tries again
    polling_backoff: BackoffConfig = field(
        default_factory=lambda: BackoffConfig(min_delay=1.0, max_delay=30.0, factor=1.5, jitter=0.1)
    )
    shutdown_grace: float = 10.0  # seconds to let in-flight updates finish on SIGTERM
    publish_commands: bool = True
    prune_every: float = 6 * 3600.0  # seconds between processed_updates clean-ups
    # Updates left unfinished by a dead process are looked for at start-up and this often
    # (how old they must be: INBOX_REPLAY_AFTER_SECONDS).
    inbox_scan_every: float = 15.0
    keep_processed: timedelta = timedelta(days=3)
    fsm_storage: BaseStorage | None = None
    max_concurrent_updates: int = 64  # updates worked on at once (the rest wait their turn)
    background_work: bool = True  # the scheduler's jobs and the outbox dispatcher


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


class TelegramRuntime:
    """One bot: aiogram Bot + Dispatcher over the app's services, and its HTTP app."""

    def __init__(
        self,
        settings: Settings,
        services: AppServices,
        options: RuntimeOptions | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.options = options or RuntimeOptions()
        token = check_settings(settings)
        self.mode: Literal["polling", "webhook"] = "webhook" if settings.webhook_url else "polling"
        self.metrics = Metrics()
        self.i18n: I18n = build_i18n()
        self.onboarding = OnboardingService(services.users)
        self.languages = LanguageMemory()

        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
        session.middleware(
            RetryMiddleware(self.options.retry, on_blocked=self._mark_blocked, metrics=self.metrics)
        )
        self.bot = Bot(
            token=token,
            session=session,
            default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
        )
        self.guard = GuardMiddleware(
            services.answers,
            self.languages,
            self.metrics,
            max_concurrent=self.options.max_concurrent_updates,
        )
        self.inbox = UpdateInbox(
            services.delivery,
            replay_after=settings.inbox_replay_after_seconds,
            scan_every=self.options.inbox_scan_every,
        )
        self.dispatcher = self._build_dispatcher()
        self.app = self._build_app()
        # Viber shares this HTTP app and the outbox; None unless VIBER_AUTH_TOKEN is set.
        self.extra_senders: dict[str, Any] = {}
        self.viber = setup_viber(self.app, services, self.extra_senders)
        self.http_port: int | None = None
        self._http: web.AppRunner | None = None
        self._polling: asyncio.Task[None] | None = None
        self._pruning: asyncio.Task[None] | None = None
        self._background: BackgroundWork | None = None
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

    def _build_dispatcher(self) -> Dispatcher:
        services = self.services
        # Every service is handed to the handlers by name (`answers`, `users`, `mentoring`,
        # `trainings`, ...); the database and the matcher stay behind the services.
        handed = {
            item.name: getattr(services, item.name)
            for item in dataclasses.fields(services)
            if item.name not in ("database", "matcher")
        }
        storage = self.fsm_storage = self._fsm_storage()
        # With Redis, one user's updates are handled one at a time across all instances.
        isolation = storage.create_isolation() if hasattr(storage, "create_isolation") else None
        dispatcher = Dispatcher(
            storage=storage,
            events_isolation=isolation,
            **handed,
            onboarding=self.onboarding,
            metrics=self.metrics,
        )
        update = dispatcher.update
        update.outer_middleware(self.guard)
        update.outer_middleware(
            RateLimitMiddleware(
                services.answers,
                self.languages,
                self.metrics,
                per_minute=self.settings.user_messages_per_minute,
            )
        )
        update.outer_middleware(DedupMiddleware(self.metrics, self.inbox))
        update.outer_middleware(UserMiddleware(services.users, self.languages))
        update.outer_middleware(StoredLanguageI18nMiddleware(self.i18n))
        dispatcher.include_router(build_router())
        return dispatcher

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        setup_console(app, self.services)  # the curators' web console at /console
        if self.mode == "webhook":
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
        return app

    async def _replay(self, payload: dict[str, Any]) -> None:
        """An update a dead process had taken but not finished goes through the whole
        pipeline again (flagged, so the dedup claim it already has does not stop it)."""
        update = Update.model_validate(payload, context={"bot": self.bot})
        await self.dispatcher.feed_update(self.bot, update, **{REPLAY: True})

    async def _mark_blocked(self, chat_id: int) -> None:
        log.info("user.blocked_bot telegram_id=%s", chat_id)
        await self.services.users.mark_inactive(CHANNEL, str(chat_id))

    # -- HTTP endpoints -------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        """200 only when the bot can do its work: the database and Redis (if configured)
        answer, polling runs, the outbox dispatcher is claiming, and no update waits longer
        than the replay window for a replay that does not come. 503 otherwise, naming it."""
        status: dict[str, Any] = {"status": "ok", "mode": self.mode}
        code = 200

        def problem(key: str, value: Any, level: str = "degraded") -> None:
            nonlocal code
            status[key] = value
            if status["status"] != "down":
                status["status"] = level
            code = 503

        try:
            await asyncio.wait_for(self.services.database.ping(), 3)
            status["database"] = "ok"
        except (StorageError, TimeoutError):
            problem("database", "unavailable")
        else:
            try:
                overdue = await asyncio.wait_for(self.inbox.overdue(), 3)
            except (StorageError, TimeoutError):
                problem("database", "unavailable")
            else:
                if overdue:
                    problem("inbox", f"{overdue} updates older than the replay window")
        ping = getattr(self.fsm_storage, "ping", None)
        if ping is not None:
            from bot.telegram.fsm import REDIS_ERRORS

            try:
                await asyncio.wait_for(ping(), 3)
                status["redis"] = "ok"
            except REDIS_ERRORS:
                problem("redis", "unavailable")
        if self._background is not None:
            outbox = self._background.health()
            if outbox == "ok":
                status["outbox"] = "ok"
            else:
                problem("outbox", outbox)
        if self.mode == "polling" and (self._polling is None or self._polling.done()):
            problem("polling", "stopped", "down")
        return web.Response(text=json.dumps(status), status=code, content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the token with Telegram, publish the command menu, start serving."""
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
        await self._start_http()
        if self.viber is not None:
            await start_viber(self.viber)
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
                BatchClaimMiddleware(self.inbox, self.languages, self.services.delivery)
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
        self._pruning = asyncio.create_task(self._prune_loop(), name="prune-processed-updates")
        self.inbox.start(self._replay)
        if self.options.background_work:
            self._background = BackgroundWork(
                self.settings, self.services, self.metrics, self.extra_senders
            )
            await self._background.start()
        self.metrics.up.set(1)
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

    async def _start_http(self) -> None:
        self._http = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._http.setup()
        site = web.TCPSite(self._http, self.settings.http_host, self.settings.http_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else self.settings.http_port
        if not self.settings.console_url:  # /konzola links point at the port actually bound
            self.services.console.base_url = console_base_url(
                None, self.settings.http_host, self.http_port
            )
        log.info("http.listening host=%s port=%s", self.settings.http_host, self.http_port)

    async def _prune_loop(self) -> None:
        while True:
            try:
                removed = await self.services.delivery.prune(self.options.keep_processed)
                if removed:
                    log.info("processed_updates.pruned count=%s", removed)
            except StorageUnavailable as exc:
                log.warning("processed_updates.prune_failed error=%s", exc)
            await asyncio.sleep(self.options.prune_every)

    @property
    def polling_task(self) -> asyncio.Task[None] | None:
        return self._polling

    async def stop(self) -> None:
        """Stop taking updates, let in-flight ones finish (bounded), then close everything."""
        if not self._started:
            await self.bot.session.close()
            return
        self._started = False
        self.metrics.up.set(0)
        if self._pruning is not None:
            self._pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruning
        if self._polling is not None:
            with contextlib.suppress(RuntimeError):  # polling already over
                await self.dispatcher.stop_polling()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._polling
        if not await self.guard.wait_idle(self.options.shutdown_grace):
            log.warning("telegram.stop in_flight=%s gave up waiting", self.guard.in_flight)
        await self.inbox.stop()
        if self.viber is not None:
            await self.viber.wait_idle(self.options.shutdown_grace)
        if self._background is not None:
            await self._background.stop(self.options.shutdown_grace)
            self._background = None
        if self.viber is not None:
            await self.viber.close()
        if self._http is not None:
            await self._http.cleanup()
            self._http = None
        if self.mode == "webhook":
            await self.dispatcher.emit_shutdown(bot=self.bot, dispatcher=self.dispatcher)
        await self.bot.session.close()
        log.info("telegram.stopped")


# The outbox loop tries to claim every idle period (0.5 s) or finishes a message; a minute of
# neither is a dispatcher that stopped claiming.
OUTBOX_STALL_SECONDS = 60.0


class BackgroundWork:
    """What the process does besides answering updates: the scheduler's periodic jobs
    (bot.app.schedule_jobs) and the outbox dispatcher that delivers messages which must arrive
    (mentor answers, reminders, broadcasts). The dispatcher gets a Bot of its own, without the
    retry middleware: it paces, retries and marks 403s itself."""

    def __init__(
        self,
        settings: Settings,
        services: AppServices,
        metrics: Metrics,
        extra_senders: dict[str, Any] | None = None,
    ) -> None:
        from bot.app import schedule_jobs
        from bot.channels.telegram_sender import TelegramSender
        from bot.outbox import OutboxDispatcher
        from bot.ratelimit import LocalRateLimiter, SendRateLimiter
        from bot.scheduler import Scheduler

        token = check_settings(settings)
        self.delivery_bot = Bot(
            token=token,
            session=AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base)),
            default=DefaultBotProperties(link_preview_is_disabled=True),
        )
        limiter: SendRateLimiter
        if settings.redis_url:  # one send budget shared by every instance
            from redis.asyncio import Redis

            from bot.redis_ratelimit import RedisRateLimiter

            limiter = RedisRateLimiter(Redis.from_url(settings.redis_url))
        else:
            limiter = LocalRateLimiter()
        senders: dict[str, Any] = {CHANNEL: TelegramSender(self.delivery_bot)}
        senders.update(extra_senders or {})
        self.outbox = OutboxDispatcher(services.database, senders, limiter)
        self.outbox.on_delivered.append(
            lambda _message, outcome: metrics.outbox.labels(status=outcome.status).inc()
        )
        # Services that follow their deliveries (the mentor queue remembers card message ids).
        for item in dataclasses.fields(services):
            hook = getattr(getattr(services, item.name), "on_delivered", None)
            if callable(hook):
                self.outbox.on_delivered.append(hook)
        self.scheduler = Scheduler(settings.timezone)
        schedule_jobs(services, self.scheduler)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.scheduler.start()
        self._task = asyncio.create_task(self.outbox.run_forever(self._stop), name="outbox")

    def health(self) -> str:
        """"ok", "stopped" (the dispatcher's loop ended) or "stalled" (it has neither claimed
        nor delivered for `OUTBOX_STALL_SECONDS`)."""
        if self._task is None or self._task.done():
            return "stopped"
        if self.outbox.stalled_for() > OUTBOX_STALL_SECONDS:
            return "stalled"
        return "ok"

    async def stop(self, grace: float) -> None:
        self.scheduler.shutdown()
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, grace)  # batches already claimed finish
            except TimeoutError:
                log.warning("outbox.stop gave up waiting; leased rows become due again")
            except Exception:
                log.exception("outbox.stopped_with_error")
        await self.delivery_bot.session.close()


async def run(settings: Settings) -> int:
    """The `python -m bot run` entry: build services, start, wait for SIGTERM/SIGINT, stop."""
    from bot.app import check_database_url

    check_settings(settings)
    try:
        check_database_url(settings.database_url)
    except InvalidDatabaseURL as exc:
        raise ConfigError(str(exc)) from None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            pass
    try:
        return await _serve(settings, stop)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def _serve(settings: Settings, stop: asyncio.Event) -> int:
    from bot.app import build_services

    try:
        services = await build_services(settings)
    except StorageUnavailable as exc:
        raise ConfigError(
            f"Cannot reach the database given by DATABASE_URL: {exc}. Is it running?"
        ) from None
    except InvalidDatabaseURL as exc:
        raise ConfigError(str(exc)) from None
    runtime: TelegramRuntime | None = None
    try:
        runtime = TelegramRuntime(settings, services)
        try:
            await runtime.start()
        except (TelegramAPIError, ClientDecodeError) as exc:
            raise ConfigError(
                f"Cannot use the Bot API at {settings.telegram_api_base}: {exc}"
            ) from None
        await stop.wait()
        log.info("telegram.signal stopping")
        return 0
    finally:
        if runtime is not None:
            await runtime.stop()
        await services.close()
