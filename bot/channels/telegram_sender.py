"""Delivers outbox messages to Telegram and reports what happened, without retrying itself:
the dispatcher owns retries and pacing, so one slow chat never blocks the others."""

from __future__ import annotations

import base64

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile

from bot.outbox import Outgoing, SendOutcome
from bot.services.messages import payload_to_reply
from bot.telegram.render import chunks

_GONE = ("chat not found", "user is deactivated", "bot was kicked", "have no rights")


_PROGRESS_LIMIT = 10_000


class TelegramSender:
    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        # outbox row id -> parts of a long message already delivered: a retry after a failed
        # later part sends only the rest (kept in memory: after a crash the whole message may be
        # sent again, the at-least-once price)
        self._parts_sent: dict[int, int] = {}

    async def send(self, message: Outgoing) -> SendOutcome:
        try:
            return await self._send(message)
        except TelegramRetryAfter as error:
            return SendOutcome("retry", retry_after=float(error.retry_after), error="429")
        except TelegramForbiddenError as error:
            return SendOutcome("blocked", error=error.message)
        except (TelegramServerError, TelegramNetworkError) as error:
            return SendOutcome("retry", error=str(error)[:200])
        except (TelegramBadRequest, TelegramNotFound) as error:
            gone = any(reason in error.message.lower() for reason in _GONE)
            return SendOutcome("blocked" if gone else "failed", error=error.message[:200])

    async def _send(self, message: Outgoing) -> SendOutcome:
        payload = message.payload
        reply = payload_to_reply(payload)
        document = payload.get("document")
        if document:
            sent = await self._bot.send_document(
                message.chat_id,
                BufferedInputFile(base64.b64decode(document["content_b64"]), document["filename"]),
                caption=reply.text[:1024] or None,
                parse_mode=ParseMode.HTML,
            )
            return SendOutcome("sent", external_id=str(sent.message_id))
        edit_id = payload.get("edit_message_id")
        parts = chunks(reply)
        if edit_id:
            await self._bot.edit_message_text(
                text=parts[0].text,
                chat_id=message.chat_id,
                message_id=int(edit_id),
                parse_mode=ParseMode.HTML,
                reply_markup=parts[-1].markup,
            )
            return SendOutcome("sent", external_id=str(edit_id))
        last_id = None
        reply_to = payload.get("reply_to_message_id")
        done = self._parts_sent.get(message.id, 0)
        for number, part in enumerate(parts):
            if number < done:
                continue
            sent = await self._bot.send_message(
                message.chat_id,
                part.text,
                parse_mode=ParseMode.HTML,
                reply_markup=part.markup,
                reply_to_message_id=reply_to if number == 0 else None,
            )
            last_id = sent.message_id
            if number + 1 < len(parts):
                if len(self._parts_sent) >= _PROGRESS_LIMIT:
                    self._parts_sent.clear()
                self._parts_sent[message.id] = number + 1
        self._parts_sent.pop(message.id, None)
        return SendOutcome("sent", external_id=str(last_id))
