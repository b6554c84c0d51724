"""Everything the other routers did not take, answered politely in the clerk's language:
stickers, photos, voice, files, unknown commands, and taps on buttons of old messages."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Message

from bot.services.answering import AnswerService
from bot.services.users import UserProfile
from bot.telegram.ui import chat_of, send_reply
from handlers.filters import is_command


async def on_unknown_command(
    message: Message, bot: Bot, user: UserProfile, answers: AnswerService
) -> None:
    await send_reply(bot, message.chat.id, answers.unknown_command(user))


async def on_unsupported(
    message: Message, bot: Bot, user: UserProfile, answers: AnswerService
) -> None:
    """Stickers, photos, voice, video, files, locations, contacts..."""
    await send_reply(bot, message.chat.id, answers.unsupported_input(user))


async def on_stale_button(
    callback: CallbackQuery, bot: Bot, user: UserProfile, answers: AnswerService
) -> None:
    await callback.answer()
    chat_id = chat_of(callback)
    await send_reply(bot, chat_id, answers.stale_button(user))


def build_router() -> Router:
    router = Router(name="fallback")
    router.message.register(on_unknown_command, is_command)
    router.message.register(on_unsupported)
    router.callback_query.register(on_stale_button)
    return router
