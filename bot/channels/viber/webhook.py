"""The HTTP side of the Viber channel: the webhook (its signature checked in constant time before
anything is parsed) and the signed file links Viber fetches documents from."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from typing import Any

from aiohttp import web

from bot.channels.viber.common import CHANNEL, LOGGER
from bot.channels.viber.sending import ViberReplies
from bot.channels.viber_sender import file_signature
from bot.digits import to_int

log = logging.getLogger(LOGGER)

SIGNATURE_HEADER = "X-Viber-Content-Signature"
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


class EventNotKept(Exception):
    """A message could not be claimed (the database is unreachable): let Viber resend it."""


class ViberWebhook(ViberReplies):
    """aiohttp handlers: POST <webhook path> -> handle_event; GET <file link> -> the document."""

    async def handle_event(
        self, event: dict[str, Any], *, replay: bool = False
    ) -> dict[str, Any] | None:
        raise NotImplementedError  # ViberChannel's

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
