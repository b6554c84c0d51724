"""Reminders and calendar files as outbox rows: armed when a clerk gets a place, re-armed when
the time changes, so nothing lives only in a scheduler's memory."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from bot.i18n import tr
from bot.services.buttons import pack
from bot.services.buttons_trainings import TrainingLeave
from bot.services.calendar import CalendarEvent, ics_filename, training_ics
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply
from bot.services.trainings.base import TrainingBase
from bot.services.trainings.common import (
    TrainingView,
    relative_time,
)
from storage.models import User
from storage.trainings import TrainingRepository
from storage.uow import UnitOfWork


class TrainingReminders(TrainingBase):
    """Outbox rows that remind a participant and carry the .ics file."""

    def _reminder(self, view: TrainingView, language: str, offset: timedelta) -> Reply:
        text = "⏰ " + tr(language, "Podsetnik: obuka počinje {rel}.",
                         rel=relative_time(language, offset))
        text += "\n" + self.describe(view, language)
        return Reply(text, ((Button(tr(language, "Odjavi se"), pack(TrainingLeave(view.id))),),))

    async def _arm_reminders(
        self, uow: UnitOfWork, view: TrainingView, member: User, now: datetime
    ) -> int:
        """Reminders for one registrant: one row per offset whose moment is still ahead."""
        repo = uow.repository(TrainingRepository)
        armed = 0
        for offset in self._offsets:
            due = view.starts_at - offset
            if due <= now:
                continue
            minutes = int(offset.total_seconds() // 60)
            await repo.put_reminder(
                dedupe_key=f"reminder:{view.id}:{member.id}:{minutes}",
                channel=member.channel, chat_id=member.external_id, user_id=member.id,
                payload=reply_to_payload(self._reminder(view, member.language, offset)),
                not_before=due, expires_at=view.starts_at,
            )
            armed += 1
        await self.attendance.arm_checkin(uow, view, member)  # "Prisutan/na sam" at the start
        return armed

    async def _queue_calendar(
        self, uow: UnitOfWork, view: TrainingView, member: User, caption: str, *,
        kind: str = "training_ics", cancelled: bool = False,
        buttons: tuple[tuple[Button, ...], ...] = (),
    ) -> None:
        event = CalendarEvent(
            training_id=view.id, title=view.title, starts_at=view.starts_at,
            duration_minutes=view.duration_minutes,
            description=self.service_title(view.service, "sr-Latn"),
            link=view.link, address=view.address, sequence=view.revision, cancelled=cancelled,
        )
        document = {
            "filename": ics_filename(event),
            "content_b64": base64.b64encode(training_ics(event, now=self._clock())).decode(),
        }
        await uow.outbox.add(
            channel=member.channel, chat_id=member.external_id, user_id=member.id, kind=kind,
            payload=reply_to_payload(Reply(caption, buttons), document=document), priority=40,
        )

    async def reminder_rows(self, training_id: int) -> list[dict[str, Any]]:
        async with self._database.uow(read_only=True) as uow:
            rows = await uow.repository(TrainingRepository).reminders(training_id)
            return [
                {"key": r.dedupe_key, "status": r.status, "not_before": r.not_before,
                 "expires_at": r.expires_at, "user_id": r.user_id}
                for r in rows
            ]
