"""Running the bot: limits, restarts, health and metrics, SIGTERM, start-up errors, and a
database that goes away for a moment. (Webhook mode: test_telegram_webhook.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from bot.config import ConfigError, Settings
from bot.runtime import run
from bot.services.messages import reply_to_payload
from bot.services.replies import Reply
from knowledge_base.translit import to_cyrillic
from tests.fakes.bot_api import STICKER, FakeBotAPI, message_update
from tests.fakes.harness import BotUnderTest
from tests.fakes.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
EZUP_ACCESS_QUESTION = (
    "Kako naš organ dobija pristup podacima iz službenih evidencija preko eZUP-a?"
)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as fake:
        yield fake


# -- limits, once only, restarts ------------------------------------------------------------


async def test_clerk_sending_too_fast_is_slowed_down_politely(
    api: FakeBotAPI, database_url: str
) -> None:
    async with BotUnderTest(api, database_url, user_messages_per_minute=3) as bot:
        ana = bot.clerk(5001, language_code=None)
        for _ in range(3):
            await ana.send(content=STICKER)
        (note,) = await ana.send(content=STICKER)
        assert "sačekajte" in note.text
        assert await ana.send(content=STICKER) == []  # no second note within the minute
        other = bot.clerk(5002, language_code=None)
        assert len(await other.send(content=STICKER)) == 1  # others are not affected


async def test_button_taps_have_their_own_limit_and_excess_taps_do_no_work(
    api: FakeBotAPI, database_url: str
) -> None:
    async with BotUnderTest(api, database_url, user_messages_per_minute=2) as bot:
        ana = bot.clerk(5003, language_code=None)
        (reply,) = await ana.send("kako da dobijem pristup ezupu")
        taps = 2 * 3  # three times the message allowance
        for _ in range(taps):
            await ana.tap_data("svc:ezup", reply)
        handled = len(api.calls_of("answerCallbackQuery"))
        await ana.tap_data("svc:ezup", reply)
        answers = api.calls_of("answerCallbackQuery")
        assert len(answers) == handled + 1
        assert "Polako" in str(answers[-1].params.get("text"))
        others = bot.clerk(5004, language_code=None)
        assert await others.send("kako da dobijem pristup ezupu")  # others are not affected


async def test_redelivered_update_is_handled_once_after_restart(
    api: FakeBotAPI, database_url: str
) -> None:
    question = {
        "update_id": 777001,
        "message": {
            "message_id": 1,
            "date": 1767225600,
            "chat": {"id": 6001, "type": "private"},
            "from": {"id": 6001, "is_bot": False, "first_name": "Ana"},
            "text": "kako da dobijem pristup ezupu",
        },
    }
    async with BotUnderTest(api, database_url) as first:
        await first.deliver(question)
    assert len(api.seen_by(6001)) == 1
    # Telegram had not seen the confirming getUpdates yet, so it sends the update again.
    await api.queue_update(question)
    async with BotUnderTest(api, database_url) as second:
        await second.wait_completed(1)
        assert len(api.seen_by(6001)) == 1
        assert len(await second.stored_questions(6001)) == 1


async def test_restart_keeps_the_clerks_settings(api: FakeBotAPI, database_url: str) -> None:
    async with BotUnderTest(api, database_url) as first:
        mira = first.clerk(6002, language_code=None)
        await mira.say("/start")
        await mira.tap("Ћирилица")
        await mira.say("Ниш")
        await mira.tap("Ниш – град")
    async with BotUnderTest(api, database_url) as second:
        mira = second.clerk(6002, language_code=None)
        (answer,) = await mira.say("kako da dobijem pristup ezupu")
        assert to_cyrillic("Kako naš organ dobija pristup") in answer.text
        user = await second.stored_user(6002)
        assert user is not None and (user.language, user.municipality) == ("sr-Cyrl", "Niš")


async def test_polling_survives_bot_api_outages(api: FakeBotAPI, database_url: str) -> None:
    async with BotUnderTest(api, database_url) as bot:
        api.fail_next(2, status=502, method="getUpdates")
        api.fail_next(1, method="getUpdates", drop_connection=True)

        def failed() -> int:
            return sum(1 for call in api.calls_of("getUpdates") if call.status != 200)

        await api.wait_until(lambda: failed() == 3, timeout=10, what="three failed polls")
        ana = bot.clerk(5101, language_code=None)
        (answer,) = await ana.say("kako da dobijem pristup ezupu")
        assert EZUP_ACCESS_QUESTION in answer.text


async def test_messages_waiting_in_the_outbox_are_delivered(
    api: FakeBotAPI, database_url: str
) -> None:
    """What must arrive (a mentor's answer, a reminder) is written to the outbox by a service;
    the running process's dispatcher delivers it."""
    async with BotUnderTest(api, database_url, background_work=True) as bot:
        await _outbox_delivery(bot)


async def _outbox_delivery(bot: BotUnderTest) -> None:
    ana = bot.clerk(5201, language_code=None)
    await ana.say("/pomoc")
    user = await bot.stored_user(ana.user_id)
    assert bot.services is not None and user is not None
    async with bot.services.database.uow() as uow:
        await uow.outbox.add(
            channel="telegram",
            chat_id=ana.user_id,
            user_id=user.id,
            kind="mentor_answer",
            payload=reply_to_payload(Reply("Odgovor mentora: <b>može</b>")),
        )
        await uow.commit()
    await bot.api.wait_until(lambda: len(ana.chat) == 2, timeout=10, what="outbox delivery")
    assert ana.last.text == "Odgovor mentora: <b>može</b>"


# -- health and metrics -----------------------------------------------------------------------


async def test_health_and_metrics_in_polling_mode(api: FakeBotAPI, database_url: str) -> None:
    async with BotUnderTest(api, database_url) as bot:
        await bot.clerk(7101, language_code=None).say("kako da dobijem pristup ezupu")
        status, body = await bot.get("/healthz")
        assert status == 200
        assert json.loads(body) == {"status": "ok", "mode": "polling", "database": "ok"}
        status, metrics = await bot.get("/metrics")
        assert status == 200
        assert 'bot_updates_total{kind="text",outcome="ok"} 1.0' in metrics
        assert 'bot_answer_decisions_total{decision="answer"} 1.0' in metrics
        assert 'bot_telegram_api_calls_total{method="sendMessage",outcome="ok"} 1.0' in metrics


# -- the database goes away for a moment ------------------------------------------------------


@pytest.mark.postgres
async def test_database_down_gets_try_again_and_the_bot_recovers(
    api: FakeBotAPI, postgres_database_url: str
) -> None:
    url = make_url(postgres_database_url)
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        async with BotUnderTest(api, proxied) as bot:
            ana = bot.clerk(7201, language_code=None)
            await ana.say("/pomoc")  # registered while the database is up

            await proxy.disconnect()
            # Polled while the database is away: not confirmed to Telegram (it cannot be kept
            # yet), so Telegram sends it again; the clerk hears, once, that it is not lost.
            before = len(api.sent_to(7201))
            await api.queue_update(
                message_update(api.next_update_id(), 7201, "kako da dobijem pristup ezupu"))
            await api.wait_until(lambda: len(api.sent_to(7201)) > before, timeout=30,
                                 what="the apology")
            assert "nije izgubljena" in api.sent_to(7201)[-1].text
            status, _body = await bot.get("/healthz")
            assert status == 503
            await asyncio.sleep(1.0)  # more getUpdates retries: still told only once
            assert len(api.sent_to(7201)) == before + 1

            proxy.reconnect()  # the same question is answered without being asked again
            await api.wait_until(lambda: len(api.sent_to(7201)) > before + 1, timeout=30,
                                 what="the answer once the database is back")
            assert EZUP_ACCESS_QUESTION in api.sent_to(7201)[-1].text
            status, _body = await bot.get("/healthz")
            assert status == 200
    finally:
        await proxy.stop()


# -- the process ------------------------------------------------------------------------------


def bot_env(**values: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "DATABASE_", "WEBHOOK_", "HTTP_", "REDIS_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(values)
    return env


async def run_bot(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_sigterm_stops_the_bot_cleanly(api: FakeBotAPI, tmp_path: Path) -> None:
    env = bot_env(
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_BASE=api.base_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        HTTP_HOST="127.0.0.1",
        HTTP_PORT="0",
    )
    process = await run_bot(env, tmp_path)
    try:
        await api.wait_until(lambda: bool(api.calls_of("getUpdates")), timeout=60, what="polling")
        await api.queue_update(message_update(api.next_update_id(), 7301, "/pomoc"))
        await api.wait_for_messages(7301, 1, timeout=20)
        process.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert b"telegram.stopped" in err


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "TELEGRAM_BOT_TOKEN is not set"),
        ({"TELEGRAM_BOT_TOKEN": "not-a-token"}, "TELEGRAM_BOT_TOKEN is malformed"),
        ({"TELEGRAM_BOT_TOKEN": "123:abc", "DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL"),
        (
            {"TELEGRAM_BOT_TOKEN": "123:abc", "DATABASE_URL": "postgresql+asyncpg://u@h:port/d"},
            "DATABASE_URL",
        ),
        (
            {"TELEGRAM_BOT_TOKEN": "123:abc", "WEBHOOK_URL": "https://bot.example.rs/hook"},
            "WEBHOOK_SECRET is required",
        ),
    ],
    ids=["no-token", "bad-token", "bad-driver", "bad-port", "webhook-without-secret"],
)
def test_bad_configuration_stops_with_one_clear_line(
    env: dict[str, str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.__main__ import main

    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("TELEGRAM_", "DATABASE_", "WEBHOOK_", "HTTP_", "REDIS_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["run"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert expected in lines[0]


async def test_token_rejected_by_telegram_stops_with_one_clear_line(
    api: FakeBotAPI, tmp_path: Path
) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=SecretStr("123456:WrongWrongWrong"),
        telegram_api_base=api.base_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        http_port=0,
    )
    with pytest.raises(ConfigError) as stopped:
        await run(settings)
    assert "TELEGRAM_BOT_TOKEN was rejected" in str(stopped.value)
    assert "\n" not in str(stopped.value)
