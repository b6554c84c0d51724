"""Wiring: one place that builds the database, knowledge base and services for every channel."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings
from bot.scheduler import Scheduler
from bot.services.answering import AnswerService
from bot.services.users import UserService
from knowledge_base.loader import load_knowledge_base
from knowledge_base.matcher import Matcher
from knowledge_base.model import KnowledgeBase
from storage.uow import Database


@dataclass
class AppServices:
    """Everything a channel needs; channels get this and nothing else."""

    settings: Settings
    database: Database
    knowledge_base: KnowledgeBase
    matcher: Matcher
    users: UserService
    answers: AnswerService

    async def close(self) -> None:
        await self.database.dispose()


def schedule_jobs(services: AppServices, scheduler: Scheduler) -> None:
    """Every feature's periodic work, registered in one place; the runner starts the scheduler.
    Jobs read their state from the database, so any instance may run them after a restart."""
    del services, scheduler  # features add their jobs here


async def build_services(settings: Settings, *, migrate: bool = True) -> AppServices:
    """Upgrade the schema, load and index the KB once, and build the services on top."""
    database = Database.from_url(settings.database_url)
    if migrate:
        await database.upgrade()
    knowledge_base = load_knowledge_base()
    matcher = Matcher.from_knowledge_base(knowledge_base)
    admins = frozenset(str(admin_id) for admin_id in settings.admin_ids)
    return AppServices(
        settings=settings,
        database=database,
        knowledge_base=knowledge_base,
        matcher=matcher,
        users=UserService(database, admins),
        answers=AnswerService(knowledge_base, matcher, database),
    )
