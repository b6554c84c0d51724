"""The clerk's button tokens in aiogram: a filter that parses callback_data with the one
`parse` of bot/services/buttons.py and hands the typed value to the handler as
`callback_data` (as aiogram's own CallbackData filters do).

A token that no longer parses (an old message, a removed entry) falls through to the
"this option is no longer available" handler in handlers/fallback.py.
"""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import CallbackQuery

from bot.services.buttons import (
    AskMentor,
    ChooseMunicipality,
    Clarify,
    Feedback,
    ServiceList,
    ServicesMenu,
    SetLanguage,
    ShowEntry,
    pack,
    parse,
)


class Tapped(Filter):
    """A tap on a button whose token is a `kind` (e.g. `Tapped(Feedback)`)."""

    def __init__(self, kind: type[Any]) -> None:
        self.kind = kind

    async def __call__(self, event: CallbackQuery) -> bool | dict[str, Any]:
        token = parse(event.data or "")
        return {"callback_data": token} if isinstance(token, self.kind) else False

    def __str__(self) -> str:
        return f"Tapped({self.kind.__name__})"


MENU = pack(ServicesMenu())  # the list of services

__all__ = [
    "MENU",
    "AskMentor",
    "ChooseMunicipality",
    "Clarify",
    "Feedback",
    "ServiceList",
    "SetLanguage",
    "ShowEntry",
    "Tapped",
]
