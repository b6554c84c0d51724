"""Button actions, decoded in one place for every channel.

A channel hands back the opaque `Button.action` token the user tapped; this module turns it
into the service call. Tokens stay short (Telegram's callback_data holds 64 bytes).
"""

from __future__ import annotations

from bot.digits import to_int
from bot.i18n import tr
from bot.services.answering import AnswerService
from bot.services.mentoring import MentoringService
from bot.services.replies import Button, Reply
from bot.services.users import UserProfile, UserService

LANGUAGE_CHOICES = (("sr-Latn", "Latinica"), ("sr-Cyrl", "Ћирилица"), ("en", "English"))


def language_menu(user: UserProfile) -> Reply:
    rows = tuple((Button(label, f"lang:{code}"),) for code, label in LANGUAGE_CHOICES)
    return Reply(tr(user.language, "Izaberite jezik i pismo:"), rows)


def _int(value: str) -> int | None:
    return to_int(value, 11)


async def perform(
    action: str,
    user: UserProfile,
    answers: AnswerService,
    users: UserService,
    mentoring: MentoringService | None = None,
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
        if question_id is not None and mentoring is not None:
            # Channels without attachments send the question to the mentors as it is.
            created = await mentoring.create_request(user, question_id=question_id)
            return user, created.reply
        if question_id is not None:
            return user, answers.mentor_requested(user, question_id)
    if mentoring is not None:
        handled = await _mentor_action(kind, rest, user, mentoring)
        if handled is not None:
            return user, handled
    if kind == "svc" and rest:
        return user, answers.service_entries(user, rest)
    if kind == "menu":
        return user, answers.services_menu(user)
    if kind == "lang" and rest in dict(LANGUAGE_CHOICES):
        user = await users.set_language(user.id, rest)
        return user, Reply(tr(user.language, "Jezik je promenjen."))
    return user, answers.stale_button(user)


async def _mentor_action(
    kind: str, rest: str, user: UserProfile, mentoring: MentoringService
) -> Reply | None:
    """The clerk's buttons under a mentor's answer: resolved, follow-up, rating."""
    if kind == "mr":
        number, _, value = rest.partition(":")
        request = _int(number)
        if request is not None and value == "ok":
            return (await mentoring.clerk_resolved(user, request)).reply
        if request is not None and value == "more":
            return mentoring.followup_prompt(user, request)
    if kind == "mrt":
        number, _, value = rest.partition(":")
        request, rating = _int(number), _int(value)
        if request is not None and rating is not None:
            return (await mentoring.rate(user, request, rating)).reply
    return None
