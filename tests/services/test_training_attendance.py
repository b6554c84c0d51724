"""Training attendance and feedback end to end (issue #16): the real runtime and handlers, a
real database (SQLite and PostgreSQL), the fake Bot API, the injected clock, the outbox drained
as the dispatcher would.

Clerks sign up -> at the start the check-in message ("Prisutan/na sam") arrives through the
outbox -> a check-in counts once however often it is tapped -> the trainer marks the others
from a toggle list (/prisustvo) -> after the end every attendee gets one feedback question with
the materials link -> a rating and a comment are kept once."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from storage.models import OutboxMessage
from storage.operations import AuditEntry
from storage.trainings import Registration
from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.clock import Clock
from tests.fakes.trainings_harness import TrainingsBot, texts
from tests.telegram.test_trainings_telegram import create_training, training_start, typed

_ids = itertools.count(47_001)


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    async with fresh_database_url(request.param, tmp_path) as database_url:
        yield database_url


async def _user_id(bot: TrainingsBot, telegram_id: int) -> int:
    assert bot.services is not None
    async with bot.services.database.uow(read_only=True) as uow:
        row = await uow.users.get_by_external("telegram", str(telegram_id))
        assert row is not None
        return row.id


async def _registrations(bot: TrainingsBot) -> dict[int, Registration]:
    assert bot.services is not None
    async with bot.services.database.uow(read_only=True) as uow:
        rows = (await uow.session.scalars(select(Registration))).all()
        return {r.user_id: r for r in rows}


async def _outbox(bot: TrainingsBot, prefix: str) -> list[OutboxMessage]:
    assert bot.services is not None
    async with bot.services.database.uow(read_only=True) as uow:
        stmt = select(OutboxMessage).where(OutboxMessage.dedupe_key.startswith(prefix))
        return list((await uow.session.scalars(stmt)).all())


async def test_check_in_trainer_list_feedback_and_materials(url: str):
    clock = Clock()
    start = training_start(clock(), days=3)
    ana_id, boris_id, vesna_id, mentor_less = next(_ids), next(_ids), next(_ids), next(_ids)
    async with FakeBot(url, clock) as bot:
        ana, boris, vesna = (bot.clerk(i, None) for i in (ana_id, boris_id, vesna_id))
        outsider = bot.clerk(mentor_less, None)
        for clerk in (ana, boris, vesna, outsider):
            await clerk.say("/obuke")
        admin = bot.admin()
        await create_training(admin, "eZUP u praksi", when=typed(start))
        await bot.deliver_outbox()
        for clerk in (ana, boris, vesna):
            assert "Prijavljeni ste" in (await clerk.tap("Prijavi se"))[-1].text
        await bot.deliver_outbox()

        # The trainer adds the materials link before the training (from the admin's view).
        await admin.say("/obuke")
        await admin.tap("⚙️")
        assert "Prisustvo" in admin.last.button_labels
        await admin.tap("Materijali")
        assert "link" in (await admin.say("nije link"))[-1].text
        saved = (await admin.say("https://materijali.example.rs/ezup.pdf"))[-1]
        assert "Link ka materijalima je sačuvan" in saved.text

        # Nothing before the start; the check-in message at the start, once.
        clock.set(start - timedelta(minutes=1))
        await bot.deliver_outbox()
        assert not texts(bot.api, ana_id, "potvrdite prisustvo")
        clock.set(start + timedelta(minutes=2))
        await bot.deliver_outbox()
        await bot.deliver_outbox()
        assert len(texts(bot.api, ana_id, "potvrdite prisustvo")) == 1
        checkin = bot.api.last_seen(ana_id)
        assert checkin.button_labels == ["Prisutan/na sam"]

        # Ana checks in; a second tap (or a redelivered one) changes nothing.
        assert "Prisustvo je zabeleženo" in (await ana.tap("Prisutan/na sam"))[-1].text
        assert "već zabeleženo" in (await ana.tap("Prisutan/na sam", checkin))[-1].text
        ana_uid = await _user_id(bot, ana_id)
        assert len(await _outbox(bot, "tfeedback:")) == 1

        # A clerk who is not a trainer cannot see or change the list.
        assert "samo predavač" in (await outsider.say("/prisustvo"))[-1].text

        # The trainer marks Boris present from the list, then Vesna, then un-marks Vesna.
        listing = (await admin.say("/prisustvo"))[-1]
        assert any("eZUP u praksi" in label for label in listing.button_labels)
        table = (await admin.tap("eZUP u praksi"))[-1]
        assert "Prisutno: 1 od 3" in table.text
        boris_uid, vesna_uid = await _user_id(bot, boris_id), await _user_id(bot, vesna_id)
        assert table.callback_data("✅") == f"tr:at:{_tid(table)}:{ana_uid}"
        edited = await admin.tap_data(f"tr:at:{_tid(table)}:{boris_uid}", table)
        assert "Prisutno: 2 od 3" in edited[-1].text
        table = edited[-1]
        await admin.tap_data(f"tr:at:{_tid(table)}:{vesna_uid}", table)
        table = admin.last
        assert "Prisutno: 3 od 3" in table.text
        await admin.tap_data(f"tr:at:{_tid(table)}:{vesna_uid}", table)
        assert "Prisutno: 2 od 3" in admin.last.text
        # A clerk forging the trainer's token is refused.
        forged = await outsider.tap_data(f"tr:at:{_tid(table)}:{vesna_uid}", table)
        assert "samo predavač" in forged[-1].text

        # After the end: one feedback question each for Ana and Boris, with the materials.
        clock.set(start + timedelta(minutes=95))
        await bot.deliver_outbox()
        await bot.deliver_outbox()
        for clerk_id in (ana_id, boris_id):
            [question] = texts(bot.api, clerk_id, "Kako biste je ocenili")
            assert "https://materijali.example.rs/ezup.pdf" in question
        assert texts(bot.api, vesna_id, "Kako biste je ocenili") == []
        assert "tokom obuke" in (await vesna.tap("Prisutan/na sam"))[-1].text

        # The rating is kept once; the comment after it.
        thanks = (await ana.tap("4"))[-1]
        assert "Hvala na oceni 4" in thanks.text and thanks.button_labels == ["Dodaj komentar"]
        assert "(4) je već zabeležena" in (await ana.tap("5"))[-1].text
        await ana.tap("Dodaj komentar")
        assert "Komentar je zabeležen" in (await ana.say("Korisno, više primera"))[-1].text
        assert "samo polaznici" in (await vesna.tap_data("tr:f:1:5", table))[-1].text

        regs = await _registrations(bot)
        assert regs[ana_uid].attended_at is not None and regs[ana_uid].rating == 4
        assert regs[ana_uid].comment == "Korisno, više primera"
        assert regs[ana_uid].attendance_marked_by == ana_uid  # her own check-in
        assert regs[boris_uid].attended_at is not None and regs[boris_uid].rating is None
        assert regs[boris_uid].attendance_marked_by != boris_uid  # the trainer's mark
        assert regs[vesna_uid].attended_at is None
        statuses = sorted(m.status for m in await _outbox(bot, "tfeedback:"))
        assert statuses == ["cancelled", "sent", "sent"]  # Vesna's un-marked one never went
        assert bot.services is not None
        async with bot.services.database.uow(read_only=True) as uow:
            actions = (await uow.session.scalars(select(AuditEntry.action))).all()
        assert actions.count("training.attendance") == 3
        assert actions.count("training.materials") == 1


async def test_cancelled_registration_gets_no_check_in(url: str):
    clock = Clock()
    start = training_start(clock(), days=2)
    ana_id = next(_ids)
    async with FakeBot(url, clock) as bot:
        ana = bot.clerk(ana_id, None)
        await ana.say("/obuke")
        await create_training(bot.admin(), "ePlaćanje", when=typed(start))
        await bot.deliver_outbox()
        await ana.tap("Prijavi se")
        await ana.tap("Odjavi se")
        clock.set(start + timedelta(minutes=1))
        await bot.deliver_outbox()
        assert not texts(bot.api, ana_id, "potvrdite prisustvo")
        [row] = await _outbox(bot, "checkin:")
        assert row.status == "cancelled"


def _tid(message) -> int:
    data = next(d for d in _all_data(message) if d.startswith("tr:at:"))
    return int(data.split(":")[2])


def _all_data(message) -> list[str]:
    return [b.get("callback_data", "") for row in message.keyboard for b in row]


class FakeBot:
    """A TrainingsBot with its fake Bot API, as one context manager."""

    def __init__(self, url: str, clock: Clock) -> None:
        from tests.fakes.bot_api import FakeBotAPI

        self._api = FakeBotAPI()
        self._url = url
        self._clock = clock
        self._bot: TrainingsBot | None = None

    async def __aenter__(self) -> TrainingsBot:
        api = await self._api.__aenter__()
        self._bot = TrainingsBot(api, self._url, clock=self._clock)
        await self._bot.start()
        return self._bot

    async def __aexit__(self, *exc: object) -> None:
        if self._bot is not None:
            await self._bot.stop()
        await self._api.__aexit__(*exc)





async def test_messages_in_latin_cyrillic_and_english(database) -> None:
    from datetime import UTC, datetime

    from bot.services.attendance import AttendanceService
    from storage.trainings import Training

    service = AttendanceService(database)
    row = Training(id=5, title="eZUP <uvod>", starts_at=datetime(2027, 1, 5, 9, tzinfo=UTC),
                   duration_minutes=90, materials_link="https://m.example.rs/a?x=1&y=2")
    latin, cyrillic, english = (service.checkin_message(row, lang)
                                for lang in ("sr-Latn", "sr-Cyrl", "en"))
    assert [b.label for b in latin.buttons[0]] == ["Prisutan/na sam"]
    assert [b.label for b in cyrillic.buttons[0]] == ["Присутан/на сам"]
    assert [b.label for b in english.buttons[0]] == ["I am present"]
    assert latin.buttons[0][0].action == "tr:in:5"
    assert "eZUP &lt;uvod&gt;" in english.text and "is starting" in english.text
    feedback = service.feedback_message(row, "en")
    assert "How would you rate it" in feedback.text
    assert 'href="https://m.example.rs/a?x=1&amp;y=2"' in feedback.text
    assert [b.action for b in feedback.buttons[0]] == [f"tr:f:5:{n}" for n in range(1, 6)]
