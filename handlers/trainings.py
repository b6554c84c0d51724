"""Trainings in Telegram: clerks' /obuke and /usluge and the buttons on announcements; the
admins' /obuka_nova dialogue and the change / cancel buttons.

Clerks: "Prijavi se" on an announcement or in /obuke (`tr:j:<id>`), the waiting list
(`tr:w:<id>`), "Odjavi se" (`tr:x:<id>`); the confirmation comes at once, the .ics file and the
reminders through the outbox. /usluge toggles the services a clerk works on (`int:<id>`).
Admins: /obuka_nova asks title, service, date and time (Europe/Belgrade), duration, link or
address, capacity, audience, then shows a summary with "Objavi" / "Otkaži". Under a training
(`tr:s:<id>`): "Promeni vreme" (`tr:t`), "Promeni mesto/link" (`tr:p`), "Otkaži obuku" (`tr:c`).
Every answer is validated by bot/services/trainings.py, which also checks the roles; this
module only asks, shows and passes answers on.
"""

from __future__ import annotations

import html
import logging
from datetime import datetime
from typing import Any

from aiogram import Bot, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.digits import to_int
from bot.i18n import tr
from bot.services.audience import Audience, InterestService, say
from bot.services.replies import Button, Reply
from bot.services.trainings import (
    Invalid,
    TrainingDraft,
    TrainingService,
    parse_capacity,
    parse_duration,
    parse_place,
    parse_title,
)
from bot.services.users import UserProfile
from bot.telegram.ui import drop_buttons, send_reply, show_from_button
from handlers.filters import TEXT, ButtonData

log = logging.getLogger(__name__)

STEPS = 7


class NewTraining(StatesGroup):
    title = State()
    service = State()
    when = State()
    duration = State()
    place = State()
    capacity = State()
    audience = State()
    municipalities = State()  # the admin chose "Izabrane opštine" and types names
    confirm = State()


class ChangeTraining(StatesGroup):
    when = State()  # data: training_id
    place = State()
    materials = State()


class TrainingFeedback(StatesGroup):
    comment = State()  # data: training_id


class NewTrainingCB(CallbackData, prefix="tn"):
    """Buttons of the /obuka_nova dialogue: svc:<id>, cap:none, aud:all|svc|mun, pub, quit."""

    step: str
    value: str = ""


def _button(label: str, step: str, value: str = "") -> Button:
    return Button(label, NewTrainingCB(step=step, value=value).pack())


def _quit_row(lang: str) -> tuple[Button, ...]:
    return (_button(say(lang, "Otkaži"), "quit"),)


def _step(lang: str, number: int, text: str) -> str:
    return say(lang, "Nova obuka, korak {n} od {total}:", n=number, total=STEPS) + " " + text


# -- prompts -------------------------------------------------------------------------------


def _title_prompt(lang: str) -> Reply:
    return Reply(_step(lang, 1, say(lang, "napišite naziv obuke.")), (_quit_row(lang),))


def _service_prompt(lang: str, trainings: TrainingService) -> Reply:
    rows: list[tuple[Button, ...]] = []
    services = list(trainings.services)
    for index in range(0, len(services), 2):
        rows.append(tuple(
            _button(service.title(lang), "svc", service.id) for service in services[index:index + 2]
        ))
    rows.append(_quit_row(lang))
    return Reply(_step(lang, 2, say(lang, "za koju uslugu je obuka?")), tuple(rows))


def _when_prompt(lang: str) -> Reply:
    text = say(lang, "datum i vreme početka, po beogradskom vremenu (npr. 15.12.2026 10:00).")
    return Reply(_step(lang, 3, text), (_quit_row(lang),))


def _duration_prompt(lang: str) -> Reply:
    text = say(lang, "koliko traje? Napišite broj minuta (npr. 90) ili sati (npr. 1,5h).")
    return Reply(_step(lang, 4, text), (_quit_row(lang),))


def _place_prompt(lang: str) -> Reply:
    text = say(lang, "link za onlajn obuku (https://...) ili adresa (ulica, broj, mesto).")
    return Reply(_step(lang, 5, text), (_quit_row(lang),))


def _capacity_prompt(lang: str) -> Reply:
    text = say(lang, "koliko ima mesta? Napišite broj ili izaberite „Bez ograničenja“.")
    return Reply(_step(lang, 6, text), (
        (_button(say(lang, "Bez ograničenja"), "cap", "none"),),
        _quit_row(lang),
    ))


def _audience_prompt(lang: str, trainings: TrainingService, service_id: str) -> Reply:
    text = say(lang, "ko dobija najavu? Izaberite, ili napišite nazive opština ili usluga, "
                     "odvojene zarezom.")
    title = trainings.service_title(service_id, lang)
    return Reply(_step(lang, 7, text), (
        (_button(say(lang, "Svi korisnici"), "aud", "all"),),
        (_button(say(lang, "Zainteresovani za {service}", service=title), "aud", "svc"),),
        (_button(say(lang, "Izabrane opštine"), "aud", "mun"),),
        _quit_row(lang),
    ))


def _municipalities_prompt(lang: str) -> Reply:
    return Reply(say(lang, "Napišite nazive opština, odvojene zarezom (npr. Novi Sad, Čačak)."),
                 (_quit_row(lang),))


# -- the draft in FSM data (JSON-safe, so a Redis FSM storage works too) --------------------


def _draft_of(data: dict[str, Any]) -> TrainingDraft:
    return TrainingDraft(
        title=data["title"],
        service=data["service"],
        starts_at=datetime.fromisoformat(data["starts_at"]),
        duration_minutes=int(data["duration_minutes"]),
        link=data.get("link"),
        address=data.get("address"),
        capacity=data.get("capacity"),
        audience=Audience(data.get("audience_kind", "all"),
                          tuple(data.get("audience_values") or ())),
    )


def _summary(lang: str, trainings: TrainingService, draft: TrainingDraft) -> Reply:
    audience = html.escape(draft.audience.describe(lang, trainings.services))
    text = (
        say(lang, "Proverite obuku pre objave:") + "\n\n" + trainings.describe(draft, lang)
        + "\n👤 " + say(lang, "Najavu dobijaju: {audience}", audience=audience)
    )
    if draft.capacity is None:
        text += "\n👥 " + say(lang, "Broj mesta nije ograničen.")
    buttons = (_button(say(lang, "Objavi"), "pub"), _button(say(lang, "Otkaži"), "quit"))
    return Reply(text, (buttons,))


def _invalid(lang: str, error: Invalid) -> Reply:
    return Reply("⚠️ " + error.message(lang), (_quit_row(lang),))


async def _ask_audience(
    bot: Bot, chat_id: int, state: FSMContext, lang: str, trainings: TrainingService
) -> None:
    await state.set_state(NewTraining.audience)
    data = await state.get_data()
    await send_reply(bot, chat_id, _audience_prompt(lang, trainings, data["service"]))


async def _show_summary(
    bot: Bot, chat_id: int, state: FSMContext, lang: str, trainings: TrainingService,
    audience: Audience,
) -> None:
    await state.update_data(audience_kind=audience.kind, audience_values=list(audience.values))
    await state.set_state(NewTraining.confirm)
    await send_reply(bot, chat_id, _summary(lang, trainings, _draft_of(await state.get_data())))


# -- /obuka_nova: the dialogue ------------------------------------------------------------


async def on_new_training(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, trainings: TrainingService
) -> None:
    refused = trainings.refusal(user, "training.create")
    if refused is not None:
        await send_reply(bot, message.chat.id, refused)
        return
    await state.clear()
    await state.set_state(NewTraining.title)
    await send_reply(bot, message.chat.id, _title_prompt(user.language))


async def on_title(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, trainings: TrainingService
) -> None:
    lang = user.language
    try:
        title = parse_title(message.text or "")
    except Invalid as error:
        await send_reply(bot, message.chat.id, _invalid(lang, error))
        return
    await state.update_data(title=title)
    await state.set_state(NewTraining.service)
    await send_reply(bot, message.chat.id, _service_prompt(lang, trainings))


async def on_service_typed(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, trainings: TrainingService
) -> None:
    try:
        service = trainings.parse_service(message.text or "")
    except Invalid as error:
        await send_reply(bot, message.chat.id, _invalid(user.language, error))
        return
    await _service_chosen(bot, message.chat.id, state, user, service)


async def _service_chosen(
    bot: Bot, chat_id: int, state: FSMContext, user: UserProfile, service: str
) -> None:
    await state.update_data(service=service)
    await state.set_state(NewTraining.when)
    await send_reply(bot, chat_id, _when_prompt(user.language))


async def on_when(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, trainings: TrainingService
) -> None:
    try:
        when = trainings.parse_when(message.text or "")
    except Invalid as error:
        await send_reply(bot, message.chat.id, _invalid(user.language, error))
        return
    await state.update_data(starts_at=when.isoformat())
    await state.set_state(NewTraining.duration)
    await send_reply(bot, message.chat.id, _duration_prompt(user.language))


async def on_duration(message: Message, bot: Bot, state: FSMContext, user: UserProfile) -> None:
    try:
        minutes = parse_duration(message.text or "")
    except Invalid as error:
        await send_reply(bot, message.chat.id, _invalid(user.language, error))
        return
    await state.update_data(duration_minutes=minutes)
    await state.set_state(NewTraining.place)
    await send_reply(bot, message.chat.id, _place_prompt(user.language))


async def on_place(message: Message, bot: Bot, state: FSMContext, user: UserProfile) -> None:
    try:
        link, address = parse_place(message.text or "")
    except Invalid as error:
        await send_reply(bot, message.chat.id, _invalid(user.language, error))
        return
    await state.update_data(link=link, address=address)
    await state.set_state(NewTraining.capacity)
    await send_reply(bot, message.chat.id, _capacity_prompt(user.language))


async def on_capacity(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, trainings: TrainingService
) -> None:
    try:
        capacity = parse_capacity(message.text or "")
    except Invalid as error:
        await send_reply(bot, message.chat.id, _invalid(user.language, error))
        return
    await state.update_data(capacity=capacity)
    await _ask_audience(bot, message.chat.id, state, user.language, trainings)


async def on_audience_typed(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, trainings: TrainingService
) -> None:
    try:
        audience = trainings.parse_audience(message.text or "")
    except Invalid as error:
        await send_reply(bot, message.chat.id, _invalid(user.language, error))
        return
    await _show_summary(bot, message.chat.id, state, user.language, trainings, audience)


async def on_dialogue_button(
    callback: CallbackQuery,
    callback_data: NewTrainingCB,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    trainings: TrainingService,
) -> None:
    await callback.answer()
    lang = user.language
    chat_id = callback.message.chat.id if callback.message else callback.from_user.id
    current = await state.get_state()
    step, value = callback_data.step, callback_data.value
    if step == "quit":
        await state.clear()
        await drop_buttons(callback, bot)
        if current is not None and current.startswith(ChangeTraining.__name__):
            text = say(lang, "Prekinuto; obuka nije promenjena.")
        else:
            text = say(lang, "Unos obuke je prekinut; ništa nije objavljeno.")
        await send_reply(bot, chat_id, Reply(text))
        return
    if current is None or not current.startswith(NewTraining.__name__):
        await send_reply(bot, chat_id, Reply(say(lang, "Ovo dugme više ne važi.")))
        return
    if step == "svc" and current == NewTraining.service.state:
        try:
            service = trainings.parse_service(value)
        except Invalid as error:
            await send_reply(bot, chat_id, _invalid(lang, error))
            return
        await drop_buttons(callback, bot)
        await _service_chosen(bot, chat_id, state, user, service)
    elif step == "cap" and current == NewTraining.capacity.state:
        await drop_buttons(callback, bot)
        await state.update_data(capacity=None)
        await _ask_audience(bot, chat_id, state, lang, trainings)
    elif step == "aud" and current == NewTraining.audience.state:
        await drop_buttons(callback, bot)
        if value == "mun":
            await state.set_state(NewTraining.municipalities)
            await send_reply(bot, chat_id, _municipalities_prompt(lang))
            return
        data = await state.get_data()
        audience = Audience("service", (data["service"],)) if value == "svc" else Audience()
        await _show_summary(bot, chat_id, state, lang, trainings, audience)
    elif step == "pub" and current == NewTraining.confirm.state:
        data = await state.get_data()
        await state.clear()  # one tap publishes once
        await drop_buttons(callback, bot)
        _training_id, reply = await trainings.create(user, _draft_of(data))
        await send_reply(bot, chat_id, reply)
    else:
        await send_reply(bot, chat_id, Reply(say(lang, "Ovo dugme više ne važi.")))


async def on_quit_command(message: Message, bot: Bot, state: FSMContext, user: UserProfile) -> None:
    await state.clear()
    await send_reply(bot, message.chat.id, Reply(say(user.language, "Prekinuto.")))


# -- change: a new time or place for an existing training ---------------------------------


async def on_change_when(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, trainings: TrainingService
) -> None:
    try:
        when = trainings.parse_when(message.text or "")
    except Invalid as error:
        await send_reply(bot, message.chat.id, _invalid(user.language, error))
        return
    data = await state.get_data()
    await state.clear()
    reply = await trainings.change(user, int(data["training_id"]), starts_at=when)
    await send_reply(bot, message.chat.id, reply)


async def on_change_place(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, trainings: TrainingService
) -> None:
    try:
        link, address = parse_place(message.text or "")
    except Invalid as error:
        await send_reply(bot, message.chat.id, _invalid(user.language, error))
        return
    data = await state.get_data()
    await state.clear()
    reply = await trainings.change(user, int(data["training_id"]), link=link, address=address)
    await send_reply(bot, message.chat.id, reply)


async def on_materials(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, trainings: TrainingService
) -> None:
    try:
        link, _address = parse_place(message.text or "")
    except Invalid as error:
        await send_reply(bot, message.chat.id, _invalid(user.language, error))
        return
    if link is None:
        await send_reply(bot, message.chat.id, Reply(tr(
            user.language, "Napišite link ka materijalima sa obuke (https://...).")))
        return
    data = await state.get_data()
    await state.clear()
    reply = await trainings.attendance.set_materials(user, int(data["training_id"]), link)
    await send_reply(bot, message.chat.id, reply)


async def on_feedback_comment(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, trainings: TrainingService
) -> None:
    data = await state.get_data()
    await state.clear()
    reply = await trainings.attendance.comment(user, int(data["training_id"]), message.text or "")
    await send_reply(bot, message.chat.id, reply)


async def on_attendance_command(
    message: Message, bot: Bot, user: UserProfile, trainings: TrainingService
) -> None:
    await send_reply(bot, message.chat.id, await trainings.attendance.recent(user))


# -- buttons the service puts on announcements, lists and the admin's view ------------------


async def on_training_button(
    callback: CallbackQuery,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    trainings: TrainingService,
) -> None:
    await callback.answer()
    action = callback.data or ""
    _kind, _, rest = action.partition(":")
    verb, _, number = rest.partition(":")
    lang = user.language
    if verb == "fc" and to_int(number) is not None:  # a comment after the rating
        await state.set_state(TrainingFeedback.comment)
        await state.update_data(training_id=int(number))
        asked = trainings.attendance.comment_prompt(user)
        await show_from_button(callback, bot, Reply(asked.text, (_quit_row(lang),)), edit=False)
        return
    if verb == "mat" and to_int(number) is not None:  # the trainer's materials link
        await state.set_state(ChangeTraining.materials)
        await state.update_data(training_id=int(number))
        ask = Reply(tr(lang, "Napišite link ka materijalima sa obuke (https://...)."),
                    (_quit_row(lang),))
        await show_from_button(callback, bot, ask, edit=False)
        return
    if verb in ("t", "p") and to_int(number) is not None:
        training_id = int(number)
        refused = trainings.refusal(user, "training.change")
        if refused is not None:
            await show_from_button(callback, bot, refused, edit=False)
            return
        await state.set_state(ChangeTraining.when if verb == "t" else ChangeTraining.place)
        await state.update_data(training_id=training_id)
        prompt = (
            say(lang, "Napišite novi datum i vreme početka (npr. 15.12.2026 10:00).")
            if verb == "t"
            else say(lang, "Napišite novi link (https://...) ili adresu.")
        )
        await show_from_button(callback, bot, Reply(prompt, (_quit_row(lang),)), edit=False)
        return
    reply = await trainings.perform(user, action)
    if reply is None:
        reply = Reply(say(lang, "Ovo dugme više ne važi."))
    # "Da, otkaži" replaces the question it answers, a tap in the attendance list redraws the
    # list; everything else comes as a new message, so the announcement (and its "Prijavi se")
    # stays readable in the chat.
    redraw = verb == "at" and bool(reply.buttons)  # a refusal comes as a message of its own
    await show_from_button(callback, bot, reply, edit=verb == "cy" or redraw)


# -- /obuke and /usluge ---------------------------------------------------------------------


async def on_trainings_list(
    message: Message, bot: Bot, user: UserProfile, trainings: TrainingService
) -> None:
    await send_reply(bot, message.chat.id, await trainings.upcoming(user))


async def on_services_menu(
    message: Message, bot: Bot, user: UserProfile, interests: InterestService
) -> None:
    await send_reply(bot, message.chat.id, await interests.menu(user.id, user.language))


async def on_interest_toggle(
    callback: CallbackQuery, bot: Bot, user: UserProfile, interests: InterestService
) -> None:
    await callback.answer()
    service_id = (callback.data or "").partition(":")[2]
    reply = await interests.toggle(user.id, user.language, service_id)
    await show_from_button(callback, bot, reply, edit=True)



def build_router() -> Router:
    router = Router(name="trainings")
    router.message.register(on_new_training, Command("obuka_nova"))
    router.message.register(on_quit_command, Command("otkazi", "odustani"))
    router.message.register(on_trainings_list, Command("obuke"))
    router.message.register(on_attendance_command, Command("prisustvo"))
    router.message.register(on_services_menu, Command("usluge"))
    router.message.register(on_title, StateFilter(NewTraining.title), *TEXT)
    router.message.register(on_service_typed, StateFilter(NewTraining.service), *TEXT)
    router.message.register(on_when, StateFilter(NewTraining.when), *TEXT)
    router.message.register(on_duration, StateFilter(NewTraining.duration), *TEXT)
    router.message.register(on_place, StateFilter(NewTraining.place), *TEXT)
    router.message.register(on_capacity, StateFilter(NewTraining.capacity), *TEXT)
    router.message.register(on_audience_typed, StateFilter(NewTraining.audience), *TEXT)
    router.message.register(on_audience_typed, StateFilter(NewTraining.municipalities), *TEXT)
    router.message.register(on_change_when, StateFilter(ChangeTraining.when), *TEXT)
    router.message.register(on_change_place, StateFilter(ChangeTraining.place), *TEXT)
    router.message.register(on_materials, StateFilter(ChangeTraining.materials), *TEXT)
    router.message.register(on_feedback_comment, StateFilter(TrainingFeedback.comment), *TEXT)
    router.callback_query.register(on_dialogue_button, NewTrainingCB.filter())
    router.callback_query.register(on_training_button, ButtonData("tr:", prefix=True))
    router.callback_query.register(on_interest_toggle, ButtonData("int:", prefix=True))
    return router


__all__ = ["ChangeTraining", "NewTraining", "NewTrainingCB", "TrainingFeedback", "build_router"]
