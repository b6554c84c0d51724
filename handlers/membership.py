"""A clerk blocking or unblocking the bot (my_chat_member in a private chat).

Telegram tells us as soon as a clerk blocks the bot, so they are marked inactive before any
broadcast tries them; unblocking makes them active again (the user middleware re-registers
whoever writes to us, so "active" needs no extra step here)."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.filters import KICKED, ChatMemberUpdatedFilter
from aiogram.types import ChatMemberUpdated

from bot.services.users import UserService
from handlers.filters import private_chat

log = logging.getLogger(__name__)

CHANNEL = "telegram"


async def on_blocked(event: ChatMemberUpdated, users: UserService) -> None:
    log.info("user.blocked_bot telegram_id=%s", event.from_user.id)
    await users.mark_inactive(CHANNEL, str(event.from_user.id))


def build_router() -> Router:
    router = Router(name="membership")
    router.my_chat_member.filter(private_chat)
    router.my_chat_member.register(
        on_blocked, ChatMemberUpdatedFilter(member_status_changed=KICKED)
    )
    return router
