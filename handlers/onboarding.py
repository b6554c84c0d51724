"""/start, /jezik, /opstina: welcome, script or language, municipality.

Never a gate: a clerk who ignores the questions and types a question gets an answer. While the
bot waits for a municipality name (FSM state), text that looks like a question rather than a
place is answered as a question.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.services.answering import AnswerService
from bot.services.onboarding import OnboardingService
from bot.services.users import UserProfile
from bot.telegram.metrics import Metrics
from bot.telegram.ui import send_reply, show_from_button
from handlers.callbacks import ChooseMunicipality, SetLanguage, Tapped
from handlers.clerk import answer_question
from handlers.filters import TEXT


class Onboarding(StatesGroup):
    municipality = State()  # the next text is (part of) a municipality name


async def on_start(
    message: Message,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    answers: AnswerService,
    onboarding: OnboardingService,
) -> None:
    await state.clear()
    await send_reply(bot, message.chat.id, answers.welcome(user))
    await send_reply(bot, message.chat.id, onboarding.language_prompt(user))


async def on_language_command(
    message: Message, bot: Bot, user: UserProfile, onboarding: OnboardingService
) -> None:
    await send_reply(bot, message.chat.id, onboarding.language_prompt(user))


async def on_municipality_command(
    message: Message,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    onboarding: OnboardingService,
) -> None:
    await state.set_state(Onboarding.municipality)
    await send_reply(bot, message.chat.id, onboarding.municipality_prompt(user))


async def on_language_chosen(
    callback: CallbackQuery,
    callback_data: SetLanguage,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    onboarding: OnboardingService,
) -> None:
    step = await onboarding.choose_language(user, callback_data.code)
    await callback.answer()
    if step.awaiting_municipality:
        await state.set_state(Onboarding.municipality)
    await show_from_button(callback, bot, step.reply, edit=False)


async def on_municipality_typed(
    message: Message,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    answers: AnswerService,
    onboarding: OnboardingService,
    metrics: Metrics,
) -> None:
    step = onboarding.search(user, message.text or "")
    if step.is_question:
        await state.clear()
        await answer_question(message, bot, user, answers, metrics)
        return
    await send_reply(bot, message.chat.id, step.reply)


async def on_municipality_chosen(
    callback: CallbackQuery,
    callback_data: ChooseMunicipality,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    onboarding: OnboardingService,
) -> None:
    step = await onboarding.choose_municipality(user, callback_data.token)
    await callback.answer()
    if not step.awaiting_municipality:
        await state.clear()
    await show_from_button(callback, bot, step.reply, edit=True)


def build_router() -> Router:
    router = Router(name="onboarding")
    router.message.register(on_start, CommandStart())
    router.message.register(on_language_command, Command("jezik", "language"))
    router.message.register(on_municipality_command, Command("opstina"))
    router.callback_query.register(on_language_chosen, Tapped(SetLanguage))
    router.message.register(
        on_municipality_typed, StateFilter(Onboarding.municipality), *TEXT
    )
    router.callback_query.register(on_municipality_chosen, Tapped(ChooseMunicipality))
    return router
