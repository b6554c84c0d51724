"""One answer reaches the asker and every follower exactly once, also across a kill -9 of the
bot between the answer and the deliveries (issue #17), on SQLite and PostgreSQL.

The real process (`python -m bot run`, long polling against the fake Bot API): five clerks ask
the same thing, one card shows four followers, a mentor answers by replying to the card. The
answer and all five outbox rows are written in one transaction; Telegram then lets two
deliveries through and fails the rest (502) while the bot is killed with SIGKILL. A new process
delivers the three that did not arrive, and no clerk gets the answer twice."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from storage.clock import utcnow
from storage.db import upgrade_schema
from storage.mentor import MentorFollower
from storage.models import OutboxMessage
from storage.uow import Database
from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.bot_api import BOT_ID, FakeBotAPI, callback_update, message_update
from tests.telegram.test_telegram_runner import bot_env

GROUP_ID = -1001000000017
ADMIN_ID = 9017
CLERKS = (7701, 7702, 7703, 7704, 7705)
QUESTIONS = (
    "Kako da dodam novog službenika u eZUP?",
    "kako da dodam novog sluzbenika u ezup",
    "Како да додам новог службеника у еЗУП?",
    "Kako da dodam novog službenika u eZUP, hitno je",
    "Kako da dodam novog službenika u eZUP? Hvala unapred",
)
ANSWER = "Novog službenika dodaje lokalni administrator eZUP-a u meniju Korisnici."
STARTUP = 120.0


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database_url(request.param, tmp_path) as database_url:
        await upgrade_schema(database_url)
        yield database_url


@dataclass
class Process:
    process: asyncio.subprocess.Process
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


async def start_bot(env: dict[str, str], workdir: Path, name: str) -> Process:
    log = workdir / f"{name}.log"
    with log.open("wb") as handle:  # a file, not a pipe: a chatty bot never blocks on it
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=workdir, env=env,
            stdout=handle, stderr=asyncio.subprocess.STDOUT,
        )
    return Process(process, log)


async def stop(bot: Process, sig: int = signal.SIGTERM) -> None:
    if bot.process.returncode is None:
        bot.process.send_signal(sig)
        try:
            await asyncio.wait_for(bot.process.wait(), 30)
        except TimeoutError:
            bot.process.kill()
            await bot.process.wait()


def answers(api: FakeBotAPI, chat: int) -> list[str]:
    return [c.text for c in api.sent_to(chat) if ANSWER in c.text]


async def count_rows(database: Database, *where: Any) -> int:
    async with database.uow(read_only=True) as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(
            OutboxMessage).where(*where)) or 0)


@pytest.mark.timeout(600)  # two bot processes start (imports, migrations, the KB index)
async def test_one_answer_reaches_all_five_exactly_once_across_a_kill_9(
    url: str, tmp_path: Path
) -> None:
    async with FakeBotAPI() as api:
        env = bot_env(
            TELEGRAM_BOT_TOKEN=api.token,
            TELEGRAM_API_BASE=api.base_url,
            DATABASE_URL=url,
            HTTP_HOST="127.0.0.1",
            HTTP_PORT="0",
            MENTOR_CHAT_ID=str(GROUP_ID),
            ADMIN_IDS=str(ADMIN_ID),
            LOG_LEVEL="INFO",
        )
        database = Database.from_url(url)
        first = await start_bot(env, tmp_path, "first")
        try:
            await api.wait_until(lambda: bool(api.calls_of("getUpdates")), STARTUP,
                                 f"polling\n{first.tail()}")
            for chat, question in zip(CLERKS, QUESTIONS, strict=True):
                await api.queue_update(message_update(
                    api.next_update_id(), chat, f"/mentor {question}", language_code=None))
                await api.wait_until(lambda c=chat: bool(api.seen_by(c)), 30, "the prompt")
                prompt = api.last_seen(chat)
                await api.queue_update(callback_update(
                    api.next_update_id(), chat, prompt.callback_data("Pošalji mentoru"),
                    message_id=prompt.message_id, message_text=prompt.text, language_code=None))
                await api.wait_until(
                    lambda c=chat: any("#1" in m.text for m in api.seen_by(c)), 30, "received")
            assert "Primljeno" in api.last_seen(CLERKS[0]).text
            for chat in CLERKS[1:]:
                assert "Isto pitanje je već kod mentora" in api.last_seen(chat).text

            # The dispatcher posts the card and refreshes it: one card, four followers.
            def card() -> Any:
                found = [m for m in api.seen_by(GROUP_ID) if m.text.startswith("<b>#")]
                return found[0] if found else None

            await api.wait_until(lambda: card() is not None and "Isto pita još 4" in card().text,
                                 90, f"the card with four followers\n{first.tail()}")
            assert len([m for m in api.seen_by(GROUP_ID) if m.text.startswith("<b>#")]) == 1

            # Telegram takes two of the answers, then fails every sendMessage (502).
            api.fail_next(10_000, status=502, method="sendMessage", after=2)
            await api.queue_update(_reply_to_card(api, card(), ANSWER))
            answered = OutboxMessage.kind == "mentor_answer"
            await api.wait_until(
                lambda: sum(1 for c in api.calls_of("sendMessage")
                            if c.status == 502 and ANSWER in c.text) >= 3,
                60, f"three failed deliveries\n{first.tail()}")
            assert await count_rows(database, answered) == 5  # one transaction: all five
            # Killed while the three wait for their next try (not while one is claimed: a row
            # a dead process had claimed waits for its lease to run out, two minutes).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 90
            while await count_rows(
                database, answered, OutboxMessage.status == "pending",
                OutboxMessage.attempts >= 1,
                OutboxMessage.not_before > utcnow() + timedelta(seconds=1),
            ) < 3:
                assert loop.time() < deadline, f"the three never waited together\n{first.tail()}"
                await asyncio.sleep(0.05)
        finally:
            await stop(first, signal.SIGKILL)
        delivered = [chat for chat in CLERKS if answers(api, chat)]
        assert len(delivered) == 2, delivered
        assert all(len(answers(api, chat)) == 1 for chat in delivered)
        api.clear_failures()

        second = await start_bot(env, tmp_path, "second")
        try:
            await api.wait_until(
                lambda: all(answers(api, chat) for chat in CLERKS), STARTUP,
                f"all five answers after the restart\n{second.tail()}")
            await asyncio.sleep(3)  # a duplicate would arrive by now
        finally:
            await stop(second)
        try:
            assert [len(answers(api, chat)) for chat in CLERKS] == [1, 1, 1, 1, 1]
            assert await count_rows(database, answered, OutboxMessage.status == "sent") == 5
            async with database.uow(read_only=True) as uow:
                followers = list(await uow.session.scalars(select(MentorFollower)))
            assert len(followers) == 4 and all(f.answered_at is not None for f in followers)
        finally:
            await database.dispose()


def _reply_to_card(api: FakeBotAPI, card: Any, text: str) -> dict[str, Any]:
    chat = {"id": GROUP_ID, "type": "supergroup", "title": "Mentori"}
    return {
        "update_id": api.next_update_id(),
        "message": {
            "message_id": 50_000,
            "date": int(time.time()),
            "chat": chat,
            "from": {"id": ADMIN_ID, "is_bot": False, "first_name": "Marko"},
            "text": text,
            "reply_to_message": {
                "message_id": card.message_id,
                "date": int(time.time()),
                "chat": chat,
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "eUprava pomoć"},
                "text": card.text,
            },
        },
    }
