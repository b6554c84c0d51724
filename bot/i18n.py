"""User-facing text in three languages from gettext catalogues.

Message ids are the Serbian Latin text itself (the default language). English comes from a
translated catalogue; Serbian Cyrillic is generated from the Latin by transliteration
(`python -m bot.i18n_build`), so the two Serbian scripts can never drift apart. The same
compiled catalogues serve aiogram's i18n middleware in the Telegram handlers.
"""

from __future__ import annotations

import gettext
from functools import cache, lru_cache
from pathlib import Path

from bot.config import DEFAULT_LANGUAGE, LANGUAGES
from knowledge_base.translit import to_cyrillic

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


@lru_cache(maxsize=4096)
def _cyrillic(message: str) -> str:
    return to_cyrillic(message)


def tr(language: str, message: str, /, **values: object) -> str:
    """Translate a Serbian Latin message id into `language` and fill in `{named}` values.

    The one translation helper of the bot. A message the Cyrillic catalogue does not have yet
    (new, or not extracted) is transliterated: the template, before the values go in, so
    titles and links stay as typed."""
    language = normalize_language(language)
    text = _catalogue(language).gettext(message)
    if language == "sr-Cyrl" and text == message:
        text = _cyrillic(message)
    return text.format(**values) if values else text


def N_(message: str) -> str:
    """Mark a message for extraction without translating it yet."""
    return message
