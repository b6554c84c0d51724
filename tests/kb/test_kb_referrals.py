"""Subjects outside the programme get a pointer to where to go; small talk a friendly word;
`check` enforces sources and review age (issue #15)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.services.answering import AnswerService
from bot.services.users import UserService
from knowledge_base.loader import (
    EDITOR_NOTES_EN,
    check_knowledge_base,
    editor_notes,
    load_knowledge_base,
    source_problem,
)
from knowledge_base.matcher import Matcher
from knowledge_base.referrals import ReferralFinder
from storage.uow import Database
from tests.kb.test_kb_check import entry, errors, kb_with

KB = load_knowledge_base()


@pytest.mark.parametrize(
    ("question", "group"),
    [
        ("kako da stranka dobije gradjevinsku dozvolu", "gradjevinske-dozvole"),
        ("локацијски услови за кућу", "gradjevinske-dozvole"),
        ("gde se placa porez na imovinu", "porez-na-imovinu"),
        ("treba mi izvod iz maticne knjige rodjenih", "maticne-knjige"),
        ("kako se osniva firma, osnivanje firme u APR", "registracija-privrede"),
        ("kakvo ce biti vreme sutra", "mali-razgovor"),
        ("👍", "mali-razgovor"),
        ("🙏🙏", "mali-razgovor"),
        ("kako da dobijem pristup ezupu", None),
    ],
)
def test_referral_groups_are_found(question: str, group: str | None) -> None:
    hit = ReferralFinder(KB.referrals).find(question)
    assert (hit.id if hit else None) == group


@pytest.fixture
def services(database: Database):
    matcher = Matcher.from_knowledge_base(KB)
    answers = AnswerService(KB, matcher, database, placeholders={"working_hours": "od 9 do 17"})
    return UserService(database, frozenset()), answers


async def _user(users: UserService):
    return await users.get_or_register("telegram", "501", "Pera")


async def test_question_outside_the_programme_gets_the_referral_and_mentor_second(services):
    users, answers = services
    user = await _user(users)
    reply = await answers.ask(user, "kako stranka da dobije gradjevinsku dozvolu preko ceop")
    assert "CEOP" in reply.text and "van programa" in reply.text
    tokens = [b.action for row in reply.buttons for b in row]
    assert tokens[0].startswith("m:")  # the mentor is offered, as a second choice after the text
    assert not any(t.startswith("fb:") for t in tokens)


async def test_small_talk_gets_a_friendly_reply_without_buttons(services):
    users, answers = services
    user = await _user(users)
    for text in ("👍", "kakvo je vreme sutra?"):
        reply = await answers.ask(user, text)
        assert "Tu sam" in reply.text
        assert reply.buttons == ()


async def test_chit_chat_entry_has_no_rating_buttons_and_placeholders_are_filled(services):
    users, answers = services
    user = await _user(users)
    greeting = await answers.show_entry(user, "chitchat-greeting", None)
    assert not any(b.action.startswith("fb:") for row in greeting.buttons for b in row)
    mentor = await answers.show_entry(user, "bot-contact-mentor", None)
    assert "od 9 do 17" in mentor.text and "{working_hours}" not in mentor.text
    trainings = await answers.show_entry(user, "bot-trainings", None)
    assert any(b.action == "tr:l" for row in trainings.buttons for b in row)


@pytest.mark.parametrize(
    ("source", "ok"),
    [
        ("https://eid.gov.rs/sr-Latn-RS/najcesca-pitanja-i-odgovori", True),
        ("ZUP, čl. 57", True),
        ("Uredba o kancelarijskom poslovanju, Sl. glasnik RS 21/2020", True),
        ("eid.gov.rs/sr-Latn-RS/pomoc", False),
        ("http://www.euprava.gov.rs/pomoc/placanje", False),
        ("https://test.eid.gov.rs/en-US/install-mobile-applications", False),
        ("Zakon o republičkim administrativnim taksama", False),
        ("blic.rs b5dx88j", False),
    ],
)
def test_source_rule(source: str, ok: bool) -> None:
    assert (source_problem(source) is None) is ok


def test_check_rejects_a_partial_source_and_an_answer_without_a_source_link(tmp_path: Path):
    content = kb_with(tmp_path, entry("ezup-new", sources=["ite.gov.rs"], answer="Odgovor."))
    messages = [p.message for p in errors(content) if p.entry_id == "ezup-new"]
    assert any("whole https address" in m for m in messages)
    assert any("Izvor" in m for m in messages)


def test_check_rejects_notes_for_editors(tmp_path: Path):
    answer = 'Rok nije u našim izvorima.\nIzvor: <a href="https://www.ite.gov.rs/">ITE</a>'
    content = kb_with(tmp_path, entry("ezup-new", answer=answer))
    assert any("note for editors" in p.message for p in errors(content))


def test_review_age_is_counted_from_the_given_day(tmp_path: Path):
    today = dt.date.today()
    old = (today - dt.timedelta(days=200)).isoformat()
    content = kb_with(tmp_path, entry("ezup-new", reviewed=old))
    stale = [
        p for p in check_knowledge_base(content, today=today)
        if p.entry_id == "ezup-new" and "6 months" in p.message
    ]
    assert stale and stale[0].level == "warning"
    fresh = check_knowledge_base(content, today=today - dt.timedelta(days=100))
    assert not [p for p in fresh if p.entry_id == "ezup-new" and "6 months" in p.message]


def test_referral_group_without_a_source_is_an_error(tmp_path: Path):
    content = kb_with(tmp_path, "")
    (content.parent / "not_covered.yaml").write_text(
        "- id: grupa\n  phrases: [porez na imovinu]\n  text: Idite u LPA.\n", encoding="utf-8"
    )
    assert any("needs a 'source'" in p.message for p in errors(content))


def test_a_kind_of_detail_needs_phrases_that_ask_it_and_phrases_that_state_it(tmp_path: Path):
    content = kb_with(tmp_path, "")
    (content.parent / "details.yaml").write_text(
        "- id: price\n  asked: [koliko košta]\n"
        "- id: price\n  asked: [cena]\n  stated: [dinara]\n"
        "- id: contact\n  asked: [broj telefona]\n  stated: ['?']\n  note: x\n",
        encoding="utf-8",
    )
    messages = [(p.entry_id, p.message) for p in errors(content)]
    assert ("price", "'asked' and 'stated' must be non-empty lists of texts") in messages
    assert ("detail 2", "detail id must be unique lower-case words joined by '-'") in messages
    assert ("contact", "phrase '?' has no words") in messages
    assert ("contact", "unknown field 'note'") in messages


def test_check_rejects_notes_for_editors_in_referral_texts(tmp_path: Path):
    content = kb_with(tmp_path, "")
    (content.parent / "not_covered.yaml").write_text(
        "- id: grupa\n  phrases: [helpdesk]\n"
        "  text: Ovo nismo našli u javnim izvorima, pitajte mentora.\n"
        "  text_en: This is not in the public sources we checked.\n"
        "  source: https://www.ite.gov.rs/\n",
        encoding="utf-8",
    )
    notes = [p.message for p in errors(content) if p.entry_id == "grupa"]
    assert any("'nismo našli'" in m for m in notes)
    assert any("'sources we'" in m for m in notes)


def test_bundled_referrals_and_answers_speak_to_the_clerk() -> None:
    for group in KB.referrals:
        assert not editor_notes(group.text), group.id
        assert not editor_notes(group.text_en, EDITOR_NOTES_EN), group.id
    for kb_entry in KB.entries.values():
        assert not editor_notes(kb_entry.answer), kb_entry.id


def test_bot_help_lists_every_command_of_the_menu() -> None:
    from bot.telegram.runner import COMMANDS

    help_entry = KB.get("bot-help")
    assert help_entry is not None
    missing = [name for name, _ in COMMANDS if f"/{name} –" not in help_entry.answer]
    assert not missing, f"bot-help does not list {missing}"
