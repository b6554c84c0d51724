"""A Viber clerk asks a mentor: details and screenshots, the request stored before "received",
the mentor's answer arriving on Viber through the outbox, follow-up, "resolved" and rating.
(The Telegram side, card and reply in the mentor group, is in test_viber_mentor_telegram.py.)"""

from __future__ import annotations

import re

import pytest

from bot.services.users import UserProfile
from storage.mentor import MentorRepository, MentorRequest
from storage.models import User
from tests.fakes.viber_api import (
    ViberBotUnderTest,
    ViberUser,
    telegram_user_with_role,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

ESCALATE = "koji je omiljeni fudbalski klub načelnika"
SCREENSHOT = {
    "type": "picture",
    "text": "greška na ekranu",
    "media": "https://dl-media.viber.com/1/share/2/long/vibes/icon/image/0x0/95e0/x.jpg",
    "thumbnail": "https://dl-media.viber.com/1/share/2/long/vibes/icon/image/0x0/95e0/t.jpg",
    "file_name": "greska.jpg",
}



async def _mentor(bot: ViberBotUnderTest, telegram_id: str) -> UserProfile:
    return await telegram_user_with_role(bot, telegram_id, "Mentor Marko", "mentor")


async def _request(bot: ViberBotUnderTest, number: int) -> MentorRequest:
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        found = await uow.repository(MentorRepository).get(number)
        assert found is not None
        return found


async def _number_from(text: str) -> int:
    match = re.search(r"#(\d+)", text)
    assert match, text
    return int(match.group(1))


async def _clerk_row(bot: ViberBotUnderTest, clerk: ViberUser) -> User:
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        row = await uow.users.get_by_external("viber", clerk.id)
        assert row is not None
        return row


async def test_viber_clerk_asks_a_mentor_with_details_and_gets_the_answer_on_viber(
    bot: ViberBotUnderTest,
) -> None:
    clerk = bot.user(name="Jelena Petrović")
    (offer,) = await clerk.say(ESCALATE)
    (compose,) = await clerk.tap("Pitaj mentora", offer)
    assert "Pitanje za mentora" in compose.text and "Pošalji mentoru" in compose.button_labels
    (noted,) = await clerk.say("Pitam za kolegu iz kabineta.")
    assert "Dodato" in noted.text
    (noted,) = await clerk.send(SCREENSHOT)
    assert "Prilog je dodat" in noted.text
    draft = clerk.last.tracking_data
    (received,) = await clerk.tap("Pošalji mentoru")
    assert "Primljeno" in received.text
    number = await _number_from(received.text)
    request = await _request(bot, number)
    assert request.question == ESCALATE
    assert "Pitam za kolegu" in (request.details or "") and "greška na ekranu" in (
        request.details or ""
    )
    assert [a["file_id"] for a in request.attachments] == [SCREENSHOT["media"]]
    assert request.state == "new"

    # A second tap on "send" while the keyboard was still on screen opens no second request.
    (again,) = await clerk.send({"type": "text", "text": "act:ms:send"}, tracking=draft)
    assert f"#{number}" in again.text
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        assert await uow.repository(MentorRepository).get(number + 1) is None

    assert bot.services is not None
    mentor = await _mentor(bot, "555001")
    result = await bot.services.mentoring.answer(mentor, number, "Obratite se načelniku lično.")
    assert result.ok
    await bot.dispatcher().drain()
    answer = clerk.last
    assert "Obratite se načelniku lično." in answer.text
    assert f"*Odgovor mentora na Vaše pitanje #{number}*" in answer.text
    assert "<b>" not in answer.text
    assert answer.button_labels == ["Rešeno, hvala", "Imam dodatno pitanje"]

    (prompt,) = await clerk.tap("Imam dodatno pitanje")
    assert f"#{number}" in prompt.text
    (forwarded,) = await clerk.say("A ako nije tu?")
    assert "prosleđeno mentoru" in forwarded.text
    await bot.dispatcher().drain()  # the follow-up goes to the mentor (Telegram rows wait)

    result = await bot.services.mentoring.answer(mentor, number, "Onda zameniku.")
    await bot.dispatcher().drain()
    assert "Onda zameniku." in clerk.last.text
    (stars,) = await clerk.tap("Rešeno, hvala")
    assert len(stars.buttons) == 5
    (thanks,) = await clerk.tap("5 ⭐", stars)
    assert "Hvala na oceni" in thanks.text
    request = await _request(bot, number)
    assert (request.state, request.rating) == ("closed", 5)


async def test_mentor_command_lets_the_clerk_write_the_question(bot: ViberBotUnderTest) -> None:
    clerk = bot.user()
    (prompt,) = await clerk.say("/mentor")
    assert "Napišite pitanje za mentora" in prompt.text
    await clerk.say("Kako da prijavimo grešku u ePisarnici?")
    draft = clerk.last.tracking_data
    (received,) = await clerk.tap("Pošalji mentoru")
    number = await _number_from(received.text)
    request = await _request(bot, number)
    assert request.question == "Kako da prijavimo grešku u ePisarnici?"
    assert request.user_id == (await _clerk_row(bot, clerk)).id
    (again,) = await clerk.send({"type": "text", "text": "act:ms:send"}, tracking=draft)
    assert f"#{number}" in again.text
    assert bot.services is not None
    async with bot.services.database.uow() as uow:
        assert await uow.repository(MentorRepository).get(number + 1) is None
    # The next /mentor is a new request.
    await clerk.say("/mentor")
    await clerk.say("Drugo pitanje.")
    (second,) = await clerk.tap("Pošalji mentoru")
    assert await _number_from(second.text) > number


async def test_sending_an_empty_request_keeps_asking_and_cancel_drops_it(
    bot: ViberBotUnderTest,
) -> None:
    clerk = bot.user()
    await clerk.say("/mentor")
    (still,) = await clerk.tap("Pošalji mentoru")
    assert "Pošalji mentoru" in still.button_labels
    (dropped,) = await clerk.tap("Otkaži", still)
    assert "nije poslato" in dropped.text
    (answer,) = await clerk.say("kako da dobijem pristup ezupu")
    assert "eZUP" in answer.text  # writing is over: a question is a question again


async def test_a_sticker_while_writing_is_still_politely_refused(bot: ViberBotUnderTest) -> None:
    clerk = bot.user()
    await clerk.say("/mentor")
    (reply,) = await clerk.send({"type": "sticker", "sticker_id": 40133})
    assert "razumem samo tekstualne poruke" in reply.text


async def test_viber_clerk_asking_the_same_follows_and_may_send_their_own(
    bot: ViberBotUnderTest,
) -> None:
    first, second = bot.user(), bot.user()
    for clerk, text in ((first, "Kako da uključim eSanduče za naš organ?"),
                        (second, "kako da ukljucim esanduce za nas organ")):
        await clerk.say("/mentor")
        await clerk.say(text)
    (received,) = await first.tap("Pošalji mentoru")
    number = await _number_from(received.text)
    (following,) = await second.tap("Pošalji mentoru")
    assert f"Isto pitanje je već kod mentora pod brojem *#{number}*" in following.text
    (own,) = await second.tap("Pošalji kao novo pitanje", following)
    assert "Primljeno" in own.text
    own_number = await _number_from(own.text)
    assert own_number != number
    request = await _request(bot, own_number)
    assert request.question == "kako da ukljucim esanduce za nas organ"
