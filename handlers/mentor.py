"""The mentor queue in Telegram: clerks ask a mentor; mentors work in their group and in private.

Clerk: "Pitaj mentora" (m:<question>) or /mentor -> may add details, screenshots, files (FSM
state) -> "Pošalji mentoru". Under a mentor's answer: "Rešeno, hvala" (then a 1-5 rating) or
"Imam dodatno pitanje" (the next message goes to the mentor).
Mentors: the card in MENTOR_CHAT_ID (Preuzmi / Oslobodi / Zatvori / Dodaj u bazu znanja /
Prilozi / Prosledi); answer by replying to the card, or `/odgovori <broj> <tekst>` in private;
/red, /moji; `/prosledi <broj> <mentor | ITE | ministarstvo> [napomena]` hands a request over.
A follower ("the same question is already with a mentor") may tap "Pošalji kao novo pitanje";
out of hours the clerk may leave a call-back contact ("Ostavi kontakt").
All rules (roles included) are in bot/services/mentoring/; this module only translates.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.digits import to_int
from bot.services.buttons import MentorRating, MentorResolved
from bot.services.buttons_mentoring import (
    ComposeChoice,
    HandOver,
    LeaveContact,
    OpenOwn,
    QueueAction,
)
from bot.services.mentoring import PARTY_CODES, Attachment, MentoringService
from bot.services.users import UserProfile
from bot.telegram.ui import chat_of, offer_privately, send_reply, show_from_button
from handlers.callbacks import AskMentor, Tapped
from handlers.filters import is_reply, may_want, not_command, private_chat

log = logging.getLogger(__name__)

MAX_ITEMS = 20  # details + files a clerk may add to one request


class MentorFlow(StatesGroup):
    composing = State()  # data: question_id, question, details[], attachments[]
    following_up = State()  # data: number
    contact = State()  # data: number (a call-back phone number or e-mail is expected)
    handover_note = State()  # data: number, party (the mentor's note for ITE / the Ministry)


def attachment_of(message: Message) -> Attachment | None:
    """The file a message carries (the largest size of a photo), by its Telegram file id."""
    if message.photo:
        return Attachment("photo", message.photo[-1].file_id)
    if message.document:
        return Attachment("document", message.document.file_id, message.document.file_name)
    if message.video:
        return Attachment("video", message.video.file_id)
    if message.voice:
        return Attachment("voice", message.voice.file_id)
    if message.audio:
        return Attachment("audio", message.audio.file_id, message.audio.file_name)
    return None


def _text_of(message: Message) -> str:
    return (message.text or message.caption or "").strip()


async def in_mentor_group(message: Message, mentoring: MentoringService) -> bool:
    """A filter: the message was written in MENTOR_CHAT_ID."""
    chat = mentoring.config.mentor_chat_id
    return chat is not None and message.chat.id == chat


async def may_want_here(
    event: Message, mentoring: MentoringService, raw_state: str | None = None
) -> bool:
    """The mentor router's gate (handlers.gated): `may_want`, or a message in MENTOR_CHAT_ID
    (whatever kind of chat it is)."""
    return await may_want(event, raw_state) or await in_mentor_group(event, mentoring)


# -- clerk: composing a request ---------------------------------------------------------------


async def on_ask_mentor(
    callback: CallbackQuery,
    callback_data: AskMentor,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    mentoring: MentoringService,
) -> None:
    await callback.answer()
    chat_id = chat_of(callback)
    question = await mentoring.question_text(user, callback_data.question_id)
    if question is None:
        await send_reply(bot, chat_id, mentoring.cancelled(user))
        return
    await state.set_state(MentorFlow.composing)
    await state.set_data(
        {
            "question_id": callback_data.question_id,
            "question": question,
            "details": [],
            "attachments": [],
        }
    )
    log.info("mentor.compose user_id=%s question_id=%s", user.id, callback_data.question_id)
    await send_reply(bot, chat_id, mentoring.compose_prompt(user, question))


async def on_mentor_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    mentoring: MentoringService,
) -> None:
    question = (command.args or "").strip()
    await state.set_state(MentorFlow.composing)
    await state.set_data(
        {"question_id": None, "question": question, "details": [], "attachments": []}
    )
    await send_reply(bot, message.chat.id, mentoring.compose_prompt(user, question or None))


async def on_compose_input(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, mentoring: MentoringService
) -> None:
    data: dict[str, Any] = await state.get_data()
    details: list[str] = list(data.get("details") or [])
    files: list[dict[str, Any]] = list(data.get("attachments") or [])
    text = _text_of(message)
    attachment = attachment_of(message)
    if len(details) + len(files) >= MAX_ITEMS:
        await send_reply(bot, message.chat.id, mentoring.noted(user, "text"))
        return
    if text:
        if not data.get("question") and attachment is None:
            data["question"] = text
        else:
            details.append(text)
    if attachment is not None:
        files.append(attachment.as_dict())
    if not text and attachment is None:
        await send_reply(bot, message.chat.id, mentoring.compose_prompt(user, data.get("question")))
        return
    data.update(details=details, attachments=files)
    await state.set_data(data)
    kind = "attachment" if attachment is not None else "text"
    await send_reply(bot, message.chat.id, mentoring.noted(user, kind))


async def on_compose_button(
    callback: CallbackQuery,
    callback_data: ComposeChoice,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    mentoring: MentoringService,
) -> None:
    await callback.answer()
    chat_id = chat_of(callback)
    current = await state.get_state()
    data: dict[str, Any] = await state.get_data()
    if callback_data.action != "send" or current != MentorFlow.composing.state:
        await state.clear()
        await _drop_buttons(callback, bot)
        await send_reply(bot, chat_id, mentoring.cancelled(user))
        return
    created = await mentoring.create_request(
        user,
        question_id=data.get("question_id"),
        text=data.get("question") or None,
        details=data.get("details") or [],
        attachments=[Attachment.from_dict(a) for a in data.get("attachments") or []],
        source_key=f"tg:cb:{callback.id}",
    )
    if created.number is not None:
        await state.clear()
        await _drop_buttons(callback, bot)
    await send_reply(bot, chat_id, created.reply)


async def _drop_buttons(callback: CallbackQuery, bot: Bot) -> None:
    message = callback.message
    if not isinstance(message, Message) or message.reply_markup is None:
        return
    try:
        await bot.edit_message_reply_markup(
            chat_id=message.chat.id, message_id=message.message_id, reply_markup=None
        )
    except TelegramBadRequest as exc:
        log.info("telegram.edit_markup_failed error=%s", exc)


# -- clerk: after the answer ------------------------------------------------------------------


async def on_clerk_button(
    callback: CallbackQuery,
    callback_data: MentorResolved,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    mentoring: MentoringService,
) -> None:
    await callback.answer()
    chat_id = chat_of(callback)
    number = callback_data.number
    if callback_data.value == "ok":
        result = await mentoring.clerk_resolved(user, number)
        if result.ok:
            await _drop_buttons(callback, bot)
        await send_reply(bot, chat_id, result.reply)
        return
    if not await mentoring.can_follow_up(user, number):
        await send_reply(bot, chat_id, mentoring.cancelled(user))
        return
    await state.set_state(MentorFlow.following_up)
    await state.set_data({"number": number})
    await send_reply(bot, chat_id, mentoring.followup_prompt(user, number))


async def on_followup_input(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, mentoring: MentoringService
) -> None:
    data = await state.get_data()
    attachment = attachment_of(message)
    result = await mentoring.clerk_followup(
        user,
        int(data.get("number") or 0),
        _text_of(message),
        [attachment] if attachment is not None else [],
    )
    await state.clear()
    await send_reply(bot, message.chat.id, result.reply)


async def on_rating(
    callback: CallbackQuery,
    callback_data: MentorRating,
    bot: Bot,
    user: UserProfile,
    mentoring: MentoringService,
) -> None:
    result = await mentoring.rate(user, callback_data.number, callback_data.rating)
    await callback.answer()
    await show_from_button(callback, bot, result.reply, edit=result.ok)


async def on_own_button(
    callback: CallbackQuery,
    callback_data: OpenOwn,
    bot: Bot,
    user: UserProfile,
    mentoring: MentoringService,
) -> None:
    await callback.answer()
    chat_id = chat_of(callback)
    created = await mentoring.open_own(user, callback_data.number)
    if created.number is not None:
        await _drop_buttons(callback, bot)
    await send_reply(bot, chat_id, created.reply)


async def on_contact_button(
    callback: CallbackQuery,
    callback_data: LeaveContact,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    mentoring: MentoringService,
) -> None:
    await callback.answer()
    chat_id = chat_of(callback)
    await state.set_state(MentorFlow.contact)
    await state.set_data({"number": callback_data.number})
    await send_reply(bot, chat_id, mentoring.callback_prompt(user, callback_data.number))


async def on_contact_input(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, mentoring: MentoringService
) -> None:
    data = await state.get_data()
    result = await mentoring.save_callback(user, int(data.get("number") or 0), _text_of(message))
    if result.ok:
        await state.clear()
    await send_reply(bot, message.chat.id, result.reply)


# -- mentors ----------------------------------------------------------------------------------


async def on_hand_button(
    callback: CallbackQuery,
    callback_data: HandOver,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    mentoring: MentoringService,
) -> None:
    """ "Prosledi" on a card (the choices go to the mentor's private chat), then a choice."""
    number, target = callback_data.number, callback_data.target
    private = callback.from_user.id
    if target == 0:
        choices = await mentoring.handover_choices(user, number)
        await offer_privately(callback, bot, choices, mentoring, user)
        return
    if target < 0:
        party = PARTY_CODES.get(target)
        if party is None:
            await callback.answer()
            return
        checked = await mentoring.hand_out(user, number, party, "")
        if not checked.awaits_text:
            await callback.answer(checked.notice, show_alert=not checked.ok)
            return
        await callback.answer()
        await state.set_state(MentorFlow.handover_note)
        await state.set_data({"number": number, "party": party})
        await send_reply(bot, private, checked.reply)
        return
    result = await mentoring.forward(user, number, target)
    await callback.answer(result.notice, show_alert=not result.ok)
    if result.ok:
        await send_reply(bot, private, result.reply)


async def on_handover_note(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, mentoring: MentoringService
) -> None:
    data = await state.get_data()
    result = await mentoring.hand_out(
        user, int(data.get("number") or 0), str(data.get("party") or ""), _text_of(message)
    )
    if result.ok or not _text_of(message):
        await state.clear()
    await send_reply(bot, message.chat.id, result.reply)


async def on_forward_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    user: UserProfile,
    mentoring: MentoringService,
) -> None:
    result = await mentoring.forward_command(user, command.args or "")
    await send_reply(bot, message.chat.id, result.reply)



async def on_queue_button(
    callback: CallbackQuery,
    callback_data: QueueAction,
    bot: Bot,
    user: UserProfile,
    mentoring: MentoringService,
) -> None:
    number, action = callback_data.number, callback_data.action
    if action == "a":
        found = await mentoring.attachments(user, number)
        if not isinstance(found, list):
            await callback.answer(found.notice, show_alert=True)
            return
        await callback.answer()
        chat_id = chat_of(callback)
        await _send_files(bot, chat_id, number, found)
        return
    handler = mentoring.queue_action(action)
    if handler is None:
        await callback.answer()
        return
    result = await handler(user, number)
    await callback.answer(result.notice, show_alert=not result.ok)


async def _send_files(bot: Bot, chat_id: int, number: int, files: list[Attachment]) -> None:
    caption = f"#{number}"
    for item in files:
        try:
            if item.type == "photo":
                await bot.send_photo(chat_id, item.file_id, caption=caption)
            elif item.type == "video":
                await bot.send_video(chat_id, item.file_id, caption=caption)
            elif item.type == "voice":
                await bot.send_voice(chat_id, item.file_id, caption=caption)
            else:
                await bot.send_document(chat_id, item.file_id, caption=caption)
        except TelegramAPIError as exc:
            log.warning("mentor.attachment_failed number=%s error=%s", number, exc)


async def on_group_reply(
    message: Message, bot: Bot, user: UserProfile, mentoring: MentoringService
) -> None:
    """A mentor replies (Telegram reply) to a card, or to the bot's post about a request."""
    replied = message.reply_to_message
    if replied is None:
        return
    number = await mentoring.number_for_card(message.chat.id, replied.message_id)
    if number is None:
        return
    attachment = attachment_of(message)
    result = await mentoring.answer(
        user, number, _text_of(message), [attachment] if attachment is not None else []
    )
    if not result.ok:
        await bot.send_message(
            message.chat.id, result.reply.text, reply_to_message_id=message.message_id
        )


async def on_group_other(message: Message) -> None:
    """Mentors' own conversation in the group is not a question for the bot."""


async def on_answer_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    user: UserProfile,
    mentoring: MentoringService,
) -> None:
    number_text, _, text = (command.args or "").strip().partition(" ")
    if to_int(number_text.lstrip("#")) is None:
        await send_reply(bot, message.chat.id, mentoring.answer_usage(user))
        return
    result = await mentoring.answer(user, int(number_text.lstrip("#")), text)
    await send_reply(bot, message.chat.id, result.reply)


async def on_queue_command(
    message: Message, bot: Bot, user: UserProfile, mentoring: MentoringService
) -> None:
    await send_reply(bot, message.chat.id, await mentoring.queue_list(user))


async def on_mine_command(
    message: Message, bot: Bot, user: UserProfile, mentoring: MentoringService
) -> None:
    await send_reply(bot, message.chat.id, await mentoring.queue_list(user, mine=True))


def build_router() -> Router:
    """Include before the clerk router: its states and buttons come first."""
    router = Router(name="mentor")
    router.message.register(on_queue_command, Command("red"))
    router.message.register(on_mine_command, Command("moji"))
    router.message.register(on_answer_command, Command("odgovori"))
    router.message.register(on_forward_command, Command("prosledi"))
    router.message.register(on_mentor_command, Command("mentor"), private_chat)
    router.callback_query.register(on_queue_button, Tapped(QueueAction))
    router.callback_query.register(on_compose_button, Tapped(ComposeChoice))
    router.callback_query.register(on_clerk_button, Tapped(MentorResolved))
    router.callback_query.register(on_rating, Tapped(MentorRating))
    router.callback_query.register(on_ask_mentor, Tapped(AskMentor))
    router.callback_query.register(on_own_button, Tapped(OpenOwn))
    router.callback_query.register(on_contact_button, Tapped(LeaveContact))
    router.callback_query.register(on_hand_button, Tapped(HandOver))
    router.message.register(
        on_group_reply, in_mentor_group, is_reply, not_command
    )
    router.message.register(on_group_other, in_mentor_group)
    router.message.register(
        on_compose_input, StateFilter(MentorFlow.composing), private_chat, not_command
    )
    router.message.register(
        on_followup_input,
        StateFilter(MentorFlow.following_up),
        private_chat,
        not_command,
    )
    router.message.register(
        on_contact_input, StateFilter(MentorFlow.contact), private_chat, not_command
    )
    router.message.register(
        on_handover_note, StateFilter(MentorFlow.handover_note), private_chat, not_command
    )
    return router
