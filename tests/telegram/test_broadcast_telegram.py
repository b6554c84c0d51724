"""/obavestenje end to end: the real runtime and handlers, a real database (SQLite and
PostgreSQL), the fake Bot API over HTTP with 429s, 403s and a 400 injected, the outbox drained and
the broadcast tick run as the background work would."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.bot_api import FakeBotAPI, SentMessage
from tests.fakes.trainings_harness import Clock, TrainingsBot, texts

_ids = itertools.count(50_001)


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    async with fresh_database_url(request.param, tmp_path) as database_url:
        yield database_url


async def clerks(bot: TrainingsBot, count: int, municipality: str) -> list[int]:
    ids = [next(_ids) for _ in range(count)]
    for telegram_id in ids:
        await bot.clerk(telegram_id, None).say("/obuke")
        await bot.set_municipality(telegram_id, municipality)
    return ids


def progress_of(bot: TrainingsBot, number: int) -> SentMessage:
    return next(m for m in bot.api.seen_by(bot.admin_id) if f"#{number}" in m.text)


async def settle(bot: TrainingsBot, clock: Clock, rounds: int = 6) -> None:
    """Let retries come due, send, and let the tick update progress and report."""
    for _ in range(rounds):
        clock.advance(seconds=2)
        await bot.deliver_outbox()
        await bot.tick()
    await bot.deliver_outbox()


async def test_broadcast_to_municipality_with_429_403_and_400_reports_counts(url: str):
    clock = Clock()
    async with FakeBotAPI() as api, TrainingsBot(api, url, clock=clock) as bot:
        novi_sad = await clerks(bot, 6, "Novi Sad")
        nis = await clerks(bot, 2, "Niš")
        admin = bot.admin()
        prompt = (await admin.say("/obavestenje"))[-1]
        assert "tekst obaveštenja" in prompt.text
        assert "nije dozvoljena" in (await admin.say("<script>alert(1)</script>"))[-1].text
        assert "nije zatvorena" in (await admin.say("<b>bez kraja"))[-1].text
        choice = (await admin.say("<b>Novo</b> u eZUP-u & ePlaćanju"))[-1]
        assert "<b>Novo</b> u eZUP-u &amp; ePlaćanju" in choice.text
        assert "Svih korisnika: 9." in choice.text  # 8 clerks and the admin
        assert "Svima (9)" in choice.button_labels
        await admin.tap("Po opštinama")
        assert "Ne poznajem opštinu" in (await admin.say("Atlantida"))[-1].text
        preview = (await admin.say("Novi Sad"))[-1]
        assert "ukupno 6" in preview.text and "<b>Novo</b>" in preview.text
        assert preview.button_labels == ["Pošalji", "Odustani"]
        started = await admin.tap("Pošalji")
        assert "Slanje je počelo: 6 primalaca." in started[-1].text
        assert preview.message_id in [m.message_id for m in started]  # buttons dropped
        assert api.seen_by(bot.admin_id)[-2].button_labels == []

        # The progress message goes out first; then the deliveries, some of them refused.
        one_by_one = bot.dispatcher_with(batch_size=1)
        await one_by_one.run_once()
        number = progress_of_number(bot)
        assert progress_of(bot, number).button_labels == ["Zaustavi slanje"]
        api.fail_next(2, status=403, method="sendMessage")
        api.fail_next(1, status=429, retry_after=1, method="sendMessage")
        api.fail_next(1, status=400, method="sendMessage",
                      description="Bad Request: can't parse entities")
        await one_by_one.run_once()
        await one_by_one.run_once()
        await bot.tick()
        await bot.deliver_outbox()
        assert "poslato" in progress_of(bot, number).text  # edited while it goes
        await settle(bot, clock)

        got = [chat for chat in novi_sad if texts(api, chat, "u eZUP-u")]
        assert len(got) == 3 and all(len(texts(api, c, "u eZUP-u")) == 1 for c in got)
        assert not any(texts(api, chat, "u eZUP-u") for chat in nis)
        report = [m.text for m in api.seen_by(bot.admin_id) if m.text.startswith("✅")]
        assert len(report) == 1
        assert "poslato 3, blokirali bota 2, neuspešno 1, otkazano 0" in report[0]
        final = progress_of(bot, number)
        assert "je završeno" in final.text and final.button_labels == []
        async with bot.services.database.uow() as uow:  # type: ignore[union-attr]
            assert await uow.users.count_active() == 9 - 2  # the two who blocked the bot


def progress_of_number(bot: TrainingsBot) -> int:
    """The broadcast number shown on the newest progress message."""
    for message in reversed(bot.api.seen_by(bot.admin_id)):
        if "Obaveštenje #" in message.text:
            return int(message.text.split("#", 1)[1].split(":", 1)[0].split(" ", 1)[0])
    raise LookupError("no progress message")


async def test_running_broadcast_is_stopped_and_clerks_cannot_start_one(url: str):
    clock = Clock()
    async with FakeBotAPI() as api, TrainingsBot(api, url, clock=clock) as bot:
        people = await clerks(bot, 4, "Čačak")
        admin = bot.admin()

        # A draft abandoned at the preview is never sent.
        await admin.say("/obavestenje Probni tekst")
        await admin.tap("Svima")
        assert "Odustali ste" in (await admin.tap("Odustani"))[-1].text

        # By role, chosen with buttons, from the text given with the command.
        choice = (await admin.say("/obavestenje <i>Hitno</i>: novi rok"))[-1]
        assert "<i>Hitno</i>: novi rok" in choice.text
        await admin.tap("Po ulozi")
        preview = (await admin.tap("službenici"))[-1]
        assert "uloga: službenici" in preview.text and "ukupno 4" in preview.text
        await admin.tap("Pošalji")
        one_by_one = bot.dispatcher_with(batch_size=1)
        await one_by_one.run_once()  # the progress message
        number = progress_of_number(bot)
        stopped = (await admin.tap("Zaustavi", progress_of(bot, number)))[-1]
        assert "Slanje je zaustavljeno; 4 poruka nije poslato." in stopped.text
        await settle(bot, clock, rounds=2)
        assert not any(texts(api, chat, "novi rok") for chat in people)
        report = [m.text for m in api.seen_by(bot.admin_id) if m.text.startswith("✅")]
        assert len(report) == 1 and "poslato 0" in report[0] and "otkazano 4" in report[0]

        # By service interest, with the service buttons.
        await admin.say("/obavestenje ePlaćanje radi")
        await admin.tap("Po usluzi")
        preview = (await admin.tap("ePlaćanje"))[-1]
        assert "zainteresovani za: ePlaćanje" in preview.text and "ukupno 5" in preview.text

        # A clerk is refused politely, also with a forged button.
        clerk = bot.clerk(people[0], None)
        assert "samo administratori" in (await clerk.say("/obavestenje"))[-1].text
        seen = await clerk.tap_data(preview.callback_data("Pošalji"), clerk.last)
        assert "samo administratori" in seen[-1].text
        assert "korak" not in (await clerk.say("Ovo je moj tekst"))[-1].text
