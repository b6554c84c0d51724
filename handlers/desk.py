"""The mentor desk in Telegram: incidents (/incident, /incident_zatvori) and canned replies
(/sablon_novi, /sabloni, /sablon_obrisi; "Šablon" on a request card lists them in the mentor's
private chat, choosing one gives a draft to send as it is or to replace by replying with the
final text). Mentors and admins use the commands in private or in the mentors' group; all rules
(roles included) are in bot/services/desk/ and bot/services/mentoring/, this module only
translates."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.digits import to_int
from bot.services.buttons_mentoring import CannedChoice, CloseIncident
from bot.services.desk import DeskService
from bot.services.mentoring import MentoringService
from bot.services.users import UserProfile
from bot.telegram.ui import offer_privately, send_reply
from handlers.callbacks import Tapped
from handlers.filters import has_text, not_command, private_chat


class DeskFlow(StatesGroup):
    drafting = State()  # data: number (the request the draft answers)


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
    callback: CallbackQuery, callback_data: CloseIncident, user: UserProfile, desk: DeskService
) -> None:
    if callback_data.action != "z":
        await callback.answer()
        return
    result = await desk.close(user, callback_data.number)
    await callback.answer(result.notice, show_alert=not result.ok)


async def on_canned_new(
    message: Message, command: CommandObject, bot: Bot, user: UserProfile, desk: DeskService
) -> None:
    result = await desk.save_canned(user, command.args or "")
    await send_reply(bot, message.chat.id, result.reply)


async def on_canned_list(message: Message, bot: Bot, user: UserProfile, desk: DeskService) -> None:
    await send_reply(bot, message.chat.id, await desk.list_canned(user))


async def on_canned_delete(
    message: Message, command: CommandObject, bot: Bot, user: UserProfile, desk: DeskService
) -> None:
    result = await desk.delete_canned(user, command.args or "")
    await send_reply(bot, message.chat.id, result.reply)


async def on_canned_button(
    callback: CallbackQuery,
    callback_data: CannedChoice,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    desk: DeskService,
    mentoring: MentoringService,
) -> None:
    number, reply_id = callback_data.number, callback_data.reply
    private = callback.from_user.id
    if callback_data.send:
        sent = await mentoring.answer_with_canned(user, number, reply_id)
        await callback.answer(sent.notice, show_alert=not sent.ok)
        if sent.ok:
            await state.clear()
        await send_reply(bot, private, sent.reply)
        return
    if reply_id == 0:  # "Šablon" on the card (in the group): the choices go to the mentor
        await offer_privately(callback, bot, await desk.canned_choices(user, number), desk, user)
        return
    text = await desk.filled(user, number, reply_id)
    if not isinstance(text, str):
        await callback.answer(text.notice, show_alert=True)
        return
    await callback.answer()
    await state.set_state(DeskFlow.drafting)
    await state.set_data({"number": number})
    await send_reply(bot, private, desk.draft(user, number, reply_id, text))


async def on_draft_input(
    message: Message,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    mentoring: MentoringService,
) -> None:
    """The mentor's final text for the draft (a reply to it, or just the next message)."""
    data = await state.get_data()
    result = await mentoring.answer(user, int(data.get("number") or 0), message.text or "")
    if result.ok:
        await state.clear()
    await send_reply(bot, message.chat.id, result.reply)


def build_router() -> Router:
    router = Router(name="desk")
    router.message.register(on_canned_new, Command("sablon_novi"))
    router.message.register(on_canned_list, Command("sabloni"))
    router.message.register(on_canned_delete, Command("sablon_obrisi"))
    router.callback_query.register(on_canned_button, Tapped(CannedChoice))
    router.message.register(
        on_draft_input, StateFilter(DeskFlow.drafting), private_chat, has_text, not_command
    )
    router.message.register(on_incident_close, Command("incident_zatvori"))
    router.message.register(on_incident, Command("incident"))
    router.callback_query.register(on_incident_button, Tapped(CloseIncident))
    return router
