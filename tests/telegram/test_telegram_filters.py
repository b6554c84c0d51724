"""The routers' filters run on the event loop, never in aiogram's worker thread.

aiogram 3 calls a synchronous filter or handler (an `F.…` magic filter included) through
`asyncio.to_thread`: one thread hop per filter per update, which cost more CPU than answering
(issue #19). The first test walks the dispatcher the bot really builds and fails on any such
callable; the others check that the coroutine filters match exactly what the magic filters they
replaced matched.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiogram import F, Router
from aiogram.dispatcher.event.handler import CallableObject, FilterObject
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Chat, Message, User

from bot.app import AppServices, build_services
from bot.config import Settings
from bot.runtime import Runtime
from handlers import filters


@pytest_asyncio.fixture
async def services(tmp_path: Path) -> AsyncIterator[AppServices]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_bot_token="123456:TEST",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'filters.sqlite3'}",
    )
    built = await build_services(settings)
    try:
        yield built
    finally:
        await built.close()


def runtime_of(services: AppServices) -> Runtime:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_bot_token="123456:TEST",
        database_url=str(services.database.url.render_as_string(hide_password=False)),
    )
    return Runtime(settings, services)


def callables(router: Router) -> Iterator[tuple[str, CallableObject]]:
    """Every handler and filter of the router tree, named for the failure message."""
    for sub in _walk(router):
        for name, observer in sub.observers.items():
            where = f"{sub.name}.{name}"
            for flt in observer._handler.filters or []:
                yield f"{where} (router filter)", flt
            for handler in observer.handlers:
                label = getattr(handler.callback, "__name__", repr(handler.callback))
                yield f"{where} -> {label}", handler
                for flt in handler.filters or []:
                    yield f"{where} -> {label} (filter)", flt


def _walk(router: Router) -> Iterator[Router]:
    yield router
    for sub in router.sub_routers:
        yield from _walk(sub)


def synchronous(item: CallableObject) -> bool:
    """True when aiogram would call it through asyncio.to_thread."""
    if not item.awaitable:
        return True
    if isinstance(item, FilterObject) and item.magic is not None:
        return True
    callback = item.callback
    if isinstance(callback, Filter):  # aiogram awaits Filter instances whatever __call__ is
        return not inspect.iscoroutinefunction(type(callback).__call__)
    return False


def sync_callables(router: Router) -> list[str]:
    return [name for name, item in callables(router) if synchronous(item)]


async def test_no_synchronous_filter_or_handler_on_the_bots_routers(
    services: AppServices,
) -> None:
    runtime = runtime_of(services)
    try:
        found = list(callables(runtime.telegram.dispatcher))
        assert len(found) > 50  # the walk reached the feature routers
        assert sync_callables(runtime.telegram.dispatcher) == []
    finally:
        await runtime.stop()


def wants_command_state_or_group(handler: Any) -> bool:
    """One of the handler's filters can only pass a command (aiogram's `Command`), a message
    in an open dialogue (a `StateFilter` without the "no state" and "any state" choices) or a
    message in the mentors' chat."""
    from aiogram.filters import Command, StateFilter

    from handlers.mentor import in_mentor_group

    for flt in handler.filters or []:
        callback = flt.callback
        if isinstance(callback, Command) or callback is in_mentor_group:
            return True
        if isinstance(callback, StateFilter) and all(
            state is not None and state != "*" for state in callback.states
        ):
            return True
    return False


def test_a_gated_router_has_no_handler_for_a_plain_message() -> None:
    """`handlers.gated` lets a router's message handlers be skipped in one check when the
    message is not a command, no dialogue is open and the chat is private: right only as long
    as each of its handlers wants one of those."""
    from handlers import build_router, may_want
    from handlers.mentor import may_want_here

    gated = [
        router
        for router in _walk(build_router())
        if any(
            flt.callback in (may_want, may_want_here)
            for flt in router.message._handler.filters or []
        )
    ]
    assert {router.name for router in gated} >= {"mentor", "trainings", "admin", "desk"}
    for router in gated:
        assert router.message.handlers, router.name
        for handler in router.message.handlers:
            label = getattr(handler.callback, "__name__", repr(handler.callback))
            assert wants_command_state_or_group(handler), f"{router.name} -> {label}"


async def test_the_gate_lets_through_what_a_gated_handler_could_take() -> None:
    from handlers import may_want

    assert not await may_want(message(text="kako da platim taksu"))
    assert not await may_want(message(caption="slika"))
    assert await may_want(message(text="/start"))
    assert await may_want(message(caption="/audit"))
    assert await may_want(message(text="kako da platim taksu"), raw_state="Onboarding:x")
    assert await may_want(message("supergroup", text="kako da platim taksu"))


def test_the_check_catches_magic_and_plain_functions() -> None:
    """The walk above can fail: a magic filter, a plain function and a Filter with a
    synchronous __call__ are each reported, at router and at handler level."""

    class SyncFilter(Filter):
        def __call__(self, event: Any) -> bool:  # type: ignore[override]
            return True

    def plain(event: Any) -> bool:
        return True

    async def handler(event: Any) -> None:
        return None

    root = Router(name="root")
    child = Router(name="child")
    root.include_router(child)
    child.message.filter(F.chat.type == "private")
    child.message.register(handler, plain)
    child.callback_query.register(handler, SyncFilter())
    child.message.register(handler, filters.has_text, filters.not_command)
    assert len(sync_callables(root)) == 3


# -- the coroutine filters match what the magic filters matched -------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PERSON = User(id=7, is_bot=False, first_name="Ana")


def message(chat_type: str = "private", **fields: Any) -> Message:
    return Message(
        message_id=1, date=NOW, chat=Chat(id=7, type=chat_type), from_user=PERSON, **fields
    )


MESSAGES = [
    message(text="kako da platim taksu"),
    message(text="/start"),
    message(text=""),
    message(text=" /x"),
    message(),
    message(caption="slika"),
    message(caption="/odgovori 3"),
    message(caption=""),
    message("group", text="zdravo"),
    message("supergroup", text="/red"),
    message(text="odgovor", reply_to_message=message(text="kartica")),
]

CALLBACKS = [
    CallbackQuery(id="1", from_user=PERSON, chat_instance="c", data=data, message=msg)
    for data in (None, "", "menu", "bc:1", "tr:2:go", "int:x", "xbc:")
    for msg in (None, message(), message("group"))
]

MESSAGE_PAIRS = [
    (filters.private_chat, F.chat.type == "private"),
    (filters.has_text, F.text),
    (filters.not_command, ~F.text.startswith("/")),
    (filters.is_command, F.text.startswith("/")),
    (filters.has_caption, F.caption),
    (filters.caption_not_command, ~F.caption.startswith("/")),
    (filters.is_reply, F.reply_to_message),
]

CALLBACK_PAIRS = [
    (filters.private_button, F.message.chat.type == "private"),
    (filters.ButtonData("menu"), F.data == "menu"),
    (filters.ButtonData("bc:", prefix=True), F.data.startswith("bc:")),
    (filters.ButtonData("tr:", prefix=True), F.data.startswith("tr:")),
    (filters.ButtonData("int:", prefix=True), F.data.startswith("int:")),
]


@pytest.mark.parametrize(("ours", "magic"), MESSAGE_PAIRS, ids=lambda x: str(x)[:40])
async def test_message_filters_match_the_magic_ones(ours: Any, magic: Any) -> None:
    for event in MESSAGES:
        assert bool(await ours(event)) == bool(magic.resolve(event)), event


@pytest.mark.parametrize(("ours", "magic"), CALLBACK_PAIRS, ids=lambda x: str(x)[:40])
async def test_button_filters_match_the_magic_ones(ours: Any, magic: Any) -> None:
    for event in CALLBACKS:
        assert bool(await ours(event)) == bool(magic.resolve(event)), event
