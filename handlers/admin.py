"""Admins' commands: roles (/dodaj_mentora, /ukloni_mentora, /dodaj_admina, /ukloni_admina,
/dodaj_kuratora, /ukloni_kuratora), reports (/statistika with a chart, /izvoz as CSV), and
/konzola (a curator's or admin's one-time link to the web console). The role checks are in the
services."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message

from bot.services.console_access import ConsoleAccessService
from bot.services.reports import ReportService
from bot.services.roles import RoleService
from bot.services.users import UserProfile
from bot.telegram.render import chunks
from bot.telegram.ui import send_reply
from handlers.filters import private_chat

ROLE_COMMANDS = {
    "dodaj_mentora": ("grant", "mentor"),
    "ukloni_mentora": ("revoke", "mentor"),
    "dodaj_admina": ("grant", "admin"),
    "ukloni_admina": ("revoke", "admin"),
    "dodaj_kuratora": ("grant", "curator"),
    "ukloni_kuratora": ("revoke", "curator"),
}


async def on_role_command(
    message: Message, command: CommandObject, bot: Bot, user: UserProfile, roles: RoleService
) -> None:
    how, role = ROLE_COMMANDS[command.command.lower()]
    target = (command.args or "").strip().split(" ")[0]
    if how == "grant":
        result = await roles.grant(user, target, role)
    else:
        result = await roles.revoke(user, target, role)
    await send_reply(bot, message.chat.id, result.reply)


async def on_statistics(
    message: Message, bot: Bot, user: UserProfile, reports: ReportService
) -> None:
    reply, png = await reports.statistics(user)
    await send_reply(bot, message.chat.id, reply)
    if png is not None:
        await bot.send_photo(message.chat.id, BufferedInputFile(png, "statistika.png"))


async def on_export(message: Message, bot: Bot, user: UserProfile, reports: ReportService) -> None:
    reply, data = await reports.export_csv(user)
    if data is None:
        await send_reply(bot, message.chat.id, reply)
        return
    caption = chunks(reply)[0].text[:1024]
    await bot.send_document(
        message.chat.id, BufferedInputFile(data, "statistika.csv"), caption=caption
    )


async def on_console(
    message: Message, bot: Bot, user: UserProfile, console: ConsoleAccessService
) -> None:
    await send_reply(bot, message.chat.id, await console.request_link(user))


def build_router() -> Router:
    router = Router(name="admin")
    router.message.register(on_role_command, Command(*ROLE_COMMANDS))
    router.message.register(on_statistics, Command("statistika"))
    router.message.register(on_export, Command("izvoz"))
    # The link signs in whoever opens it: it is only ever sent in a private chat.
    router.message.register(on_console, Command("konzola"), private_chat)
    return router
