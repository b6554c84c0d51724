"""Privacy on Viber, as on Telegram: /moji_podaci sends everything we hold about the clerk as a
JSON file (Viber fetches it from a signed link that works only for a few minutes), /obrisi_me
deletes their data after a confirmation button. The real channel and services, the fake Viber
API, a real database (SQLite and PostgreSQL); deletion is checked in the database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import select

from bot.services.privacy import EXPORT_KIND, EXPORT_LINK_SECONDS, REDACTED
from storage.clock import utcnow
from storage.models import OutboxMessage, Question, User
from storage.operations import PrivacyRequest
from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.viber_api import FakeViberAPI, ViberBotUnderTest, ViberMessage, ViberUser

pytestmark = pytest.mark.asyncio(loop_scope="module")

QUESTION = "Kako naš organ dobija pristup podacima iz službenih evidencija preko eZUP-a?"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def bot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ViberBotUnderTest]:
    """One running Viber channel per backend, with a public URL Viber can fetch files from."""
    async with (
        fresh_database_url(request.param, tmp_path_factory.mktemp("db")) as url,
        FakeViberAPI() as api,
        ViberBotUnderTest(api, url) as running,
    ):
        assert running.channel is not None
        running.channel.settings.webhook_url = running.webhook_url
        yield running


async def stored_user(bot: ViberBotUnderTest, user: ViberUser) -> User | None:
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        return await uow.users.get_by_external("viber", user.id)


async def export_rows(bot: ViberBotUnderTest, user_id: int) -> list[OutboxMessage]:
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        rows = await uow.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.user_id == user_id, OutboxMessage.kind == EXPORT_KIND)
            .order_by(OutboxMessage.id)
        )
        return list(rows)


async def fetch(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, response.content_type, await response.read()


async def clerk_with_a_question(bot: ViberBotUnderTest, name: str) -> tuple[ViberUser, User]:
    clerk = bot.user(name=name)
    await clerk.say(QUESTION)
    row = await stored_user(bot, clerk)
    assert row is not None
    return clerk, row


async def my_data(bot: ViberBotUnderTest, clerk: ViberUser) -> tuple[ViberMessage, ViberMessage]:
    """/moji_podaci, then the dispatcher delivers the file (and the caption after it)."""
    before = len(clerk.chat)
    assert await clerk.say("/moji_podaci") == []  # the file goes through the outbox
    assert await bot.dispatcher().drain() == 1
    file_message, caption = clerk.chat[before:]
    return file_message, caption


# -- /moji_podaci ---------------------------------------------------------------------------


async def test_my_data_arrives_as_a_json_file_viber_fetches_from_our_link(
    bot: ViberBotUnderTest,
) -> None:
    clerk, row = await clerk_with_a_question(bot, "Dragana Ilić")
    file_message, caption = await my_data(bot, clerk)

    assert file_message.type == "file"
    name = str(file_message.body["file_name"])
    assert name.startswith("moji_podaci_") and name.endswith(".json")
    assert file_message.file is not None  # what Viber fetched from the bot's link
    assert file_message.body["size"] == len(file_message.file)
    document = json.loads(file_message.file)
    assert document["user"]["display_name"] == "Dragana Ilić"
    assert document["user"]["external_id"] == clerk.id
    assert [q["text"] for q in document["data"]["questions"]] == [QUESTION]
    assert "/obrisi_me" in caption.text and caption.buttons  # the keyboard stays on the text

    # The link, fetched from the bot's HTTP app, gives the same JSON.
    url = str(file_message.body["media"])
    status, content_type, body = await fetch(url)
    assert (status, content_type, body) == (200, "application/json", file_message.file)
    # Wrong signature, another file name, another row: nothing.
    prefix, signature, filename = url.rsplit("/", 2)
    wrong = "0" * len(signature)
    assert (await fetch(f"{prefix}/{wrong}/{filename}"))[0] == 404
    assert (await fetch(f"{prefix}/{signature}/x{filename}"))[0] == 404
    base, outbox_id = prefix.rsplit("/", 1)
    assert (await fetch(f"{base}/{int(outbox_id) + 1000}/{signature}/{filename}"))[0] == 404

    # The row is short-lived, and the request is recorded (counts only).
    (export,) = await export_rows(bot, row.id)
    assert export.status == "sent" and export.expires_at is not None
    assert export.expires_at - export.created_at <= timedelta(seconds=EXPORT_LINK_SECONDS + 5)
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        records = await uow.session.scalars(
            select(PrivacyRequest).where(PrivacyRequest.user_id == row.id)
        )
        assert [r.kind for r in records] == ["export"]


async def test_the_export_link_expires_and_the_file_bytes_are_cleared(
    bot: ViberBotUnderTest,
) -> None:
    assert bot.services is not None
    clerk, row = await clerk_with_a_question(bot, "Nenad")
    file_message, _caption = await my_data(bot, clerk)
    url = str(file_message.body["media"])
    assert (await fetch(url))[0] == 200

    # Past the row's expiry the link opens nothing (even with a valid signature) ...
    (export,) = await export_rows(bot, row.id)
    async with bot.services.database.uow() as uow:
        stored = await uow.outbox.get(export.id)
        assert stored is not None
        stored.expires_at = utcnow() - timedelta(seconds=1)
        await uow.commit()
    assert (await fetch(url))[0] == 404

    # ... and the retention job removes the bytes; a second run has nothing left to clear.
    counts = await bot.services.privacy.apply_retention()
    assert counts["export_files"] >= 1
    (export,) = await export_rows(bot, row.id)
    assert export.payload["document"] == {"filename": file_message.body["file_name"]}
    assert export.payload["text"]  # the caption (no personal data) stays
    assert (await bot.services.privacy.apply_retention())["export_files"] == 0
    assert await bot.services.privacy.clear_expired_exports() == 0


async def test_an_export_not_sent_in_time_is_dropped_not_sent_late(
    bot: ViberBotUnderTest,
) -> None:
    clerk, row = await clerk_with_a_question(bot, "Zoran")
    before = len(clerk.chat)
    await clerk.say("/moji_podaci")
    late = utcnow() + timedelta(seconds=EXPORT_LINK_SECONDS + 60)
    assert await bot.dispatcher(clock=lambda: late).drain() == 1
    assert len(clerk.chat) == before
    (export,) = await export_rows(bot, row.id)
    assert export.status == "expired"


# -- /obrisi_me -----------------------------------------------------------------------------


async def test_delete_me_then_yes_deletes_the_clerks_data(bot: ViberBotUnderTest) -> None:
    assert bot.services is not None
    clerk, row = await clerk_with_a_question(bot, "Milena Marković")
    file_message, _caption = await my_data(bot, clerk)

    (prompt,) = await clerk.say("/obrisi_me")
    assert "obrišete svoje podatke" in prompt.text
    yes, no = prompt.action("Da, obriši"), prompt.action("Ne, odustani")
    assert yes.startswith("act:pd:yes:") and yes.rsplit(":", 1)[1].isdigit()
    assert no == "act:pd:no:0"

    (done,) = await clerk.tap("Da, obriši", prompt)
    assert "obrisani" in done.text

    async with bot.services.database.uow() as uow:
        user = await uow.users.get(row.id)
        assert user is not None
        assert user.display_name is None and user.active is False
        assert user.external_id.startswith("deleted-") and clerk.id not in user.external_id
        questions = list(
            await uow.session.scalars(select(Question).where(Question.user_id == row.id))
        )
        assert [q.text for q in questions] == [REDACTED]
        assert questions[0].decision == "answer"  # statistics stay
        records = await uow.session.scalars(
            select(PrivacyRequest).where(PrivacyRequest.user_id == row.id)
        )
        assert [r.kind for r in records] == ["export", "deletion"]
    # The export file went with the rest, and its link opens nothing.
    (export,) = await export_rows(bot, row.id)
    assert export.payload == {"text": REDACTED}
    assert (await fetch(str(file_message.body["media"])))[0] == 404
    assert await stored_user(bot, clerk) is None

    # Writing again starts as a new user.
    await clerk.say("dobar dan")
    again = await stored_user(bot, clerk)
    assert again is not None and again.id != row.id


async def test_delete_me_then_no_keeps_everything(bot: ViberBotUnderTest) -> None:
    clerk, row = await clerk_with_a_question(bot, "Petar Perić")
    (prompt,) = await clerk.say("/obrisi_me")
    (answer,) = await clerk.tap("Ne, odustani", prompt)
    assert "ništa nije obrisano" in answer.text
    kept = await stored_user(bot, clerk)
    assert kept is not None and kept.id == row.id
    assert kept.display_name == "Petar Perić" and kept.active
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        questions = await uow.session.scalars(select(Question).where(Question.user_id == row.id))
        assert [q.text for q in questions] == [QUESTION]


async def test_old_or_forged_deletion_buttons_delete_nothing(bot: ViberBotUnderTest) -> None:
    assert bot.services is not None
    clerk, row = await clerk_with_a_question(bot, "Jelena")
    (expired,) = await clerk.tap_action("act:pd:yes:1000")
    assert "Potvrda je istekla" in expired.text
    (forged,) = await clerk.tap_action("act:pd:yes:soon")
    assert "više nije dostupna" in forged.text
    (odd,) = await clerk.tap_action("act:pd:maybe:0")
    assert "više nije dostupna" in odd.text
    kept = await stored_user(bot, clerk)
    assert kept is not None and kept.id == row.id and kept.display_name == "Jelena"


async def test_privacy_commands_follow_the_users_language(bot: ViberBotUnderTest) -> None:
    reader = bot.user(name="Ana", language="en")
    await reader.say("/jezik")
    await reader.tap_action("act:lang:en")
    (prompt,) = await reader.say("/obrisi_me")
    assert "delete" in prompt.text.lower()
    (answer,) = await reader.tap_action("act:pd:no:0")
    assert "obrisano" not in answer.text
