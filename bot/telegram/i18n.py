"""aiogram's i18n over the project's gettext catalogues (bot/locales, domain "messages").

Message ids are the Serbian Latin text, so 'sr_Latn' needs no catalogue: a missing locale
falls back to the id. The locale of an update is the clerk's stored language, read from the
profile the user middleware put into the handler data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject
from aiogram.utils.i18n import I18n, I18nMiddleware

from bot.i18n import DOMAIN, LOCALES_DIR, locale_of, normalize_language

DEFAULT_LOCALE = "sr_Latn"


def build_i18n() -> I18n:
    """aiogram's I18n over bot/locales. (Not a subclass: aiogram keeps the "current I18n" in a
    context variable per class, and `gettext as _` reads the one of I18n itself.)"""
    path = LOCALES_DIR if LOCALES_DIR.is_dir() else Path(__file__).parent  # no catalogues yet
    return I18n(path=path, default_locale=DEFAULT_LOCALE, domain=DOMAIN)


def locale_for(language: str | None) -> str:
    """'sr-Latn' -> 'sr_Latn', 'sr-Cyrl' -> 'sr_Cyrl', 'en' -> 'en'."""
    return locale_of(normalize_language(language))


class StoredLanguageI18nMiddleware(I18nMiddleware):
    """Locale = the clerk's stored language (or, before we know them, Telegram's hint)."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        user = data.get("user")
        if user is not None:
            return locale_for(user.language)
        language = data.get("language")
        if isinstance(language, str):
            return locale_for(language)
        return self.i18n.default_locale
