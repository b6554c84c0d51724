"""Trainings in Telegram: clerks' /obuke and /usluge and the buttons on announcements; the
admins' /obuka_nova dialogue and the change / cancel buttons.

Clerks: "Prijavi se" on an announcement or in /obuke (`tr:j:<id>`), the waiting list
(`tr:w:<id>`), "Odjavi se" (`tr:x:<id>`); the confirmation comes at once, the .ics file and the
reminders through the outbox. /usluge toggles the services a clerk works on (`int:<id>`).
Admins: /obuka_nova asks title, service, date and time (Europe/Belgrade), duration, link or
address, capacity, audience, then shows a summary with "Objavi" / "Otkaži". Under a training
(`tr:s:<id>`): "Promeni vreme" (`tr:t`), "Promeni mesto/link" (`tr:p`), "Otkaži obuku" (`tr:c`).
Every answer is validated by bot/services/trainings/, which also checks the roles; this
module only asks, shows and passes answers on.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiogram import Bot, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.i18n import tr
from bot.services.audience import Audience, InterestService
from bot.services.buttons import parse
from bot.services.buttons_mentoring import ToggleInterest
from bot.services.buttons_trainings import (
    AttendanceToggle,
    TrainingCancelConfirmed,
    TrainingChangePlace,
    TrainingChangeTime,
    TrainingComment,
    TrainingMaterials,
)
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
from bot.telegram.ui import chat_of, drop_buttons, send_reply, show_from_button
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
    return (_button(tr(lang, "Otkaži"), "quit"),)


def _step(lang: str, number: int, text: str) -> str:
    return tr(lang, "Nova obuka, korak {n} od {total}:", n=number, total=STEPS) + " " + text


# -- prompts -------------------------------------------------------------------------------


def _title_prompt(lang: str) -> Reply:
    return Reply(_step(lang, 1, tr(lang, "napišite naziv obuke.")), (_quit_row(lang),))


def _service_prompt(lang: str, trainings: TrainingService) -> Reply:
    rows: list[tuple[Button, ...]] = []
    services = list(trainings.services)
    for index in range(0, len(services), 2):
        rows.append(tuple(
            _button(service.title(lang), "svc", service.id) for service in services[index:index + 2]
        ))
    rows.append(_quit_row(lang))
    return Reply(_step(lang, 2, tr(lang, "za koju uslugu je obuka?")), tuple(rows))


def _when_prompt(lang: str) -> Reply:
    text = tr(lang, "datum i vreme početka, po beogradskom vremenu (npr. 15.12.2026 10:00).")
    return Reply(_step(lang, 3, text), (_quit_row(lang),))


def _duration_prompt(lang: str) -> Reply:
    text = tr(lang, "koliko traje? Napišite broj minuta (npr. 90) ili sati (npr. 1,5h).")
    return Reply(_step(lang, 4, text), (_quit_row(lang),))


def _place_prompt(lang: str) -> Reply:
    text = tr(lang, "link za onlajn obuku (https://...) ili adresa (ulica, broj, mesto).")
    return Reply(_step(lang, 5, text), (_quit_row(lang),))


def _capacity_prompt(lang: str) -> Reply:
    text = tr(lang, "koliko ima mesta? Napišite broj ili izaberite „Bez ograničenja“.")
    return Reply(_step(lang, 6, text), (
        (_button(tr(lang, "Bez ograničenja"), "cap", "none"),),
        _quit_row(lang),
    ))


def _audience_prompt(lang: str, trainings: TrainingService, service_id: str) -> Reply:
    text = tr(lang, "ko dobija najavu? Izaberite, ili napišite nazive opština ili usluga, "
                    "odvojene zarezom.")
    title = trainings.service_title(service_id, lang)
    return Reply(_step(lang, 7, text), (
        (_button(tr(lang, "Svi korisnici"), "aud", "all"),),
        (_button(tr(lang, "Zainteresovani za {service}", service=title), "aud", "svc"),),
        (_button(tr(lang, "Izabrane opštine"), "aud", "mun"),),
        _quit_row(lang),
    ))


def _municipalities_prompt(lang: str) -> Reply:
    return Reply(tr(lang, "Napišite nazive opština, odvojene zarezom (npr. Novi Sad, Čačak)."),
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
        tr(lang, "Proverite obuku pre objave:") + "\n\n" + trainings.describe(draft, lang)
        + "\n👤 " + tr(lang, "Najavu dobijaju: {audience}", audience=audience)
    )
    if draft.capacity is None:
        text += "\n👥 " + tr(lang, "Broj mesta nije ograničen.")
    buttons = (_button(tr(lang, "Objavi"), "pub"), _button(tr(lang, "Otkaži"), "quit"))
    return Reply(text, (buttons,))


def _invalid(lang: str, error: Invalid) -> Reply:
    return Reply("⚠️ " + error.message(lang), (_quit_row(lang),))


# -- /obuka_nova: the dialogue as a table of steps -----------------------------------------

Prompt = Callable[[str, TrainingService, dict[str, Any]], Reply]
Read = Callable[[str, TrainingService], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """One typed answer of /obuka_nova: `read` turns it into the draft's fields (the service
    validates it: Invalid is shown and the step asked again), then `then` is asked."""

    state: State
    read: Read
    then: State


def _read_place(text: str, _trainings: TrainingService) -> dict[str, Any]:
    link, address = parse_place(text)
    return {"link": link, "address": address}


def _read_audience(text: str, trainings: TrainingService) -> dict[str, Any]:
    return _audience_data(trainings.parse_audience(text))


def _audience_data(audience: Audience) -> dict[str, Any]:
    return {"audience_kind": audience.kind, "audience_values": list(audience.values)}


WIZARD: tuple[Step, ...] = (
    Step(NewTraining.title, lambda text, _t: {"title": parse_title(text)}, NewTraining.service),
    Step(NewTraining.service, lambda text, t: {"service": t.parse_service(text)},
         NewTraining.when),
    Step(NewTraining.when, lambda text, t: {"starts_at": t.parse_when(text).isoformat()},
         NewTraining.duration),
    Step(NewTraining.duration, lambda text, _t: {"duration_minutes": parse_duration(text)},
         NewTraining.place),
    Step(NewTraining.place, _read_place, NewTraining.capacity),
    Step(NewTraining.capacity, lambda text, _t: {"capacity": parse_capacity(text)},
         NewTraining.audience),
    Step(NewTraining.audience, _read_audience, NewTraining.confirm),
    Step(NewTraining.municipalities, _read_audience, NewTraining.confirm),
)
STEP_OF: dict[str | None, Step] = {step.state.state: step for step in WIZARD}

# What each state asks (from the language, the service and the answers so far).
PROMPTS: dict[str | None, Prompt] = {
    NewTraining.title.state: lambda lang, _t, _data: _title_prompt(lang),
    NewTraining.service.state: lambda lang, t, _data: _service_prompt(lang, t),
    NewTraining.when.state: lambda lang, _t, _data: _when_prompt(lang),
    NewTraining.duration.state: lambda lang, _t, _data: _duration_prompt(lang),
    NewTraining.place.state: lambda lang, _t, _data: _place_prompt(lang),
    NewTraining.capacity.state: lambda lang, _t, _data: _capacity_prompt(lang),
    NewTraining.audience.state: lambda lang, t, data: _audience_prompt(lang, t, data["service"]),
    NewTraining.municipalities.state: lambda lang, _t, _data: _municipalities_prompt(lang),
    NewTraining.confirm.state: lambda lang, t, data: _summary(lang, t, _draft_of(data)),
}


async def _ask(
    bot: Bot, chat_id: int, state: FSMContext, lang: str, trainings: TrainingService, ask: State
) -> None:
    await state.set_state(ask)
    prompt = PROMPTS[ask.state]
    await send_reply(bot, chat_id, prompt(lang, trainings, await state.get_data()))


async def _answered(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    lang: str,
    trainings: TrainingService,
    step: Step,
    fields: dict[str, Any],
) -> None:
    """Keep the step's fields and ask the next one."""
    await state.update_data(**fields)
    await _ask(bot, chat_id, state, lang, trainings, step.then)


async def on_new_training(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, trainings: TrainingService
) -> None:
    refused = trainings.refusal(user, "training.create")
    if refused is not None:
        await send_reply(bot, message.chat.id, refused)
        return
    await state.clear()
    await _ask(bot, message.chat.id, state, user.language, trainings, NewTraining.title)


async def on_step_answer(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, trainings: TrainingService
) -> None:
    """A typed answer to whichever step of /obuka_nova is being asked."""
    step = STEP_OF[await state.get_state()]
    try:
        fields = step.read(message.text or "", trainings)
    except Invalid as error:
        await send_reply(bot, message.chat.id, _invalid(user.language, error))
        return
    await _answered(bot, message.chat.id, state, user.language, trainings, step, fields)


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
    chat_id = chat_of(callback)
    current = await state.get_state()
    step, value = callback_data.step, callback_data.value
    if step == "quit":
        await state.clear()
        await drop_buttons(callback, bot)
        if current is not None and current.startswith(ChangeTraining.__name__):
            text = tr(lang, "Prekinuto; obuka nije promenjena.")
        else:
            text = tr(lang, "Unos obuke je prekinut; ništa nije objavljeno.")
        await send_reply(bot, chat_id, Reply(text))
        return
    if current is None or not current.startswith(NewTraining.__name__):
        await send_reply(bot, chat_id, Reply(tr(lang, "Ovo dugme više ne važi.")))
        return
    if step == "svc" and current == NewTraining.service.state:
        try:
            fields = STEP_OF[current].read(value, trainings)
        except Invalid as error:
            await send_reply(bot, chat_id, _invalid(lang, error))
            return
        await drop_buttons(callback, bot)
        await _answered(bot, chat_id, state, lang, trainings, STEP_OF[current], fields)
    elif step == "cap" and current == NewTraining.capacity.state:
        await drop_buttons(callback, bot)
        await _answered(bot, chat_id, state, lang, trainings, STEP_OF[current], {"capacity": None})
    elif step == "aud" and current == NewTraining.audience.state:
        await drop_buttons(callback, bot)
        if value == "mun":
            await _ask(bot, chat_id, state, lang, trainings, NewTraining.municipalities)
            return
        data = await state.get_data()
        audience = Audience("service", (data["service"],)) if value == "svc" else Audience()
        fields = _audience_data(audience)
        await _answered(bot, chat_id, state, lang, trainings, STEP_OF[current], fields)
    elif step == "pub" and current == NewTraining.confirm.state:
        data = await state.get_data()
        await state.clear()  # one tap publishes once
        await drop_buttons(callback, bot)
        _training_id, reply = await trainings.create(user, _draft_of(data))
        await send_reply(bot, chat_id, reply)
    else:
        await send_reply(bot, chat_id, Reply(tr(lang, "Ovo dugme više ne važi.")))


async def on_quit_command(message: Message, bot: Bot, state: FSMContext, user: UserProfile) -> None:
    await state.clear()
    await send_reply(bot, message.chat.id, Reply(tr(user.language, "Prekinuto.")))


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
    token = parse(action)
    lang = user.language
    if isinstance(token, TrainingComment):  # a comment after the rating
        await state.set_state(TrainingFeedback.comment)
        await state.update_data(training_id=token.training_id)
        asked = trainings.attendance.comment_prompt(user)
        await show_from_button(callback, bot, Reply(asked.text, (_quit_row(lang),)), edit=False)
        return
    if isinstance(token, TrainingMaterials):  # the trainer's materials link
        await state.set_state(ChangeTraining.materials)
        await state.update_data(training_id=token.training_id)
        ask = Reply(tr(lang, "Napišite link ka materijalima sa obuke (https://...)."),
                    (_quit_row(lang),))
        await show_from_button(callback, bot, ask, edit=False)
        return
    if isinstance(token, TrainingChangeTime | TrainingChangePlace):
        refused = trainings.refusal(user, "training.change")
        if refused is not None:
            await show_from_button(callback, bot, refused, edit=False)
            return
        by_time = isinstance(token, TrainingChangeTime)
        await state.set_state(ChangeTraining.when if by_time else ChangeTraining.place)
        await state.update_data(training_id=token.training_id)
        prompt = (
            tr(lang, "Napišite novi datum i vreme početka (npr. 15.12.2026 10:00).")
            if by_time
            else tr(lang, "Napišite novi link (https://...) ili adresu.")
        )
        await show_from_button(callback, bot, Reply(prompt, (_quit_row(lang),)), edit=False)
        return
    reply = await trainings.perform(user, action)
    if reply is None:
        reply = Reply(tr(lang, "Ovo dugme više ne važi."))
    # "Da, otkaži" replaces the question it answers, a tap in the attendance list redraws the
    # list; everything else comes as a new message, so the announcement (and its "Prijavi se")
    # stays readable in the chat.
    # a refusal comes as a message of its own
    redraw = isinstance(token, AttendanceToggle) and bool(reply.buttons)
    edit = isinstance(token, TrainingCancelConfirmed) or redraw
    await show_from_button(callback, bot, reply, edit=edit)


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
    token = parse(callback.data or "")
    service_id = token.service_id if isinstance(token, ToggleInterest) else ""
    reply = await interests.toggle(user.id, user.language, service_id)
    await show_from_button(callback, bot, reply, edit=True)



def build_router() -> Router:
    router = Router(name="trainings")
    router.message.register(on_new_training, Command("obuka_nova"))
    router.message.register(on_quit_command, Command("otkazi", "odustani"))
    router.message.register(on_trainings_list, Command("obuke"))
    router.message.register(on_attendance_command, Command("prisustvo"))
    router.message.register(on_services_menu, Command("usluge"))
    steps = StateFilter(*(step.state for step in WIZARD))
    router.message.register(on_step_answer, steps, *TEXT)
    router.message.register(on_change_when, StateFilter(ChangeTraining.when), *TEXT)
    router.message.register(on_change_place, StateFilter(ChangeTraining.place), *TEXT)
    router.message.register(on_materials, StateFilter(ChangeTraining.materials), *TEXT)
    router.message.register(on_feedback_comment, StateFilter(TrainingFeedback.comment), *TEXT)
    router.callback_query.register(on_dialogue_button, NewTrainingCB.filter())
    router.callback_query.register(on_training_button, ButtonData("tr:", prefix=True))
    router.callback_query.register(on_interest_toggle, ButtonData("int:", prefix=True))
    return router


__all__ = ["ChangeTraining", "NewTraining", "NewTrainingCB", "TrainingFeedback", "build_router"]
