"""Trainings: announce, sign up (with a waiting list), remind, change and cancel.

Reminders are outbox rows written when a clerk signs up: `not_before` = start - offset (24 h
and 1 h by default), `expires_at` = start, dedupe key ``reminder:<training>:<user>:<minutes>``.
So they survive restarts, are claimed by exactly one instance, go out late if the bot was down
but the training has not started, and expire (logged, never sent) otherwise. A change of time
re-arms them; a cancellation cancels them. Nothing lives only in a scheduler's memory.

Every use case takes plain values and returns a channel-neutral Reply; privileged ones check the
role here (not only in the handler) and refuse politely, with a log line.

The package is split by responsibility (common: validation and wording; base; reminders;
signup; admin); `TrainingService` puts the layers together and routes the buttons.
"""

from __future__ import annotations

from bot.digits import to_int
from bot.services.audience import (
    say,
)
from bot.services.replies import Button, Reply
from bot.services.trainings.admin import TrainingAdmin
from bot.services.trainings.common import (
    ANNOUNCE_CHUNK,
    BELGRADE,
    DEFAULT_REMINDER_OFFSETS,
    Invalid,
    TrainingDraft,
    TrainingView,
    format_when,
    hours_text,
    parse_capacity,
    parse_duration,
    parse_offsets,
    parse_place,
    parse_service,
    parse_title,
    parse_when,
    relative_time,
    view_of,
    with_audience,
)
from bot.services.users import UserProfile

__all__ = [
    "ANNOUNCE_CHUNK",
    "BELGRADE",
    "DEFAULT_REMINDER_OFFSETS",
    "Invalid",
    "TrainingDraft",
    "TrainingService",
    "TrainingView",
    "format_when",
    "hours_text",
    "parse_capacity",
    "parse_duration",
    "parse_offsets",
    "parse_place",
    "parse_service",
    "parse_title",
    "parse_when",
    "relative_time",
    "view_of",
    "with_audience",
]


class TrainingService(TrainingAdmin):
    """Trainings for every channel: the layers, and the buttons' routing."""

    async def perform(self, user: UserProfile, action: str) -> Reply | None:
        """Handle a `tr:*` button token; None for tokens that need a dialogue (`t`, `p`) or
        are not ours. Unknown or stale tokens get a polite reply."""
        kind, _, rest = action.partition(":")
        if kind != "tr":
            return None
        verb, _, number = rest.partition(":")
        if verb == "l":  # the list, as /obuke shows it (a button under the KB answer)
            return await self.upcoming(user)
        attendance = await self.attendance.perform(user, verb, number)
        if attendance is not None:  # check-in, the trainer's list, the feedback rating
            return attendance
        if to_int(number) is None:
            return Reply(say(user.language, "Ovo dugme više ne važi."))
        training_id = int(number)
        if verb == "j":
            return await self.sign_up(user, training_id)
        if verb == "w":
            return await self.sign_up(user, training_id, waitlist=True)
        if verb == "x":
            return await self.cancel_registration(user, training_id)
        if verb == "s":
            return await self.manage(user, training_id)
        if verb == "c":
            refused = self._refused(user, "training.cancel")
            if refused is not None:
                return refused
            return Reply(
                say(user.language, "Sigurno otkazati obuku? Svi prijavljeni dobiće obaveštenje."),
                (
                    (
                        Button(say(user.language, "Da, otkaži"), f"tr:cy:{training_id}"),
                        Button(say(user.language, "Ne"), f"tr:s:{training_id}"),
                    ),
                ),
            )
        if verb == "cy":
            return await self.cancel(user, training_id)
        return None
