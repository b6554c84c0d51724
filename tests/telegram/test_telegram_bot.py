"""The Telegram bot as clerks meet it: the real runtime and handlers, a real database (SQLite and
PostgreSQL), the fake Bot API server over HTTP. Assertions are on what the chat shows."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from knowledge_base.translit import to_cyrillic
from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.bot_api import DOCUMENT, PHOTO, STICKER, VOICE, FakeBotAPI, message_update
from tests.fakes.harness import BotUnderTest, Clerk, StoredQuestion, StoredUser

CYRILLIC = re.compile(r"[а-шА-Шђјљњћџ]")
EZUP_ACCESS_QUESTION = (
    "Kako naš organ dobija pristup podacima iz službenih evidencija preko eZUP-a?"
)


pytestmark = pytest.mark.asyncio(loop_scope="module")
_clerk_ids = itertools.count(10_001)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def bot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BotUnderTest]:
    """One running bot per backend for this module; every test talks as a clerk of its own."""
    async with (
        fresh_database_url(request.param, tmp_path_factory.mktemp("db")) as url,
        FakeBotAPI() as api,
        BotUnderTest(api, url) as running,
    ):
        yield running


def new_clerk(bot: BotUnderTest, language_code: str | None = None) -> Clerk:
    """A clerk nobody has seen yet. No language_code: Serbian Latin by default; "sr" (a Serbian
    Telegram app) starts in Cyrillic."""
    return bot.clerk(next(_clerk_ids), language_code=language_code)


@pytest.fixture
def latin_clerk(bot: BotUnderTest) -> Clerk:
    return new_clerk(bot)


async def stored_user(bot: BotUnderTest, clerk: Clerk) -> StoredUser | None:
    return await bot.stored_user(clerk.user_id)


async def stored_questions(bot: BotUnderTest, clerk: Clerk) -> list[StoredQuestion]:
    return await bot.stored_questions(clerk.user_id)


def question_with_decision(bot: BotUnderTest, decision: str, candidates: list[str]) -> str:
    """The first phrasing the real matcher decides `decision` for (the matcher is tuned over
    time; the bot's job is to render whatever it decides)."""
    assert bot.services is not None
    for text in candidates:
        if bot.services.matcher.match(text).decision == decision:
            return text
    raise AssertionError(f"none of {candidates} gives {decision!r}")


CLARIFY_CANDIDATES = [
    "kako da platim taksu",
    "ezup prijava",
    "sanduce",
    "eplacanje",
    "pecat",
    "rok",
    "kes",
    "pristup",
    "podaci",
]
ESCALATE_CANDIDATES = [
    "koliko je plata referenta",
    "gde je najbliža pekara",
    "xqzv wplk",
    "koji je omiljeni fudbalski klub načelnika",
]


# -- onboarding -------------------------------------------------------------------------------


async def test_start_welcomes_and_asks_for_script_then_municipality(bot: BotUnderTest) -> None:
    ana = new_clerk(bot)
    welcome, language = await ana.say("/start")
    assert "eUprava za sve" in welcome.text
    assert language.button_labels == ["Latinica", "Ћирилица", "English"]

    (asked,) = await ana.tap("Ћирилица")
    assert CYRILLIC.search(asked.text), asked.text
    assert "Друга институција" in asked.button_labels

    (offered,) = await ana.say("чач")
    assert "Чачак – град" in offered.button_labels
    assert "Друга институција" in offered.button_labels

    seen = await ana.tap("Чачак")
    assert "Чачак" in seen[-1].text

    user = await stored_user(bot, ana)
    assert user is not None
    assert (user.language, user.municipality, user.onboarded) == ("sr-Cyrl", "Čačak", True)


async def test_municipality_typed_without_diacritics_in_latin(bot: BotUnderTest) -> None:
    ana = new_clerk(bot)
    await ana.say("/start")
    await ana.tap("Latinica")
    (offered,) = await ana.say("vozdovac")
    assert offered.button_labels[0] == "Voždovac – Beograd"
    await ana.tap("Voždovac")
    user = await stored_user(bot, ana)
    assert user is not None and user.municipality == "Voždovac (Beograd)"


async def test_clerk_of_another_institution_says_so(bot: BotUnderTest) -> None:
    ana = new_clerk(bot)
    await ana.say("/start")
    await ana.tap("Latinica")
    await ana.tap("Druga institucija")
    user = await stored_user(bot, ana)
    assert user is not None and (user.municipality, user.onboarded) == ("other", True)


async def test_unknown_municipality_gets_another_try(bot: BotUnderTest) -> None:
    ana = new_clerk(bot)
    await ana.say("/start")
    await ana.tap("Latinica")
    (reply,) = await ana.say("Zzzgrad")
    assert "Zzzgrad" in reply.text
    assert "Druga institucija" in reply.button_labels


async def test_clerk_who_skips_onboarding_can_still_ask(bot: BotUnderTest) -> None:
    ana = new_clerk(bot)
    await ana.say("/start")
    await ana.tap("Latinica")
    # Instead of a municipality, a question: it is answered, not searched as a place.
    (answer,) = await ana.say("kako da dobijem pristup ezupu?")
    assert EZUP_ACCESS_QUESTION in answer.text


async def test_language_and_municipality_can_be_changed_later(bot: BotUnderTest) -> None:
    ana = new_clerk(bot)
    await ana.say("/start")
    await ana.tap("Latinica")
    await ana.tap("Preskoči")
    (prompt,) = await ana.say("/jezik")
    (changed,) = await ana.tap("Ћирилица", prompt)
    assert CYRILLIC.search(changed.text) and "/" not in changed.text
    (asked,) = await ana.say("/opstina")
    assert len(asked.button_labels) == 2  # other institution, skip
    (offered,) = await ana.say("Palilula")
    assert offered.button_labels[:2] == ["Палилула – Београд", "Палилула – Ниш"]
    await ana.tap("Палилула – Ниш")
    await ana.tap("English", prompt)
    user = await stored_user(bot, ana)
    assert user is not None and (user.language, user.municipality) == ("en", "Palilula (Niš)")


async def test_command_menu_is_published_in_each_language(bot: BotUnderTest) -> None:
    calls = bot.api.calls_of("setMyCommands")
    assert {call.params.get("language_code") for call in calls} == {None, "sr", "en"}
    by_language = {call.params.get("language_code"): call.params["commands"] for call in calls}
    names = [command["command"] for command in by_language[None]]
    assert names == ["start", "teme", "pomoc", "mentor", "plan", "obuke", "jezik", "opstina",
                     "moji_podaci", "obrisi_me"]
    cyrillic = " ".join(command["description"] for command in by_language["sr"])
    assert CYRILLIC.search(cyrillic)
    # Every command in the menu is one the bot knows.
    clerk = bot.clerk(4190, language_code=None)
    for name in names:
        seen = await clerk.say(f"/{name}")
        assert seen and all("Ne poznajem tu komandu" not in m.text for m in seen), name


# -- asking -----------------------------------------------------------------------------------


async def test_clerk_gets_answer_with_rating_buttons(bot: BotUnderTest, latin_clerk: Clerk) -> None:
    (answer,) = await latin_clerk.say("kako da dobijem pristup ezupu")
    assert f"<b>{EZUP_ACCESS_QUESTION}</b>" in answer.text
    assert answer.parse_mode == "HTML"
    assert "👍" in answer.button_labels and "👎" in answer.button_labels
    questions = await stored_questions(bot, latin_clerk)
    assert [(q.decision, q.entry_id) for q in questions] == [("answer", "ezup-access-request")]


async def test_clerk_gets_answer_in_cyrillic(bot: BotUnderTest) -> None:
    mira = new_clerk(bot, "sr")  # a Serbian Telegram app: Cyrillic by default
    (answer,) = await mira.say("како да добијем приступ еЗУП-у")
    assert to_cyrillic("Kako naš organ dobija pristup") in answer.text
    questions = await stored_questions(bot, mira)
    assert questions[0].entry_id == "ezup-access-request"


async def test_question_text_is_escaped_when_echoed(bot: BotUnderTest) -> None:
    ana = new_clerk(bot)
    await ana.say("/opstina")
    (reply,) = await ana.say("<b>Grad</b>")
    assert "&lt;b&gt;Grad&lt;/b&gt;" in reply.text


async def test_unclear_question_offers_choices_and_a_tap_answers(
    bot: BotUnderTest, latin_clerk: Clerk
) -> None:
    text = question_with_decision(bot, "clarify", CLARIFY_CANDIDATES)
    (choices,) = await latin_clerk.say(text)
    candidate_buttons = [
        (row[0]["text"], row[0]["callback_data"])
        for row in choices.keyboard
        if row[0]["callback_data"].startswith("c:")
    ]
    assert 2 <= len(candidate_buttons) <= 3
    _label, data = candidate_buttons[0]
    seen = await latin_clerk.tap_data(data, choices)
    answer = seen[-1]
    assert "👍" in answer.button_labels
    entry_id = data.split(":", 2)[2]
    assert bot.services is not None
    entry = bot.services.knowledge_base.get(entry_id)
    assert entry is not None and entry.question in answer.text


async def test_unknown_question_is_honest_and_offers_a_mentor(
    bot: BotUnderTest, latin_clerk: Clerk
) -> None:
    text = question_with_decision(bot, "escalate", ESCALATE_CANDIDATES)
    (reply,) = await latin_clerk.say(text)
    assert "Pitaj mentora" in reply.button_labels
    questions = await stored_questions(bot, latin_clerk)
    assert [q.decision for q in questions] == ["escalate"]
    # The button leads on to the mentor queue (handlers/mentor.py); it always answers.
    seen = await latin_clerk.tap("Pitaj mentora")
    assert seen and seen[-1].text


async def test_thumbs_up_and_down_are_recorded(bot: BotUnderTest, latin_clerk: Clerk) -> None:
    (answer,) = await latin_clerk.say("kako da dobijem pristup ezupu")
    seen = await latin_clerk.tap("👎", answer)
    thanks = seen[-1]
    assert "Pitaj mentora" in thanks.button_labels
    assert "👎" not in latin_clerk.chat[0].button_labels  # one rating per answer
    questions = await stored_questions(bot, latin_clerk)
    user = await stored_user(bot, latin_clerk)
    assert bot.services is not None and user is not None
    async with bot.services.database.uow() as uow:
        feedback = await uow.feedback.get(questions[0].id, user.id)
        assert feedback is not None and feedback.value == "down"


# -- browsing ---------------------------------------------------------------------------------


async def test_topics_open_services_then_questions_then_answer_and_back(
    bot: BotUnderTest, latin_clerk: Clerk
) -> None:
    (menu,) = await latin_clerk.say("/teme")
    assert any("eZUP" in label for label in menu.button_labels)
    (services_list,) = await latin_clerk.tap("eZUP", menu)  # edited in place
    assert services_list.message_id == menu.message_id
    first = services_list.keyboard[0][0]
    (answer,) = await latin_clerk.tap_data(first["callback_data"], services_list)
    assert answer.message_id == menu.message_id
    assert first["text"].rstrip("…")[:30] in answer.text
    (back,) = await latin_clerk.tap("« Teme", answer)
    assert back.button_labels == services_list.button_labels
    (all_services,) = await latin_clerk.tap("« Sve usluge", back)
    assert all_services.button_labels == menu.button_labels


async def test_help_explains_what_the_bot_does(latin_clerk: Clerk) -> None:
    (help_text,) = await latin_clerk.say("/pomoc")
    assert "/teme" in help_text.text and "/jezik" in help_text.text


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content", [STICKER, PHOTO, VOICE, DOCUMENT], ids=["sticker", "photo", "voice", "file"]
)
async def test_non_text_messages_get_a_polite_answer(
    latin_clerk: Clerk, content: dict[str, Any]
) -> None:
    (reply,) = await latin_clerk.send(content=content)
    assert "tekstualne poruke" in reply.text


async def test_photo_with_a_question_under_it_gets_the_answer(latin_clerk: Clerk) -> None:
    note, answer = await latin_clerk.send(
        content={**PHOTO, "caption": "kako da dobijem pristup ezupu"}
    )
    assert "/mentor" in note.text  # the picture itself was not read; a mentor can look at it
    assert EZUP_ACCESS_QUESTION in answer.text


async def test_non_text_answer_follows_the_clerks_language(bot: BotUnderTest) -> None:
    mira = new_clerk(bot, "sr")
    (reply,) = await mira.send(content=STICKER)
    assert CYRILLIC.search(reply.text)


async def test_unknown_command_points_to_help(latin_clerk: Clerk) -> None:
    (reply,) = await latin_clerk.say("/nepostojeca")
    assert "/pomoc" in reply.text


async def test_very_long_text_is_kept_and_answered_politely(
    bot: BotUnderTest, latin_clerk: Clerk
) -> None:
    text = ("Imamo problem sa pristupom eZUP-u i ne znamo šta da radimo. " * 70)[:4000]
    (reply,) = await latin_clerk.say(text)
    assert "Pitaj mentora" in reply.button_labels
    questions = await stored_questions(bot, latin_clerk)
    assert questions[0].text == text.strip()


async def test_taps_on_buttons_of_old_messages_are_answered(
    bot: BotUnderTest, latin_clerk: Clerk
) -> None:
    (answer,) = await latin_clerk.say("kako da dobijem pristup ezupu")
    spinners_before = len(bot.api.calls_of("answerCallbackQuery"))
    for data in ("e:entry-that-was-removed", "zzz:old-format", "fb:999999:up", "svc:nope"):
        seen = await latin_clerk.tap_data(data, answer)
        assert "više nije dostupna" in seen[-1].text
    # every tap stops the button's spinner
    assert len(bot.api.calls_of("answerCallbackQuery")) == spinners_before + 4


async def test_messages_in_groups_are_not_taken_for_questions(bot: BotUnderTest) -> None:
    group_id = -100123456
    update = message_update(bot.next_update_id(), 10_999, "kako da dobijem pristup ezupu")
    update["message"]["chat"] = {"id": group_id, "type": "supergroup", "title": "Mentori"}
    await bot.deliver(update)
    assert bot.api.seen_by(group_id) == []


async def test_clerk_who_blocks_the_bot_is_marked_inactive_at_once(bot: BotUnderTest) -> None:
    ana = new_clerk(bot)
    await ana.say("/pomoc")
    blocked = {
        "update_id": bot.next_update_id(),
        "my_chat_member": {
            "chat": {"id": ana.user_id, "type": "private", "first_name": "Ana"},
            "from": {"id": ana.user_id, "is_bot": False, "first_name": "Ana"},
            "date": 1767225600,
            "old_chat_member": {
                "status": "member",
                "user": {"id": 1, "is_bot": True, "first_name": "b"},
            },
            "new_chat_member": {
                "status": "kicked",
                "until_date": 0,
                "user": {"id": 1, "is_bot": True, "first_name": "b"},
            },
        },
    }
    await bot.deliver(blocked)
    user = await stored_user(bot, ana)
    assert user is not None and user.active is False


# -- Telegram's bad moments -------------------------------------------------------------------


async def test_answer_arrives_after_too_many_requests(
    bot: BotUnderTest, latin_clerk: Clerk
) -> None:
    bot.api.fail_next(1, status=429, retry_after=1, method="sendMessage")
    (answer,) = await latin_clerk.say("kako da dobijem pristup ezupu")
    assert EZUP_ACCESS_QUESTION in answer.text
    attempts = [
        c.status for c in bot.api.calls_of("sendMessage") if c.chat_id == latin_clerk.user_id
    ]
    assert attempts == [429, 200]


async def test_answer_arrives_after_server_errors(bot: BotUnderTest, latin_clerk: Clerk) -> None:
    bot.api.fail_next(2, status=502, method="sendMessage")
    (answer,) = await latin_clerk.say("kako da dobijem pristup ezupu")
    assert EZUP_ACCESS_QUESTION in answer.text


async def test_clerk_who_blocked_the_bot_is_marked_inactive(
    bot: BotUnderTest, latin_clerk: Clerk
) -> None:
    bot.api.fail_next(1, status=403, method="sendMessage")
    assert await latin_clerk.say("kako da dobijem pristup ezupu") == []
    user = await stored_user(bot, latin_clerk)
    assert user is not None and user.active is False
    # Writing again proves they can be reached: active again, and answered.
    (answer,) = await latin_clerk.say("kako da dobijem pristup ezupu")
    assert EZUP_ACCESS_QUESTION in answer.text
    user = await stored_user(bot, latin_clerk)
    assert user is not None and user.active is True


# -- once only, and across restarts -----------------------------------------------------------
