"""What every part of the trainings shares: the database, clock, directory and services, the
helpers the admin's dialogue validates answers with, and the role check."""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.i18n import tr
from bot.services.attendance import AttendanceService
from bot.services.audience import (
    DEFAULT_SERVICES,
    Audience,
    AudienceError,
    ServiceInfo,
    parse_audience,
)
from bot.services.municipalities import MunicipalityDirectory
from bot.services.replies import Reply
from bot.services.roles import unless_admin
from bot.services.trainings.common import (
    BELGRADE,
    DEFAULT_REMINDER_OFFSETS,
    Invalid,
    TrainingDraft,
    TrainingView,
    format_when,
    parse_service,
    parse_when,
    view_of,
)
from bot.services.users import UserProfile
from storage.clock import Clock
from storage.trainings import TrainingRepository
from storage.uow import Database

log = logging.getLogger(__name__)


class TrainingBase:
    """Shared state, dialogue helpers and roles; the layers above add the use cases."""

    def __init__(
        self,
        database: Database,
        *,
        directory: MunicipalityDirectory | None = None,
        services: Sequence[ServiceInfo] = DEFAULT_SERVICES,
        clock: Clock | None = None,
        reminder_offsets: Sequence[timedelta] = DEFAULT_REMINDER_OFFSETS,
        channels: Sequence[str] = ("telegram",),
        tz: ZoneInfo = BELGRADE,
    ) -> None:
        self._database = database
        self._directory = directory or MunicipalityDirectory.from_csv()
        self._services = tuple(services)
        self._clock = clock or database.clock  # the program's one clock
        self._offsets = tuple(sorted(set(reminder_offsets), reverse=True))
        self._channels = tuple(channels)
        self._tz = tz
        self.attendance = AttendanceService(database, clock=self._clock, tz=tz)

    @property
    def services(self) -> tuple[ServiceInfo, ...]:
        return self._services

    def parse_when(self, text: str) -> datetime:
        return parse_when(text, self._clock(), self._tz)

    def parse_service(self, text: str) -> str:
        return parse_service(text, self._services)

    def parse_audience(self, text: str) -> Audience:
        try:
            return parse_audience(text, self._directory, services=self._services)
        except AudienceError as error:
            raise Invalid(error.msgid, **error.values) from None

    def service_title(self, service_id: str, language: str) -> str:
        for service in self._services:
            if service.id == service_id:
                return service.title(language)
        return service_id

    def describe(
        self, training: TrainingView | TrainingDraft, language: str, *, show_link: bool = True
    ) -> str:
        """The training as a clerk sees it (HTML, user text escaped). The meeting link is
        private: ``show_link=False`` for anyone not confirmed (announcements, lists, the
        waiting list) - they see only that it is online."""
        lines = [
            f"<b>{html.escape(training.title)}</b>",
            "🗓 " + tr(language, "{when}, trajanje {minutes} min",
                       when=format_when(training.starts_at, language, self._tz),
                       minutes=training.duration_minutes),
            "🧩 " + html.escape(self.service_title(training.service, language)),
        ]
        if training.link and show_link:
            link = html.escape(training.link, quote=True)
            anchor = f'<a href="{link}">{link}</a>'  # built outside tr(): babel skips f-strings
            lines.append("🔗 " + tr(language, "Onlajn: {link}", link=anchor))
        elif training.link:
            lines.append("🔗 " + tr(language, "Onlajn"))
        if training.address:
            lines.append("📍 " + html.escape(training.address))
        if training.capacity is not None:
            if isinstance(training, TrainingView):
                lines.append("👥 " + tr(language, "Mesta: {taken}/{capacity}",
                                        taken=training.registered, capacity=training.capacity))
            else:
                lines.append("👥 " + tr(language, "Mesta: {capacity}",
                                        capacity=training.capacity))
        return "\n".join(lines)

    def refusal(self, actor: UserProfile, action: str) -> Reply | None:
        """None for an admin; otherwise the polite refusal (logged). Channels call it
        before starting a dialogue; every privileged use case checks again itself."""
        return unless_admin(actor, action)

    async def get(self, training_id: int) -> TrainingView | None:
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id)
            if row is None:
                return None
            return view_of(row, await repo.count(training_id, "registered"),
                         await repo.count(training_id, "waitlisted"))
