"""Privacy and audit as clerks and admins meet them in Telegram: the real runtime and handlers, a
real database (SQLite and PostgreSQL), the fake Bot API."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import select

from storage.models import Question
from storage.operations import REDACTED, AuditEntry, PrivacyRequest
from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.harness import BotUnderTest, Clerk

pytestmark = pytest.mark.asyncio(loop_scope="module")
ADMIN = 777_001
_ids = itertools.count(778_001)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def bot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BotUnderTest]:
    async with (
        fresh_database_url(request.param, tmp_path_factory.mktemp("db")) as url,
        FakeBotAPI() as api,
        BotUnderTest(api, url, admin_ids=[ADMIN]) as running,
    ):
        yield running


def new_clerk(bot: BotUnderTest) -> Clerk:
    return bot.clerk(next(_ids), language_code=None)


async def test_start_shows_the_privacy_notice(bot: BotUnderTest) -> None:
    seen = await new_clerk(bot).say("/start")
    text = "\n".join(message.text for message in seen)
    assert "/moji_podaci" in text and "/obrisi_me" in text


async def test_clerk_receives_their_data_as_a_json_file(bot: BotUnderTest) -> None:
    clerk = new_clerk(bot)
    await clerk.say("kako da dobijem pristup ezupu")
    seen = await clerk.say("/moji_podaci")
    assert [m.method for m in seen] == ["sendDocument"]
    call = bot.api.calls_of("sendDocument")[-1]
    assert call.chat_id == clerk.user_id
    document = call.params["document"]
    if isinstance(document, str) and document.startswith("attach://"):
        document = call.params[document.removeprefix("attach://")]  # multipart upload
    assert document["filename"].startswith("moji_podaci_")
    assert document["filename"].endswith(".json")
    assert document["size"] > 100
    assert "/obrisi_me" in seen[0].text  # the caption
    stored = await bot.stored_user(clerk.user_id)
    assert stored is not None and bot.services is not None
    async with bot.services.database.uow() as uow:
        records = list(
            await uow.session.scalars(
                select(PrivacyRequest).where(PrivacyRequest.user_id == stored.id)
            )
        )
    assert [r.kind for r in records] == ["export"]


async def test_deletion_needs_confirmation_and_can_be_declined(bot: BotUnderTest) -> None:
    clerk = new_clerk(bot)
    await clerk.say("kako da dobijem pristup ezupu")
    prompt = await clerk.say("/obrisi_me")
    assert "ne može poništiti" in prompt[-1].text
    shown = await clerk.tap("Ne, odustani")
    assert "ništa nije obrisano" in shown[-1].text
    stored = await bot.stored_user(clerk.user_id)
    assert stored is not None and stored.active
    assert [q.text for q in await bot.stored_questions(clerk.user_id)] == [
        "kako da dobijem pristup ezupu"
    ]


async def test_confirmed_deletion_removes_the_clerks_data(bot: BotUnderTest) -> None:
    clerk = new_clerk(bot)
    await clerk.say("kako da dobijem pristup ezupu")
    before = await bot.stored_user(clerk.user_id)
    assert before is not None
    await clerk.say("/obrisi_me")
    shown = await clerk.tap("Da, obriši")
    assert "obrisani" in shown[-1].text
    assert await bot.stored_user(clerk.user_id) is None  # the Telegram id is gone
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        row = await uow.users.get(before.id)
        assert row is not None and not row.active and row.display_name is None
        texts = list(
            await uow.session.scalars(select(Question.text).where(Question.user_id == before.id))
        )
        assert texts == [REDACTED]
        audit = list(
            await uow.session.scalars(
                select(AuditEntry).where(AuditEntry.action == "privacy.delete")
            )
        )
        assert f"user:{before.id}" in [a.target for a in audit]
    # Writing again starts a new account.
    await clerk.say("dobar dan")
    again = await bot.stored_user(clerk.user_id)
    assert again is not None and again.id != before.id


async def test_admin_reads_the_audit_and_a_clerk_cannot(bot: BotUnderTest) -> None:
    clerk = new_clerk(bot)
    await clerk.say("kako da dobijem pristup ezupu")
    await clerk.say("/obrisi_me")
    await clerk.tap("Da, obriši")

    refused = await new_clerk(bot).say("/audit")
    assert "administratorima" in refused[-1].text
    assert "privacy.delete" not in refused[-1].text

    admin = bot.clerk(ADMIN, language_code=None)
    shown = await admin.say("/audit")
    assert "privacy.delete" in "\n".join(m.text for m in shown)
