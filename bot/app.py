"""Wiring: one place that builds the database, knowledge base and services for every channel."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from bot.cache_sync import CacheSync
from bot.config import Settings
from bot.scheduler import Scheduler
from bot.services.answering import AnswerService
from bot.services.audience import InterestService
from bot.services.audit import AuditService
from bot.services.broadcasts import BroadcastService
from bot.services.console_access import ConsoleAccessService, console_base_url
from bot.services.curation import CurationService
from bot.services.delivery import DeliveryService
from bot.services.desk import DeskService
from bot.services.mentoring import MentorConfig, MentoringService
from bot.services.privacy import PrivacyService
from bot.services.programme import ProgrammeService
from bot.services.reports import ReportService
from bot.services.roadmaps import RoadmapService
from bot.services.roles import RoleService
from bot.services.trainings import DEFAULT_REMINDER_OFFSETS, TrainingService, parse_offsets
from bot.services.users import UserService
from knowledge_base.loader import load_knowledge_base
from knowledge_base.matcher import Matcher
from knowledge_base.model import KnowledgeBase
from knowledge_base.roadmaps import load_roadmaps
from storage.clock import Clock, utcnow
from storage.db import validate_database_url
from storage.uow import Database

log = logging.getLogger(__name__)
KB_POLL_SECONDS = 3.0


@dataclass
class AppServices:
    """Everything a channel needs; channels get this and nothing else."""

    settings: Settings
    database: Database
    knowledge_base: KnowledgeBase
    matcher: Matcher
    users: UserService
    answers: AnswerService
    mentoring: MentoringService
    roles: RoleService
    reports: ReportService
    programme: ProgrammeService
    trainings: TrainingService
    broadcasts: BroadcastService
    interests: InterestService
    privacy: PrivacyService
    audit: AuditService
    desk: DeskService
    roadmaps: RoadmapService
    console: ConsoleAccessService
    curation: CurationService
    delivery: DeliveryService

    def use_knowledge_base(self, knowledge_base: KnowledgeBase, matcher: Matcher) -> None:
        """A newer KB revision was applied (CurationService.refresh): readers of these fields
        see it too."""
        self.knowledge_base, self.matcher = knowledge_base, matcher
        self.mentoring.use_knowledge_base(knowledge_base)
        self.desk.use_knowledge_base(knowledge_base)

    # With REDIS_URL: changes of users and incidents told to every instance, theirs applied to
    # our caches (bot.cache_sync).
    cache_sync: CacheSync | None = None

    async def close(self) -> None:
        if self.cache_sync is not None:
            await self.cache_sync.close()
        await self.database.dispose()


def schedule_jobs(services: AppServices, scheduler: Scheduler) -> None:
    """Every feature's periodic work, registered in one place; bot/runtime.py starts the scheduler.
    Jobs read their state from the database, so any instance may run them after a restart."""
    # mentor queue: card ids, SLA reminders, blocked clerks, auto-close
    scheduler.every("mentor-queue", 60, services.mentoring.run_periodic)
    # broadcasts: finish queuing after a crash, progress message, final report (reminders are
    # outbox rows: the dispatcher sends them when due, no job per reminder)
    scheduler.every("broadcasts", 2, services.broadcasts.tick)
    # privacy: anonymise question texts and request threads older than RETENTION_MONTHS
    scheduler.daily("privacy-retention", 3, 30, services.privacy.apply_retention)
    # roadmaps: municipalities without progress for ROADMAP_NUDGE_WEEKS, to their mentor
    scheduler.daily("roadmap-nudges", 9, 0, services.roadmaps.nudge)
    # knowledge base: a revision approved in the console (on any instance) is used within
    # seconds; the check is one cheap query (the highest revision id)
    scheduler.every("kb-revisions", KB_POLL_SECONDS, services.curation.refresh)


async def build_services(
    settings: Settings, *, migrate: bool = True, clock: Clock = utcnow
) -> AppServices:
    """Upgrade the schema, load and index the KB once, and build the services on top.

    ``clock`` is the program's one business clock (the machine's UTC clock unless a test
    passes its own): the database stamps rows by it and every service, scheduled job, the
    outbox dispatcher and the inbox read it back as ``database.clock``."""
    database = Database.from_url(settings.database_url, clock=clock)
    if migrate:
        await database.upgrade()
    knowledge_base = load_knowledge_base()
    matcher = Matcher.from_knowledge_base(knowledge_base)
    admins = frozenset(str(admin_id) for admin_id in settings.admin_ids)
    channels = broadcast_channels(settings)
    trainings = TrainingService(
        database, reminder_offsets=_reminder_offsets(settings), channels=channels
    )
    desk = DeskService(
        database,
        knowledge_base,
        timezone=settings.timezone,
        cache_seconds=user_cache_seconds(settings),
    )
    reports = ReportService(database, knowledge_base, timezone=settings.timezone)
    answers = AnswerService(
        knowledge_base,
        matcher,
        database,
        retention_months=settings.retention_months,
        placeholders=kb_placeholders(settings),
        desk=desk,
        match_cache_size=settings.match_cache_size,
    )
    mentoring = MentoringService(
        database,
        MentorConfig.from_settings(settings),
        knowledge_base=knowledge_base,
        desk=desk,
        similarity=matcher.similarity,
    )
    roadmaps = RoadmapService(
        database,
        load_roadmaps(),
        knowledge_base,
        mentoring,
        nudge_weeks=settings.roadmap_nudge_weeks,
        remind_clerks=settings.roadmap_remind_clerks,
        timezone=settings.timezone,
    )
    answers.step_of = roadmaps.current_step
    mentoring.know_roadmap_steps(
        {(r.service, s.id): s.title for r in roadmaps.roadmaps.values() for s in r.steps}
    )
    curation = CurationService(database, answers, timezone=settings.timezone)
    services = AppServices(
        settings=settings,
        database=database,
        knowledge_base=knowledge_base,
        matcher=matcher,
        users=UserService(database, admins, cache_seconds=user_cache_seconds(settings)),
        answers=answers,
        mentoring=mentoring,
        roles=RoleService(database, admins),
        reports=reports,
        programme=ProgrammeService(database, reports, timezone=settings.timezone),
        trainings=trainings,
        broadcasts=BroadcastService(database, channels=channels),
        interests=InterestService(database),
        privacy=PrivacyService(
            database, retention_months=settings.retention_months, trainings=trainings
        ),
        audit=AuditService(database, timezone=settings.timezone),
        desk=desk,
        roadmaps=roadmaps,
        console=ConsoleAccessService(
            database,
            console_secret(settings),
            console_base_url(settings.console_url, settings.http_host, settings.http_port),
        ),
        curation=curation,
        delivery=DeliveryService(database),
    )
    if settings.redis_url:
        sync = CacheSync.from_url(
            settings.redis_url,
            services.users.cache if services.users.cache.enabled else None,
            desk.open_services if desk.open_services.enabled else None,
        )
        database.on_users_changed(sync.publish_users)
        database.on_table_changed("incidents", sync.publish_incidents)
        services.cache_sync = sync
        await sync.start()
    curation.on_swap.append(services.use_knowledge_base)
    curation.on_swap.append(lambda kb, _matcher: roadmaps.use_knowledge_base(kb))
    if migrate:  # the KB revisions approved in the console, over the reviewed YAML base
        await curation.refresh()
    return services


def broadcast_channels(settings: Settings) -> tuple[str, ...]:
    """The channels announcements and broadcasts go to: Viber charges for messages the bot
    starts, so Viber users are included only with VIBER_BROADCASTS and a Viber token."""
    secret = settings.viber_auth_token
    token = secret.get_secret_value().strip() if secret is not None else ""
    return ("telegram", "viber") if token and settings.viber_broadcasts else ("telegram",)


def check_database_url(url: str) -> None:
    """Raises InvalidDatabaseURL (bot.services.errors) with one line naming the problem, before
    anything tries to connect (the start-up checks of `python -m bot run`)."""
    validate_database_url(url)


def console_secret(settings: Settings) -> str:
    """CONSOLE_SECRET, or a random key for this process (links and sessions then work only on
    the instance that made them: fine for one instance and the demo)."""
    if settings.console_secret is not None and settings.console_secret.get_secret_value():
        return settings.console_secret.get_secret_value()
    log.warning("console.secret_generated: set CONSOLE_SECRET when running several instances")
    return secrets.token_urlsafe(32)


def user_cache_seconds(settings: Settings) -> float:
    """USER_CACHE_SECONDS, or 30 s. With REDIS_URL another instance's role change or deletion
    reaches this one's cache at once over Redis (bot.cache_sync), and the cache is off while
    that subscription is not working; the 30 s bound only covers a change whose publication
    was lost."""
    if settings.user_cache_seconds is not None:
        return settings.user_cache_seconds
    return 30.0


def _offset_text(offset: timedelta) -> str:
    """A reminder offset in Serbian words: "24 sata", "1 sat", "30 minuta", "2 dana"."""
    minutes = int(offset.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        number, forms = minutes // (24 * 60), ("dan", "dana", "dana")
    elif minutes % 60 == 0:
        number, forms = minutes // 60, ("sat", "sata", "sati")
    else:
        number, forms = minutes, ("minut", "minuta", "minuta")
    if number % 10 == 1 and number % 100 != 11:
        form = forms[0]
    elif number % 10 in (2, 3, 4) and number % 100 not in (12, 13, 14):
        form = forms[1]
    else:
        form = forms[2]
    return f"{number} {form}"


def kb_placeholders(settings: Settings) -> dict[str, str]:
    """Values KB answers show from the configuration: {working_hours}, {training_reminders}."""
    start = settings.working_hours_start.strftime("%H:%M")
    end = settings.working_hours_end.strftime("%H:%M")
    offsets = [_offset_text(o) for o in _reminder_offsets(settings)]
    reminders = " i ".join([", ".join(offsets[:-1]), offsets[-1]]) if len(offsets) > 1 else (
        offsets[0] if offsets else ""
    )
    return {
        "working_hours": f"radnim danima od {start} do {end}",
        "training_reminders": reminders,
    }


def _reminder_offsets(settings: Settings) -> tuple[timedelta, ...]:
    """TRAINING_REMINDERS (e.g. "24h,1h"); the default offsets when it is blank."""
    raw = settings.training_reminders
    return parse_offsets(raw) if raw.strip() else DEFAULT_REMINDER_OFFSETS
