"""Wiring the channel into the runner: build it from the app's services, add its routes, give
the outbox its sender, set the webhook once the HTTP server listens."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from bot.app import AppServices
from bot.channels.viber.channel import ViberChannel
from bot.channels.viber.common import CHANNEL, LOGGER, ViberServices
from bot.channels.viber_client import FILES_PATH, ViberClient, ViberSettings, ViberTransportError
from bot.channels.viber_sender import ViberSender

log = logging.getLogger(LOGGER)


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
