"""Button actions, decoded in one place for every channel.

A channel hands back the opaque `Button.action` token the user tapped; this module turns it
into the service call. Tokens stay short (Telegram's callback_data holds 64 bytes).
"""

from __future__ import annotations

from bot.i18n import tr
from bot.services.answering import AnswerService
from bot.services.replies import Button, Reply
from bot.services.users import UserProfile, UserService

LANGUAGE_CHOICES = (("sr-Latn", "Latinica"), ("sr-Cyrl", "Ћирилица"), ("en", "English"))


def language_menu(user: UserProfile) -> Reply:
    rows = tuple((Button(label, f"lang:{code}"),) for code, label in LANGUAGE_CHOICES)
    return Reply(tr(user.language, "Izaberite jezik i pismo:"), rows)


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 12 else None


async def perform(
    action: str, user: UserProfile, answers: AnswerService, users: UserService
) -> tuple[UserProfile, Reply]:
    """Carry out a tapped action; returns the (possibly updated) user and the reply.

    Unknown or outdated tokens (a button on an old message) get a polite reply, never an error."""
    kind, _, rest = action.partition(":")
    if kind == "e" and rest:
        return user, await answers.show_entry(user, rest)
    if kind == "c":
        question, _, entry_id = rest.partition(":")
        question_id = _int(question)
        if question_id is not None and entry_id:
            return user, await answers.show_entry(user, entry_id, question_id)
    if kind == "fb":
        question, _, value = rest.partition(":")
        question_id = _int(question)
        if question_id is not None:
            return user, await answers.feedback(user, question_id, value)
    if kind == "m":
        question_id = _int(rest)
        if question_id is not None:
            return user, answers.mentor_requested(user, question_id)
    if kind == "svc" and rest:
        return user, answers.service_entries(user, rest)
    if kind == "menu":
        return user, answers.services_menu(user)
    if kind == "lang" and rest in dict(LANGUAGE_CHOICES):
        user = await users.set_language(user.id, rest)
        return user, Reply(tr(user.language, "Jezik je promenjen."))
    return user, answers.stale_button(user)
