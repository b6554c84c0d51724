"""/audit: the newest entries of the audit trail, for admins (the service checks the role)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.digits import to_int
from bot.services.audit import DEFAULT_LIMIT, MAX_LIMIT, AuditService
from bot.services.users import UserProfile
from bot.telegram.ui import send_reply


async def on_audit(
    message: Message, command: CommandObject, bot: Bot, user: UserProfile, audit: AuditService
) -> None:
    """`/audit` shows the last 20 entries; `/audit 50` up to 100."""
    limit = DEFAULT_LIMIT
    argument = (command.args or "").strip()
    number = to_int(argument)
    if number is not None:
        limit = max(1, min(number, MAX_LIMIT))
    await send_reply(bot, message.chat.id, await audit.latest_reply(user, limit))


def build_router() -> Router:
    router = Router(name="audit")
    router.message.register(on_audit, Command("audit"))
    return router
