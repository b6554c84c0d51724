"""Button actions, decoded in one place for every channel.

A channel hands back the opaque `Button.action` token the user tapped; this module turns it
into the service call. Tokens stay short (Telegram's callback_data holds 64 bytes).
"""

from __future__ import annotations

from bot.i18n import tr
from bot.services.answering import AnswerService
from bot.services.buttons import (
    AskMentor,
    Clarify,
    Feedback,
    MentorRating,
    MentorResolved,
    ServiceList,
    ServicesMenu,
    SetLanguage,
    ShowEntry,
    Token,
    pack,
    parse,
)
from bot.services.mentoring import MentoringService
from bot.services.replies import Button, Reply
from bot.services.users import UserProfile, UserService

LANGUAGE_CHOICES = (("sr-Latn", "Latinica"), ("sr-Cyrl", "Ћирилица"), ("en", "English"))


def language_menu(user: UserProfile) -> Reply:
    rows = tuple((Button(label, pack(SetLanguage(code))),) for code, label in LANGUAGE_CHOICES)
    return Reply(tr(user.language, "Izaberite jezik i pismo:"), rows)


async def perform(
    action: str,
    user: UserProfile,
    answers: AnswerService,
    users: UserService,
    mentoring: MentoringService | None = None,
) -> tuple[UserProfile, Reply]:
    """Carry out a tapped action; returns the (possibly updated) user and the reply.

    Unknown or outdated tokens (a button on an old message) get a polite reply, never an error."""
    token = parse(action)
    match token:
        case ShowEntry(entry_id):
            return user, await answers.show_entry(user, entry_id)
        case Clarify(question_id, entry_id):
            return user, await answers.show_entry(user, entry_id, question_id)
        case Feedback(question_id, value):
            return user, await answers.feedback(user, question_id, value)
        case AskMentor(question_id) if mentoring is not None:
            # Channels without attachments send the question to the mentors as it is.
            created = await mentoring.create_request(user, question_id=question_id)
            return user, created.reply
        case AskMentor(question_id):
            return user, answers.mentor_requested(user, question_id)
        case MentorResolved() | MentorRating() if mentoring is not None:
            handled = await _mentor_action(token, user, mentoring)
            if handled is not None:
                return user, handled
        case ServiceList(service_id):
            return user, answers.service_entries(user, service_id)
        case ServicesMenu():
            return user, answers.services_menu(user)
        case SetLanguage(code) if code in dict(LANGUAGE_CHOICES):
            user = await users.set_language(user.id, code)
            return user, Reply(tr(user.language, "Jezik je promenjen."))
    return user, answers.stale_button(user)


async def _mentor_action(
    token: Token, user: UserProfile, mentoring: MentoringService
) -> Reply | None:
    """The clerk's buttons under a mentor's answer: resolved, follow-up, rating."""
    match token:
        case MentorResolved(number, "ok"):
            return (await mentoring.clerk_resolved(user, number)).reply
        case MentorResolved(number, "more"):
            return mentoring.followup_prompt(user, number)
        case MentorRating(number, rating):
            return (await mentoring.rate(user, number, rating)).reply
    return None
