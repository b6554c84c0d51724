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

from bot.i18n import tr
from bot.services.buttons import pack, parse
from bot.services.buttons_trainings import (
    TRAINING_KINDS,
    AttendanceList,
    AttendanceToggle,
    CheckIn,
    TrainingCancel,
    TrainingCancelConfirmed,
    TrainingJoin,
    TrainingLeave,
    TrainingList,
    TrainingManage,
    TrainingRating,
    TrainingWaitlist,
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
    duration_text,
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
    "duration_text",
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
        """Handle a `tr:*` button token; None for tokens that need a dialogue (`t`, `p`, `mat`,
        `fc`) or are not ours. Unknown or forged `tr:` tokens get a polite reply."""
        if not action.startswith("tr:") and action != "tr":
            return None
        token = parse(action)
        if not isinstance(token, TRAINING_KINDS):
            return Reply(tr(user.language, "Ovo dugme više ne važi."))
        match token:
            case TrainingList():  # the list, as /obuke shows it (a button under the KB answer)
                return await self.upcoming(user)
            case CheckIn() | AttendanceList() | AttendanceToggle() | TrainingRating():
                return await self.attendance.perform(user, token)
            case TrainingJoin(training_id):
                return await self.sign_up(user, training_id)
            case TrainingWaitlist(training_id):
                return await self.sign_up(user, training_id, waitlist=True)
            case TrainingLeave(training_id):
                return await self.cancel_registration(user, training_id)
            case TrainingManage(training_id):
                return await self.manage(user, training_id)
            case TrainingCancel(training_id):
                return self._confirm_cancel(user, training_id)
            case TrainingCancelConfirmed(training_id):
                return await self.cancel(user, training_id)
        return None

    def _confirm_cancel(self, user: UserProfile, training_id: int) -> Reply:
        refused = self.refusal(user, "training.cancel")
        if refused is not None:
            return refused
        return Reply(
            tr(user.language, "Sigurno otkazati obuku? Svi prijavljeni dobiće obaveštenje."),
            (
                (
                    Button(
                        tr(user.language, "Da, otkaži"),
                        pack(TrainingCancelConfirmed(training_id)),
                    ),
                    Button(tr(user.language, "Ne"), pack(TrainingManage(training_id))),
                ),
            ),
        )
