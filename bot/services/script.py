"""Which script and language a reply is written in: the KB is Serbian Latin; a Cyrillic reader
gets it transliterated, and the reply follows the question where the clerk chose nothing."""

from __future__ import annotations

import dataclasses

from bot.services.users import UserProfile
from knowledge_base.matcher import MatchResult
from knowledge_base.translit import to_cyrillic


def in_script(language: str, text: str) -> str:
    """KB text is Serbian Latin; Cyrillic readers get it transliterated."""
    return to_cyrillic(text) if language == "sr-Cyrl" else text


def reader_for(user: UserProfile, question: str, result: MatchResult) -> UserProfile:
    """The reply follows the question: a Cyrillic question from a clerk on the default Latin
    script is answered in Cyrillic, an English one gets English guidance (the entries themselves
    are Serbian, and the reply says so). A clerk who chose Cyrillic or English keeps it; until
    the clerk chooses, the language is only the client's hint (Telegram reports Serbian as "sr",
    taken as Cyrillic), so a Latin question then gets a Latin reply."""
    chose = user.language_chosen
    if chose and user.language != "sr-Latn":
        return user
    if result.english:
        return dataclasses.replace(user, language="en")
    if is_cyrillic(question):
        return dataclasses.replace(user, language="sr-Cyrl")
    if not chose and user.language == "sr-Cyrl" and has_letters(question):
        return dataclasses.replace(user, language="sr-Latn")
    return user


def has_letters(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


def is_cyrillic(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    cyrillic = sum(1 for ch in letters if "\u0400" <= ch <= "\u04ff")
    return bool(letters) and cyrillic * 2 > len(letters)
