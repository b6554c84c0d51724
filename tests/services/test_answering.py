"""The answer service: the right entry, in the clerk's script, every question stored."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from bot.services.actions import perform
from bot.services.answering import AnswerService
from bot.services.users import UserService
from knowledge_base.loader import load_knowledge_base
from knowledge_base.matcher import Matcher
from storage.models import Feedback, Question
from storage.uow import Database

ACCESS_QUESTION = "Kako naš organ dobija pristup podacima iz službenih evidencija preko eZUP-a?"


@pytest.fixture(scope="module")
def knowledge():
    kb = load_knowledge_base()
    return kb, Matcher.from_knowledge_base(kb)


@pytest.fixture
def services(database: Database, knowledge):
    kb, matcher = knowledge
    return UserService(database, frozenset({"900"})), AnswerService(kb, matcher, database)


async def _questions(database: Database) -> list[Question]:
    async with database.uow() as uow:
        return list(await uow.session.scalars(select(Question).order_by(Question.id)))


async def test_clerk_gets_ezup_access_answer_in_latin_and_cyrillic(services, database):
    users, answers = services
    clerk = await users.get_or_register("telegram", "1", "Milica")
    latin = await answers.ask(clerk, "kako da dobijem pristup ezupu")
    cyrillic = await answers.ask(clerk, "како да добијем приступ еЗУП-у")
    assert ACCESS_QUESTION in latin.text
    # the reply follows the question's script for a clerk on the default Latin
    assert "Како наш орган добија приступ" in cyrillic.text
    assert ACCESS_QUESTION not in cyrillic.text
    stored = await _questions(database)
    assert [(q.decision, q.entry_id) for q in stored] == [("answer", "ezup-access-request")] * 2
    assert latin.decision == cyrillic.decision == "answer"  # the reply says which way it went


async def test_a_clerk_who_chose_cyrillic_gets_cyrillic_even_for_a_latin_question(services):
    users, answers = services
    clerk = await users.get_or_register("telegram", "2", "Петар", language_hint="sr-Cyrl")
    clerk = await users.set_language(clerk.id, "sr-Cyrl")
    reply = await answers.ask(clerk, "kako da dobijem pristup ezupu")
    assert "Како наш орган добија приступ" in reply.text
    assert "Kako" not in reply.text


async def test_until_the_clerk_chooses_the_reply_follows_the_question_not_the_hint(services):
    # Telegram reports Serbian clients as "sr" (taken as Cyrillic); nobody chose anything yet
    users, answers = services
    clerk = await users.get_or_register("telegram", "3", "Petar", language_hint="sr")
    assert (clerk.language, clerk.language_chosen) == ("sr-Cyrl", False)
    latin = await answers.ask(clerk, "kako da dobijem pristup ezupu")
    assert "Kako naš organ dobija pristup" in latin.text
    cyrillic = await answers.ask(clerk, "како да добијем приступ езупу")
    assert "Како наш орган добија приступ" in cyrillic.text


async def test_english_question_gets_english_guidance_with_the_serbian_answer(services):
    users, answers = services
    clerk = await users.get_or_register("telegram", "20", "John")
    reply = await answers.ask(clerk, "How do I activate ConsentID?")
    assert "ConsentID" in reply.text
    assert "Knowledge base answers are in Serbian" in reply.text or "in Serbian" in reply.text


async def test_an_english_greeting_is_told_in_english_that_answers_are_in_serbian(services):
    users, answers = services
    clerk = await users.get_or_register("telegram", "21", "Jane")
    reply = await answers.ask(clerk, "Good morning!")
    assert reply.decision == "answer"
    assert reply.text.startswith("Knowledge base answers are in Serbian")
    serbian = await answers.ask(clerk, "Dobro jutro!")
    assert "in Serbian" not in serbian.text


async def test_unknown_question_is_escalated_honestly_and_stored(services, database):
    users, answers = services
    clerk = await users.get_or_register("telegram", "3", "Ana")
    reply = await answers.ask(clerk, "koliko je sati u Tokiju")
    actions = [b.action for row in reply.buttons for b in row]
    assert any(action.startswith("m:") for action in actions)
    assert "pouzdan odgovor" in reply.text
    [stored] = await _questions(database)
    assert stored.decision == "escalate" == reply.decision


async def test_a_failure_report_is_told_it_goes_to_a_mentor_with_the_error_text(services):
    users, answers = services
    clerk = await users.get_or_register("telegram", "31", "Ana")
    reply = await answers.ask(clerk, "ne radi mi eZUP od jutros, greška 500")
    assert reply.decision == "escalate"
    assert "ne radi kako treba" in reply.text and "tekstom greške" in reply.text
    assert any(b.action.startswith("m:") for row in reply.buttons for b in row)
    english = await users.get_or_register("telegram", "32", "John")
    english = await users.set_language(english.id, "en")
    reply = await answers.ask(english, "eZUP is not working since this morning, error 500")
    assert "not working right now" in reply.text


async def test_user_text_never_reaches_the_reply_unescaped(services):
    users, answers = services
    clerk = await users.get_or_register("telegram", "4", "<b>Marko</b>")
    reply = await answers.ask(clerk, "<script>alert(1)</script> ezup pristup")
    assert "<script>" not in reply.text


async def test_feedback_is_stored_and_a_thumbs_down_offers_a_mentor(services, database):
    users, answers = services
    clerk = await users.get_or_register("telegram", "5", "Jovana")
    reply = await answers.ask(clerk, "kako da dobijem pristup ezupu")
    down = next(b.action for row in reply.buttons for b in row if b.action.endswith(":down"))
    clerk, after = await perform(down, clerk, answers, users)
    assert any(b.action.startswith("m:") for row in after.buttons for b in row)
    async with database.uow() as uow:
        [feedback] = list(await uow.session.scalars(select(Feedback)))
    assert feedback.value == "down"


async def test_nobody_can_rate_someone_elses_question(services, database):
    users, answers = services
    owner = await users.get_or_register("telegram", "6", "Owner")
    other = await users.get_or_register("telegram", "7", "Other")
    await answers.ask(owner, "kako da dobijem pristup ezupu")
    [question] = await _questions(database)
    reply = await answers.feedback(other, question.id, "up")
    assert "više nije dostupna" in reply.text
    async with database.uow() as uow:
        assert list(await uow.session.scalars(select(Feedback))) == []


async def test_choice_after_clarify_is_remembered(services, database):
    users, answers = services
    clerk = await users.get_or_register("telegram", "8", "Nina")
    await answers.ask(clerk, "ezup")
    [question] = await _questions(database)
    await perform(f"c:{question.id}:ezup-what-is", clerk, answers, users)
    [question] = await _questions(database)
    assert question.chosen_entry_id == "ezup-what-is"


async def test_browsing_goes_from_services_to_questions_to_the_answer(services):
    users, answers = services
    clerk = await users.get_or_register("telegram", "9", "Ivan")
    menu = answers.services_menu(clerk)
    assert ("svc:ezup") in [b.action for row in menu.buttons for b in row]
    clerk, listing = await perform("svc:ezup", clerk, answers, users)
    assert "e:ezup-access-request" in [b.action for row in listing.buttons for b in row]
    clerk, answer = await perform("e:ezup-access-request", clerk, answers, users)
    assert ACCESS_QUESTION in answer.text


async def test_old_or_forged_buttons_get_a_polite_answer(services):
    users, answers = services
    clerk = await users.get_or_register("telegram", "10", "Stara")
    for action in ("e:no-such-entry", "fb:abc:up", "svc:nothing", "zzz", "c:99999999:ezup-what-is"):
        clerk, reply = await perform(action, clerk, answers, users)
        assert reply.text


async def test_admins_from_config_are_admins_from_the_first_message(services):
    users, _answers = services
    admin = await users.get_or_register("telegram", "900", "Admin")
    clerk = await users.get_or_register("telegram", "901", "Clerk")
    assert admin.is_admin and not clerk.is_admin


async def test_a_text_asked_again_is_stored_again_and_a_new_kb_matches_it_anew(
    services, database, knowledge
):
    """Matches of repeated texts are remembered (AnswerService's match cache), but every
    question is still stored, and a KB revision taken into use is matched by its own entries."""
    import dataclasses

    users, answers = services
    clerk = await users.get_or_register("telegram", "21", "Milica")
    first = await answers.ask(clerk, "kako da dobijem pristup ezupu")
    again = await answers.ask(clerk, "kako da dobijem pristup ezupu")
    assert ACCESS_QUESTION in first.text and again.text == first.text
    kb, _matcher = knowledge
    without = dataclasses.replace(
        kb, entries={k: v for k, v in kb.entries.items() if k != "ezup-access-request"}
    )
    answers.use(without, Matcher.from_knowledge_base(without, semantic=False))
    after = await answers.ask(clerk, "kako da dobijem pristup ezupu")
    assert ACCESS_QUESTION not in after.text
    stored = await _questions(database)
    assert [q.entry_id for q in stored][:2] == ["ezup-access-request"] * 2
    assert len(stored) == 3 and stored[2].entry_id != "ezup-access-request"


async def test_a_decision_taken_while_the_embedding_was_busy_is_not_remembered(
    database, knowledge
):
    """An unsure question asked while the embedding works on another one gets the lexical
    decision (the bot does not queue embeddings under load), but that decision is not kept in
    the match cache: asked again, the question gets its second opinion."""
    from knowledge_base import semantic

    kb, _shared = knowledge
    matcher = Matcher.from_knowledge_base(kb)
    users = UserService(database)
    answers = AnswerService(kb, matcher, database)
    clerk = await users.get_or_register("telegram", "31", "Milica")
    question = "What does eGovernment for All give our municipality in the end?"
    assessment = matcher.assess(question)
    assert matcher.wants_second_opinion(matcher.decide(assessment), assessment)
    assert matcher.semantic is not None and matcher.semantic._ready()
    with semantic._BUSY:  # another question's embedding
        await answers.ask(clerk, question)
    assert question not in answers._matches
    await answers.ask(clerk, question)
    assert question in answers._matches
    assert matcher.semantic.has_read(matcher.semantic_text(assessment))


async def test_the_help_lists_every_command_of_the_menu(services) -> None:
    from bot.telegram.runner import COMMANDS

    users, answers = services
    clerk = await users.get_or_register("telegram", "91", "Ana")
    for language in ("sr-Latn", "sr-Cyrl", "en"):
        text = answers.help(dataclasses.replace(clerk, language=language)).text
        missing = [name for name, _ in COMMANDS
                   if name not in ("start", "pomoc") and f"/{name} " not in text]
        assert not missing, f"/pomoc ({language}) does not list {missing}"
