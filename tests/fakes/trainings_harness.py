"""Trainings and broadcasts on top of tests/fakes/harness.py: an admin and clerks in private chats,
services on an injected clock, the outbox drained on demand (no background work runs, so the
test decides when messages go out and when the broadcast tick happens).

    clock = Clock()                         # next ordinary Wednesday, 10:00 in Belgrade
    async with FakeBotAPI() as api, TrainingsBot(api, url, clock=clock) as bot:
        admin = bot.admin()
        await admin.say("/obuka_nova")
        ...
        await bot.deliver_outbox()          # what the dispatcher would send now

The routers of handlers/trainings.py and handlers/broadcast.py are put into the root router
before the clerk's catch-all (as handlers/__init__.py does once they are wired there), and the
services are handed to handlers as dispatcher data.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.app import build_services
from bot.channels.telegram_sender import TelegramSender
from bot.outbox import OutboxDispatcher
from bot.ratelimit import LocalRateLimiter
from bot.runtime import Runtime, RuntimeOptions
from tests.fakes.bot_api import FakeBotAPI, SentMessage
from tests.fakes.clock import BELGRADE, Clock  # noqa: F401  (re-exported for the tests)
from tests.fakes.harness import FAST_RETRIES, BotUnderTest, Clerk

ADMIN_ID = 9100


def wire_routers(dispatcher: Dispatcher) -> None:
    """Put the trainings and broadcast routers before the clerk router (its text handler takes
    any text, so dialogue answers must be seen first). Does nothing once handlers/__init__.py
    includes them itself."""
    from handlers import broadcast, trainings

    root = next(r for r in dispatcher.sub_routers if r.name == "handlers")
    names = [r.name for r in root.sub_routers]
    if "trainings" in names:
        return
    mine: list[Router] = [trainings.build_router(), broadcast.build_router()]
    for router in mine:
        root.include_router(router)  # appended last; moved before "clerk" below
    ordered = [r for r in root.sub_routers if r not in mine]
    position = next((i for i, r in enumerate(ordered) if r.name == "clerk"), len(ordered))
    root.sub_routers[:] = ordered[:position] + mine + ordered[position:]


class TrainingsBot(BotUnderTest):
    def __init__(
        self,
        api: FakeBotAPI,
        database_url: str,
        *,
        clock: Clock,
        admin_id: int = ADMIN_ID,
        **settings: Any,
    ) -> None:
        options = RuntimeOptions(
            retry=FAST_RETRIES, polling_timeout=1, shutdown_grace=5, publish_commands=False,
            background_work=False,
        )
        super().__init__(
            api, database_url, options=options, admin_ids=[admin_id], clock=clock, **settings
        )
        self.admin_id = admin_id
        self.outbox: OutboxDispatcher | None = None
        self.delivery_bot: Bot | None = None

    async def start(self) -> TrainingsBot:
        settings = self.settings()
        services = await build_services(settings, clock=self.clock)  # all on the test's clock
        self.services = services
        self.runtime = Runtime(settings, services, self.options)
        dispatcher = self.runtime.telegram.dispatcher
        # What the runner passes as Dispatcher(...) keyword arguments once wired.
        dispatcher.workflow_data["trainings"] = services.trainings
        dispatcher.workflow_data["broadcasts"] = services.broadcasts
        dispatcher.workflow_data["interests"] = services.interests
        wire_routers(dispatcher)
        await self.runtime.start()
        self._http = aiohttp.ClientSession()
        # As bot.runtime.BackgroundWork does: a Bot of its own, without the retry middleware (the
        # dispatcher paces, retries and marks 403s itself).
        self.delivery_bot = Bot(
            token=self.api.token,
            session=AiohttpSession(api=TelegramAPIServer.from_base(self.api.base_url)),
            default=DefaultBotProperties(link_preview_is_disabled=True),
        )
        self.outbox = self.dispatcher_with()
        return self

    async def __aenter__(self) -> TrainingsBot:
        return await self.start()

    def dispatcher_with(self, batch_size: int = 60) -> OutboxDispatcher:
        assert self.services is not None and self.delivery_bot is not None
        limiter = LocalRateLimiter(per_second=1000, per_chat_interval=0, per_group_interval=0)
        return OutboxDispatcher(
            self.services.database, {"telegram": TelegramSender(self.delivery_bot)}, limiter,
            batch_size=batch_size, clock=self.clock,
        )

    async def stop(self) -> None:
        if self.delivery_bot is not None:
            await self.delivery_bot.session.close()
            self.delivery_bot = None
        await super().stop()

    async def deliver_outbox(self) -> int:
        """Send everything due now (by the test's clock), as the running dispatcher would."""
        assert self.outbox is not None
        return await self.outbox.drain()

    async def tick(self) -> None:
        """The scheduler's broadcast job (every 2 s in production)."""
        assert self.services is not None
        await self.services.broadcasts.tick()

    def admin(self) -> Clerk:
        return self.clerk(self.admin_id, None)

    async def set_municipality(self, telegram_id: int, municipality: str | None) -> None:
        assert self.services is not None
        async with self.services.database.uow() as uow:
            row = await uow.users.get_by_external("telegram", str(telegram_id))
            assert row is not None
            row.municipality = municipality
            await uow.commit()


def documents(api: FakeBotAPI, chat_id: int) -> list[SentMessage]:
    return [m for m in api.seen_by(chat_id) if m.method == "sendDocument"]


def texts(api: FakeBotAPI, chat_id: int, part: str) -> list[str]:
    return [m.text for m in api.seen_by(chat_id) if part in m.text]


