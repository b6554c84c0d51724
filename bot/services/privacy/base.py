"""What the privacy parts share: the database, the clock, the retention period and the
trainings service that cancels a deleted clerk's places."""

from __future__ import annotations

from datetime import datetime

from bot.services.privacy.common import (
    RegistrationCanceller,
    privacy_notice,
)
from bot.services.replies import Reply
from bot.services.users import UserProfile
from storage.clock import Clock
from storage.operations import months_before
from storage.uow import Database


class PrivacyBase:
    """Shared state and the notice; export, deletion and retention build on it."""

    def __init__(
        self,
        database: Database,
        *,
        retention_months: int = 12,
        clock: Clock | None = None,
        trainings: RegistrationCanceller | None = None,
    ) -> None:
        self._database = database
        self.retention_months = retention_months
        self._clock = clock or database.clock  # the program's one clock
        self.trainings = trainings

    def notice(self, user: UserProfile) -> Reply:
        return Reply(privacy_notice(user.language, self.retention_months))

    def retention_cutoff(self) -> datetime:
        return months_before(self._clock(), self.retention_months)
