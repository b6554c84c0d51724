"""Hostile and unexpected input reaches the real bot (aiogram runtime, handlers, services, a real
database) through its webhook, the way Telegram would send it: arbitrary Unicode, the longest
messages, garbage button data, update types nobody handles, malformed bodies. Nothing crashes:
every clerk gets a polite answer, or the update is ignored with a log line.

(The normaliser and the matcher on their own are fuzzed in tests/kb/test_kb_normalize.py and
tests/kb/test_kb_matcher.py.)
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.bot_api import BOT_ID, FakeBotAPI, callback_update, message_update
from tests.fakes.harness import WEBHOOK_SECRET, BotUnderTest

pytestmark = pytest.mark.asyncio(loop_scope="module")

_ids = itertools.count(700_001)
_update_ids = itertools.count(5_000_000)
# What Telegram can carry in a text message (no NUL: see test_nul_character_in_a_question).
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
REPLY_WITHIN = 5.0  # seconds: bounded time even for the longest message


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def bot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BotUnderTest]:
    """One bot in webhook mode per backend; no per-clerk rate limit (fuzzing sends a lot)."""
    async with (
        fresh_database_url(request.param, tmp_path_factory.mktemp("db")) as url,
        FakeBotAPI() as api,
        BotUnderTest(api, url, webhook=True, user_messages_per_minute=0) as running,
    ):
        yield running


def failed_updates(bot: BotUnderTest) -> float:
    """Updates whose handling raised (the runtime's own metric)."""
    assert bot.runtime is not None
    total = 0.0
    for metric in bot.runtime.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "bot_updates_total" and sample.labels.get("outcome") == "error":
                total += sample.value
    return total


def new_update_id() -> int:
    return next(_update_ids)


async def post(bot: BotUnderTest, body: Any, *, raw: bytes | None = None) -> int:
    assert bot._http is not None
    headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    if raw is not None:
        headers["Content-Type"] = "application/json"
        async with bot._http.post(bot.webhook_url, data=raw, headers=headers) as response:
            await response.read()
            return response.status
    async with bot._http.post(bot.webhook_url, json=body, headers=headers) as response:
        await response.read()
        return response.status


async def deliver_and_wait(bot: BotUnderTest, update: dict[str, Any]) -> float:
    """POST the update, wait until the bot has handled it; seconds it took."""
    started = time.perf_counter()
    await bot.deliver(update, wait=False)
    await bot.wait_completed(bot.completed + 1, timeout=REPLY_WITHIN * 2)
    return time.perf_counter() - started


async def still_answers(bot: BotUnderTest) -> None:
    """A normal clerk still gets an answer (nothing upstream is wedged)."""
    clerk = bot.clerk(next(_ids), language_code=None)
    seen = await clerk.say("kako da dobijem pristup ezupu")
    assert seen and seen[-1].text


# --------------------------------------------------------------------------- fuzzing


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=TEXT.filter(lambda t: t.strip() != "").map(lambda t: t[:4096]))
async def test_any_text_gets_a_reply(bot: BotUnderTest, text: str) -> None:
    chat = next(_ids)
    errors = failed_updates(bot)
    await bot.deliver(message_update(new_update_id(), chat, text, language_code=None))
    assert failed_updates(bot) == errors
    replies = bot.api.seen_by(chat)
    assert replies, f"no reply to {text!r}"
    assert all(message.text.strip() for message in replies)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    text=st.one_of(
        st.text(min_size=1, max_size=30).map(lambda s: (s * 4096)[:4096]),
        st.lists(
            st.sampled_from(["ezup", "е-ЗУП", "pristup", "\u0301", "ž", "🙂", "e-", " ", "\u202e"]),
            min_size=800,
            max_size=1500,
        ).map(lambda parts: "".join(parts)[:4096]),
    ).filter(lambda t: t.strip() != "" and "\x00" not in t)
)
async def test_longest_messages_are_answered_in_bounded_time(bot: BotUnderTest, text: str) -> None:
    chat = next(_ids)
    seconds = await deliver_and_wait(
        bot, message_update(new_update_id(), chat, text, language_code=None)
    )
    assert seconds < REPLY_WITHIN
    assert bot.api.seen_by(chat)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.one_of(
        TEXT.map(lambda t: t.encode()[:64].decode(errors="ignore")),
        st.builds(
            lambda prefix, rest: f"{prefix}:{rest}",
            st.sampled_from(
                [
                    "e",
                    "c",
                    "fb",
                    "svc",
                    "lang",
                    "mun",
                    "menu",
                    "m",
                    "mq",
                    "mr",
                    "mrt",
                    "ms",
                    "mo",
                    "mc",
                    "mh",
                    "sab",
                    "int",
                    "tr",
                    "tr:j",
                    "tr:at",
                    "bc",
                    "pd",
                    "x",
                ]
            ),
            st.text(alphabet="0123456789:abcjxynos-_ ", max_size=40),
        ),
    ).filter(lambda d: d != "")
)
async def test_any_button_data_is_answered_politely(bot: BotUnderTest, data: str) -> None:
    chat = next(_ids)
    errors = failed_updates(bot)
    answered = len(bot.api.calls_of("answerCallbackQuery"))
    update = callback_update(new_update_id(), chat, data, message_id=1, language_code=None)
    await bot.deliver(update)
    assert failed_updates(bot) == errors
    # The spinner on the button always stops, whatever the data was.
    assert len(bot.api.calls_of("answerCallbackQuery")) == answered + 1


# --------------------------------------------------------------------------- odd updates


def _private(chat: int) -> dict[str, Any]:
    return {"id": chat, "type": "private", "first_name": "Milica"}


def _member(status: str) -> dict[str, Any]:
    member: dict[str, Any] = {
        "status": status,
        "user": {"id": BOT_ID, "is_bot": True, "first_name": "bot"},
    }
    if status == "kicked":
        member["until_date"] = 0
    return member


def odd_updates(chat: int) -> dict[str, dict[str, Any]]:
    base = message_update(0, chat, "kako do ezupa", language_code=None)["message"]
    return {
        "edited message": {"edited_message": {**base, "edit_date": 1}},
        "channel post": {
            "channel_post": {
                "message_id": 1,
                "date": 1,
                "chat": {"id": -100777, "type": "channel"},
                "text": "objava",
            }
        },
        "user blocked the bot": {
            "my_chat_member": {
                "chat": _private(chat),
                "from": {"id": chat, "is_bot": False, "first_name": "M"},
                "date": 1,
                "old_chat_member": _member("member"),
                "new_chat_member": _member("kicked"),
            }
        },
        "inline query": {
            "inline_query": {
                "id": "iq1",
                "from": {"id": chat, "is_bot": False, "first_name": "M"},
                "query": "ezup",
                "offset": "",
            }
        },
        "poll": {
            "poll": {
                "id": "p1",
                "question": "?",
                "options": [],
                "total_voter_count": 0,
                "is_closed": True,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
            }
        },
        "update of an unknown type": {"brand_new_update_type": {"x": 1}},
        "update with no content": {},
        "location": {
            "message": {**_no_text(base), "location": {"latitude": 44.8, "longitude": 20.4}}
        },
        "contact": {
            "message": {
                **_no_text(base),
                "contact": {"phone_number": "+381641234567", "first_name": "M"},
            }
        },
        "dice": {"message": {**_no_text(base), "dice": {"emoji": "🎲", "value": 3}}},
        "forwarded question": {
            "message": {
                **base,
                "forward_origin": {"type": "hidden_user", "date": 1, "sender_user_name": "Neko"},
            }
        },
        "command with the bot's name": {
            "message": message_update(0, chat, "/pomoc@euprava_test_bot", language_code=None)[
                "message"
            ]
        },
        "unknown command": {
            "message": message_update(0, chat, "/drop_table users", language_code=None)["message"]
        },
        "caption only": {
            "message": {
                **_no_text(base),
                "photo": [{"file_id": "p", "file_unique_id": "pu", "width": 1, "height": 1}],
                "caption": "<b>pogledajte</b> & <script>",
            }
        },
        "text with markup characters": {
            "message": message_update(0, chat, "<b>ezup</b> & <a href='x'>", language_code=None)[
                "message"
            ]
        },
        "button on a message the bot can no longer see": {
            "callback_query": {
                "id": "cbx",
                "from": {"id": chat, "is_bot": False, "first_name": "M"},
                "chat_instance": "ci",
                "data": "menu",
                "message": {"message_id": 1, "date": 0, "chat": _private(chat)},
            }
        },
        "button on an inline message": {
            "callback_query": {
                "id": "cby",
                "from": {"id": chat, "is_bot": False, "first_name": "M"},
                "chat_instance": "ci",
                "data": "fb:1:up",
                "inline_message_id": "imid",
            }
        },
    }


def _no_text(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in ("text", "entities")}


ODD_NAMES = list(odd_updates(1))


@pytest.mark.parametrize("name", ODD_NAMES)
async def test_unexpected_update_is_answered_or_ignored(bot: BotUnderTest, name: str) -> None:
    chat = next(_ids)
    update = {"update_id": new_update_id(), **odd_updates(chat)[name]}
    errors = failed_updates(bot)
    status = await post(bot, update)
    assert status == 200
    await asyncio.sleep(0.05)
    await bot.runtime.telegram.guard.wait_idle(REPLY_WITHIN) if bot.runtime else None
    assert failed_updates(bot) == errors
    # A message in a private chat always gets a polite word back.
    if "message" in update and update["message"]["chat"]["type"] == "private":
        seen = bot.api.seen_by(chat)
        assert seen and all(message.text.strip() for message in seen)
        assert "<script>" not in seen[-1].text


async def test_redelivered_update_is_handled_once(bot: BotUnderTest) -> None:
    chat = next(_ids)
    update = message_update(new_update_id(), chat, "kako do ezupa", language_code=None)
    await bot.deliver(update)
    first = len(bot.api.seen_by(chat))
    await post(bot, update)
    await asyncio.sleep(0.2)
    assert bot.runtime is not None and await bot.runtime.telegram.guard.wait_idle(REPLY_WITHIN)
    assert len(bot.api.seen_by(chat)) == first


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[1, 2, 3]", b'"text"', b'{"message": {}}', b'{"update_id": "x"}'],
    ids=["not json", "empty", "a list", "a string", "no update_id", "update_id not a number"],
)
async def test_malformed_body_does_not_stop_the_bot(bot: BotUnderTest, body: bytes) -> None:
    status = await post(bot, None, raw=body)
    assert status in (200, 400, 422, 500)  # never a hang or a dropped connection
    await still_answers(bot)


async def test_requests_without_the_secret_are_refused(bot: BotUnderTest) -> None:
    chat = next(_ids)
    update = message_update(new_update_id(), chat, "kako do ezupa", language_code=None)
    assert (await bot.post_update(update, secret=None)).status == 401
    assert (await bot.post_update(update, secret="guess")).status == 401
    await asyncio.sleep(0.1)
    assert bot.api.seen_by(chat) == []


# --------------------------------------------------------------------------- known gaps


async def test_nul_character_in_a_question_is_answered(
    bot: BotUnderTest, request: pytest.FixtureRequest
) -> None:
    chat = next(_ids)
    errors = failed_updates(bot)
    await bot.deliver(message_update(new_update_id(), chat, "ezup\x00pristup", language_code=None))
    assert failed_updates(bot) == errors
    assert bot.api.seen_by(chat)


@pytest.mark.parametrize("chat_type", ["supergroup", "private"])
@pytest.mark.parametrize("sender", ["none", "bot"])
async def test_message_without_a_human_sender_is_ignored(
    bot: BotUnderTest, sender: str, chat_type: str, request: pytest.FixtureRequest
) -> None:
    """An anonymous group admin or another bot writing in a group: ignored. In a private chat
    Telegram never sends such a message, but a forged one should be ignored too."""
    chat = next(_ids) if chat_type == "private" else -1_009_000_000_000 - next(_ids)
    message = message_update(0, chat, "kako do ezupa", language_code=None)["message"]
    if chat_type != "private":
        message["chat"] = {"id": chat, "type": chat_type, "title": "grupa"}
    if sender == "none":
        message.pop("from")
        message["sender_chat"] = {"id": -100555, "type": "supergroup", "title": "grupa"}
    else:
        message["from"] = {"id": abs(chat), "is_bot": True, "first_name": "drugi bot"}
    errors = failed_updates(bot)
    await post(bot, {"update_id": new_update_id(), "message": message})
    await asyncio.sleep(0.05)
    assert bot.runtime is not None and await bot.runtime.telegram.guard.wait_idle(REPLY_WITHIN)
    assert failed_updates(bot) == errors
    assert bot.api.seen_by(chat) == []
