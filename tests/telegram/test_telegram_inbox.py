"""Nothing a clerk sends is lost when the bot dies mid-way (bot.inbox): the update is
kept with its dedup claim until handling ends, and a restart handles what a dead process left."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from aiogram.utils.backoff import BackoffConfig
from sqlalchemy import event, select

from bot.runtime import RuntimeOptions
from storage.clock import utcnow
from storage.models import ProcessedUpdate
from storage.uow import Carried, Database
from tests.fakes.bot_api import FakeBotAPI, message_update
from tests.fakes.harness import FAST_RETRIES, BotUnderTest
from tests.telegram.test_telegram_runner import bot_env, run_bot


async def claims(database_url: str) -> list[ProcessedUpdate]:
    database = Database.from_url(database_url)
    try:
        async with database.uow(read_only=True) as uow:
            return list(await uow.session.scalars(select(ProcessedUpdate)))
    finally:
        await database.dispose()


async def test_handled_update_is_marked_done_and_its_text_dropped(database_url: str) -> None:
    async with FakeBotAPI() as api, BotUnderTest(api, database_url) as bot:
        ana = bot.clerk(7401, language_code=None)
        await ana.say("kako da dobijem pristup ezupu")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while True:  # done marks are written in batches, about twice a second
            rows = await claims(database_url)
            if (rows and all(row.done_at is not None for row in rows)) or loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
    assert rows and all(row.done_at is not None and row.payload is None for row in rows)


async def test_unfinished_update_is_handled_again_and_given_up_after_three_tries(
    database: Database,
) -> None:
    update = message_update(90_001, 7402, "kako da dobijem pristup ezupu")
    async with database.uow() as uow:
        assert await uow.processed_updates.claim("telegram", 90_001, update)
        await uow.commit()
    later = utcnow() + timedelta(seconds=1)
    taken = []
    for _ in range(4):
        async with database.uow() as uow:
            taken.append(await uow.processed_updates.take_unfinished(
                "telegram", started_before=later + timedelta(minutes=len(taken)), max_replays=3))
            await uow.commit()
    assert [len(batch) for batch in taken] == [1, 1, 1, 0]
    assert taken[0][0]["message"]["text"] == "kako da dobijem pristup ezupu"
    async with database.uow(read_only=True) as uow:
        (row,) = await uow.session.scalars(select(ProcessedUpdate))
        assert row.done_at is not None and row.payload is None  # given up, text dropped
    # An update still being handled (claimed just now) is not taken from its instance.
    async with database.uow() as uow:
        await uow.processed_updates.claim("telegram", 90_002, update)
        assert await uow.processed_updates.take_unfinished(
            "telegram", started_before=utcnow() - timedelta(seconds=60)) == []


async def test_question_in_flight_when_the_process_is_killed_is_answered_after_restart(
    tmp_path: Path,
) -> None:
    """Telegram fails every sendMessage (5xx) while the bot retries its answer, and the bot is
    killed (SIGKILL) meanwhile. getUpdates had already confirmed the update, so Telegram will
    not send it again: the restarted bot answers it from the inbox."""
    async with FakeBotAPI() as api:
        env = bot_env(
            TELEGRAM_BOT_TOKEN=api.token,
            TELEGRAM_API_BASE=api.base_url,
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
            HTTP_HOST="127.0.0.1",
            HTTP_PORT="0",
            INBOX_REPLAY_AFTER_SECONDS="1",
        )
        first = await run_bot(env, tmp_path)
        try:
            await api.wait_until(lambda: bool(api.calls_of("getUpdates")), timeout=60)
            api.fail_next(1000, status=502, method="sendMessage")
            update_id = api.next_update_id()
            await api.queue_update(message_update(update_id, 7403, "kako da dobijem pristup ezupu"))
            await api.wait_until(  # Telegram failed it; the bot is retrying
                lambda: any(c.method == "sendMessage" for c in api.calls), timeout=20)
            # the bot's next long poll tells Telegram the update was received
            await api.wait_until(
                lambda: any(int(c.params.get("offset") or 0) > update_id
                            for c in api.calls_of("getUpdates")), timeout=20)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        assert api.sent_to(7403) == []  # nothing reached the clerk
        api.clear_failures()  # Telegram is well again

        second = await run_bot(env, tmp_path)
        try:
            await api.wait_until(lambda: bool(api.sent_to(7403)), timeout=60,
                                 what="the answer after the restart")
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.communicate(), 30)
        finally:
            if second.returncode is None:
                second.kill()
                await second.wait()
    (answer,) = api.sent_to(7403)
    # a Latin question before onboarding gets a Latin answer, whatever the client's "sr" hint
    assert "pristup podacima iz službenih evidencija preko eZUP-a" in answer.text


async def test_the_replay_scan_leaves_updates_this_process_is_still_handling(
    database_url: str,
) -> None:
    """The answer takes longer than INBOX_REPLAY_AFTER_SECONDS (Telegram asks the bot to wait,
    429, three times): the scan must not take the update from its own live handler and answer
    it a second time."""
    options = RuntimeOptions(
        retry=FAST_RETRIES, polling_timeout=1,
        polling_backoff=BackoffConfig(min_delay=0.01, max_delay=0.05, factor=2, jitter=0),
        shutdown_grace=5, background_work=False, inbox_scan_every=0.2,
    )
    async with FakeBotAPI() as api, BotUnderTest(
        api, database_url, options=options, inbox_replay_after_seconds=0.5
    ) as bot:
        api.fail_next(3, status=429, retry_after=1, method="sendMessage")
        update = message_update(bot.next_update_id(), 7404, "kako da dobijem pristup ezupu")
        await bot.deliver(update, wait=False)

        def answers() -> list[str]:
            return [call.text for call in api.sent_to(7404) if "eZUP" in call.text]

        await api.wait_until(lambda: bool(answers()), timeout=20)
        await asyncio.sleep(1.5)  # a replay, had it happened, would answer by now
        assert len(answers()) == 1, answers()


async def test_a_burst_fetched_but_waiting_when_the_process_is_killed_is_all_answered(
    tmp_path: Path,
) -> None:
    """100 clerks write at once while Telegram answers nothing (held). The bot works on 64 at a
    time; the other 36 wait in memory. Once the next getUpdates has told Telegram the whole
    batch arrived, the bot is killed (SIGKILL): the restarted bot answers all 100, each once."""
    async with FakeBotAPI() as api:
        env = bot_env(
            TELEGRAM_BOT_TOKEN=api.token,
            TELEGRAM_API_BASE=api.base_url,
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
            HTTP_HOST="127.0.0.1",
            HTTP_PORT="0",
            INBOX_REPLAY_AFTER_SECONDS="1",
        )
        first = await run_bot(env, tmp_path)
        chats = range(7600, 7700)
        try:
            await api.wait_until(lambda: bool(api.calls_of("getUpdates")), timeout=60)
            api.hold("sendMessage")
            api.hold("sendChatAction")
            last = 0
            for chat in chats:
                last = await api.queue_update(
                    message_update(api.next_update_id(), chat, "kako da dobijem pristup ezupu"))
            await api.wait_until(  # Telegram has been told the whole burst arrived
                lambda: any(int(c.params.get("offset") or 0) > last
                            for c in api.calls_of("getUpdates")), timeout=30)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        api.release()
        assert not any(api.sent_to(chat) for chat in chats)

        second = await run_bot(env, tmp_path)
        try:
            await api.wait_until(lambda: all(api.sent_to(chat) for chat in chats), timeout=90,
                                 what="an answer for every clerk of the burst")
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.communicate(), 30)
        finally:
            if second.returncode is None:
                second.kill()
                await second.wait()
        assert [chat for chat in chats if len(api.sent_to(chat)) != 1] == []


async def test_claims_arriving_together_are_each_kept_and_each_id_claimed_once(
    database: Database,
) -> None:
    """Webhook claims that arrive while one is being written share the next transaction
    (bot.inbox): each caller still learns of its own update, a repeated id wins once, and every
    update is kept before its caller returns."""
    from bot.inbox import UpdateInbox
    from bot.services.delivery import DeliveryService

    inbox = UpdateInbox(DeliveryService(database))
    updates = [message_update(91_000 + n, 7500 + n, "kako do ezupa") for n in range(40)]
    results = await asyncio.gather(
        *(inbox.claim(u["update_id"], u) for u in updates),
        *(inbox.claim(u["update_id"], u) for u in updates[:10]),  # redelivered at once
    )
    assert results[:40] == [True] * 40 and results[40:] == [False] * 10
    async with database.uow(read_only=True) as uow:
        kept = list(await uow.session.scalars(
            select(ProcessedUpdate).where(ProcessedUpdate.update_id >= 91_000)))
    assert sorted(row.update_id for row in kept) == [91_000 + n for n in range(40)]
    assert all(row.payload is not None and row.done_at is None for row in kept)
    assert [await inbox.claim(91_000, updates[0])] == [False]  # a later redelivery
    await inbox.stop()


async def _done_marks(database: Database, first_id: int) -> set[int]:
    """The updates from `first_id` on that are marked done."""
    async with database.uow(read_only=True) as uow:
        rows = await uow.session.scalars(
            select(ProcessedUpdate).where(ProcessedUpdate.update_id >= first_id))
        return {row.update_id for row in rows if row.done_at is not None}


async def test_done_marks_ride_with_the_next_writing_transaction(database: Database) -> None:
    """Finished updates are written down by whichever writing transaction of the process
    commits next (storage.uow `Database.carry`, as the inbox uses it); one that does not commit
    gives the marks back and writes nothing."""
    from bot.inbox import UpdateInbox
    from bot.services.delivery import DeliveryService
    from bot.services.errors import StorageUnavailable

    async def marked() -> set[int]:
        return await _done_marks(database, 92_000)

    delivery = DeliveryService(database)
    updates = [message_update(92_000 + n, 7600 + n, "kako do ezupa") for n in range(2)]
    assert await UpdateInbox(delivery).claim_batch(updates) == {92_000, 92_001}
    waiting = {92_000}

    def take() -> set[int] | None:
        taken = set(waiting)
        waiting.clear()
        return taken or None

    written: set[int] = set()
    stop = delivery.carry_finished("telegram", take, waiting.update, written.update)
    try:
        async with database.uow() as uow:  # a use case's transaction, about something else
            await uow.users.get_or_create("telegram", "7600", display_name="Ana")
            await uow.commit()
        assert await marked() == {92_000} and not waiting and written == {92_000}

        async def refuse(_uow: object, _items: object) -> None:
            raise StorageUnavailable("refused")

        waiting.add(92_001)
        stop_refusing = database.carry(
            Carried(lambda: {1}, refuse, lambda _items: None, lambda _items: None)
        )
        with pytest.raises(StorageUnavailable):
            async with database.uow() as uow:
                await uow.users.get_or_create("telegram", "7601", display_name="Bojan")
                await uow.commit()
        stop_refusing()
        assert waiting == {92_001} and await marked() == {92_000} and written == {92_000}
        async with database.uow(read_only=True) as uow:
            assert await uow.users.get_by_external("telegram", "7601") is None
        async with database.uow() as uow:
            await uow.commit()
        assert await marked() == {92_000, 92_001}
    finally:
        stop()


async def test_a_question_written_alone_carries_the_done_marks_in_its_statement(
    database: Database,
) -> None:
    """A question that writes nothing else (`uow(one_write=True)`: on PostgreSQL one
    autocommit statement) writes the waiting done marks with it, in the same statement
    (storage.carrying); a statement that fails writes neither and gives the marks back."""
    from bot.services.delivery import DeliveryService

    async def marked() -> set[int]:
        return await _done_marks(database, 94_000)

    delivery = DeliveryService(database)
    updates = [message_update(94_000 + n, 7800 + n, "kako do ezupa") for n in range(3)]
    assert await delivery.claim_many("telegram", updates) == {94_000, 94_001, 94_002}
    async with database.uow() as uow:
        user, _ = await uow.users.get_or_create("telegram", "7800", display_name="Ana")
        await uow.commit()
    waiting = {94_000, 94_001}

    def take() -> set[int] | None:
        taken = set(waiting)
        waiting.clear()
        return taken or None

    written: set[int] = set()
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    stop = delivery.carry_finished("telegram", take, waiting.update, written.update)
    try:
        event.listen(database.engine.sync_engine, "before_cursor_execute", count)
        async with database.uow(one_write=True) as uow:
            await uow.questions.insert(user_id=user.id, text="kako do ezupa", decision="answer")
            await uow.commit()
        event.remove(database.engine.sync_engine, "before_cursor_execute", count)
        # PostgreSQL: one statement, committing by itself; SQLite: the question, the marks
        # (and its BEGIN IMMEDIATE), committed together
        one = database.dialect_name == "postgresql"
        assert len(statements) == 1 if one else len(statements) == 3, statements
        assert await marked() == {94_000, 94_001} and written == {94_000, 94_001}
        assert not waiting

        waiting.add(94_002)
        with pytest.raises(Exception):  # noqa: B017 - no such user: the statement fails
            async with database.uow(one_write=True) as uow:
                await uow.questions.insert(user_id=10**9, text="kako", decision="answer")
                await uow.commit()
        assert waiting == {94_002} and written == {94_000, 94_001}
        assert await marked() == {94_000, 94_001}
        async with database.uow(read_only=True) as uow:
            assert [q.text for q in await uow.questions.recent()] == ["kako do ezupa"]
    finally:
        stop()


async def test_a_done_mark_waits_for_a_carrier_only_while_other_updates_are_handled(
    database: Database,
) -> None:
    """While other updates are being handled (their questions are about to be stored) a
    finished update's mark waits for that transaction to carry it, instead of a transaction
    of its own; with nothing else going on it is written at once."""
    from bot.inbox import UpdateInbox
    from bot.services.delivery import DeliveryService

    async def marked() -> set[int]:
        async with database.uow(read_only=True) as uow:
            rows = await uow.session.scalars(
                select(ProcessedUpdate).where(ProcessedUpdate.update_id >= 93_000))
            return {row.update_id for row in rows if row.done_at is not None}

    async def feed(_update: dict[str, object]) -> None:
        return None

    inbox = UpdateInbox(DeliveryService(database), carry_wait=30.0)
    updates = [message_update(93_000 + n, 7700 + n, "kako do ezupa") for n in range(2)]
    assert await inbox.claim_batch(updates) == {93_000, 93_001}
    inbox.start(feed)
    await asyncio.sleep(0.2)  # its start-up replay scan is over
    try:
        inbox.started(93_000)
        inbox.started(93_001)
        inbox.finished(93_000)  # 93_001 is still being handled
        await asyncio.sleep(0.3)
        assert await marked() == set()
        async with database.uow() as uow:  # its question's transaction carries the mark
            await uow.users.get_or_create("telegram", "7701", display_name="Ana")
            await uow.commit()
        assert await marked() == {93_000}
        inbox.finished(93_001)  # nothing else going on: written at once
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while await marked() != {93_000, 93_001} and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert await marked() == {93_000, 93_001}
    finally:
        await inbox.stop()
