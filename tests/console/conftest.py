"""The console tests' running bot: one per module and backend, with one configured admin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.clock import Clock
from tests.fakes.harness import BotUnderTest

ADMIN = 7001  # the admin (ADMIN_IDS) who signs in to the console


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clock() -> Clock:
    return Clock()


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def bot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, clock: Clock
) -> AsyncIterator[BotUnderTest]:
    async with (
        fresh_database_url(request.param, tmp_path_factory.mktemp("db")) as url,
        FakeBotAPI() as api,
        BotUnderTest(api, url, admin_ids=[ADMIN], clock=clock) as running,
    ):
        yield running
