"""Timed work on APScheduler: periodic checks (SLA reminders, auto-close, retention).

Nothing important lives only in the scheduler: the jobs read their state from the database
(due rows, timestamps), so a restart rebuilds them and loses nothing, and with several instances
the work itself is claimed in the database (`FOR UPDATE SKIP LOCKED`), not by the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from storage.errors import StorageUnavailable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]


def _guarded(name: str, job: Job) -> Job:
    """A job that fails (database briefly down) logs and waits for its next run."""

    async def run() -> None:
        try:
            await job()
        except StorageUnavailable:
            log.warning("scheduled job skipped: database unavailable", extra={"job": name})
        except Exception:
            log.exception("scheduled job failed", extra={"job": name})

    return run


class Scheduler:
    def __init__(self, timezone: str = "Europe/Belgrade") -> None:
        self._scheduler = AsyncIOScheduler(timezone=timezone)

    def every(self, name: str, seconds: float, job: Job) -> None:
        """Run `job` every `seconds`; one run at a time, missed runs coalesced."""
        self._scheduler.add_job(
            _guarded(name, job), "interval", seconds=seconds, id=name, replace_existing=True,
            max_instances=1, coalesce=True, misfire_grace_time=max(1, int(seconds)),
        )

    def daily(self, name: str, hour: int, minute: int, job: Job) -> None:
        self._scheduler.add_job(
            _guarded(name, job), "cron", hour=hour, minute=minute, id=name,
            replace_existing=True, max_instances=1, coalesce=True, misfire_grace_time=3600,
        )

    def at(self, name: str, when: datetime, job: Job) -> None:
        """Run once at `when` (timezone-aware)."""
        self._scheduler.add_job(
            _guarded(name, job), "date", run_date=when, id=name, replace_existing=True,
            misfire_grace_time=3600,
        )

    def start(self) -> None:
        if not self._scheduler.running:
            self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    @property
    def job_ids(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]
