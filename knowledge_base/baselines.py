"""Two simple matchers the real one must beat, run side by side by `python -m knowledge_base eval`.

- `RapidfuzzBaseline`: rapidfuzz WRatio of the raw question against every entry question and
  alternative (rapidfuzz's default processing only: lower case, punctuation stripped); answer
  when the best similarity reaches a threshold, otherwise escalate.
- `PlainBM25Baseline`: BM25 over lower-case whitespace tokens of question + alternatives +
  keywords, without any Serbian normalisation (no transliteration, no diacritics folding,
  no stemming, no stop words, no synonyms); answer when the best score, as a share of the
  score a perfect entry would get (unknown tokens count as rare ones), reaches a threshold.
Their thresholds were tuned on the dev part like the matcher's (`python -m knowledge_base tune`).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Sequence

from rapidfuzz import fuzz, process, utils

from knowledge_base.matcher import MAX_QUESTION_CHARS, Candidate, MatchResult
from knowledge_base.model import Entry

RAPIDFUZZ_THRESHOLD = 0.875
BM25_THRESHOLD = 0.35


class RapidfuzzBaseline:
    name = "rapidfuzz"

    def __init__(self, entries: Sequence[Entry], threshold: float = RAPIDFUZZ_THRESHOLD):
        self.threshold = threshold
        self._texts: list[str] = []
        self._owner: list[str] = []
        for entry in entries:
            for text in [entry.question, *entry.alternatives]:
                self._texts.append(utils.default_process(text))
                self._owner.append(entry.id)

    def ranked(self, question: str) -> list[Candidate]:
        query = utils.default_process(question[:MAX_QUESTION_CHARS])
        if not query or not self._texts:
            return []
        best: dict[str, float] = {}
        for _, score, index in process.extract(
            query, self._texts, scorer=fuzz.WRatio, processor=None, limit=30
        ):
            owner = self._owner[index]
            best[owner] = max(best.get(owner, 0.0), score / 100.0)
        return [Candidate(k, round(v, 4)) for k, v in sorted(best.items(), key=lambda x: -x[1])]

    def decide(self, question: str, ranked: list[Candidate]) -> MatchResult:
        if ranked and ranked[0].score >= self.threshold:
            return MatchResult(question, "answer", ranked[0].entry_id, ranked[0].score, ranked[:3])
        best = ranked[0] if ranked else None
        return MatchResult(
            question,
            "escalate",
            best.entry_id if best else None,
            best.score if best else 0.0,
            ranked[:3],
        )

    def match(self, question: str) -> MatchResult:
        return self.decide(question, self.ranked(question))


class PlainBM25Baseline:
    name = "bm25-plain"

    def __init__(
        self,
        entries: Sequence[Entry],
        threshold: float = BM25_THRESHOLD,
        k1: float = 1.2,
        b: float = 0.75,
    ):
        self.threshold = threshold
        self.k1 = k1
        self._ids = [e.id for e in entries]
        docs = [
            Counter(" ".join([e.question, *e.alternatives, *e.keywords]).lower().split())
            for e in entries
        ]
        n = max(len(docs), 1)
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(doc.keys())
        self.idf = {t: math.log(1.0 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        self.max_idf = math.log(1.0 + (n - 0.5) / 1.5)
        avgdl = sum(sum(d.values()) for d in docs) / n
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for i, doc in enumerate(docs):
            norm = k1 * (1.0 - b + b * sum(doc.values()) / max(avgdl, 1e-9))
            for term, f in doc.items():
                self.postings.setdefault(term, []).append((i, f * (k1 + 1.0) / (f + norm)))

    def ranked(self, question: str) -> list[Candidate]:
        tokens = set(question[:MAX_QUESTION_CHARS].lower().split())
        scores: dict[int, float] = {}
        perfect = 0.0
        for token in tokens:
            idf = self.idf.get(token)
            # an unknown token counts as a rare one: the question asks something the KB lacks
            perfect += (idf if idf is not None else self.max_idf) * (self.k1 + 1.0)
            if idf is None:
                continue
            for i, weight in self.postings[token]:
                scores[i] = scores.get(i, 0.0) + idf * weight
        if not scores:
            return []
        best = heapq.nlargest(10, scores.items(), key=lambda x: x[1])
        return [Candidate(self._ids[i], round(s / perfect, 4)) for i, s in best]

    def decide(self, question: str, ranked: list[Candidate]) -> MatchResult:
        if ranked and ranked[0].score >= self.threshold:
            return MatchResult(question, "answer", ranked[0].entry_id, ranked[0].score, ranked[:3])
        best = ranked[0] if ranked else None
        return MatchResult(
            question,
            "escalate",
            best.entry_id if best else None,
            best.score if best else 0.0,
            ranked[:3],
        )

    def match(self, question: str) -> MatchResult:
        return self.decide(question, self.ranked(question))
