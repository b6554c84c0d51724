"""The Viber channel as clerks meet it: the real webhook app and services, a real database
(SQLite and PostgreSQL), the fake Viber REST API over HTTP. Assertions are on what the chat
shows and what the database keeps."""

from __future__ import annotations

import asyncio
import base64
import json
import re

import aiohttp
import pytest
from pydantic import SecretStr

from bot.channels.viber import start_viber
from bot.channels.viber_client import ViberSettings, broadcast_channels
from bot.services.audience import Audience, audience_members
from bot.services.messages import reply_to_payload
from bot.services.replies import Reply
from storage.models import Question, User
from tests.fakes.viber_api import ViberBotUnderTest, ViberUser, sign

pytestmark = pytest.mark.asyncio(loop_scope="module")

CYRILLIC = re.compile(r"[а-шА-Шђјљњћџ]")
EZUP_ACCESS_QUESTION = (
    "Kako naš organ dobija pristup podacima iz službenih evidencija preko eZUP-a?"
)
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
ESCALATE_CANDIDATES = ["koliko je plata referenta", "gde je najbliža pekara", "xqzv wplk"]



@pytest.fixture
def clerk(bot: ViberBotUnderTest) -> ViberUser:
    return bot.user()


def question_with_decision(bot: ViberBotUnderTest, decision: str, candidates: list[str]) -> str:
    assert bot.services is not None
    for text in candidates:
        if bot.services.matcher.match(text).decision == decision:
            return text
    raise AssertionError(f"none of {candidates} gives {decision!r}")


async def stored_user(bot: ViberBotUnderTest, user: ViberUser) -> User | None:
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        return await uow.users.get_by_external("viber", user.id)


async def stored_questions(bot: ViberBotUnderTest, user: ViberUser) -> list[Question]:
    row = await stored_user(bot, user)
    assert row is not None and bot.services is not None
    async with bot.services.database.uow() as uow:
        return sorted(await uow.questions.for_user(row.id), key=lambda q: q.id)


# -- onboarding -----------------------------------------------------------------------------


async def test_opening_the_chat_welcomes_and_offers_the_scripts(bot: ViberBotUnderTest) -> None:
    ana = bot.user()
    status, welcome = await ana.open()
    assert status == 200
    assert "*eUprava za sve*" in welcome["text"] and "<b>" not in welcome["text"]
    assert welcome["sender"]["name"] == "eUprava za sve"
    labels = [b["Text"] for b in welcome["keyboard"]["Buttons"]]
    assert labels == ["Latinica", "Ћирилица", "English"]
    assert welcome["keyboard"]["Buttons"][0]["ActionBody"] == "act:lang:sr-Latn"
    # The privacy notice names the commands that work on Viber too.
    assert "Privatnost" in welcome["text"]
    assert "/moji_podaci" in welcome["text"] and "/obrisi_me" in welcome["text"]
    # Not subscribed yet: nobody is registered and nothing is sent through the API.
    assert await stored_user(bot, ana) is None
    assert ana.chat == []


async def test_onboarding_in_cyrillic_finds_the_municipality_from_a_few_letters(
    bot: ViberBotUnderTest,
) -> None:
    ana = bot.user()
    await ana.open()
    (asked,) = await ana.tap_action("act:lang:sr-Cyrl")
    assert CYRILLIC.search(asked.text), asked.text
    assert "Друга институција" in asked.button_labels
    assert asked.tracking_data == "mun"

    (offered,) = await ana.say("чач")
    assert "Чачак – град" in offered.button_labels
    assert offered.tracking_data == "mun"

    (done,) = await ana.tap("Чачак")
    assert "*Чачак*" in done.text
    assert done.tracking_data is None
    user = await stored_user(bot, ana)
    assert user is not None
    assert (user.language, user.municipality, user.onboarded) == ("sr-Cyrl", "Čačak", True)


async def test_municipality_typed_in_latin_without_diacritics(bot: ViberBotUnderTest) -> None:
    ana = bot.user()
    await ana.tap_action("act:lang:sr-Latn")
    (offered,) = await ana.say("vozdovac")
    assert offered.button_labels[0] == "Voždovac – Beograd"
    await ana.tap("Voždovac")
    user = await stored_user(bot, ana)
    assert user is not None and user.municipality == "Voždovac (Beograd)"


async def test_a_question_instead_of_a_municipality_is_answered(bot: ViberBotUnderTest) -> None:
    ana = bot.user()
    await ana.tap_action("act:lang:sr-Latn")
    (answer,) = await ana.say("kako da dobijem pristup ezupu?")
    assert EZUP_ACCESS_QUESTION in answer.text


async def test_skipping_onboarding_then_changing_the_language_later(
    bot: ViberBotUnderTest,
) -> None:
    ana = bot.user()
    await ana.tap_action("act:lang:sr-Latn")
    (skipped,) = await ana.tap("Preskoči")
    assert "Izvolite" in skipped.text
    (menu,) = await ana.say("/jezik")
    (changed,) = await ana.tap("English", menu)
    assert "Language" in changed.text or "language" in changed.text
    user = await stored_user(bot, ana)
    assert user is not None and (user.language, user.onboarded) == ("en", True)


# -- answers ----------------------------------------------------------------------------------


async def test_question_gets_the_ezup_access_answer_as_viber_text(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    (answer,) = await clerk.say("kako da dobijem pristup ezupu")
    assert f"*{EZUP_ACCESS_QUESTION}*" in answer.text
    assert "<b>" not in answer.text and "&amp;" not in answer.text
    assert answer.button_labels[:2] == ["👍", "👎"]
    assert all(action.startswith("act:") for action in answer.actions)
    assert all(button["Silent"] for button in answer.buttons)
    [question] = await stored_questions(bot, clerk)
    assert (question.decision, question.entry_id) == ("answer", "ezup-access-request")


async def test_the_reply_follows_the_question_until_the_clerk_chooses(
    bot: ViberBotUnderTest,
) -> None:
    petar = bot.user(language="sr")  # a Serbian phone: Cyrillic is only a hint
    (answer,) = await petar.say("како да добијем приступ езупу")
    assert "Како наш орган добија приступ" in answer.text
    (answer,) = await petar.say("kako da dobijem pristup ezupu")
    assert "Kako naš organ dobija pristup" in answer.text


async def test_unclear_question_offers_choices_and_a_tap_answers(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    text = question_with_decision(bot, "clarify", CLARIFY_CANDIDATES)
    (choices,) = await clerk.say(text)
    candidates = [a for a in choices.actions if a.startswith("act:c:")]
    assert 2 <= len(candidates) <= 3
    assert any(a.startswith("act:m:") for a in choices.actions)
    (answer,) = await clerk.tap_action(candidates[0])
    entry_id = candidates[0].split(":", 3)[3]
    assert bot.services is not None
    entry = bot.services.knowledge_base.get(entry_id)
    assert entry is not None and f"*{entry.question}*" in answer.text
    assert "👍" in answer.button_labels
    [question] = await stored_questions(bot, clerk)
    assert (question.decision, question.chosen_entry_id) == ("clarify", entry_id)


async def test_thumbs_up_and_down_are_recorded(bot: ViberBotUnderTest, clerk: ViberUser) -> None:
    await clerk.say("kako da dobijem pristup ezupu")
    (thanks,) = await clerk.tap("👍")
    assert "Hvala na oceni" in thanks.text
    await clerk.say("kako da dobijem pristup ezupu")
    (sorry,) = await clerk.tap("👎")
    assert any(a.startswith("act:m:") for a in sorry.actions)
    assert bot.services is not None
    questions = await stored_questions(bot, clerk)
    async with bot.services.database.uow() as uow:
        values = [(await uow.feedback.get(q.id, q.user_id)) for q in questions]
    assert [v.value if v else None for v in values] == ["up", "down"]


async def test_unknown_question_is_honest_and_offers_a_mentor(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    text = question_with_decision(bot, "escalate", ESCALATE_CANDIDATES)
    (reply,) = await clerk.say(text)
    assert "pouzdan odgovor" in reply.text
    assert any(a.startswith("act:m:") for a in reply.actions)


async def test_topics_are_browsed_with_keyboards(bot: ViberBotUnderTest, clerk: ViberUser) -> None:
    (menu,) = await clerk.say("/teme")
    assert "eZUP" in menu.button_labels
    (entries,) = await clerk.tap("eZUP")
    assert "*eZUP*" in entries.text
    assert len(entries.buttons) <= 24
    assert "act:menu" in entries.actions
    (answer,) = await clerk.tap("Kako naš organ dobija pristup")
    assert f"*{EZUP_ACCESS_QUESTION}*" in answer.text
    (back,) = await clerk.tap("« Teme")
    assert "act:e:ezup-access-request" in back.actions


async def test_help_and_a_keyboard_under_replies_without_buttons(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    (help_text,) = await clerk.say("/pomoc")
    assert "*Kako da me koristite*" in help_text.text
    (unknown,) = await clerk.say("/nepostojeca")
    assert "/pomoc" in unknown.text
    assert unknown.actions[0] == "act:menu"
    assert {"act:cmd:pomoc", "act:cmd:jezik", "act:cmd:opstina"} <= set(unknown.actions)
    (via_button,) = await clerk.tap("Pomoć", unknown)
    assert "*Kako da me koristite*" in via_button.text


async def test_typed_text_that_looks_like_a_token_is_a_question(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    await clerk.say("lang:en")
    user = await stored_user(bot, clerk)
    assert user is not None and user.language == "sr-Latn"
    assert [q.text for q in await stored_questions(bot, clerk)] == ["lang:en"]


async def test_old_or_forged_button_is_answered_politely(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    (reply,) = await clerk.tap_action("act:e:no-such-entry")
    assert "više nije dostupna" in reply.text
    (reply,) = await clerk.tap_action("act:pg:1:fb:1:up")
    assert "više nije dostupna" in reply.text


# -- Viber's own events and limits --------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {"type": "picture", "text": "", "media": "https://x.example/p.jpg", "thumbnail": ""},
        {"type": "sticker", "sticker_id": 46105},
        {"type": "file", "media": "https://x.example/z.pdf", "file_name": "z.pdf", "size": 10},
        {"type": "location", "location": {"lat": 44.8, "lon": 20.4}},
        {"type": "contact", "contact": {"name": "Ana", "phone_number": "+381601234567"}},
        {"type": "video", "media": "https://x.example/v.mp4", "size": 100},
        {"type": "url", "media": "https://euprava.gov.rs"},
    ],
    ids=lambda m: m["type"],
)
async def test_unsupported_message_types_get_a_polite_answer(
    bot: ViberBotUnderTest, message: dict
) -> None:
    mira = bot.user()
    (reply,) = await mira.send(message)
    assert "razumem samo tekstualne poruke" in reply.text


async def test_unsupported_answer_follows_the_users_language(bot: ViberBotUnderTest) -> None:
    john = bot.user(language="en")
    (reply,) = await john.send({"type": "sticker", "sticker_id": 1})
    assert "text" in reply.text and "razumem" not in reply.text


async def test_bad_signature_is_rejected_with_403_and_nothing_stored(
    bot: ViberBotUnderTest,
) -> None:
    eve = bot.user()
    event = eve.message_event({"type": "text", "text": "kako da dobijem pristup ezupu"})
    token = event["message_token"]
    body = json.dumps(event).encode()
    other_key = sign(body, "not-the-token")
    tampered = body.replace(b"ezupu", b"ezupa")
    for kwargs in (
        {"signature": None},
        {"signature": other_key},
        {"signature": "zz"},
        {"signature": sign(body, bot.api.token), "raw": tampered},
    ):
        status, _ = await bot.post(event, **kwargs)
        assert status == 403
    assert eve.chat == []
    assert await stored_user(bot, eve) is None
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        assert not await uow.processed_updates.is_processed("viber", token)
    # The same event, correctly signed, is handled.
    status, _ = await bot.post(event)
    assert status == 200 and len(eve.chat) == 1


async def test_redelivered_message_is_handled_once(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    token = bot.api.next_token()
    await clerk.send({"type": "text", "text": "kako da dobijem pristup ezupu"}, token=token)
    again = await clerk.send({"type": "text", "text": "kako da dobijem pristup ezupu"}, token=token)
    assert again == []
    assert len(await stored_questions(bot, clerk)) == 1


async def test_unsubscribed_user_is_inactive_skipped_and_back_when_writing(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    await clerk.say("kako da dobijem pristup ezupu")
    assert await clerk.unsubscribe() == 200
    user = await stored_user(bot, clerk)
    assert user is not None and not user.active
    assert bot.services is not None
    everyone = ViberSettings(  # type: ignore[call-arg]
        _env_file=None, auth_token=SecretStr("x"), broadcasts=True
    )
    members = [
        member.external_id
        async for page, _last in audience_members(
            bot.services.database, Audience("all"), channels=broadcast_channels(everyone)
        )
        for member in page
    ]
    assert clerk.id not in members
    # Subscribing again (writing to the bot) makes them reachable again.
    assert await clerk.subscribe() == 200
    user = await stored_user(bot, clerk)
    assert user is not None and user.active
    members = [
        member.external_id
        async for page, _last in audience_members(
            bot.services.database, Audience("all"), channels=broadcast_channels(everyone)
        )
        for member in page
    ]
    assert clerk.id in members


async def test_reply_to_an_unsubscribed_user_marks_them_inactive(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    await clerk.say("dobar dan")
    bot.api.fail_next(status=6)
    assert await clerk.say("kako da dobijem pristup ezupu") == []
    user = await stored_user(bot, clerk)
    assert user is not None and not user.active


async def test_reply_waits_in_the_outbox_when_viber_is_busy(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    bot.api.fail_next(status=12)
    assert await clerk.say("kako da dobijem pristup ezupu") == []
    assert await bot.dispatcher().drain() == 1
    assert EZUP_ACCESS_QUESTION in clerk.last.text
    assert "👍" in clerk.last.button_labels


async def test_delivered_seen_failed_and_webhook_events_are_acknowledged(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    for event in ("delivered", "seen", "failed", "webhook", "client_status"):
        status, body = await bot.post(
            {
                "event": event,
                "timestamp": 1,
                "message_token": bot.api.next_token(),
                "user_id": clerk.id,
                "desc": "x",
            }
        )
        assert (status, body) == (200, None)


async def test_too_many_messages_get_one_polite_note(bot: ViberBotUnderTest) -> None:
    assert bot.channel is not None
    flood = bot.user()
    limit = bot.channel._limit.per_minute
    for _ in range(limit):
        await flood.say("dobar dan")
    (note,) = await flood.say("dobar dan")
    assert "sačekajte minut" in note.text
    assert await flood.say("dobar dan") == []


async def test_set_webhook_at_start_points_viber_at_us(bot: ViberBotUnderTest) -> None:
    assert bot.channel is not None
    bot.channel.settings.webhook_url = None
    assert not await start_viber(bot.channel)
    assert bot.api.calls_of("set_webhook") == []
    bot.channel.settings.webhook_url = bot.webhook_url
    try:
        assert await start_viber(bot.channel)
    finally:
        bot.channel.settings.webhook_url = None
    (call,) = bot.api.calls_of("set_webhook")
    assert call.body["url"] == bot.webhook_url
    assert {"subscribed", "unsubscribed", "conversation_started"} <= set(call.body["event_types"])
    assert bot.api.webhook_answer == 200  # our endpoint accepted Viber's signed check


async def test_a_paging_button_repeats_the_list_it_came_from(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    (menu,) = await clerk.tap_action("act:pg:0:menu")
    assert "eZUP" in menu.button_labels
    (entries,) = await clerk.tap_action("act:pg:3:svc:ezup")  # past the end: the last page
    assert "act:e:ezup-access-request" in entries.actions


async def test_calendar_file_in_the_outbox_is_fetched_by_viber_from_our_link(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    assert bot.channel is not None and bot.services is not None
    await clerk.say("dobar dan")
    user = await stored_user(bot, clerk)
    assert user is not None
    ics = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
    document = {"filename": "obuka-5.ics", "content_b64": base64.b64encode(ics).decode()}
    async with bot.services.database.uow() as uow:
        await uow.outbox.add(
            channel="viber",
            chat_id=clerk.id,
            user_id=user.id,
            kind="training_signup",
            payload=reply_to_payload(Reply("Prijavljeni ste."), document=document),
        )
        await uow.commit()
    bot.channel.settings.webhook_url = bot.webhook_url  # the public URL Viber fetches from
    try:
        assert await bot.dispatcher().drain() == 1
    finally:
        bot.channel.settings.webhook_url = None
    file_message, text = clerk.chat[-2:]
    assert file_message.type == "file" and file_message.body["file_name"] == "obuka-5.ics"
    assert file_message.file == ics
    assert text.text == "Prijavljeni ste." and text.buttons  # the keyboard stays on the text
    forged = file_message.body["media"].replace("/obuka-5.ics", "/obuka-6.ics")
    async with aiohttp.ClientSession() as http, http.get(forged) as response:
        assert response.status == 404


async def test_clerk_chooses_the_services_they_work_on(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    (menu,) = await clerk.say("/usluge")
    assert "act:int:ezup" in menu.actions
    (after,) = await clerk.tap_action("act:int:ezup")
    assert any(label.startswith("✅") and "eZUP" in label for label in after.button_labels)
    user = await stored_user(bot, clerk)
    assert user is not None and user.services_of_interest == ["ezup"]


async def test_a_message_a_dead_process_left_unfinished_is_handled_again(
    bot: ViberBotUnderTest, clerk: ViberUser
) -> None:
    from bot.channels.viber import token_id
    from bot.inbox import UpdateInbox, storable

    assert bot.services is not None and bot.channel is not None
    await bot.channel.inbox.flush()  # what earlier messages finished is written down
    event = clerk.message_event({"type": "text", "text": "kako da dobijem pristup ezupu"})
    # what a process killed right after its claim leaves behind: the message, kept
    async with bot.services.database.uow() as uow:
        assert await uow.processed_updates.claim(
            "viber", token_id(event["message_token"]), storable(event)
        )
        await uow.commit()
    before = len(clerk.chat)
    status, _ = await bot.post(event)  # Viber's own retry is a duplicate now
    assert status == 200 and len(clerk.chat) == before
    inbox = UpdateInbox(bot.services.delivery, channel="viber", replay_after=0.001)
    await asyncio.sleep(0.05)
    assert await inbox.replay(bot.channel.replay) == 1
    assert len(clerk.chat) == before + 1
    assert "eZUP" in clerk.chat[-1].text
    await bot.channel.inbox.flush()
    assert await inbox.replay(bot.channel.replay) == 0  # handled once, then done
