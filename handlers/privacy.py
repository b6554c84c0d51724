"""/moji_podaci (everything we hold about the clerk, as a JSON file) and /obrisi_me (delete it,
after a confirmation button). The work happens in bot.services.privacy.PrivacyService."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, Message

from bot.services.buttons_mentoring import DeletionChoice
from bot.services.privacy import PrivacyService
from bot.services.users import UserProfile
from bot.telegram.ui import send_reply, show_from_button
from handlers.callbacks import Tapped

log = logging.getLogger(__name__)


async def on_my_data(message: Message, bot: Bot, user: UserProfile, privacy: PrivacyService):
    exported = await privacy.export(user)
    await bot.send_document(
        message.chat.id,
        BufferedInputFile(exported.content, filename=exported.filename),
        caption=exported.caption,
    )
    log.info("privacy.export_sent user_id=%s bytes=%s", user.id, len(exported.content))


async def on_delete_me(message: Message, bot: Bot, user: UserProfile, privacy: PrivacyService):
    await send_reply(bot, message.chat.id, privacy.deletion_prompt(user))


async def on_delete_choice(
    callback: CallbackQuery,
    callback_data: DeletionChoice,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    privacy: PrivacyService,
) -> None:
    await callback.answer()
    if callback_data.choice == "yes":
        reply = await privacy.confirm_deletion(user, callback_data.stamp)
        await state.clear()  # no dialogue state survives the person it belonged to
    else:
        reply = privacy.deletion_cancelled(user)
    await show_from_button(callback, bot, reply, edit=True)


def build_router() -> Router:
    router = Router(name="privacy")
    router.message.register(on_my_data, Command("moji_podaci", "mojipodaci", "my_data"))
    router.message.register(on_delete_me, Command("obrisi_me", "obrisime", "delete_me"))
    router.callback_query.register(on_delete_choice, Tapped(DeletionChoice))
    return router
