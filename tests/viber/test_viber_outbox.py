"""Messages that must arrive reach Viber users too: the outbox's Viber sender over the fake
Viber REST API, on SQLite and PostgreSQL, and the client's reading of Viber's answers."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.channels.viber_client import (
    ViberClient,
    ViberSettings,
    broadcast_channels,
    viber_included_in_broadcasts,
)
from bot.channels.viber_sender import ViberSender
from bot.config import Settings
from bot.outbox import OutboxDispatcher
from bot.ratelimit import LocalRateLimiter
from bot.services.delivery import DeliveryService
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply
from storage.clock import utcnow
from storage.models import OutboxMessage, User
from storage.uow import Database
from tests.fakes.viber_api import AUTH_TOKEN, FakeViberAPI

VIBER_ID = "01234567890A="


@pytest.fixture
async def api() -> AsyncIterator[FakeViberAPI]:
    async with FakeViberAPI() as fake:
        yield fake


def _settings(api: FakeViberAPI, *, broadcasts: bool = False) -> ViberSettings:
    return ViberSettings(  # type: ignore[call-arg]
        _env_file=None,
        auth_token=SecretStr(AUTH_TOKEN),
        api_base=api.base_url,
        broadcasts=broadcasts,
    )


@pytest.fixture
async def client(api: FakeViberAPI) -> AsyncIterator[ViberClient]:
    viber = ViberClient(AUTH_TOKEN, api.base_url, timeout=5)
    yield viber
    await viber.close()


async def _viber_user(
    database: Database, viber_id: str = VIBER_ID, language: str = "sr-Latn", active: bool = True
) -> int:
    async with database.uow() as uow:
        user = await uow.users.add(
            User(channel="viber", external_id=viber_id, language=language, active=active)
        )
        await uow.commit()
        return user.id


async def _queue(
    database: Database,
    user_id: int,
    reply: Reply,
    *,
    kind: str = "reminder",
    key: str = "k1",
    chat_id: str = VIBER_ID,
    expires_at: datetime | None = None,
    **extra: object,
) -> None:
    async with database.uow() as uow:
        await uow.outbox.add(
            channel="viber",
            chat_id=chat_id,
            user_id=user_id,
            kind=kind,
            payload=reply_to_payload(reply, **extra),
            dedupe_key=key,
            expires_at=expires_at,
        )
        await uow.commit()


async def _rows(database: Database) -> list[OutboxMessage]:
    async with database.uow() as uow:
        return list(await uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def _dispatcher(
    database: Database,
    client: ViberClient,
    api: FakeViberAPI,
    clock: Callable[[], datetime] = utcnow,
) -> OutboxDispatcher:
    limiter = LocalRateLimiter(
        per_second=1000,
        per_chat_interval=0,
        per_group_interval=0,
        clock=lambda: clock().timestamp(),
    )
    sender = ViberSender(client, _settings(api), DeliveryService(database))
    return OutboxDispatcher(database, {"viber": sender}, limiter, clock=clock)


# -- the outbox --------------------------------------------------------------------------------


async def test_reminder_reaches_the_viber_user_once_with_its_buttons(
    database: Database, api: FakeViberAPI, client: ViberClient
) -> None:
    user_id = await _viber_user(database)
    reminder = Reply(
        "<b>Podsetnik</b>: obuka „eZUP za početnike“ počinje sutra u 10:00.",
        ((Button("Otkaži prijavu", "tr:cancel:7"),),),
    )
    await _queue(database, user_id, reminder, key="reminder:7:24h")
    await _queue(database, user_id, reminder, key="reminder:7:24h")  # deduplicated
    dispatcher = _dispatcher(database, client, api)
    assert await dispatcher.drain() == 1
    [message] = api.seen_by(VIBER_ID)
    assert message.text == "*Podsetnik*: obuka „eZUP za početnike“ počinje sutra u 10:00."
    assert message.actions == ["act:tr:cancel:7"]
    assert message.body["sender"]["name"] == "eUprava za sve"
    [row] = await _rows(database)
    assert (row.status, row.kind, row.channel) == ("sent", "reminder", "viber")
    assert row.external_message_id == str(message.token)


async def test_a_reminder_due_too_late_is_not_sent(
    database: Database, api: FakeViberAPI, client: ViberClient
) -> None:
    user_id = await _viber_user(database)
    await _queue(
        database, user_id, Reply("Obuka počinje za sat"), expires_at=utcnow() - timedelta(minutes=1)
    )
    await _dispatcher(database, client, api).drain()
    [row] = await _rows(database)
    assert row.status == "expired"
    assert api.seen_by(VIBER_ID) == []


async def test_message_to_an_unsubscribed_user_is_blocked_and_they_become_inactive(
    database: Database, api: FakeViberAPI, client: ViberClient
) -> None:
    user_id = await _viber_user(database)
    api.unsubscribed.add(VIBER_ID)
    await _queue(database, user_id, Reply("Obaveštenje"), kind="broadcast")
    await _dispatcher(database, client, api).drain()
    [row] = await _rows(database)
    assert row.status == "blocked"
    async with database.uow() as uow:
        user = await uow.users.get(user_id)
        assert user is not None and not user.active


@pytest.mark.parametrize(
    "failure",
    [{"status": 12}, {"http_status": 502}, {"drop_connection": True}],
    ids=["too-many-requests", "http-502", "dropped"],
)
async def test_busy_or_unreachable_viber_is_retried_until_delivered(
    database: Database, api: FakeViberAPI, client: ViberClient, failure: dict[str, Any]
) -> None:
    user_id = await _viber_user(database)
    await _queue(database, user_id, Reply("Odgovor mentora"), kind="mentor_answer")
    api.fail_next(**failure)
    clock_offset = [timedelta(0)]
    dispatcher = _dispatcher(database, client, api, lambda: utcnow() + clock_offset[0])
    assert await dispatcher.drain() == 1
    [row] = await _rows(database)
    assert row.status == "pending" and row.last_error
    assert api.seen_by(VIBER_ID) == []
    clock_offset[0] = timedelta(minutes=10)
    assert await dispatcher.drain() == 1
    [row] = await _rows(database)
    assert row.status == "sent"
    assert [m.text for m in api.seen_by(VIBER_ID)] == ["Odgovor mentora"]


async def test_a_long_message_arrives_in_parts_in_order(
    database: Database, api: FakeViberAPI, client: ViberClient
) -> None:
    user_id = await _viber_user(database)
    text = "\n\n".join(f"Odeljak {i}. " + "Objašnjenje korak po korak. " * 60 for i in range(12))
    await _queue(database, user_id, Reply(text, ((Button("Rešeno, hvala", "x:1"),),)))
    await _dispatcher(database, client, api).drain()
    parts = api.seen_by(VIBER_ID)
    assert len(parts) >= 3
    assert parts[0].text.startswith("Odeljak 0.") and "Odeljak 11." in parts[-1].text
    assert [bool(p.buttons) for p in parts] == [False] * (len(parts) - 1) + [True]
    assert all(call.size < 30_000 for call in api.calls_of("send_message"))


async def test_a_document_cannot_be_attached_so_the_text_says_so(
    database: Database, api: FakeViberAPI, client: ViberClient
) -> None:
    user_id = await _viber_user(database, language="en")
    document = {"filename": "obuka-3.ics", "content_b64": base64.b64encode(b"BEGIN").decode()}
    await _queue(database, user_id, Reply("You are signed up."), document=document)
    await _dispatcher(database, client, api).drain()
    [message] = api.seen_by(VIBER_ID)
    assert message.text.startswith("You are signed up.")
    assert "obuka-3.ics" in message.text


async def test_other_channels_rows_are_left_to_their_sender(
    database: Database, api: FakeViberAPI, client: ViberClient
) -> None:
    user_id = await _viber_user(database)
    await _queue(database, user_id, Reply("Za Viber"), key="v")
    async with database.uow() as uow:
        await uow.outbox.add(
            channel="telegram",
            chat_id="42",
            kind="notice",
            payload=reply_to_payload(Reply("Za Telegram")),
            dedupe_key="t",
        )
        await uow.commit()
    await _dispatcher(database, client, api).drain()
    assert [m.text for m in api.seen_by(VIBER_ID)] == ["Za Viber"]
    assert all(call.body["receiver"] == VIBER_ID for call in api.calls_of("send_message"))


# -- the client ------------------------------------------------------------------------------


async def test_client_maps_vibers_answers_to_outcomes(
    api: FakeViberAPI, client: ViberClient
) -> None:
    sent = await client.send_message("u1", "zdravo", sender_name="Bot")
    assert sent.status == "sent" and sent.external_id
    expectations: list[tuple[dict[str, Any], str]] = [
        ({"status": 6}, "blocked"),
        ({"status": 5}, "blocked"),
        ({"status": 12}, "retry"),
        ({"status": 3}, "failed"),
        ({"http_status": 500}, "retry"),
        ({"http_status": 404}, "failed"),
        ({"drop_connection": True}, "retry"),
    ]
    for failure, status in expectations:
        api.fail_next(**failure)
        outcome = await client.send_message("u1", "zdravo", sender_name="Bot")
        assert outcome.status == status, failure
    wrong = ViberClient("wrong-token", api.base_url)
    try:
        assert (await wrong.send_message("u1", "x", sender_name="Bot")).status == "failed"
    finally:
        await wrong.close()
    assert api.calls_of("send_message")[0].token == AUTH_TOKEN
    assert "\\u" not in api.calls_of("send_message")[0].body.get("text", "")


async def test_client_sends_utf8_json_within_the_size_limit(
    api: FakeViberAPI, client: ViberClient
) -> None:
    outcome = await client.send_message("u1", "ж" * 7000, sender_name="Бот")
    assert outcome.status == "sent"
    assert api.calls_of("send_message")[-1].size < 15_000  # 2 bytes a letter, not 6


async def test_account_info(api: FakeViberAPI, client: ViberClient) -> None:
    info = await client.get_account_info()
    assert info.ok and info.data["name"] == "eUprava za sve"


# -- settings --------------------------------------------------------------------------------


def test_broadcasts_skip_viber_unless_switched_on(api: FakeViberAPI) -> None:
    assert not viber_included_in_broadcasts(_settings(api))
    assert broadcast_channels(_settings(api)) == ("telegram",)
    assert viber_included_in_broadcasts(_settings(api, broadcasts=True))
    assert broadcast_channels(_settings(api, broadcasts=True)) == ("telegram", "viber")
    no_token = ViberSettings(_env_file=None, broadcasts=True)  # type: ignore[call-arg]
    assert not viber_included_in_broadcasts(no_token)


def test_settings_come_from_the_app_settings_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VIBER_BROADCASTS", "true")
    monkeypatch.setenv("VIBER_BOT_NAME", "eUprava za sve – podrška opštinama")
    app = Settings(  # type: ignore[call-arg]
        _env_file=None,
        viber_auth_token=SecretStr("tok"),
        viber_api_base="http://viber.local/pa/",
        webhook_url="https://bot.example.rs/telegram/webhook",
    )
    viber = ViberSettings.from_settings(app, _env_file=None)
    assert viber.token == "tok" and viber.api_base == "http://viber.local/pa"
    assert viber.broadcasts and len(viber.bot_name) <= 28
    assert viber.webhook_url == "https://bot.example.rs/viber/webhook"
    assert viber.webhook_path == "/viber/webhook"
    explicit = ViberSettings.from_settings(
        app, _env_file=None, webhook_url="https://v.example.rs/hooks/viber"
    )
    assert explicit.webhook_path == "/hooks/viber"


async def test_the_runner_wires_viber_in_one_call(database_url: str, api: FakeViberAPI) -> None:
    from aiohttp import web

    from bot.app import build_services
    from bot.channels.viber import setup_viber

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, webhook_url="https://bot.example.rs/tg"
    )
    services = await build_services(settings)
    try:
        app = web.Application()
        senders: dict[str, object] = {}
        assert setup_viber(app, services, senders) is None  # no VIBER_AUTH_TOKEN: no Viber
        assert senders == {}
        services.settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=database_url,
            viber_auth_token=SecretStr(AUTH_TOKEN),
            viber_api_base=api.base_url,
            webhook_url="https://bot.example.rs/tg",
        )
        channel = setup_viber(app, services, senders)
        assert channel is not None and isinstance(senders["viber"], ViberSender)
        assert channel.settings.webhook_url == "https://bot.example.rs/viber/webhook"
        paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
        assert "/viber/webhook" in paths
        await channel.close()
    finally:
        await services.close()
