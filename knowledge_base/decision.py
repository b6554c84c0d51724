"""How sure the matcher is that its first entry is the right one: a small calibrated model.

Hand-set thresholds on one score answered questions that scored high for the wrong reason and
escalated ones whose right entry was first with a low score. The model instead weighs several
signals of the best candidate (see `SIGNALS`) and returns a probability that it is right. It is a
logistic regression fitted by `python -m knowledge_base tune` on cross-validated queries (each
phrasing matched with itself and its near-duplicates removed from the index, each entry's
phrasings matched with the whole entry removed, and the dev set), never on the test or blind
sets. Answer / clarify / escalate then follow from the probability; the two cut-offs are chosen
on the same data so that wrong answers stay under the target. For what it leaves unsure, an
optional second model adds the embedding's similarities (SEMANTIC_SIGNALS; see `semantic`).

The fitted numbers live in `decision_model.json` beside this file, so a change of behaviour is
visible in review. Plain numpy: a dozen weights need no machine-learning framework.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = Path(__file__).with_name("decision_model.json")

SIGNALS = (
    "score",  # the matcher's mixed score of the best entry
    "margin",  # its lead over the second entry
    "coverage",  # share of the question the entry knows
    "focus",  # share of what the entry is about that the question mentions
    "dice",  # best overlap with one phrasing
    "phrase_cover",  # best share of one phrasing found in the question
    "fuzzy",  # best character similarity with one phrasing
    "ngrams",  # character 4-gram cosine
    "known",  # share of the question any entry knows
    "novel",  # log(1 + words of the question no entry knows): a detail nobody wrote about
    "evidence",  # BM25 strength, saturated
    "log_terms",  # question length
    "service_match",  # the question names the entry's service
    "service_other",  # the question names only other services
    "uncovered",  # the question names a subject the KB does not cover
    "english",  # the question was written in English (matched through the glossary)
)
# The second opinion by meaning (`semantic`), added to SIGNALS for the questions the first model
# leaves unsure: a right first entry is usually also the embedding's closest, and by a margin.
SEMANTIC_SIGNALS = (
    "sem_first",  # the embedding's similarity with the matcher's first entry
    "sem_gap",  # how much closer the embedding's own closest entry is (0 when they agree)
    "sem_agree",  # the embedding's closest entry is the matcher's first
    "sem_lead",  # when they agree: the lead of that entry over the embedding's second
    "sem_over_second",  # similarity of the matcher's first entry minus that of its second
    "sem_rank",  # log(1 + rank of the matcher's first entry among the embedding's)
    # the same for an English question, which the embedding reads as written while the lexical
    # matcher sees only what the glossary carries over: agreement means more there
    "sem_agree_english",
    "sem_first_english",
    "sem_gap_english",
)
# Two entries whose lexical scores are this close are a choice for the clerk, whatever the model
# says, unless the question is English and its meaning sides with the first (`tied`).
TIE = 0.03
_MARGIN = SIGNALS.index("margin")
_ENGLISH = SIGNALS.index("english")
_AGREE = SEMANTIC_SIGNALS.index("sem_agree")


def tied(signals: Sequence[float], meaning: Sequence[float] | None = None) -> bool:
    """The first two entries are too close to answer with the first. For an English question
    the embedding breaks the tie when its own closest entry is the matcher's first (`meaning`:
    SEMANTIC_SIGNALS): there a tie mostly comes from the glossary, which carries the words of
    two entries over at once, while the embedding reads the question as written. Over the dev
    and held-out sets such English tie-breaks were right 20 times in 24 (the rest out of
    scope); on Serbian questions only 4 in 8, so there a tie stays a choice."""
    if signals[_MARGIN] >= TIE:
        return False
    return meaning is None or not signals[_ENGLISH] or not meaning[_AGREE]


# What each of SEMANTIC_SIGNALS can be at all (similarities are cosines; rank's log has no top).
_SEMANTIC_RANGES = (
    (-1.0, 1.0),  # sem_first
    (0.0, 2.0),  # sem_gap
    (0.0, 1.0),  # sem_agree
    (0.0, 2.0),  # sem_lead
    (-2.0, 2.0),  # sem_over_second
    (0.0, math.inf),  # sem_rank
)
# How far the embedding is taken to move a second stage (`DecisionModel.semantic_reach`): each
# signal within this many of its standard deviations in the data the stage was fitted on.
REACH_SCALES = 4.0


def semantic_signals(
    ranked_ids: Sequence[str], similarity: dict[str, float], english: bool = False
) -> tuple[float, ...]:
    """SEMANTIC_SIGNALS of the matcher's first entry, from each entry's best similarity."""
    if not ranked_ids or not similarity:
        return (0.0,) * len(SEMANTIC_SIGNALS)
    order = sorted(similarity.values(), reverse=True)
    first = similarity.get(ranked_ids[0], -1.0)
    second = similarity.get(ranked_ids[1], -1.0) if len(ranked_ids) > 1 else -1.0
    best = order[0]
    rank = sum(1 for v in order if v > first)
    lead = best - order[1] if rank == 0 and len(order) > 1 else 0.0
    agree = 1.0 if rank == 0 else 0.0
    e = 1.0 if english else 0.0
    return (
        first,
        best - first,
        agree,
        lead,
        first - second,
        math.log1p(rank),
        e * agree,
        e * first,
        e * (best - first),
    )


@dataclass(frozen=True)
class DecisionModel:
    weights: tuple[float, ...]
    bias: float
    means: tuple[float, ...]
    scales: tuple[float, ...]
    answer_at: float  # answer when the probability reaches this
    clarify_at: float  # offer a choice when it reaches this; escalate below
    # for the questions this model leaves unsure: a model of SIGNALS + SEMANTIC_SIGNALS (its
    # `answer_at` answers, its `clarify_at` turns an escalation into a choice); None: lexical only
    semantic: DecisionModel | None = None
    # the second stage's answer cut for an English question (None: `answer_at`)
    english_answer_at: float | None = None

    def probability(self, signals: Sequence[float]) -> float:
        z = self.bias
        for w, x, m, s in zip(self.weights, signals, self.means, self.scales, strict=True):
            z += w * (x - m) / s
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def lexical_log_odds(self, signals: Sequence[float]) -> float:
        """The log-odds from SIGNALS alone: a second stage's bias and its lexical terms, before
        what the embedding adds (`semantic_reach`)."""
        z = self.bias
        for w, x, m, s in zip(self.weights, signals, self.means, self.scales, strict=False):
            z += w * (x - m) / s
        return z

    def semantic_reach(self) -> float:
        """The most SEMANTIC_SIGNALS can add to this second stage's log-odds for a question not
        written in English (the English signals are then 0), with each signal anywhere within
        REACH_SCALES standard deviations of the data the stage was fitted on. The signals are
        bounded one by one, as if all could be at their best at once (they cannot: agreement
        and a gap exclude each other), so the bound is generous; on the dev set what they
        added never came to half of it."""
        n = len(SIGNALS)
        reach = 0.0
        for k, (w, m, s) in enumerate(
            zip(self.weights[n:], self.means[n:], self.scales[n:], strict=True)
        ):
            if k < len(_SEMANTIC_RANGES):
                low, high = _SEMANTIC_RANGES[k]
                low, high = max(low, m - REACH_SCALES * s), min(high, m + REACH_SCALES * s)
            else:  # the English-only signals: 0 for any other question
                low = high = 0.0
            reach += max(w * (low - m) / s, w * (high - m) / s)
        return reach

    def save(self, path: Path = MODEL_FILE) -> None:
        data = asdict(self)
        data["signals"] = list(SIGNALS)
        if data["semantic"] is not None:
            data["semantic"]["signals"] = [*SIGNALS, *SEMANTIC_SIGNALS]
            del data["semantic"]["semantic"]
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> DecisionModel:
        return cls._from_dict(json.loads(path.read_text(encoding="utf-8")), SIGNALS, path)

    @classmethod
    def _from_dict(
        cls, data: dict[str, Any], signals: tuple[str, ...], path: Path
    ) -> DecisionModel:
        if tuple(data.get("signals", signals)) != signals:
            raise ValueError(
                f"{path}: fitted for other signals; run `python -m knowledge_base tune`"
            )
        second = data.get("semantic")
        return cls(
            weights=tuple(data["weights"]),
            bias=float(data["bias"]),
            means=tuple(data["means"]),
            scales=tuple(data["scales"]),
            answer_at=float(data["answer_at"]),
            clarify_at=float(data["clarify_at"]),
            english_answer_at=(
                None if data.get("english_answer_at") is None else float(data["english_answer_at"])
            ),
            semantic=(
                cls._from_dict(second, (*SIGNALS, *SEMANTIC_SIGNALS), path) if second else None
            ),
        )

    @classmethod
    def neutral(cls) -> DecisionModel:
        """A model that knows nothing yet: what `tune` matches with before it has fitted one."""
        n = len(SIGNALS)
        return cls((0.0,) * n, 0.0, (0.0,) * n, (1.0,) * n, 0.5, 0.5)

    def with_cutoffs(self, answer_at: float, clarify_at: float) -> DecisionModel:
        return replace(self, answer_at=answer_at, clarify_at=clarify_at)

    def with_english_at(self, english_answer_at: float | None) -> DecisionModel:
        return replace(self, english_answer_at=english_answer_at)

    def answer_cut(self, english: bool) -> float:
        if english and self.english_answer_at is not None:
            return self.english_answer_at
        return self.answer_at

    def with_semantic(self, semantic: DecisionModel | None) -> DecisionModel:
        return replace(self, semantic=semantic)


def fit(
    rows: Sequence[Sequence[float]],
    labels: Sequence[int],
    sample_weights: Sequence[float] | None = None,
    l2: float = 1.0,
) -> DecisionModel:
    """L2-regularised logistic regression by Newton's method (standardised inputs)."""
    x = np.asarray(rows, dtype=float)
    y = np.asarray(labels, dtype=float)
    sw = np.ones(len(y)) if sample_weights is None else np.asarray(sample_weights, dtype=float)
    means = x.mean(axis=0)
    scales = x.std(axis=0)
    scales[scales < 1e-9] = 1.0
    z = (x - means) / scales
    design = np.hstack([np.ones((len(y), 1)), z])
    beta = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -40, 40)))
        gradient = design.T @ (sw * (p - y)) + penalty * beta
        hessian = (design * (sw * p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(beta)), gradient)
        beta -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return DecisionModel(
        weights=tuple(float(v) for v in beta[1:]),
        bias=float(beta[0]),
        means=tuple(float(v) for v in means),
        scales=tuple(float(v) for v in scales),
        answer_at=0.5,
        clarify_at=0.2,
    )
