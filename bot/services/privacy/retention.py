"""Retention: the daily job that anonymises what is older than the retention period, by the
injected clock."""

from __future__ import annotations

import logging

from bot.services.audit import RETENTION_RUN, record_in
from bot.services.privacy.export import PrivacyExport
from storage.operations import PrivacyRepository

log = logging.getLogger(__name__)


class PrivacyRetention(PrivacyExport):
    """The retention job."""

    async def apply_retention(self) -> dict[str, int]:
        """Anonymise what is older than the retention period (the daily job)."""
        cutoff = self.retention_cutoff()
        async with self._database.uow() as uow:
            repository = uow.repository(PrivacyRepository)
            if not await repository.try_job_lock():
                log.info("privacy.retention_skipped", extra={"reason": "another instance runs it"})
                return {}
            counts = await repository.anonymise_older_than(cutoff)
            counts["export_files"] = await self._clear_expired_exports(uow)
            if any(counts.values()):
                await record_in(
                    uow,
                    None,
                    RETENTION_RUN,
                    None,
                    {"cutoff": cutoff.isoformat(), "months": self.retention_months, **counts},
                    at=self._clock(),
                )
            await uow.commit()
        log.info("privacy.retention", extra={"cutoff": cutoff.isoformat(), "counts": counts})
        return counts
