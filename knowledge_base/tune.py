"""Fits the decision model (`decision.py`) and chooses its cut-offs.

`python -m knowledge_base tune knowledge_base/eval/dev.jsonl` writes
`knowledge_base/decision_model.json` and prints the out-of-fold figures.

Data: the cross-validated queries (`crossval`: held-out phrasings and held-out entries) and the
dev file. Never the test part, never the blind set. Label: the first-ranked entry is the expected
one (an out-of-scope question or a held-out entry is never right).

Cut-offs are chosen on out-of-fold probabilities (each fold's rows scored by a model fitted
without them), so they are not flattered by the fit:
- `answer_at`: the lowest probability at which wrong answers on dev stay at or under the target
  (2 %), answered out-of-scope dev questions at or under half theirs (2.5 %), wrong answers on
  held-out phrasings under PHRASING_WRONG and answered held-out entries under HELD_OUT_ANSWERED;
- `clarify_at`: below it, the right entry is so rarely among the first three (out-of-scope and
  held-out-entry questions count as never) that a choice of entries would waste the clerk's time;
  a mentor is offered instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from knowledge_base.crossval import queries
from knowledge_base.decision import MODEL_FILE, DecisionModel, fit
from knowledge_base.evaluation import TARGET_OOS_ANSWERED, TARGET_WRONG, Example
from knowledge_base.matcher import Assessment, Matcher
from knowledge_base.model import KnowledgeBase

SAFE_WRONG = TARGET_WRONG / 2
SAFE_OOS = TARGET_OOS_ANSWERED / 2
FOLDS = 5
DEV_WEIGHT = 2.0  # a real clerk's question counts for more than a phrasing from the KB
CLARIFY_HIT_RATE = 0.5
# KB phrasings are terse keyword strings ("ezup definicija"), harder than a clerk's sentence, and
# held-out entries are the closest near misses there can be: their caps are looser.
PHRASING_WRONG = 0.05
HELD_OUT_ANSWERED = 0.15  # offer a choice where the right entry is in it at least this often


@dataclass(frozen=True)
class Row:
    signals: tuple[float, ...]
    label: int  # the first entry is right
    in_top3: bool  # the right entry is among the first three
    covered: bool
    source: str  # "phrasing", "entry", "dev"
    fold: int
    failure: bool


def _row(
    assessment: Assessment, matcher: Matcher, expected: str | None, source: str, fold: int
) -> Row | None:
    if not assessment.ranked:
        return None
    ids = [matcher.entries[i].id for _, i in assessment.ranked[:3]]
    return Row(
        signals=assessment.signals,
        label=int(expected is not None and ids[0] == expected),
        in_top3=expected is not None and expected in ids,
        covered=expected is not None,
        source=source,
        fold=fold,
        failure=assessment.failure,
    )


def collect(kb: KnowledgeBase, dev: Sequence[Example]) -> list[Row]:
    # the signals do not depend on the model: match with a neutral one (the file may be stale)
    matcher = Matcher(
        list(kb.entries.values()), kb.synonyms, model=DecisionModel.neutral(), services=kb.services
    )
    matcher.set_not_covered(kb.not_covered)
    rows: list[Row] = []
    for query in queries(kb, matcher, FOLDS):
        row = _row(query.assessment, query.matcher, query.expected, query.kind, query.fold)
        if row is not None:
            rows.append(row)
    for number, example in enumerate(dev):
        row = _row(
            matcher.assess(example.question), matcher, example.expected, "dev", number % FOLDS
        )
        if row is not None:
            rows.append(row)
    return rows


def _fit(rows: Sequence[Row]) -> DecisionModel:
    usable = [r for r in rows if not r.failure]
    return fit(
        [r.signals for r in usable],
        [r.label for r in usable],
        [DEV_WEIGHT if r.source == "dev" else 1.0 for r in usable],
    )


def out_of_fold(rows: Sequence[Row]) -> list[float]:
    """Each row's probability from a model fitted on the other folds."""
    models = {f: _fit([r for r in rows if r.fold != f]) for f in range(FOLDS)}
    return [models[r.fold].probability(r.signals) for r in rows]


@dataclass(frozen=True)
class Figures:
    correct: float
    clarified: float
    wrong: float
    oos_answered: float  # dev out-of-scope questions
    entry_answered: float  # held-out entries (near misses)

    def __str__(self) -> str:
        return (
            f"correct {self.correct:6.1%}  clarified {self.clarified:5.1%}  "
            f"wrong {self.wrong:5.1%}  out-of-scope answered {self.oos_answered:5.1%}  "
            f"held-out entries answered {self.entry_answered:5.1%}"
        )


def figures(
    rows: Sequence[Row], probs: Sequence[float], answer_at: float, clarify_at: float
) -> Figures:
    covered = [(r, p) for r, p in zip(rows, probs, strict=True) if r.covered]
    oos = [(r, p) for r, p in zip(rows, probs, strict=True) if r.source == "dev" and not r.covered]
    held = [(r, p) for r, p in zip(rows, probs, strict=True) if r.source == "entry"]

    def answered(r: Row, p: float) -> bool:
        return not r.failure and p >= answer_at

    def share(items: list[tuple[Row, float]], test: Callable[[Row, float], object]) -> float:
        hits = sum(1 for r, p in items if test(r, p))
        return hits / len(items) if items else 0.0

    return Figures(
        correct=share(covered, lambda r, p: answered(r, p) and r.label),
        clarified=share(covered, lambda r, p: not answered(r, p) and p >= clarify_at and r.in_top3),
        wrong=share(covered, lambda r, p: answered(r, p) and not r.label),
        oos_answered=share(oos, answered),
        entry_answered=share(held, answered),
    )


def choose_cutoffs(rows: Sequence[Row], probs: Sequence[float]) -> tuple[float, float]:
    grid = [round(0.05 + 0.01 * k, 2) for k in range(95)]

    def part(source: str, cut: float) -> Figures:
        chosen = [(r, p) for r, p in zip(rows, probs, strict=True) if r.source == source]
        return figures([r for r, _ in chosen], [p for _, p in chosen], cut, cut)

    answer_at = grid[-1]
    for cut in grid:
        dev, phrasing, held = part("dev", cut), part("phrasing", cut), part("entry", cut)
        if (
            dev.wrong <= SAFE_WRONG * 2 + 1e-9
            and dev.oos_answered <= SAFE_OOS + 1e-9
            and phrasing.wrong <= PHRASING_WRONG + 1e-9
            and held.entry_answered <= HELD_OUT_ANSWERED + 1e-9
        ):
            answer_at = cut
            break
    clarify_at = answer_at
    for cut in sorted((c for c in grid if c < answer_at), reverse=True):
        band = [
            r for r, p in zip(rows, probs, strict=True) if cut <= p < cut + 0.05 and not r.failure
        ]
        if len(band) >= 5 and sum(r.in_top3 for r in band) / len(band) < CLARIFY_HIT_RATE:
            break
        clarify_at = cut
    return answer_at, clarify_at


def tune(kb: KnowledgeBase, dev: Sequence[Example], write: bool = True) -> str:
    rows = collect(kb, dev)
    probs = out_of_fold(rows)
    answer_at, clarify_at = choose_cutoffs(rows, probs)
    model = _fit(rows).with_cutoffs(answer_at, clarify_at)
    if write:
        model.save(MODEL_FILE)
    counts = {s: sum(1 for r in rows if r.source == s) for s in ("phrasing", "entry", "dev")}
    lines = [
        f"rows: {counts}",
        f"answer_at {answer_at:.2f}, clarify_at {clarify_at:.2f}",
        f"out of fold: {figures(rows, probs, answer_at, clarify_at)}",
    ]
    for source in ("phrasing", "dev"):
        part = [
            (r, p)
            for r, p in zip(rows, probs, strict=True)
            if r.source in (source, "entry") or (source == "dev" and r.source == "dev")
        ]
        sub_rows = [r for r, _ in part if r.source == source]
        sub_probs = [p for r, p in part if r.source == source]
        lines.append(f"  {source:9}: {figures(sub_rows, sub_probs, answer_at, clarify_at)}")
    if write:
        lines.append(f"written: {MODEL_FILE}")
    return "\n".join(lines)
