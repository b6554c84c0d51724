"""The webhook endpoint: aiogram's request handler, with a clear 400 for a body that is not a
Telegram update (aiohttp would answer a non-JSON body with a 500 and a traceback in the log,
and a JSON body that is not an update would be accepted and fail later, unseen).

Nothing is lost between Telegram's 200 and the handling: the update is claimed and kept (the
inbox) *before* the 200, and handled in the background after it. When the database cannot
take it, Telegram gets a 503 and sends the update again later; a duplicate gets its 200 and
nothing more."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.inbox import REPLAY, UpdateInbox
from bot.services.errors import StorageUnavailable

log = logging.getLogger(__name__)


def looks_like_update(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("update_id"), int)


class CheckedRequestHandler(SimpleRequestHandler):
    """Handles updates in the background (Telegram gets its 200 once the update is kept),
    after checking the secret (aiogram) and the shape of the body (here)."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, inbox: UpdateInbox, **kwargs: Any):
        super().__init__(dispatcher, bot, **kwargs)
        self._inbox = inbox

    async def _handle_request_background(self, bot: Bot, request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=bot.session.json_loads)
        except ValueError:
            return bad_request("the body is not JSON")
        if not looks_like_update(body):
            return bad_request("the body is not a Telegram update")
        try:
            claimed = await self._inbox.claim(int(body["update_id"]), body)
        except StorageUnavailable as exc:
            log.warning("webhook.not_kept update_id=%s error=%s", body["update_id"], exc)
            return web.json_response({"ok": False, "description": "try again"}, status=503)
        if claimed:
            task = asyncio.create_task(self._feed_claimed(bot, body))
            self._background_feed_update_tasks.add(task)
            task.add_done_callback(self._background_feed_update_tasks.discard)
        return web.json_response({}, dumps=bot.session.json_dumps)

    async def _feed_claimed(self, bot: Bot, update: dict[str, Any]) -> None:
        """aiogram's background feed, flagged as claimed (the dedup claim is already made)."""
        result = await self.dispatcher.feed_raw_update(
            bot=bot, update=update, **{**self.data, REPLAY: True}
        )
        if isinstance(result, TelegramMethod):
            await self.dispatcher.silent_call_request(bot=bot, result=result)


def bad_request(description: str) -> web.Response:
    return web.json_response({"ok": False, "description": description}, status=400)
