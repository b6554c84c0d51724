"""User-facing text in three languages from gettext catalogues.

Message ids are the Serbian Latin text itself (the default language). English comes from a
translated catalogue; Serbian Cyrillic is generated from the Latin by transliteration
(`python -m bot.i18n_build`), so the two Serbian scripts can never drift apart. The same
compiled catalogues serve aiogram's i18n middleware in the Telegram handlers.
"""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

from bot.config import DEFAULT_LANGUAGE, LANGUAGES

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"


def locale_of(language: str) -> str:
    """'sr-Latn' -> 'sr_Latn' (gettext's folder name)."""
    return language.replace("-", "_")


def normalize_language(language: str | None) -> str:
    """A stored or client-supplied language code mapped onto one we support."""
    if not language:
        return DEFAULT_LANGUAGE
    if language in LANGUAGES:
        return language
    lowered = language.lower().replace("_", "-")
    if lowered.startswith("en"):
        return "en"
    if lowered in ("sr-cyrl", "sr-cyrl-rs", "sr-rs", "sr", "ru", "mk", "bg"):
        # Telegram reports Serbian clients as plain "sr", which in practice is Cyrillic.
        return "sr-Cyrl"
    return DEFAULT_LANGUAGE


@cache
def _catalogue(language: str) -> gettext.NullTranslations:
    mo_file = LOCALES_DIR / locale_of(language) / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if not mo_file.exists():
        return gettext.NullTranslations()
    with mo_file.open("rb") as handle:
        return gettext.GNUTranslations(handle)


def tr(language: str, message: str, /, **values: object) -> str:
    """Translate a Serbian Latin message id into `language` and fill in `{named}` values."""
    text = _catalogue(normalize_language(language)).gettext(message)
    return text.format(**values) if values else text


def N_(message: str) -> str:
    """Mark a message for extraction without translating it yet."""
    return message
