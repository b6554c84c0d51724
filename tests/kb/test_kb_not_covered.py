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
