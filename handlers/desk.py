"""The mentor desk in Telegram: incidents (/incident, /incident_zatvori). Mentors and admins
use these in private or in the mentors' group; all rules (roles included) are in
bot/services/desk.py, this module only translates."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, Message

from bot.digits import to_int
from bot.services.desk import DeskService
from bot.services.users import UserProfile
from bot.telegram.ui import send_reply


class IncidentCB(CallbackData, prefix="inc"):
    action: str  # z close
    number: int


async def on_incident(
    message: Message, command: CommandObject, bot: Bot, user: UserProfile, desk: DeskService
) -> None:
    args = (command.args or "").strip()
    if not args:
        await send_reply(bot, message.chat.id, await desk.open_list(user))
        return
    result = await desk.declare(user, args)
    await send_reply(bot, message.chat.id, result.reply)


async def on_incident_close(
    message: Message, command: CommandObject, bot: Bot, user: UserProfile, desk: DeskService
) -> None:
    number = to_int((command.args or "").strip().lstrip("#"))
    if number is None:
        await send_reply(bot, message.chat.id, await desk.open_list(user))
        return
    result = await desk.close(user, number)
    await send_reply(bot, message.chat.id, result.reply)


async def on_incident_button(
    callback: CallbackQuery, callback_data: IncidentCB, user: UserProfile, desk: DeskService
) -> None:
    if callback_data.action != "z":
        await callback.answer()
        return
    result = await desk.close(user, callback_data.number)
    await callback.answer(result.notice, show_alert=not result.ok)


def build_router() -> Router:
    router = Router(name="desk")
    router.message.register(on_incident_close, Command("incident_zatvori"))
    router.message.register(on_incident, Command("incident"))
    router.callback_query.register(on_incident_button, IncidentCB.filter())
    return router
