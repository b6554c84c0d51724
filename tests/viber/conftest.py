"""The Viber tests' shared bot: one running Viber channel per backend and test module; every
test talks as a user of its own. A module that needs more (a public URL) overrides `bot`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.viber_api import FakeViberAPI, ViberBotUnderTest


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def bot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ViberBotUnderTest]:
    async with (
        fresh_database_url(request.param, tmp_path_factory.mktemp("db")) as url,
        FakeViberAPI() as api,
        ViberBotUnderTest(api, url) as running,
    ):
        yield running
