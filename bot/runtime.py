"""The process, assembled in one place (`python -m bot run`): services, channels, HTTP app,
outbox dispatcher, scheduler, send-rate limiter, and the entry point.

- The services come from bot.app.build_services; each channel is handed the services it uses.
- One aiohttp app on HTTP_HOST:HTTP_PORT serves /healthz, /metrics, the curators' console
  (/console), Telegram's webhook (webhook mode) and Viber's webhook and file links (when
  VIBER_AUTH_TOKEN is set).
- Messages that must arrive (mentor answers, reminders, broadcasts) go through the outbox
  dispatcher to each channel's sender; the services that follow their deliveries are named in
  `delivery_hooks`.
- SIGTERM / SIGINT: stop taking updates, let those in flight finish, close cleanly.
- A missing or malformed token or database URL stops start-up with one line (ConfigError).

Nothing below imports this module: channels and services know nothing of how they are put
together.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiohttp import web

from bot.app import AppServices, build_services, check_database_url, schedule_jobs
from bot.channels.telegram_sender import TelegramSender
from bot.channels.viber import ViberChannel, setup_viber, start_viber
from bot.config import ConfigError, Settings
from bot.console import setup_console
from bot.outbox import OutboxDispatcher, Outgoing, Sender, SendOutcome
from bot.ratelimit import LocalRateLimiter, SendRateLimiter
from bot.scheduler import Scheduler
from bot.services.console_access import console_base_url
from bot.services.errors import InvalidDatabaseURL, StorageError, StorageUnavailable
from bot.telegram.metrics import CONTENT_TYPE_LATEST, Metrics
from bot.telegram.runner import CHANNEL as TELEGRAM
from bot.telegram.runner import TelegramChannel, TelegramOptions, check_settings

log = logging.getLogger(__name__)

DeliveryHook = Callable[[Outgoing, SendOutcome], Awaitable[None] | None]

# The outbox loop tries to claim every idle period (0.5 s) or finishes a message; a minute of
# neither is a dispatcher that stopped claiming.
OUTBOX_STALL_SECONDS = 60.0


@dataclass(frozen=True)
class RuntimeOptions(TelegramOptions):
    """The process's knobs the environment does not set (and the Telegram channel's)."""

    prune_every: float = 6 * 3600.0  # seconds between processed_updates clean-ups
    keep_processed: timedelta = timedelta(days=3)
    background_work: bool = True  # the scheduler's jobs and the outbox dispatcher


def handler_services(services: AppServices) -> dict[str, Any]:
    """What the Telegram handlers receive, by the names they ask for (aiogram hands handler
    arguments by name). The database and the matcher stay behind the services."""
    return {
        "settings": services.settings,
        "knowledge_base": services.knowledge_base,
        "users": services.users,
        "answers": services.answers,
        "mentoring": services.mentoring,
        "roles": services.roles,
        "reports": services.reports,
        "programme": services.programme,
        "trainings": services.trainings,
        "broadcasts": services.broadcasts,
        "interests": services.interests,
        "privacy": services.privacy,
        "audit": services.audit,
        "desk": services.desk,
        "roadmaps": services.roadmaps,
        "console": services.console,
        "curation": services.curation,
        "delivery": services.delivery,
    }


def delivery_hooks(services: AppServices) -> list[DeliveryHook]:
    """The services that follow their outbox deliveries: the mentor queue remembers the
    message ids of the cards it sent (to edit them, and to know a mentor's reply to one)."""
    return [services.mentoring.on_delivered]


def send_rate_limiter(settings: Settings) -> SendRateLimiter:
    """One send budget shared by every instance with REDIS_URL; this process's own without."""
    if settings.redis_url:
        from redis.asyncio import Redis

        from bot.redis_ratelimit import RedisRateLimiter

        return RedisRateLimiter(Redis.from_url(settings.redis_url))
    return LocalRateLimiter()


class BackgroundWork:
    """What the process does besides answering updates: the scheduler's periodic jobs
    (bot.app.schedule_jobs) and the outbox dispatcher that delivers messages which must arrive
    (mentor answers, reminders, broadcasts). Telegram deliveries get a Bot of their own,
    without the retry middleware: the dispatcher paces, retries and marks 403s itself."""

    def __init__(
        self,
        settings: Settings,
        services: AppServices,
        metrics: Metrics,
        senders: dict[str, Sender],
    ) -> None:
        self.delivery_bot = Bot(
            token=check_settings(settings),
            session=AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base)),
            default=DefaultBotProperties(link_preview_is_disabled=True),
        )
        everyone: dict[str, Sender] = {TELEGRAM: TelegramSender(self.delivery_bot), **senders}
        self.outbox = OutboxDispatcher(services.database, everyone, send_rate_limiter(settings))
        self.outbox.on_delivered.append(
            lambda _message, outcome: metrics.outbox.labels(status=outcome.status).inc()
        )
        self.outbox.on_delivered.extend(delivery_hooks(services))
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
                async with asyncio.timeout(grace):  # batches already claimed finish
                    await self._task
            except TimeoutError:
                log.warning("outbox.stop gave up waiting; leased rows become due again")
            except Exception:
                log.exception("outbox.stopped_with_error")
        await self.delivery_bot.session.close()


class Runtime:
    """The running process over already-built services: the Telegram channel, Viber (when
    configured), one HTTP app, the ledger's pruning and the background work."""

    def __init__(
        self,
        settings: Settings,
        services: AppServices,
        options: RuntimeOptions | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.options = options or RuntimeOptions()
        self.metrics = Metrics()
        self.telegram = TelegramChannel(
            settings,
            answers=services.answers,
            users=services.users,
            delivery=services.delivery,
            handler_services=handler_services(services),
            metrics=self.metrics,
            options=self.options,
        )
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/metrics", self._metrics)
        setup_console(self.app, services)  # the curators' web console at /console
        self.telegram.add_routes(self.app)
        # Viber shares the HTTP app and the outbox; None unless VIBER_AUTH_TOKEN is set.
        self.senders: dict[str, Sender] = {}
        self.viber: ViberChannel | None = setup_viber(self.app, services, self.senders)
        self.http_port: int | None = None
        self._http: web.AppRunner | None = None
        self._pruning: asyncio.Task[None] | None = None
        self._background: BackgroundWork | None = None
        self._started = False

    # -- HTTP endpoints -------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        """200 only when the bot can do its work: the database and Redis (if configured)
        answer, polling runs, the outbox dispatcher is claiming, and no update waits longer
        than the replay window for a replay that does not come. 503 otherwise, naming it."""
        status: dict[str, Any] = {"status": "ok", "mode": self.telegram.mode}
        code = 200

        def problem(key: str, value: Any, level: str = "degraded") -> None:
            nonlocal code
            status[key] = value
            if status["status"] != "down":
                status["status"] = level
            code = 503

        try:
            async with asyncio.timeout(3):
                await self.services.database.ping()
            status["database"] = "ok"
        except (StorageError, TimeoutError):
            problem("database", "unavailable")
        else:
            for key, value in (await self.telegram.health()).items():
                problem(key, value)
        ping = getattr(self.telegram.fsm_storage, "ping", None)
        if ping is not None:
            from bot.telegram.fsm import REDIS_ERRORS

            try:
                async with asyncio.timeout(3):
                    await ping()
                status["redis"] = "ok"
            except REDIS_ERRORS:
                problem("redis", "unavailable")
        if self._background is not None:
            outbox = self._background.health()
            if outbox == "ok":
                status["outbox"] = "ok"
            else:
                problem("outbox", outbox)
        if self.telegram.polling_stopped():
            problem("polling", "stopped", "down")
        return web.Response(text=json.dumps(status), status=code, content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the token with Telegram, publish the command menu, serve HTTP, then take
        updates on every channel and start the background work."""
        await self.telegram.check()
        await self._start_http()
        if self.viber is not None:
            await start_viber(self.viber)
        await self.telegram.start()
        self._pruning = asyncio.create_task(self._prune_loop(), name="prune-processed-updates")
        if self.options.background_work:
            self._background = BackgroundWork(
                self.settings, self.services, self.metrics, self.senders
            )
            await self._background.start()
        self.metrics.up.set(1)
        self._started = True

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

    async def stop(self) -> None:
        """Stop taking updates, let in-flight ones finish (bounded), then close everything."""
        if not self._started:
            await self.telegram.close()
            return
        self._started = False
        self.metrics.up.set(0)
        if self._pruning is not None:
            self._pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruning
        await self.telegram.stop_taking()
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
        await self.telegram.close()


async def run(settings: Settings) -> int:
    """The `python -m bot run` entry: build services, start, wait for SIGTERM/SIGINT, stop."""
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


# Allocations (net) between two young collections; CPython's default is 700.
GC_YOUNG_THRESHOLD = 10_000


def settle_memory() -> None:
    """Once started: what start-up built (the knowledge base and its indexes, the ORM's
    mappings, the imported modules: hundreds of thousands of objects that live as long as the
    process) is frozen out of the cyclic garbage collector, which otherwise walks all of it on
    every full collection (about 0.2 s of CPU each, stalling every update in flight), and
    young collections run less often. Garbage is still collected; only the frozen objects are
    no longer scanned (a KB revision applied later is collected as usual)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


# After a KB revision is applied, the frozen objects are collectable again for this long (the
# replaced KB is garbage once the questions still using it are answered), then frozen anew.
REFREEZE_AFTER_SWAP = 60.0


def unsettle_memory_for_a_while() -> None:
    """A newer KB replaced the frozen one: unfreeze, so the old one can be collected, and
    freeze what lives then a while later (frozen garbage would never be freed)."""
    gc.unfreeze()
    asyncio.get_running_loop().call_later(REFREEZE_AFTER_SWAP, settle_memory)


async def _serve(settings: Settings, stop: asyncio.Event) -> int:
    try:
        services = await build_services(settings)
    except StorageUnavailable as exc:
        raise ConfigError(
            f"Cannot reach the database given by DATABASE_URL: {exc}. Is it running?"
        ) from None
    except InvalidDatabaseURL as exc:
        raise ConfigError(str(exc)) from None
    runtime: Runtime | None = None
    try:
        runtime = Runtime(settings, services)
        try:
            await runtime.start()
        except (TelegramAPIError, ClientDecodeError) as exc:
            raise ConfigError(
                f"Cannot use the Bot API at {settings.telegram_api_base}: {exc}"
            ) from None
        settle_memory()
        services.curation.on_swap.append(lambda _kb, _matcher: unsettle_memory_for_a_while())
        await stop.wait()
        log.info("telegram.signal stopping")
        return 0
    finally:
        if runtime is not None:
            await runtime.stop()
        await services.close()
