"""Showing a service's Reply in a chat: new messages, or an in-place edit when navigating."""

from __future__ import annotations

import html
import logging
import re
from typing import Protocol

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import CallbackQuery, Message

from bot.services.replies import Reply
from bot.services.users import UserProfile
from bot.telegram.render import chunks

log = logging.getLogger(__name__)

_TAGS = re.compile(r"<[^>]+>")


def chat_of(callback: CallbackQuery) -> int:
    """The chat a button was tapped in (the user's own, if Telegram no longer has the message)."""
    return callback.message.chat.id if callback.message is not None else callback.from_user.id


async def send_reply(bot: Bot, chat_id: int, reply: Reply) -> None:
    """Send the reply, split into several messages if it is longer than Telegram allows."""
    for chunk in chunks(reply):
        try:
            await bot.send_message(chat_id, chunk.text, reply_markup=chunk.markup)
        except TelegramBadRequest as exc:
            if "parse entities" not in str(exc).lower():
                raise
            # A KB answer with broken markup must still reach the clerk: send it as plain text.
            log.error("telegram.bad_html chat_id=%s error=%s", chat_id, exc)
            await bot.send_message(
                chat_id, plain_text(chunk.text), reply_markup=chunk.markup, parse_mode=None
            )


def plain_text(html_text: str) -> str:
    """Telegram HTML -> readable plain text (tags dropped, entities decoded)."""
    return html.unescape(_TAGS.sub("", html_text))


async def show_from_button(callback: CallbackQuery, bot: Bot, reply: Reply, *, edit: bool) -> None:
    """Answer a button tap: edit the message the button was on (menus, back buttons), or send
    a new message. Messages too old to edit, or with the same content, fall back to sending."""
    message = callback.message
    chat_id = chat_of(callback)
    parts = chunks(reply)
    if edit and isinstance(message, Message) and len(parts) == 1:
        try:
            await bot.edit_message_text(
                text=parts[0].text,
                chat_id=chat_id,
                message_id=message.message_id,
                reply_markup=parts[0].markup,
            )
            return
        except TelegramBadRequest as exc:
            if "not modified" in str(exc).lower():
                return
            log.info("telegram.edit_fallback error=%s", exc)
    await send_reply(bot, chat_id, reply)


async def drop_buttons(callback: CallbackQuery, bot: Bot) -> None:
    """A dialogue's answered question loses its buttons, so an old one cannot be tapped again."""
    message = callback.message
    if not isinstance(message, Message) or message.reply_markup is None:
        return
    try:
        await bot.edit_message_reply_markup(
            chat_id=message.chat.id, message_id=message.message_id, reply_markup=None
        )
    except TelegramBadRequest as exc:
        log.info("telegram.edit_markup_failed error=%s", exc)


class Choices(Protocol):
    """A service's answer to a tap that offers choices (`Result`, `DeskResult`)."""

    @property
    def ok(self) -> bool: ...
    @property
    def notice(self) -> str: ...
    @property
    def reply(self) -> Reply: ...


class PrivateWording(Protocol):
    """How a service tells a mentor where its choices went (mentoring, desk)."""

    def sent_privately(self, actor: UserProfile) -> Reply: ...
    def private_needed(self, actor: UserProfile) -> Reply: ...


async def offer_privately(
    callback: CallbackQuery,
    bot: Bot,
    choices: Choices,
    wording: PrivateWording,
    actor: UserProfile,
) -> None:
    """Choices for a tap on a card in the mentors' group go to the mentor's private chat (the
    group need not see them); the tap's toast says where they went, or, when Telegram refuses
    because the mentor never started a private chat with the bot, what to do first. A refusal
    by the service (role, state) is the tap's alert."""
    if not choices.ok:
        await callback.answer(choices.notice, show_alert=True)
        return
    try:
        await send_reply(bot, callback.from_user.id, choices.reply)
    except TelegramAPIError as exc:
        log.info("telegram.private_failed user_id=%s error=%s", callback.from_user.id, exc)
        await callback.answer(plain_text(wording.private_needed(actor).text), show_alert=True)
        return
    await callback.answer(plain_text(wording.sent_privately(actor).text))
