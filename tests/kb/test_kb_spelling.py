"""Typos put right before matching, questions inside long messages, English second-stage cut."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_base.common_words import common_words
from knowledge_base.decision import SIGNALS, DecisionModel
from knowledge_base.focus import asked_sentences, focus, is_failure_report
from knowledge_base.loader import load_knowledge_base
from knowledge_base.matcher import Matcher, MatcherConfig
from knowledge_base.spelling import Speller


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


def test_an_unknown_word_one_edit_from_a_kb_word_is_put_right() -> None:
    speller = Speller(["Kako se potpisuje dokument kvalifikovanim sertifikatom?"])
    assert speller.correct("kako se potpsiuje dokumnet") == "kako se potpisuje dokument"


def test_punctuation_script_and_words_near_nothing_stay_as_written() -> None:
    speller = Speller(["Pošaljite rešenje u eSanduče."])
    # "Ivanjica" is near no KB word; the comma and the question mark stay (focus needs them)
    assert speller.correct("Ivanjica, kako da pošaljem rešenje?") == (
        "Ivanjica, kako da pošaljem rešenje?"
    )
    assert speller.correct("rešnje u esandce?") == "resenje u esanduce?"


def test_another_form_of_a_kb_word_is_not_a_typo() -> None:
    speller = Speller(["Šta konkretne opštine dobijaju?"])
    assert speller.word("konkretno") is None  # the stems agree already


def test_a_typo_written_into_an_alternative_is_itself_put_right() -> None:
    speller = Speller(["Šta je eSanduče?", "eSanduče"], loose=["esandce"])
    assert speller.word("esandce") == "esanduce"


def test_a_misspelt_question_finds_its_entry_only_with_spelling(kb) -> None:
    question = "kako da posaljemo resnje stranci u esanducce"
    with_spelling = Matcher.from_knowledge_base(kb, semantic=False)
    without = Matcher.from_knowledge_base(kb, MatcherConfig(spelling=False), semantic=False)
    fixed = with_spelling.assess(question)
    assert "resenje" in fixed.asked
    first = with_spelling.entries[fixed.ranked[0][1]].id
    assert first == "esanduce-send-decision"
    assert without.assess(question).asked == question


def test_everyday_words_are_not_typos() -> None:
    """'traje' is one edit from 'traze', 'dolaze' from 'dokaze': without the list of everyday
    words both were 'corrected' into the KB's words and the question lost its sense."""
    kb_words = ["traze dokaze resenje posaljemo"]
    assert {"traje", "dolaze"} <= common_words()
    with_words = Speller(kb_words, common=common_words())
    without = Speller(kb_words)
    question = "koliko traje dok gradjani dolaze"
    assert with_words.correct(question) == question
    assert without.correct(question) == "koliko traze dok gradjani dokaze"
    assert with_words.correct("kako da posaljemo resnje") == "kako da posaljemo resenje"


def test_the_sentences_that_ask_are_found_behind_the_story() -> None:
    message = (
        "Stranka insistira da sama donese izvod jer joj se žuri. "
        "Smemo li to da prihvatimo umesto da pribavljamo po službenoj dužnosti?"
    )
    assert asked_sentences(message) == (
        "Smemo li to da prihvatimo umesto da pribavljamo po službenoj dužnosti?"
    )
    assert asked_sentences("Kako da pošaljem rešenje?") is None  # nothing before it


def test_english_introductions_are_dropped() -> None:
    message = (
        "Jelena from the Pirot city administration here. What is ConsentID and how is it activated?"
    )
    assert focus(message) == "What is ConsentID and how is it activated?"


@pytest.mark.parametrize(
    "report",
    [
        "POS terminal na šalteru je ugašen i neće da se upali",
        "Since yesterday the Pisarnica REST API returns HTTP 401 for every call",
        "Građaninu je taksa skinuta dva puta sa računa",
    ],
)
def test_more_ways_of_saying_something_is_broken(report: str) -> None:
    assert is_failure_report(report)


def test_the_english_answer_cut_round_trips(tmp_path: Path) -> None:
    n = len(SIGNALS)
    second = DecisionModel((0.0,) * n, 0.0, (0.0,) * n, (1.0,) * n, 0.8, 0.2)
    second = second.with_english_at(0.4)
    assert (second.answer_cut(True), second.answer_cut(False)) == (0.4, 0.8)
    assert second.with_english_at(None).answer_cut(True) == 0.8
