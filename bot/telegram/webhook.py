"""The webhook endpoint: aiogram's request handler, with a clear 400 for a body that is not a
Telegram update (aiohttp would answer a non-JSON body with a 500 and a traceback in the log,
and a JSON body that is not an update would be accepted and fail later, unseen)."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web


def looks_like_update(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("update_id"), int)


class CheckedRequestHandler(SimpleRequestHandler):
    """Handles updates in the background (Telegram gets its 200 at once), after checking the
    secret (aiogram) and the shape of the body (here)."""

    async def _handle_request_background(self, bot: Bot, request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=bot.session.json_loads)
        except ValueError:
            return bad_request("the body is not JSON")
        if not looks_like_update(body):
            return bad_request("the body is not a Telegram update")
        # aiohttp keeps the body it read, so aiogram's own handling reads it again for free.
        return await super()._handle_request_background(bot, request)


def bad_request(description: str) -> web.Response:
    return web.json_response({"ok": False, "description": description}, status=400)
