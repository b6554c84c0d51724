"""Subjects the KB knowingly leaves out are never answered with a confident guess."""

from knowledge_base.loader import load_knowledge_base
from knowledge_base.matcher import Matcher


def test_question_about_an_uncovered_subject_gets_a_choice_not_an_answer():
    kb = load_knowledge_base()
    matcher = Matcher.from_knowledge_base(kb)
    question = "kako građanin otvara nalog na portalu da bi prijavio venčanje"
    with_list = matcher.match(question)
    assert with_list.decision == "clarify"
    assert with_list.reason == "uncovered"
    matcher.set_not_covered([])
    # Without the curated list nothing marks the question as about a subject we do not cover.
    assert matcher.match(question).reason != "uncovered"


def test_covered_question_still_answered_when_the_list_is_in_use():
    matcher = Matcher.from_knowledge_base(load_knowledge_base())
    result = matcher.match("kako da dobijem pristup ezupu")
    assert (result.decision, result.entry_id) == ("answer", "ezup-access-request")


def test_a_detail_the_answer_does_not_state_is_not_answered_with_that_entry():
    """"How much does it cost" of a subject whose entry says nothing of a price is a near miss:
    the entry that explains the subject is offered, not given as the answer."""
    kb = load_knowledge_base()
    matcher = Matcher.from_knowledge_base(kb)
    question = "Koliko košta obuka NAJU za službenike opštine?"
    held = matcher.match(question)
    assert held.entry_id == "training-naju"
    assert (held.decision, held.reason) == ("clarify", "uncovered")
    matcher.set_not_covered(kb.not_covered, [])
    assert matcher.match(question).decision == "answer"


def test_a_detail_the_answer_states_is_answered():
    matcher = Matcher.from_knowledge_base(load_knowledge_base())
    result = matcher.match("koliko iznosi republicka administrativna taksa za izvod")
    assert result.entry_id == "eplacanje-fee-amounts" and result.reason != "uncovered"
