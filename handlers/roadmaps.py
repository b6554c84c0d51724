"""Roadmaps in Telegram: the clerk's /plan with "Urađeno" and "Zapeli smo", the mentors'
/opstine matrix with a timeline per municipality and the confirmation buttons, the admins'
/opstina_dodaj and /opstina_ukloni. All rules (roles included) are in bot/services/roadmaps/;
this module only translates."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from bot.services.roadmaps import ROADMAP_KINDS, RoadmapService
from bot.services.users import UserProfile
from bot.telegram.ui import plain_text, send_reply, show_from_button
from handlers.filters import private_chat

NAVIGATION = ("rp", "ro", "rm")
DECISIONS = ("rk", "rv")


async def roadmap_button(event: CallbackQuery) -> bool:
    """Buttons whose data starts with one of the roadmap kinds (rp:, rd:, ..., rm)."""
    data = event.data or ""
    return data.partition(":")[0] in ROADMAP_KINDS


async def on_plan(message: Message, bot: Bot, user: UserProfile, roadmaps: RoadmapService) -> None:
    await send_reply(bot, message.chat.id, await roadmaps.plan(user))


async def on_matrix(
    message: Message, bot: Bot, user: UserProfile, roadmaps: RoadmapService
) -> None:
    await send_reply(bot, message.chat.id, await roadmaps.matrix(user))


async def on_add(
    message: Message,
    command: CommandObject,
    bot: Bot,
    user: UserProfile,
    roadmaps: RoadmapService,
) -> None:
    await send_reply(bot, message.chat.id, await roadmaps.add_participant(user, command.args or ""))


async def on_remove(
    message: Message,
    command: CommandObject,
    bot: Bot,
    user: UserProfile,
    roadmaps: RoadmapService,
) -> None:
    reply = await roadmaps.remove_participant(user, command.args or "")
    await send_reply(bot, message.chat.id, reply)


async def on_take(
    message: Message,
    command: CommandObject,
    bot: Bot,
    user: UserProfile,
    roadmaps: RoadmapService,
) -> None:
    reply = await roadmaps.take_municipality(user, command.args or "")
    await send_reply(bot, message.chat.id, reply)


async def on_button(
    callback: CallbackQuery, bot: Bot, user: UserProfile, roadmaps: RoadmapService
) -> None:
    data = callback.data or ""
    kind = data.partition(":")[0]
    in_group = callback.message is not None and callback.message.chat.type != "private"
    if kind in DECISIONS:
        decided = await roadmaps.decide(user, data)
        assert decided is not None
        reply, changed = decided
        if in_group and not changed:
            # A refusal or "already recorded" must not replace the card: a toast says it.
            await callback.answer(plain_text(reply.text)[:190], show_alert=True)
            return
        await callback.answer()
        await show_from_button(callback, bot, reply, edit=in_group)
        return
    shown = await roadmaps.perform(user, data)
    await callback.answer()
    if shown is not None:
        # Navigation replaces the message; everything else answers below it.
        await show_from_button(callback, bot, shown, edit=kind in NAVIGATION)


def build_router() -> Router:
    router = Router(name="roadmaps")
    router.message.register(on_plan, Command("plan"), private_chat)
    router.message.register(on_matrix, Command("opstine"))
    router.message.register(on_add, Command("opstina_dodaj"))
    router.message.register(on_remove, Command("opstina_ukloni"))
    router.message.register(on_take, Command("opstina_mentor"))
    router.callback_query.register(on_button, roadmap_button)
    return router
