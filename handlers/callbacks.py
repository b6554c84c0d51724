"""The action tokens services put on buttons, parsed by aiogram's CallbackData factories.

The services write them as plain strings ("fb:12:up"); each factory here reads one kind back.
A token that no longer parses (an old message, a removed entry) falls through to the
"this option is no longer available" handler in handlers/fallback.py.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class EntryCB(CallbackData, prefix="e"):
    """Show a KB entry (related link, topic browser)."""

    entry_id: str


class ClarifyCB(CallbackData, prefix="c"):
    """A candidate picked from a clarify list for question `question_id`."""

    question_id: int
    entry_id: str


class FeedbackCB(CallbackData, prefix="fb"):
    question_id: int
    value: str  # up | down


class MentorCB(CallbackData, prefix="m"):
    """'Ask a mentor' about question `question_id`."""

    question_id: int


class ServiceCB(CallbackData, prefix="svc"):
    """The questions of one service in the topic browser."""

    service_id: str


class LanguageCB(CallbackData, prefix="lang"):
    code: str  # sr-Latn | sr-Cyrl | en


class MunicipalityCB(CallbackData, prefix="mun"):
    token: str  # a municipality slug, "other" or "skip"


MENU = "menu"  # the list of services
