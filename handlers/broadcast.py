"""/obavestenje: an admin's announcement to everyone or to a segment.

text (Telegram's safe HTML subset, checked by the service) -> preview with the number of
recipients and the audience choice (all, municipalities, service interest, role) -> the
service's preview of the draft with "Pošalji" / "Odustani" (`bc:go` / `bc:no`) -> the progress
message, edited as deliveries go out, with "Zaustavi slanje" (`bc:stop`) -> the final report.
The sending, the progress and the report are the service's and the outbox's work
(bot/services/broadcasts.py); roles are checked there too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.i18n import tr
from bot.services.audience import Audience
from bot.services.broadcasts import BroadcastService, validate_html
from bot.services.replies import Button, Reply
from bot.services.trainings import Invalid
from bot.services.users import UserProfile
from bot.telegram.middlewares import CHANNEL
from bot.telegram.ui import chat_of, drop_buttons, send_reply, show_from_button
from handlers.filters import TEXT, ButtonData

log = logging.getLogger(__name__)

ROLES = ("clerk", "mentor", "admin")


class NewBroadcast(StatesGroup):
    text = State()  # waiting for the text
    audience = State()  # data: text; waiting for a button (or a typed audience)
    typed = State()  # data: text, kind (mun | svc | role); waiting for names


class BroadcastCB(CallbackData, prefix="bn"):
    """Audience choice: aud:all|mun|svc|role, svc:<id>, role:<role>, quit."""

    step: str
    value: str = ""


def _button(label: str, step: str, value: str = "") -> Button:
    return Button(label, BroadcastCB(step=step, value=value).pack())


def _quit_row(lang: str) -> tuple[Button, ...]:
    return (_button(tr(lang, "Odustani"), "quit"),)


def _text_prompt(lang: str) -> Reply:
    text = tr(lang, "Pošaljite tekst obaveštenja. Dozvoljeno: &lt;b&gt;podebljano&lt;/b&gt;, "
                    "&lt;i&gt;kurziv&lt;/i&gt;, &lt;u&gt;podvučeno&lt;/u&gt;, "
                    "&lt;a href=\"https://...\"&gt;link&lt;/a&gt;, &lt;code&gt;kod&lt;/code&gt;.")
    return Reply(text, (_quit_row(lang),))


def _audience_choice(lang: str, clean: str, everyone: int) -> Reply:
    text = (
        tr(lang, "Pregled:") + "\n\n" + clean + "\n\n"
        + tr(lang, "Kome šaljemo? Svih korisnika: {count}.", count=everyone)
    )
    return Reply(text, (
        (_button(tr(lang, "Svima ({count})", count=everyone), "aud", "all"),),
        (_button(tr(lang, "Po opštinama"), "aud", "mun"),
         _button(tr(lang, "Po usluzi"), "aud", "svc")),
        (_button(tr(lang, "Po ulozi"), "aud", "role"),),
        _quit_row(lang),
    ))


def _service_choice(lang: str, broadcasts: BroadcastService) -> Reply:
    rows: list[tuple[Button, ...]] = []
    services = list(broadcasts.services)
    for index in range(0, len(services), 2):
        rows.append(tuple(
            _button(s.title(lang), "svc", s.id) for s in services[index:index + 2]
        ))
    rows.append(_quit_row(lang))
    text = tr(lang, "Za koju uslugu? Izaberite ili napišite nazive usluga, odvojene zarezom.")
    return Reply(text, tuple(rows))


def _role_choice(lang: str) -> Reply:
    labels = {"clerk": tr(lang, "službenici"), "mentor": tr(lang, "mentori"),
              "admin": tr(lang, "administratori")}
    return Reply(tr(lang, "Kojoj ulozi?"), (
        tuple(_button(labels[role], "role", role) for role in ROLES),
        _quit_row(lang),
    ))


def _municipalities_prompt(lang: str) -> Reply:
    return Reply(tr(lang, "Napišite nazive opština, odvojene zarezom (npr. Novi Sad, Čačak)."),
                 (_quit_row(lang),))


@dataclass(frozen=True)
class Segment:
    """An audience the admin narrows by typing names or tapping one: what is asked, and the
    prefix that tells the service's audience parser what the typed names are."""

    ask: Callable[[str, BroadcastService], Reply]
    typed_prefix: str


# The audience step, as a table: "Po opštinama", "Po usluzi", "Po ulozi".
SEGMENTS: dict[str, Segment] = {
    "mun": Segment(lambda lang, _b: _municipalities_prompt(lang), ""),
    "svc": Segment(_service_choice, "usluga: "),
    "role": Segment(lambda lang, _b: _role_choice(lang), "uloga: "),
}


async def _start_text(
    bot: Bot, chat_id: int, state: FSMContext, user: UserProfile, broadcasts: BroadcastService,
    raw: str,
) -> None:
    lang = user.language
    try:
        clean = validate_html(raw)
    except Invalid as error:
        await send_reply(bot, chat_id, Reply("⚠️ " + error.message(lang), (_quit_row(lang),)))
        await state.set_state(NewBroadcast.text)
        return
    everyone = await broadcasts.count_audience(Audience())
    await state.set_state(NewBroadcast.audience)
    await state.update_data(text=clean)
    await send_reply(bot, chat_id, _audience_choice(lang, clean, everyone))


async def _draft(
    bot: Bot, chat_id: int, state: FSMContext, user: UserProfile, broadcasts: BroadcastService,
    audience: Audience,
) -> None:
    data = await state.get_data()
    await state.clear()
    _broadcast_id, preview = await broadcasts.draft(user, str(data.get("text", "")), audience)
    await send_reply(bot, chat_id, preview)


# -- messages -----------------------------------------------------------------------------


async def on_broadcast_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    broadcasts: BroadcastService,
) -> None:
    refused = broadcasts.refusal(user, "broadcast.draft")
    if refused is not None:
        await send_reply(bot, message.chat.id, refused)
        return
    await state.clear()
    if command.args and command.args.strip():
        await _start_text(bot, message.chat.id, state, user, broadcasts, command.args)
        return
    await state.set_state(NewBroadcast.text)
    await send_reply(bot, message.chat.id, _text_prompt(user.language))


def _admin_text(message: Message) -> str:
    """Tags typed as text are kept as typed; formatting done in the Telegram app (bold,
    links...) arrives as entities and is turned into the same HTML."""
    formatted = [e for e in message.entities or [] if e.type not in ("url", "mention",
                                                                     "hashtag", "email")]
    return message.html_text if formatted else (message.text or "")


async def on_text(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, broadcasts: BroadcastService
) -> None:
    await _start_text(bot, message.chat.id, state, user, broadcasts, _admin_text(message))


async def on_audience_typed(
    message: Message, bot: Bot, state: FSMContext, user: UserProfile, broadcasts: BroadcastService
) -> None:
    data = await state.get_data()
    segment = SEGMENTS.get(str(data.get("kind", "")))
    prefix = segment.typed_prefix if segment is not None else ""
    try:
        audience = broadcasts.parse_audience(prefix + (message.text or ""))
    except Invalid as error:
        lang = user.language
        await send_reply(bot, message.chat.id, Reply("⚠️ " + error.message(lang),
                                                     (_quit_row(lang),)))
        return
    await _draft(bot, message.chat.id, state, user, broadcasts, audience)


# -- buttons --------------------------------------------------------------------------------


async def on_choice(
    callback: CallbackQuery,
    callback_data: BroadcastCB,
    bot: Bot,
    state: FSMContext,
    user: UserProfile,
    broadcasts: BroadcastService,
) -> None:
    await callback.answer()
    lang = user.language
    chat_id = chat_of(callback)
    step, value = callback_data.step, callback_data.value
    current = await state.get_state()
    if step == "quit":
        await state.clear()
        await drop_buttons(callback, bot)
        await send_reply(bot, chat_id, Reply(tr(lang, "Odustali ste; obaveštenje nije poslato.")))
        return
    if current not in (NewBroadcast.audience.state, NewBroadcast.typed.state):
        await send_reply(bot, chat_id, Reply(tr(lang, "Ovo dugme više ne važi.")))
        return
    await drop_buttons(callback, bot)
    if step == "aud" and value == "all":
        await _draft(bot, chat_id, state, user, broadcasts, Audience())
    elif step == "aud" and value in SEGMENTS:
        await state.set_state(NewBroadcast.typed)
        await state.update_data(kind=value)
        await send_reply(bot, chat_id, SEGMENTS[value].ask(lang, broadcasts))
    elif step == "svc" and value in {s.id for s in broadcasts.services}:
        await _draft(bot, chat_id, state, user, broadcasts, Audience("service", (value,)))
    elif step == "role" and value in ROLES:
        await _draft(bot, chat_id, state, user, broadcasts, Audience("role", (value,)))
    else:
        await send_reply(bot, chat_id, Reply(tr(lang, "Ovo dugme više ne važi.")))


async def on_broadcast_button(
    callback: CallbackQuery, bot: Bot, user: UserProfile, broadcasts: BroadcastService
) -> None:
    """`bc:go` / `bc:no` under the preview, `bc:stop` under the progress message."""
    await callback.answer()
    chat_id = chat_of(callback)
    action = callback.data or ""
    reply = await broadcasts.perform(user, action, chat_channel=CHANNEL, chat_id=str(chat_id))
    if reply is None:
        reply = Reply(tr(user.language, "Ovo dugme više ne važi."))
    if broadcasts.spends_buttons(user, action):
        await drop_buttons(callback, bot)
    await show_from_button(callback, bot, reply, edit=False)



def build_router() -> Router:
    router = Router(name="broadcast")
    router.message.register(on_broadcast_command, Command("obavestenje"))
    router.message.register(on_text, StateFilter(NewBroadcast.text), *TEXT)
    router.message.register(on_audience_typed, StateFilter(NewBroadcast.audience), *TEXT)
    router.message.register(on_audience_typed, StateFilter(NewBroadcast.typed), *TEXT)
    router.callback_query.register(on_choice, BroadcastCB.filter())
    router.callback_query.register(on_broadcast_button, ButtonData("bc:", prefix=True))
    return router


__all__ = ["BroadcastCB", "NewBroadcast", "build_router"]
