"""Fits the decision model (`decision.py`) and chooses its cut-offs.

`python -m knowledge_base tune knowledge_base/eval/dev.jsonl` writes
`knowledge_base/decision_model.json` and prints the out-of-fold figures.

Data: the cross-validated queries (`crossval`: held-out phrasings and held-out entries) and the
dev file. Never the test part, never the blind set. Label: the first-ranked entry is the expected
one (an out-of-scope question or a held-out entry is never right). Dev questions are dealt into
folds by their expected entry (out-of-scope ones by their text), so paraphrases of one question
never sit on both sides of a fold.

Two stages, as the bot runs them:
1. the lexical model (SIGNALS) answers when it is sure, offers a choice or a mentor otherwise;
2. for what it leaves unsure, when the embedding is available, a second model of SIGNALS +
   SEMANTIC_SIGNALS may answer (or turn an escalation into a choice). Its rows see the
   embedding's similarities only with the phrasings their index holds (a held-out phrasing
   never meets itself).

Cut-offs are chosen on out-of-fold probabilities (each fold's rows scored by a model fitted
without them), so they are not flattered by the fit:
- `answer_at` (each stage): the lowest probability at which wrong answers on dev stay at or under
  DEV_WRONG, answered out-of-scope dev questions at or under DEV_OOS, wrong answers on held-out
  phrasings under PHRASING_WRONG and answered held-out entries under HELD_OUT_ANSWERED;
- `clarify_at`: the lowest cut at which the questions offered a choice still have the right entry
  among the first three at least CLARIFY_HIT_RATE of the time (out-of-scope and held-out-entry
  questions count as never); below it a mentor is offered instead.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from rapidfuzz import fuzz

from knowledge_base.crossval import NEAR_DUPLICATE, entry_without, matcher_over, queries
from knowledge_base.decision import (
    MODEL_FILE,
    SIGNALS,
    DecisionModel,
    fit,
    semantic_signals,
    tied,
)
from knowledge_base.evaluation import TARGET_OOS_ANSWERED, TARGET_WRONG, Example
from knowledge_base.matcher import Assessment, Matcher
from knowledge_base.model import KnowledgeBase
from knowledge_base.normalize import normalize
from knowledge_base.semantic import SemanticIndex, best_per_entry

FOLDS = 5
TYPO_COPIES = True  # each dev question also misspelt (`misspelt`), to fit on, never to report
DEV_WEIGHT = 2.0  # a real clerk's question counts for more than a phrasing from the KB
DEV_WRONG = TARGET_WRONG + 0.005
DEV_OOS = TARGET_OOS_ANSWERED  # since dev2: independent questions with many near misses
CLARIFY_HIT_RATE = 0.55
# KB phrasings are terse keyword strings ("ezup definicija"), harder than a clerk's sentence, and
# held-out entries are the closest near misses there can be: their caps are looser.
PHRASING_WRONG = 0.05
HELD_OUT_ANSWERED = 0.20  # the lexical model with the former agreement rule answered 19%
SECOND_STAGE_ROOM = 0.15  # how much stricter than it must be the first stage may become
_UNCOVERED = SIGNALS.index("uncovered")
_ENGLISH = SIGNALS.index("english")
_MARGIN = SIGNALS.index("margin")


@dataclass(frozen=True)
class Row:
    signals: tuple[float, ...]
    label: int  # the first entry is right
    in_top3: bool  # the right entry is among the first three
    covered: bool
    source: str  # "phrasing", "entry", "dev", "typo" (a dev question misspelt: fitted on only)
    fold: int
    failure: bool
    semantic: tuple[float, ...] | None = None  # SEMANTIC_SIGNALS, when the embedding ran

    @property
    def held(self) -> bool:
        """Never answered outright, whatever the probability (an uncovered subject)."""
        return bool(self.signals[_UNCOVERED])

    def tied(self, semantic: bool) -> bool:
        """A lexical tie, as the first stage (`semantic` False) or the second sees it."""
        return tied(self.signals, self.semantic if semantic else None)


def misspelt(question: str, seed: int) -> str:
    """The question as a hurried clerk types it: Latin without diacritics, and one letter
    dropped or doubled in up to two longer words (deterministic for a seed)."""
    rng = random.Random(seed)
    words = normalize(question).split()
    long_words = [k for k, w in enumerate(words) if len(w) >= 5]
    for k in rng.sample(long_words, min(2, len(long_words))):
        word = words[k]
        at = rng.randrange(1, len(word) - 1)
        dropped = rng.random() < 0.6
        words[k] = word[:at] + word[at + 1 :] if dropped else word[: at + 1] + word[at:]
    return " ".join(words)


def _dev_fold(example: Example) -> int:
    return zlib.crc32((example.expected or example.question).encode("utf-8")) % FOLDS


class _Embedding:
    """The embedding's view of a query, against the phrasings its index holds."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.index = SemanticIndex(list(kb.entries.values()))
        self._present: dict[int, np.ndarray] = {}

    def signals(self, assessment: Assessment, matcher: Matcher) -> tuple[float, ...] | None:
        if not self.index.available:
            return None
        similarities = self.index.phrasing_similarities(
            matcher.semantic_text(assessment), wait=True
        )
        if similarities is None:
            return None
        present = self._present.get(id(matcher))
        if present is None:
            held = {(e.id, p) for e in matcher.entries for p in (e.question, *e.alternatives)}
            present = np.array([pair in held for pair in self.index.phrasings])
            self._present[id(matcher)] = present
        per_entry = best_per_entry(self.index.phrasings, similarities, present)
        ranked_ids = [matcher.entries[i].id for _, i in assessment.ranked]
        return semantic_signals(ranked_ids, per_entry, assessment.english)


def _row(
    assessment: Assessment,
    matcher: Matcher,
    expected: str | None,
    source: str,
    fold: int,
    embedding: _Embedding | None,
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
        semantic=embedding.signals(assessment, matcher) if embedding is not None else None,
    )


class _Unseen:
    """Each dev question matched as a new clerk's would be: against an index without the KB
    phrasings that copy it (character similarity >= NEAR_DUPLICATE; curators add good
    questions as alternatives). Fitted on copies, the model learnt that a right first entry
    looks like a near-copy, and was unsure of every question worded anew."""

    def __init__(self, kb: KnowledgeBase, matcher: Matcher) -> None:
        self.kb, self.matcher = kb, matcher
        self._phrasings = [
            (entry.id, phrasing, normalize(phrasing))
            for entry in kb.entries.values()
            for phrasing in (entry.question, *entry.alternatives)
        ]
        self._matchers: dict[frozenset[tuple[str, str]], Matcher] = {}

    def matcher_for(self, question: str) -> Matcher:
        text = normalize(question)
        copies = frozenset(
            (entry_id, phrasing)
            for entry_id, phrasing, folded in self._phrasings
            if fuzz.ratio(text, folded) >= NEAR_DUPLICATE
        )
        if not copies:
            return self.matcher
        matcher = self._matchers.get(copies)
        if matcher is None:
            matcher = self._matchers[copies] = self._without(copies)
        return matcher

    def _without(self, copies: frozenset[tuple[str, str]]) -> Matcher:
        entries = []
        for entry in self.kb.entries.values():
            out = {p for entry_id, p in copies if entry_id == entry.id}
            if out and len(out) <= len(entry.alternatives):  # at least one phrasing stays
                entry = entry_without(entry, out)
            entries.append(entry)
        return matcher_over(self.kb, entries, self.matcher)


def collect(kb: KnowledgeBase, dev: Sequence[Example], semantic: bool = True) -> list[Row]:
    # the signals do not depend on the model: match with a neutral one (the file may be stale)
    matcher = Matcher(
        list(kb.entries.values()), kb.synonyms, model=DecisionModel.neutral(), services=kb.services
    )
    matcher.set_not_covered(kb.not_covered, kb.details)
    embedding = _Embedding(kb) if semantic else None
    rows: list[Row] = []
    for query in queries(kb, matcher, FOLDS):
        row = _row(
            query.assessment, query.matcher, query.expected, query.kind, query.fold, embedding
        )
        if row is not None:
            rows.append(row)
    unseen = _Unseen(kb, matcher)
    for number, example in enumerate(dev):
        fresh = unseen.matcher_for(example.question)
        assessment = fresh.assess(example.question)
        row = _row(assessment, fresh, example.expected, "dev", _dev_fold(example), embedding)
        if row is not None:
            rows.append(row)
        if TYPO_COPIES and "english" not in example.tags:  # learn how typos look, too
            typed = misspelt(example.question, number)
            row = _row(
                fresh.assess(typed), fresh, example.expected, "typo", _dev_fold(example), None
            )
            if row is not None:
                rows.append(row)
    return rows


def _inputs(row: Row, second: bool) -> tuple[float, ...]:
    if second:
        assert row.semantic is not None
        return (*row.signals, *row.semantic)
    return row.signals


def _fit(rows: Sequence[Row], second: bool = False) -> DecisionModel:
    usable = [r for r in rows if not r.failure and (not second or r.semantic is not None)]
    return fit(
        [_inputs(r, second) for r in usable],
        [r.label for r in usable],
        [DEV_WEIGHT if r.source == "dev" else 1.0 for r in usable],
    )


def out_of_fold(rows: Sequence[Row], second: bool = False) -> list[float]:
    """Each row's probability from a model fitted on the other folds (0 where the second
    stage has no embedding)."""
    models = {f: _fit([r for r in rows if r.fold != f], second) for f in range(FOLDS)}
    return [
        models[r.fold].probability(_inputs(r, second)) if not second or r.semantic else 0.0
        for r in rows
    ]


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


@dataclass(frozen=True)
class Cutoffs:
    answer_at: float
    clarify_at: float
    second_answer_at: float = 2.0  # beyond any probability: no second stage
    second_clarify_at: float = 2.0
    second_english_at: float | None = None  # the second stage's answer cut for English

    def second_at(self, row: Row) -> float:
        english = bool(row.signals[_ENGLISH])
        if english and self.second_english_at is not None and not row.tied(semantic=False):
            return self.second_english_at
        return self.second_answer_at

    def answered(self, row: Row, first: float, second: float) -> bool:
        if row.failure or row.held:
            return False
        if first >= self.answer_at and not row.tied(semantic=False):
            return True
        return second >= self.second_at(row) and not row.tied(semantic=True)

    def offered(self, row: Row, first: float, second: float) -> bool:
        """A choice: not answered, but sure enough (or held back from an answer)."""
        if self.answered(row, first, second):
            return False
        if row.failure:
            return False
        return (
            first >= self.clarify_at
            or bool(row.signals[_UNCOVERED])
            or second >= self.second_clarify_at
        )


def figures(
    rows: Sequence[Row],
    first: Sequence[float],
    cutoffs: Cutoffs,
    second: Sequence[float] | None = None,
) -> Figures:
    second = second if second is not None else [0.0] * len(rows)
    items = list(zip(rows, first, second, strict=True))
    covered = [i for i in items if i[0].covered]
    oos = [i for i in items if i[0].source == "dev" and not i[0].covered]
    held = [i for i in items if i[0].source == "entry"]

    def share(
        chosen: list[tuple[Row, float, float]], test: Callable[[Row, float, float], object]
    ) -> float:
        hits = sum(1 for r, p, q in chosen if test(r, p, q))
        return hits / len(chosen) if chosen else 0.0

    return Figures(
        correct=share(covered, lambda r, p, q: cutoffs.answered(r, p, q) and r.label),
        clarified=share(covered, lambda r, p, q: cutoffs.offered(r, p, q) and r.in_top3),
        wrong=share(covered, lambda r, p, q: cutoffs.answered(r, p, q) and not r.label),
        oos_answered=share(oos, cutoffs.answered),
        entry_answered=share(held, cutoffs.answered),
    )


_GRID = [round(0.05 + 0.01 * k, 2) for k in range(95)]


def _safe(rows: Sequence[Row], first: Sequence[float], second: Sequence[float], c: Cutoffs) -> bool:
    def part(source: str) -> Figures:
        chosen = [i for i in zip(rows, first, second, strict=True) if i[0].source == source]
        return figures(
            [r for r, _, _ in chosen], [p for _, p, _ in chosen], c, [q for _, _, q in chosen]
        )

    dev, phrasing, held = part("dev"), part("phrasing"), part("entry")
    return (
        dev.wrong <= DEV_WRONG + 1e-9
        and dev.oos_answered <= DEV_OOS + 1e-9
        and phrasing.wrong <= PHRASING_WRONG + 1e-9
        and held.entry_answered <= HELD_OUT_ANSWERED + 1e-9
    )


def _gain(rows: Sequence[Row], first: Sequence[float], second: Sequence[float], c: Cutoffs) -> int:
    """Dev questions answered right, less those answered wrong or out of scope."""
    gain = 0
    for r, p, q in zip(rows, first, second, strict=True):
        if r.source == "dev" and c.answered(r, p, q):
            gain += 1 if r.label else -1
    return gain


def _clarify_cut(rows: Sequence[Row], probs: Sequence[float], below: float) -> float:
    """The lowest cut at which the questions offered a choice (probability from the cut up to
    `below`) still find the right entry among the first three at least CLARIFY_HIT_RATE of the
    time (out-of-scope and held-out-entry questions never do)."""
    cut_at = below
    for cut in sorted((c for c in _GRID if c < below), reverse=True):
        band = [r for r, p in zip(rows, probs, strict=True) if cut <= p < below and not r.failure]
        if band and sum(r.in_top3 for r in band) / len(band) >= CLARIFY_HIT_RATE:
            cut_at = cut
    return cut_at


def choose_cutoffs(
    rows: Sequence[Row], first: Sequence[float], second: Sequence[float] | None = None
) -> Cutoffs:
    none = [0.0] * len(rows)
    lowest = next((a for a in _GRID if _safe(rows, first, none, Cutoffs(a, a))), _GRID[-1])
    if second is None:
        return Cutoffs(lowest, _clarify_cut(rows, first, lowest))
    # the two stages share the budget of wrong and out-of-scope answers: a first stage a little
    # stricter may leave room for a second that answers more (the embedding is strongest where
    # the lexical evidence is thin: English, long messages). Chosen together for the most dev
    # questions answered right less those answered wrong or out of scope.
    best: tuple[int, float, float] | None = None
    for answer_at in [a for a in _GRID if lowest <= a <= lowest + SECOND_STAGE_ROOM]:
        for second_at in [*_GRID, 2.0]:
            cutoffs = Cutoffs(answer_at, answer_at, second_at)
            if not _safe(rows, first, second, cutoffs):
                continue
            key = (_gain(rows, first, second, cutoffs), -answer_at, second_at)
            if best is None or key > (best[0], -best[1], best[2]):
                best = (key[0], answer_at, second_at)
    if best is None:
        return Cutoffs(lowest, _clarify_cut(rows, first, lowest))
    _, answer_at, second_answer_at = best
    clarify_at = _clarify_cut(rows, first, answer_at)
    unsure = [(r, q) for r, p, q in zip(rows, first, second, strict=True) if p < clarify_at]
    second_clarify_at = _clarify_cut(
        [r for r, _ in unsure], [q for _, q in unsure], min(second_answer_at, 1.0)
    )
    cutoffs = Cutoffs(answer_at, clarify_at, second_answer_at, second_clarify_at)
    # English is where the embedding reads more than the glossary carries over: its own cut,
    # chosen the same way (the most right dev answers less wrong ones, every cap still kept)
    english_at = max(
        (
            a
            for a in [*_GRID, 2.0]
            if _safe(rows, first, second, replace(cutoffs, second_english_at=a))
        ),
        key=lambda a: (_gain(rows, first, second, replace(cutoffs, second_english_at=a)), a),
        default=second_answer_at,
    )
    return replace(cutoffs, second_english_at=english_at)


def tune(kb: KnowledgeBase, dev: Sequence[Example], write: bool = True) -> str:
    rows = collect(kb, dev)
    first = out_of_fold(rows)
    with_semantic = any(r.semantic is not None for r in rows)
    second = out_of_fold(rows, second=True) if with_semantic else None
    cutoffs = choose_cutoffs(rows, first, second)
    model = _fit(rows).with_cutoffs(cutoffs.answer_at, cutoffs.clarify_at)
    if with_semantic:
        model = model.with_semantic(
            _fit(rows, second=True)
            .with_cutoffs(cutoffs.second_answer_at, cutoffs.second_clarify_at)
            .with_english_at(cutoffs.second_english_at)
        )
    if write:
        model.save(MODEL_FILE)
    counts = {
        s: sum(1 for r in rows if r.source == s) for s in ("phrasing", "entry", "dev", "typo")
    }
    lines = [
        f"rows: {counts}" + ("" if with_semantic else " (no embedding: lexical only)"),
        f"answer_at {cutoffs.answer_at:.2f}, clarify_at {cutoffs.clarify_at:.2f}"
        + (
            f"; second stage answer_at {cutoffs.second_answer_at:.2f}, "
            f"clarify_at {cutoffs.second_clarify_at:.2f}, English answer_at "
            f"{cutoffs.second_english_at if cutoffs.second_english_at is not None else '-'}"
            if with_semantic
            else ""
        ),
    ]
    lexical_only = Cutoffs(cutoffs.answer_at, cutoffs.clarify_at)
    for name, chosen, extra in (
        ("lexical", lexical_only, None),
        ("with semantic", cutoffs, second),
    ):
        if extra is None and chosen is cutoffs:
            continue
        lines.append(f"out of fold, {name}:")
        for source in ("phrasing", "entry", "dev", "typo"):
            part = [k for k, r in enumerate(rows) if r.source == source]
            if not part:
                continue
            lines.append(
                f"  {source:9}: "
                + str(
                    figures(
                        [rows[k] for k in part],
                        [first[k] for k in part],
                        chosen,
                        [extra[k] for k in part] if extra is not None else None,
                    )
                )
            )
    if write:
        lines.append(f"written: {MODEL_FILE}")
    return "\n".join(lines)
