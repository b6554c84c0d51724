"""What clerks do most: ask a question, tap a suggestion, rate an answer, browse topics.

Handlers only translate: an update becomes an AnswerService call, and the Reply it returns is
shown in the chat. All decisions (and storing every question and rating) happen in the service.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.services.answering import AnswerService
from bot.services.buttons import parse
from bot.services.replies import Reply
from bot.services.users import UserProfile
from bot.telegram.metrics import Metrics
from bot.telegram.ui import send_reply, show_from_button
from handlers.callbacks import MENU, AskMentor, Clarify, Feedback, ServiceList, ShowEntry, Tapped
from handlers.filters import ButtonData, caption_not_command, has_caption, has_text, not_command

log = logging.getLogger(__name__)


def decision_of(reply: Reply) -> str:
    """Which way the service went (for metrics and logs): the reply says so."""
    return reply.decision or "other"


async def answer_question(
    message: Message,
    bot: Bot,
    user: UserProfile,
    answers: AnswerService,
    metrics: Metrics,
    text: str | None = None,
) -> None:
    """A question in the clerk's words -> answer, a short list to choose from, or a mentor."""
    reply = await answers.ask(user, (message.text or "") if text is None else text)
    metrics.decisions.labels(decision=decision_of(reply)).inc()
    log.info("question.answered user_id=%s decision=%s", user.id, decision_of(reply))
    await send_reply(bot, message.chat.id, reply)


async def on_help(message: Message, bot: Bot, user: UserProfile, answers: AnswerService) -> None:
    await send_reply(bot, message.chat.id, answers.help(user))


async def on_topics(message: Message, bot: Bot, user: UserProfile, answers: AnswerService) -> None:
    await send_reply(bot, message.chat.id, answers.services_menu(user))


async def on_question(
    message: Message, bot: Bot, user: UserProfile, answers: AnswerService, metrics: Metrics
) -> None:
    await answer_question(message, bot, user, answers, metrics)


async def on_captioned_media(
    message: Message, bot: Bot, user: UserProfile, answers: AnswerService, metrics: Metrics
) -> None:
    """A screenshot with a question under it: the question is answered, and the clerk learns
    that the picture itself was not read (a mentor can look at it)."""
    await send_reply(bot, message.chat.id, answers.caption_note(user))
    await answer_question(message, bot, user, answers, metrics, text=message.caption or "")


# -- buttons -------------------------------------------------------------------------------


async def on_menu(
    callback: CallbackQuery, bot: Bot, user: UserProfile, answers: AnswerService
) -> None:
    await callback.answer()
    await show_from_button(callback, bot, answers.services_menu(user), edit=True)


async def on_service(
    callback: CallbackQuery,
    callback_data: ServiceList,
    bot: Bot,
    user: UserProfile,
    answers: AnswerService,
) -> None:
    await callback.answer()
    reply = answers.service_entries(user, callback_data.service_id)
    await show_from_button(callback, bot, reply, edit=True)


async def on_entry(
    callback: CallbackQuery,
    callback_data: ShowEntry,
    bot: Bot,
    user: UserProfile,
    answers: AnswerService,
) -> None:
    await callback.answer()
    reply = await answers.show_entry(user, callback_data.entry_id)
    # From the topic browser the list turns into the answer (its "« Teme" button goes back);
    # from a related link under an answer, the answer stays and the new one comes below it.
    from_browser = _came_from_browser(callback)
    await show_from_button(callback, bot, reply, edit=from_browser)


def _came_from_browser(callback: CallbackQuery) -> bool:
    message = callback.message
    if not isinstance(message, Message) or message.reply_markup is None:
        return False
    actions = [
        button.callback_data or "" for row in message.reply_markup.inline_keyboard for button in row
    ]
    return MENU in actions and not any(isinstance(parse(a), Feedback) for a in actions)


async def on_clarify_choice(
    callback: CallbackQuery,
    callback_data: Clarify,
    bot: Bot,
    user: UserProfile,
    answers: AnswerService,
) -> None:
    await callback.answer()
    reply = await answers.show_entry(
        user, callback_data.entry_id, question_id=callback_data.question_id
    )
    await show_from_button(callback, bot, reply, edit=True)


async def on_feedback(
    callback: CallbackQuery,
    callback_data: Feedback,
    bot: Bot,
    user: UserProfile,
    answers: AnswerService,
) -> None:
    reply = await answers.feedback(user, callback_data.question_id, callback_data.value)
    await callback.answer()
    await _drop_feedback_buttons(callback, bot)
    await show_from_button(callback, bot, reply, edit=False)


async def _drop_feedback_buttons(callback: CallbackQuery, bot: Bot) -> None:
    """One rating per answer: the 👍/👎 row disappears once used."""
    message = callback.message
    if not isinstance(message, Message) or message.reply_markup is None:
        return
    rows = [
        [b for b in row if not isinstance(parse(b.callback_data or ""), Feedback)]
        for row in message.reply_markup.inline_keyboard
    ]
    rows = [row for row in rows if row]
    try:
        await bot.edit_message_reply_markup(
            chat_id=message.chat.id,
            message_id=message.message_id,
            reply_markup=InlineKeyboardMarkup(inline_keyboard=rows) if rows else None,
        )
    except TelegramBadRequest as exc:
        log.info("telegram.edit_markup_failed error=%s", exc)


async def on_mentor(
    callback: CallbackQuery,
    callback_data: AskMentor,
    bot: Bot,
    user: UserProfile,
    answers: AnswerService,
) -> None:
    await callback.answer()
    reply = await request_mentor(user, callback_data.question_id, answers)
    await show_from_button(callback, bot, reply, edit=False)


async def request_mentor(user: UserProfile, question_id: int, answers: AnswerService) -> Reply:
    """Placeholder for "Pitaj mentora": the mentor queue's router (handlers/mentor.py) is
    included before this one and takes these buttons. Should it ever be left out, the clerk
    still gets an honest reply: the question is saved and mentors come soon."""
    log.info("mentor.requested user_id=%s question_id=%s", user.id, question_id)
    return answers.mentor_requested(user, question_id)


def build_router() -> Router:
    router = Router(name="clerk")
    router.message.register(on_help, Command("pomoc", "help"))
    router.message.register(on_topics, Command("teme"))
    router.message.register(on_question, has_text, not_command)
    router.message.register(on_captioned_media, has_caption, caption_not_command)
    router.callback_query.register(on_menu, ButtonData(MENU))
    router.callback_query.register(on_service, Tapped(ServiceList))
    router.callback_query.register(on_entry, Tapped(ShowEntry))
    router.callback_query.register(on_clarify_choice, Tapped(Clarify))
    router.callback_query.register(on_feedback, Tapped(Feedback))
    router.callback_query.register(on_mentor, Tapped(AskMentor))
    return router
