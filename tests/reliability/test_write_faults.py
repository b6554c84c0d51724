"""A database error at each write of a clerk's question, in turn (issue #13, fault injection).

The database is real; the fault is injected below our code, at the driver: the k-th INSERT,
UPDATE or DELETE the bot sends after the question arrives fails once with the driver's own
OperationalError, as a database that goes away mid-transaction would. Whatever the write was
(the batch claim, the user row, the question, the decision, the "done" mark, a stamp of a held
claim), the clerk must get the answer exactly once in the end and the inbox must hold nothing
unfinished. The first, fault-free round counts the writes; then each one fails in turn.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiogram.utils.backoff import BackoffConfig
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.runtime import RuntimeOptions
from storage.errors import StorageUnavailable
from storage.models import ProcessedUpdate
from tests.fakes.bot_api import FakeBotAPI, message_update
from tests.fakes.harness import FAST_RETRIES, BotUnderTest

QUESTION = "kako da dobijem pristup ezupu"
WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
FIRST_CLERK = 8_800


class WriteFaults:
    """Counts the write statements sent to the engines since `arm`; fails the `fail_at`-th
    once (0: count only)."""

    def __init__(self) -> None:
        self.engines: list[AsyncEngine] = []
        self.fail_at = 0
        self.count = 0
        self.failed: list[str] = []

    def attach(self, engines: list[AsyncEngine]) -> None:
        for engine in engines:
            if engine not in self.engines:
                event.listen(engine.sync_engine, "before_cursor_execute", self._before)
                self.engines.append(engine)

    def remove(self) -> None:
        for engine in self.engines:
            event.remove(engine.sync_engine, "before_cursor_execute", self._before)

    def arm(self, fail_at: int) -> None:
        self.fail_at, self.count, self.failed = fail_at, 0, []

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not WRITE.match(statement):
            return
        self.count += 1
        if self.count == self.fail_at:
            self.failed.append(" ".join(statement.split())[:80])
            raise conn.dialect.loaded_dbapi.OperationalError("injected: the database went away")


def _options() -> RuntimeOptions:
    return RuntimeOptions(
        retry=FAST_RETRIES,
        polling_timeout=1,
        polling_backoff=BackoffConfig(min_delay=0.01, max_delay=0.05, factor=2, jitter=0),
        shutdown_grace=5,
        inbox_scan_every=0.3,
        background_work=False,
    )


async def _unfinished(bot: BotUnderTest) -> int:
    assert bot.services is not None
    async with bot.services.database.uow(read_only=True) as uow:
        rows = await uow.session.scalars(
            select(ProcessedUpdate).where(ProcessedUpdate.done_at.is_(None))
        )
        return len(list(rows))


async def _settled(bot: BotUnderTest, chat_id: int, answer: str, timeout: float = 20.0) -> int:
    """How many times the answer reached the chat, once it arrived and nothing is left to do."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        answers = [c for c in bot.api.sent_to(chat_id) if c.text == answer]
        if answers:
            try:
                if await _unfinished(bot) == 0:
                    break
            except StorageUnavailable:  # the database may still be failing a read
                pass
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)  # a second answer, were one coming, comes within the replay window
    return len([c for c in bot.api.sent_to(chat_id) if c.text == answer])


async def test_a_database_error_at_any_write_of_a_question_loses_and_repeats_nothing(
    database_url: str,
) -> None:
    async with FakeBotAPI() as api, BotUnderTest(
        api, database_url, options=_options(), inbox_replay_after_seconds=1
    ) as bot:
        assert bot.services is not None
        database = bot.services.database
        faults = WriteFaults()
        faults.attach(database.engines)
        try:
            # Fault-free rounds: learn the answer, then how many writes a question costs (the
            # second round also counts PostgreSQL's engine for urgent marks, made in the first).
            for clerk in (FIRST_CLERK, FIRST_CLERK + 1):
                faults.arm(0)
                await api.queue_update(message_update(api.next_update_id(), clerk, QUESTION))
                await bot.wait_completed(clerk - FIRST_CLERK + 1)
                sent = api.sent_to(clerk)
                assert sent and re.search("eZUP|еЗУП", sent[-1].text or "")
                answer = sent[-1].text or ""
                assert await _settled(bot, clerk, answer) == 1
                faults.attach(database.engines)
            writes = faults.count
            assert writes >= 3, f"a question wrote only {writes} times"

            outcomes: dict[int, tuple[list[str], int]] = {}
            for k in range(1, writes + 1):
                clerk = FIRST_CLERK + 1 + k
                faults.arm(k)
                await api.queue_update(message_update(api.next_update_id(), clerk, QUESTION))
                answers = await _settled(bot, clerk, answer)
                outcomes[k] = (list(faults.failed), answers)
                faults.arm(0)
            wrong = {k: o for k, o in outcomes.items() if o[1] != 1}
            assert not wrong, f"write k failed -> answers != 1: {wrong}"
            assert any(failed for failed, _ in outcomes.values()), "no fault was injected"
            assert await _unfinished(bot) == 0
        finally:
            faults.remove()
