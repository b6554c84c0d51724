"""Finds the knowledge-base entry a clerk's question is about, or says that none fits.

Index (built once, in memory): every entry's question, alternatives and keywords are analysed
into terms (`analysis`: normalise, stop words, Snowball stems, synonym groups). An inverted
index maps each term to the entries using it with BM25 weights (a term used in many phrasings
of an entry weighs more in it); IDF is counted over entries including their answers' words.
Each entry also gets a character 4-gram TF-IDF vector of its phrasings.

Matching one question (the text is cut to MAX_QUESTION_CHARS, at most MAX_TERMS terms):
1. each term is looked up exactly, as a close stem (a letter or two longer or shorter), as a
   word of the same family (first six letters) or, when unknown, as a typo of a known term or
   synonym variant (rapidfuzz over terms of similar length; cached, at most MAX_TYPO_SEARCHES
   per question). A term found nowhere still counts in what the question asks;
2. BM25 over the rarest terms first, within `retrieval_work` postings, picks `retrieve`
   candidates;
3. each candidate gets a score in [0, 1]: a weighted sum of the `Features` evidence;
4. decision: `answer` when the best score reaches `answer_threshold` and leads the next entry by
   `answer_margin`; `clarify` with the two or three best when it reaches `clarify_threshold`;
   otherwise `escalate`.
Weights and thresholds in `MatcherConfig` come from `python -m knowledge_base tune` on
knowledge_base/eval/dev.jsonl (see `tune` for the rule); the test part is never used to tune.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import re
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from typing import Literal

from rapidfuzz import fuzz, process

from knowledge_base.analysis import MAX_TERMS, Analyzer, close, content_words
from knowledge_base.common_words import common_words
from knowledge_base.decision import SIGNALS, DecisionModel, semantic_signals, tied
from knowledge_base.english import Glossary, is_english, load_glossary, to_serbian
from knowledge_base.focus import asked_sentences, focus, is_failure_report
from knowledge_base.model import Detail, Entry, KnowledgeBase, Service
from knowledge_base.semantic import AGREE_MIN_SIMILARITY, SemanticIndex
from knowledge_base.spelling import Speller

Decision = Literal["answer", "clarify", "escalate"]

MAX_QUESTION_CHARS = 1000
_TAG = re.compile(r"<[^>]*>|&[a-z#0-9]+;")
MAX_FUZZY_CHARS = 200
_E_NAME = re.compile(r"\be[A-ZŠČĆŽĐ]\w*")
MAX_TYPO_SEARCHES = 8  # per question; further unknown words count as unknown


@lru_cache(maxsize=1)
def default_model() -> DecisionModel:
    return DecisionModel.load()


@lru_cache(maxsize=1)
def default_glossary() -> Glossary:
    return load_glossary()


def _char_grams(text: str, n: int = 4) -> list[str]:
    padded = f" {text} "
    return [padded[k : k + n] for k in range(len(padded) - n + 1)]


@dataclass(frozen=True)
class Candidate:
    entry_id: str
    score: float


@dataclass(frozen=True)
class MatchResult:
    question: str
    decision: Decision
    entry_id: str | None
    score: float
    candidates: list[Candidate] = field(default_factory=list)
    confidence: float = 0.0  # the decision model's probability that `entry_id` is right
    reason: str = ""  # why not answered: failure (a report that something is broken), uncovered,
    # unsure, unknown
    english: bool = False  # the question was written in English


@dataclass(frozen=True)
class Assessment:
    """A question as the decision sees it (see `Matcher.assess`)."""

    question: str
    asked: str  # the part that asks something, in Serbian (typos put right)
    english: bool
    failure: bool
    ranked: list[tuple[float, int]]  # (score, entry index), best first
    signals: tuple[float, ...]  # of the best candidate, in the order of decision.SIGNALS
    read: str = ""  # the part that asks something as written (what the embedding reads)
    # one word that the first entry does not own (`Matcher._owned`): "test" must not be
    # answered with the entry that mentions testing an integration
    lone_word: bool = False


@dataclass(frozen=True)
class _Reading:
    """One way of reading a message (focused, its asking sentences, whole), as matched."""

    asked: str
    written: str
    ranked: list[tuple[float, Features]]
    signals: tuple[float, ...]
    sure: float  # the decision model's probability that its first entry is right


def is_chitchat(entry_id: str) -> bool:
    """Greetings and thanks: answered when they are all a message says, never offered as a
    choice for a real question."""
    return entry_id.startswith("chitchat-")


@dataclass(frozen=True)
class MatcherConfig:
    # BM25 (retrieval of candidates)
    k1: float = 1.2
    b: float = 0.75
    keyword_weight: float = 1.0  # a keyword counts like this many phrasings
    idf_from_answers: bool = True
    # term lookup
    close_weight: float = 0.9  # credit for a close stem (ezup/ezupa, potpi/potpis)
    typo_weight: float = 0.85  # credit for a typo match, times the similarity
    typo_cutoff: float = 86.0  # rapidfuzz ratio a typo must reach
    typo_min_len: int = 4
    family_prefix: int = 6  # an unknown term sharing this many first letters with a known one...
    family_weight: float = 0.6  # ...gets this credit (integrisemo ~ integracija)
    unknown_idf: float = 0.7  # weight of an unknown question term, as a share of the max IDF
    spelling: bool = True  # put typos right against the KB's words first (`spelling`)
    common_words: bool = True  # leave everyday Serbian words alone when putting typos right
    # scoring: weights of the evidence (see Features)
    retrieve: int = 10
    retrieval_work: int = 8_000  # postings visited at most, once `retrieve` entries are found
    w_coverage: float = 0.1
    w_focus: float = 0.0
    w_dice: float = 0.0
    w_phrase_cover: float = 0.1
    w_fuzzy: float = 0.1
    w_evidence: float = 0.0
    w_ngrams: float = 0.5
    w_known: float = 0.2
    evidence_half: float = 10.0  # BM25 score at which the evidence feature reaches 0.5
    fuzzy_floor: float = 0.5  # rapidfuzz similarity below this counts as none
    # decision (tuned on dev.jsonl: 91.7 % correct, 0.6 % wrong, 2.5 % out of scope answered)
    answer_threshold: float = 0.38
    answer_margin: float = 0.04
    clarify_threshold: float = 0.36
    clarify_window: float = 0.15


@dataclass(frozen=True)
class Features:
    """Per-candidate evidence in [0, 1] (bm25 aside), kept apart so the mix can be tuned.

    coverage      IDF-weighted share of the question's terms the entry knows
    focus         share of what the entry is about (terms weighted by IDF and by the share of
                  its phrasings using them) that the question mentions
    dice          best IDF-weighted Dice overlap of the question with one phrasing
    phrase_cover  best share of one phrasing's terms found in the question
    fuzzy         best rapidfuzz ratio of the question with one phrasing (normalised text)
    evidence      BM25 score saturated to [0, 1): how much matching there is in absolute terms
                  (long questions share a smaller part of their words with any entry)
    ngrams        cosine of character 4-gram TF-IDF vectors of the question and the entry
                  (catches what stems miss: integrisemo ~ integracija, stampamo ~ odstampamo)
    known         share of the question's weight the whole KB knows (the same for every
                  candidate): a question about "dečiji dodatak" or "Evrovizija" is mostly
                  words no entry, alternative or answer uses
    """

    index: int
    bm25: float
    coverage: float
    focus: float
    dice: float
    phrase_cover: float
    fuzzy: float
    evidence: float
    ngrams: float
    known: float


@dataclass
class _Lookup:
    """One question term: known terms it stands for (-> credit x IDF) and its own weight."""

    matches: dict[str, float]
    weight: float
    searched: bool = False  # a typo search was made (it is the costly part)


class Matcher:
    def __init__(
        self,
        entries: Sequence[Entry],
        synonyms: Sequence[Sequence[str]] = (),
        config: MatcherConfig | None = None,
        model: DecisionModel | None = None,
        glossary: Glossary | None = None,
        services: Sequence[Service] = (),
    ):
        self.config = config or MatcherConfig()
        self.analyzer = Analyzer(synonyms)
        self.entries = list(entries)
        self.model = model or default_model()
        self.semantic: SemanticIndex | None = None  # set by from_knowledge_base
        self.glossary = glossary or default_glossary()
        # a service is named by its e-name in the title (eZUP, eSanduče, ePlaćanje, eID ...)
        self._service_terms = {
            s.id: frozenset(self.analyzer.terms(s.title_sr.split()[0]))
            for s in services
            if _E_NAME.match(s.title_sr)
        }
        self._cache: dict[str, _Lookup] = {}
        self._profiles: dict[str, tuple[str, dict[str, float], dict[str, float], float]] = {}
        # entries written for an error message ("podaci nisu validni") may answer a report of it
        self._about_failure = [
            sum(is_failure_report(p) for p in [e.question, *e.alternatives]) >= 2
            for e in self.entries
        ]
        self._owned = [self._owned_terms(e) for e in self.entries]  # (`_lone_word`)
        self._not_covered: list[frozenset[str]] = []
        # per kind of detail: the phrases that ask it, and whether each entry states it
        self._details: list[tuple[list[frozenset[str]], list[bool]]] = []
        self.speller = Speller(
            [
                *(" ".join(group) for group in synonyms),
                *(text for e in self.entries for text in (e.question, _TAG.sub(" ", e.answer))),
            ],
            [text for e in self.entries for text in (*e.alternatives, *e.keywords)],
            common_words() if self.config.common_words else frozenset(),
        )
        self._reach_of: tuple[DecisionModel, float] | None = None  # see `_reach`
        self._build()

    @classmethod
    def from_knowledge_base(
        cls, kb: KnowledgeBase, config: MatcherConfig | None = None, semantic: bool = True
    ) -> Matcher:
        matcher = cls(list(kb.entries.values()), kb.synonyms, config, services=kb.services)
        if semantic:
            matcher.semantic = SemanticIndex(matcher.entries)
        matcher.set_not_covered(kb.not_covered, kb.details)
        return matcher

    def set_not_covered(self, phrases: Sequence[str], details: Sequence[Detail] = ()) -> None:
        """Subjects the KB does not cover, and kinds of detail an answer may not state. A
        question naming such a subject, or asking a detail (a price, a contact) of an entry whose
        answer does not give it, is never answered outright by that entry: the clerk gets a
        choice and the mentor button instead of a confident answer to another question."""
        self._not_covered = [
            frozenset(terms) for terms in (self.analyzer.terms(p) for p in phrases) if terms
        ]
        self._details = []
        for detail in details:
            asked = [frozenset(t) for t in map(self.analyzer.terms, detail.asked) if t]
            stated = [frozenset(t) for t in map(self.analyzer.terms, detail.stated) if t]
            self._details.append(
                (
                    asked,
                    [
                        any(s <= answer or s <= vocabulary.keys() for s in stated)
                        for answer, vocabulary in zip(
                            self._answer_terms, self._forward, strict=True
                        )
                    ],
                )
            )

    # -- index ----------------------------------------------------------------------------

    def _build(self) -> None:
        cfg = self.config
        analyze = self.analyzer.terms
        tfs: list[dict[str, float]] = []
        raw_phrasings: list[list[tuple[list[str], str]]] = []
        for entry in self.entries:
            tf: dict[str, float] = {}
            phrasings: list[tuple[list[str], str]] = []
            for text in [entry.question, *entry.alternatives]:
                terms = analyze(text)
                if terms:
                    phrasings.append((terms, " ".join(content_words(text))))
                for term in set(terms):
                    tf[term] = tf.get(term, 0.0) + 1.0
            for keyword in entry.keywords:
                for term in set(analyze(keyword)):
                    tf[term] = tf.get(term, 0.0) + cfg.keyword_weight
            tfs.append(tf)
            raw_phrasings.append(phrasings)
        n = max(len(self.entries), 1)
        df: dict[str, int] = {}
        answers: dict[str, frozenset[str]] = {}  # answer text -> terms (shared when repeated)
        self._answer_terms: list[frozenset[str]] = []
        for entry, tf in zip(self.entries, tfs, strict=True):
            answer = answers.get(entry.answer)
            if answer is None:
                answer = frozenset(analyze(_TAG.sub(" ", entry.answer)))
                answers[entry.answer] = answer
            self._answer_terms.append(answer)
            # IDF counts the answer's words too: a word common in answers is common language
            for term in answer.union(tf) if cfg.idf_from_answers else tf:
                df[term] = df.get(term, 0) + 1
        self.idf = {t: math.log(1.0 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        self.max_idf = math.log(1.0 + (n - 0.5) / 1.5) if n > 1 else 1.0
        lengths = [sum(tf.values()) for tf in tfs]
        avgdl = (sum(lengths) / len(lengths)) if lengths else 1.0
        # postings: term -> [(entry, BM25 tf factor)]; forward: entry -> term -> (tf factor,
        # centrality x IDF), for scoring the retrieved candidates exactly
        postings: dict[str, tuple[array[int], array[float]]] = {}
        self._forward: list[dict[str, tuple[float, float]]] = []
        self._focus_total: list[float] = []
        for i, tf in enumerate(tfs):
            norm = cfg.k1 * (1.0 - cfg.b + cfg.b * lengths[i] / max(avgdl, 1e-9))
            spread = max(len(raw_phrasings[i]), 1)
            total = 0.0
            forward: dict[str, tuple[float, float]] = {}
            for term, f in tf.items():
                central = min(f / spread, 1.0) * self.idf[term]
                total += central
                tfw = f * (cfg.k1 + 1.0) / (f + norm)
                forward[term] = (tfw, central)
                ids, weights = postings.setdefault(term, (array("i"), array("d")))
                ids.append(i)
                weights.append(tfw)
            self._forward.append(forward)
            self._focus_total.append(max(total, 1e-9))
        self.postings = postings
        # per entry: its phrasings' IDF weights and normalised texts, and for each term the
        # phrasings using it (flat tuples and arrays: a 10,000-entry index stays cheap for the GC)
        self._phrase_weight: list[tuple[float, ...]] = []
        self._phrase_text: list[tuple[str, ...]] = []
        self._where: list[dict[str, tuple[int, ...]]] = []
        for phrasings in raw_phrasings:
            where: dict[str, list[int]] = {}
            for j, (terms, _) in enumerate(phrasings):
                for term in set(terms):
                    where.setdefault(term, []).append(j)
            self._where.append({t: tuple(js) for t, js in where.items()})
            self._phrase_weight.append(
                tuple(sum(self.idf[t] for t in set(terms)) for terms, _ in phrasings)
            )
            self._phrase_text.append(tuple(text for _, text in phrasings))
        self._build_grams(raw_phrasings)
        # close stems: "ezup" -> ["ezupa", ...] (known terms one or two letters longer)
        self._longer: dict[str, list[str]] = {}
        self._by_length: dict[int, list[str]] = {}
        self._family: dict[str, list[str]] = {}
        # typos are looked for among known terms and synonym variants (cloudu -> klaud)
        self._alias = {v: c for v, c in self.analyzer.aliases().items() if c in self.idf}
        for variant in self._alias:
            if variant not in self.idf:
                self._by_length.setdefault(len(variant), []).append(variant)
        for term in self.idf:
            self._by_length.setdefault(len(term), []).append(term)
            if len(term) >= cfg.family_prefix:
                self._family.setdefault(term[: cfg.family_prefix], []).append(term)
            for cut in (1, 2):
                prefix = term[:-cut]
                if close(prefix, term):
                    self._longer.setdefault(prefix, []).append(term)

    def _build_grams(self, raw_phrasings: list[list[tuple[list[str], str]]]) -> None:
        """Character n-gram TF-IDF vector of each entry (all its phrasings), L2-normalised."""
        counts: list[dict[str, int]] = []
        df: dict[str, int] = {}
        for phrasings in raw_phrasings:
            grams: dict[str, int] = {}
            for _, text in phrasings:
                for gram in _char_grams(text):
                    grams[gram] = grams.get(gram, 0) + 1
            counts.append(grams)
            for gram in grams:
                df[gram] = df.get(gram, 0) + 1
        n = max(len(counts), 1)
        self._gram_idf = {g: math.log(1.0 + n / d) for g, d in df.items()}
        self._gram_max_idf = math.log(1.0 + n)
        self._gram_id = {g: k for k, g in enumerate(df)}
        self._gram_vectors: list[tuple[array[int], array[float]]] = []
        for grams in counts:
            weights = {g: (1.0 + math.log(c)) * self._gram_idf[g] for g, c in grams.items()}
            norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            ordered = sorted((self._gram_id[g], w / norm) for g, w in weights.items())
            ids = array("i", (k for k, _ in ordered))
            values = array("f", (w for _, w in ordered))
            self._gram_vectors.append((ids, values))

    def _gram_query(self, text: str) -> dict[int, float]:
        grams: dict[str, int] = {}
        for gram in _char_grams(text):
            grams[gram] = grams.get(gram, 0) + 1
        weights = {
            g: (1.0 + math.log(c)) * self._gram_idf.get(g, self._gram_max_idf)
            for g, c in grams.items()
        }
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {self._gram_id[g]: w / norm for g, w in weights.items() if g in self._gram_id}

    # -- matching -------------------------------------------------------------------------

    def _lookup_cached(self, term: str, typos: list[int]) -> _Lookup:
        """`_lookup` with a bounded cache; `typos` is the remaining typo-search budget."""
        found = self._cache.get(term)
        if found is not None:
            return found
        searches = typos[0] > 0
        lookup = self._lookup(term, typo_search=searches)
        if lookup.searched:
            typos[0] -= 1
        if searches:
            if len(self._cache) >= 50_000:
                self._cache.clear()
            self._cache[term] = lookup
        return lookup

    def _lookup(self, term: str, typo_search: bool = True) -> _Lookup:
        cfg = self.config
        searched = False
        idf = self.idf
        credit: dict[str, float] = {}
        if term in idf:
            credit[term] = 1.0
        for other in self._longer.get(term, ()):
            credit.setdefault(other, cfg.close_weight)
        for cut in (1, 2):
            shorter = term[:-cut]
            if shorter in idf and close(shorter, term):
                credit.setdefault(shorter, cfg.close_weight)
        if not credit and len(term) >= cfg.family_prefix:
            for other in self._family.get(term[: cfg.family_prefix], ()):
                credit[other] = cfg.family_weight
        if typo_search and not credit and len(term) >= cfg.typo_min_len and term.isalpha():
            searched = True
            for length in range(len(term) - 2, len(term) + 3):
                bucket = self._by_length.get(length)
                if not bucket:
                    continue
                for other, similarity, _ in process.extract(
                    term, bucket, scorer=fuzz.ratio, score_cutoff=cfg.typo_cutoff, limit=3
                ):
                    other = self._alias.get(other, other)
                    value = cfg.typo_weight * similarity / 100.0
                    if value > credit.get(other, 0.0):
                        credit[other] = value
        if not credit:
            return _Lookup({}, cfg.unknown_idf * self.max_idf, searched)
        weight = idf[term] if term in idf else max(idf[t] for t in credit)
        # a near match never counts for more than the question's own word
        return _Lookup({k: c * min(idf[k], weight) for k, c in credit.items()}, weight, searched)

    def features(self, question: str, everything: bool = False) -> tuple[list[Features], float]:
        """Candidates (best BM25 first) with their evidence, and the question's total weight.

        Evidence whose weight is 0 in the config is skipped (left 0) unless `everything`.
        """
        cfg = self.config
        words = content_words(question[:MAX_QUESTION_CHARS])
        terms = self.analyzer.terms_of_words(words, limit=MAX_TERMS)
        if not terms or not self.entries:
            return [], 0.0
        typos = [MAX_TYPO_SEARCHES]
        lookups = [self._lookup_cached(t, typos) for t in terms]
        total = sum(lk.weight for lk in lookups)
        known_share = sum(lk.weight for lk in lookups if lk.matches) / total if total > 0 else 0.0
        # retrieval: BM25 over the rarest terms first, within a bounded amount of work
        pairs = sorted(
            ((known, weight) for lk in lookups for known, weight in lk.matches.items()),
            key=lambda kw: len(self.postings[kw[0]][0]) if kw[0] in self.postings else 0,
        )
        partial: dict[int, float] = {}
        work = 0
        for known, weight in pairs:
            posting = self.postings.get(known)
            if posting is None:
                continue
            ids, tf_weights = posting
            if work + len(ids) > cfg.retrieval_work and len(partial) >= cfg.retrieve:
                break
            work += len(ids)
            get = partial.get
            for i, tfw in zip(ids, tf_weights, strict=True):
                partial[i] = get(i, 0.0) + weight * tfw
        if not partial:
            return [], total
        retrieved = heapq.nlargest(cfg.retrieve, partial.items(), key=itemgetter(1))
        # exact evidence of each candidate: a question term counts once, through the best of
        # the known terms it stands for
        best: list[tuple[int, float]] = []
        covered: list[float] = []
        focused: list[float] = []
        idf = self.idf
        for i, _ in retrieved:
            forward = self._forward[i]
            bm25 = cov = foc = 0.0
            for lk in lookups:
                b = c = f = 0.0
                for known, weight in lk.matches.items():
                    found = forward.get(known)
                    if found is not None:
                        b = max(b, weight * found[0])
                        c = max(c, weight)
                        f = max(f, weight / idf[known] * found[1])
                bm25 += b
                cov += c
                foc += f
            best.append((i, bm25))
            covered.append(cov)
            focused.append(foc)
        grams: list[float] = [0.0] * len(retrieved)
        if everything or cfg.w_ngrams > 0.0:
            self._gram_scores(" ".join(words[: MAX_TERMS * 2]), retrieved, grams)
        floor = cfg.fuzzy_floor
        # fuzzy: one rapidfuzz call over all phrasings of the candidates
        fuzzy = [0.0] * len(best)
        query_text = " ".join(words[: MAX_TERMS * 2])[:MAX_FUZZY_CHARS]
        if query_text and floor < 1.0 and (everything or cfg.w_fuzzy > 0.0):
            texts: list[str] = []
            owner: list[int] = []
            for rank, (i, _) in enumerate(best):
                for phrase in self._phrase_text[i]:
                    texts.append(phrase)
                    owner.append(rank)
            for _, similarity, j in process.extract(
                query_text, texts, scorer=fuzz.ratio, limit=None, score_cutoff=floor * 100.0
            ):
                value = (similarity / 100.0 - floor) / (1.0 - floor)
                if value > fuzzy[owner[j]]:
                    fuzzy[owner[j]] = value
        phrases = everything or cfg.w_dice > 0.0 or cfg.w_phrase_cover > 0.0
        result: list[Features] = []
        for rank, (i, score) in enumerate(best):
            dice = cover = 0.0
            if phrases:
                dice, cover = self._phrase_scores(i, lookups, total)
            result.append(
                Features(
                    index=i,
                    bm25=score,
                    coverage=min(covered[rank] / total, 1.0),
                    focus=min(focused[rank] / self._focus_total[i], 1.0),
                    dice=dice,
                    phrase_cover=cover,
                    fuzzy=fuzzy[rank],
                    evidence=score / (score + cfg.evidence_half),
                    ngrams=grams[rank],
                    known=known_share,
                )
            )
        return result, total

    def _gram_scores(self, text: str, retrieved: list[tuple[int, float]], out: list[float]) -> None:
        query_items = list(self._gram_query(text).items())
        for rank, (i, _) in enumerate(retrieved):
            ids, values = self._gram_vectors[i]
            size = len(ids)
            dot = 0.0
            for gram, weight in query_items:  # the question has few grams: look each one up
                k = bisect_left(ids, gram)
                if k < size and ids[k] == gram:
                    dot += weight * values[k]
            out[rank] = dot

    def _phrase_scores(self, i: int, lookups: list[_Lookup], total: float) -> tuple[float, float]:
        """Best Dice overlap and best phrasing coverage of the question with entry `i`."""
        weights = self._phrase_weight[i]
        where = self._where[i]
        overlap = [0.0] * len(weights)
        for lk in lookups:
            in_phrase: dict[int, float] = {}
            for known, weight in lk.matches.items():
                for j in where.get(known, ()):
                    if weight > in_phrase.get(j, 0.0):
                        in_phrase[j] = weight
            for j, weight in in_phrase.items():
                overlap[j] += weight
        dice = cover = 0.0
        for phrase_weight, shared in zip(weights, overlap, strict=True):
            if shared > 0.0:
                dice = max(dice, 2.0 * shared / (total + phrase_weight))
                cover = max(cover, min(shared / phrase_weight, 1.0))
        return dice, cover

    def score(self, f: Features) -> float:
        cfg = self.config
        return (
            cfg.w_coverage * f.coverage
            + cfg.w_focus * f.focus
            + cfg.w_dice * f.dice
            + cfg.w_phrase_cover * f.phrase_cover
            + cfg.w_fuzzy * f.fuzzy
            + cfg.w_evidence * f.evidence
            + cfg.w_ngrams * f.ngrams
            + cfg.w_known * f.known
        )

    def assess(self, question: str) -> Assessment:
        """Everything the decision needs about a question: what is asked (courtesy dropped,
        English carried into Serbian), the ranked candidates and the signals of the best one."""
        text = question[:MAX_QUESTION_CHARS]
        english = is_english(text, self.glossary)
        spelled = text if english or not self.config.spelling else self.speller.correct(text)
        focused = focus(spelled)
        # (what is matched, as written): the embedding reads the clerk's own words
        readings = [(focused, focus(text))]
        # the question without the story before it, tried as well (not in English: the glossary
        # carries over subject words only, and the story may hold the only one)
        marked = asked_sentences(spelled)
        if marked is not None:
            readings.append((marked, asked_sentences(text) or marked))
        if focused != spelled:
            readings.append((spelled, text))
        # Of the readings, the one the decision model is surest of: a bare "šta je to zapravo"
        # may score higher than the whole message that says what "to" is, yet explain less.
        best: _Reading | None = None
        for reading, written in readings:
            if reading == spelled and best is not None and best.sure >= self.model.answer_at:
                break  # the focused question is answered: spare the whole message
            asked = to_serbian(reading, self.glossary) if english else reading
            features, _ = self.features(asked, everything=True)
            ranked = sorted(((self.score(f), f) for f in features), key=lambda sf: -sf[0])
            signals = self._signals(asked, ranked, english) if ranked else ()
            sure = self.model.probability(signals) if ranked else -1.0
            if best is None or sure > best.sure:
                best = _Reading(asked, written, ranked, signals, sure)
        assert best is not None
        asked, read, ranked, signals = best.asked, best.written, best.ranked, best.signals
        return Assessment(
            question=question,
            asked=asked,
            english=english,
            failure=is_failure_report(text),
            ranked=[(s, f.index) for s, f in ranked],
            signals=signals,
            read=read,
            lone_word=bool(ranked) and self._lone_word(asked, ranked[0][1].index),
        )

    def _owned_terms(self, entry: Entry) -> frozenset[str]:
        """The words a one-word message may be answered by: those of the entry's question and
        of its one-word phrasings and keywords ("eZUP", "Metaregistar", "zdravo", "LEI")."""
        owned = set(self.analyzer.terms(entry.question))
        for text in (*entry.alternatives, *entry.keywords):
            terms = set(self.analyzer.terms(text))
            if len(terms) == 1:
                owned |= terms
        return frozenset(owned)

    def _lone_word(self, asked: str, first: int) -> bool:
        """One word that entry `first` does not own (greetings and thanks excepted)."""
        terms = set(self.analyzer.terms(asked))
        return (
            len(terms) == 1
            and not terms <= self._owned[first]
            and not is_chitchat(self.entries[first].id)
        )

    def _signals(
        self, asked: str, ranked: list[tuple[float, Features]], english: bool
    ) -> tuple[float, ...]:
        best_score, best = ranked[0]
        second = ranked[1][0] if len(ranked) > 1 else 0.0
        terms = set(self.analyzer.terms(asked, limit=MAX_TERMS))
        # the lookups are cached by `features`: no typo search again (budget 0)
        novel = sum(1 for t in terms if not self._lookup_cached(t, [0]).matches)
        named = {sid for sid, words in self._service_terms.items() if words & terms}
        service = self.entries[best.index].service
        return (
            best_score,
            best_score - second,
            best.coverage,
            best.focus,
            best.dice,
            best.phrase_cover,
            best.fuzzy,
            best.ngrams,
            best.known,
            math.log1p(novel),
            best.evidence,
            math.log1p(len(terms)),
            1.0 if service in named else 0.0,
            1.0 if named and service not in named else 0.0,
            1.0 if self._uncovered(terms, best.index) else 0.0,
            1.0 if english else 0.0,
        )

    def decide(self, assessment: Assessment, model: DecisionModel | None = None) -> MatchResult:
        model = model or self.model
        question = assessment.question
        ranked = assessment.ranked
        if not ranked:
            return MatchResult(
                question, "escalate", None, 0.0, [], reason="unknown", english=assessment.english
            )
        top = [Candidate(self.entries[i].id, round(s, 4)) for s, i in ranked[:4]]
        confidence = round(model.probability(assessment.signals), 4)

        def result(decision: Decision, offered: list[Candidate], reason: str = "") -> MatchResult:
            return MatchResult(
                question,
                decision,
                offered[0].entry_id,
                offered[0].score,
                offered,
                confidence=confidence,
                reason=reason,
                english=assessment.english,
            )

        if assessment.failure and not self._about_failure[ranked[0][1]]:
            return result("escalate", top[:3], "failure")
        uncovered = bool(assessment.signals[SIGNALS.index("uncovered")])
        tie = tied(assessment.signals)
        if confidence >= model.answer_at and not uncovered and not tie and not assessment.lone_word:
            return result("answer", top[:3])
        if confidence >= model.clarify_at or uncovered:
            offered = [c for c in top if not is_chitchat(c.entry_id)][:3]
            if offered:
                return result("clarify", offered, "uncovered" if uncovered else "")
        why = "failure" if assessment.failure else "uncovered" if uncovered else "unsure"
        return result("escalate", top[:3], why)

    def match(self, question: str) -> MatchResult:
        """Never raises on any text; work is bounded by MAX_QUESTION_CHARS and MAX_TERMS.

        Async callers use `assess` + `decide` and run `second_opinion` off the event loop."""
        assessment = self.assess(question)
        result = self.decide(assessment)
        if self.wants_second_opinion(result, assessment):
            result = self.second_opinion(assessment, result)
        return result

    def wants_second_opinion(
        self, result: MatchResult, assessment: Assessment | None = None
    ) -> bool:
        """An unsure choice, or an unsure escalation with candidates, that the meaning of the
        question could settle (see `semantic`). Given the `assessment`, also only when the
        second stage could change the decision at all (`_could_settle`): the embedding costs
        tens of ms of CPU, more than the rest of a question's handling."""
        second = self.model.semantic
        if (
            second is not None
            and min(second.answer_cut(True), second.answer_at, second.clarify_at) >= 1.0
        ):
            return False  # fitted, and found to settle nothing: spare the embedding's cost
        unsure = (
            self.semantic is not None
            and self.semantic.available
            and bool(result.candidates)
            and (
                (result.decision == "clarify" and not result.reason)
                or (result.decision == "escalate" and result.reason == "unsure")
            )
        )
        if not unsure or assessment is None or second is None:
            return unsure
        return self._could_settle(assessment, result, second)

    def _could_settle(
        self, assessment: Assessment, result: MatchResult, second: DecisionModel
    ) -> bool:
        """Could the second stage turn this decision into another one, whatever the embedding
        says? Not a choice between two entries this close in a question not written in English
        (only an English tie may be broken by the meaning, see `tied`), nor a question not
        written in English whose lexical evidence leaves the cut-off out of the embedding's
        reach (`DecisionModel.semantic_reach`). An English
        question always asks: the embedding reads it as written, the lexical matcher only
        through the glossary, and there its push is the largest."""
        if assessment.english:
            return True
        if result.decision == "clarify" and tied(assessment.signals):
            return False
        cutoff = second.answer_at if result.decision == "clarify" else second.clarify_at
        if cutoff <= 0.0:
            return True
        if cutoff >= 1.0:
            return False
        best = second.lexical_log_odds(assessment.signals) + self._reach(second)
        return best >= math.log(cutoff / (1.0 - cutoff))

    def _reach(self, second: DecisionModel) -> float:
        """`second.semantic_reach()`, computed once per model."""
        cached = self._reach_of
        if cached is None or cached[0] is not second:
            cached = self._reach_of = (second, second.semantic_reach())
        return cached[1]

    def second_opinion(self, assessment: Assessment, result: MatchResult) -> MatchResult:
        """The meaning of the question, weighed with the lexical evidence by the decision
        model's second stage (`DecisionModel.semantic`): an unsure choice may become an answer,
        an escalation a choice (the clerk still picks; a mentor stays offered)."""
        if self.semantic is None:
            return result
        second = self.model.semantic
        text = self.semantic_text(assessment)
        if second is None:  # a model fitted without the embedding: the agreement rule
            found = self.semantic.best(text)
            agree = found is not None and found[0] == result.entry_id
            if not (agree and found is not None and found[1] >= AGREE_MIN_SIMILARITY):
                return result
            return self._settled(
                result, "answer" if result.decision == "clarify" else "", "clarify"
            )
        similarity = self.semantic.entry_similarities(text)
        if similarity is None:
            return result
        ranked_ids = [self.entries[i].id for _, i in assessment.ranked]
        meaning = semantic_signals(ranked_ids, similarity, assessment.english)
        confidence = second.probability((*assessment.signals, *meaning))
        # the signals are the first entry's: a choice that left it out (a greeting first)
        # cannot be answered with the second
        first = self.entries[assessment.ranked[0][1]].id
        answerable = not assessment.lone_word and result.entry_id == first
        # a lexical tie broken by the meaning alone takes the stricter of the two cuts
        tie = tied(assessment.signals)
        cut = second.answer_at if tie else second.answer_cut(assessment.english)
        if tie and tied(assessment.signals, meaning):
            answerable = False
        if confidence >= cut and answerable:
            return self._settled(result, "answer", "", confidence)
        if confidence >= second.clarify_at:
            return self._settled(result, "", "clarify", confidence)
        return result

    def second_opinion_heard(self, assessment: Assessment) -> bool:
        """Did the embedding read this question (or is there none)? A second opinion is
        skipped, not queued, while the model is busy with another question."""
        return self.semantic is None or self.semantic.has_read(self.semantic_text(assessment))

    def semantic_text(self, assessment: Assessment) -> str:
        """What the embedding reads: the English question as written (it is multilingual),
        otherwise the part that asks something as written (the embedding reads diacritics and
        copes with typos itself)."""
        text = assessment.question if assessment.english else assessment.read or assessment.asked
        return text[: MAX_FUZZY_CHARS * 2]

    def _settled(
        self, result: MatchResult, answer: str, clarify: str, confidence: float | None = None
    ) -> MatchResult:
        """`result` after the second opinion: answered (`answer`), an escalation turned into a
        choice (`clarify`), or unchanged."""
        settled = dataclasses.replace(
            result,
            reason="semantic",
            confidence=result.confidence
            if confidence is None
            else round(max(confidence, result.confidence), 4),
        )
        if answer and result.decision in ("clarify", "escalate"):
            best = next(c for c in result.candidates if c.entry_id == result.entry_id)
            return dataclasses.replace(settled, decision="answer", score=best.score)
        if clarify and result.decision == "escalate":
            offered = [c for c in result.candidates if not is_chitchat(c.entry_id)]
            if offered:
                return dataclasses.replace(settled, decision="clarify", candidates=offered)
        return result

    def similarity(self, first: str, second: str) -> float:
        """How alike two clerks' questions are, in [0, 1], by the evidence and weights this
        matcher scores an entry with: the character 4-gram TF-IDF cosine (the index's IDF),
        the rapidfuzz ratio of the normalised texts above `fuzzy_floor`, and the IDF-weighted
        Dice overlap of their terms (close stems and typos of known terms count as in `features`),
        mixed with `w_ngrams`, `w_fuzzy` and `w_coverage` + `w_phrase_cover`. Symmetric; English
        is carried into Serbian first. The mentor desk uses it to find a question already with
        a mentor (followers instead of duplicates)."""
        cfg = self.config
        profile_a, profile_b = self._profile(first), self._profile(second)
        if profile_a is None or profile_b is None:
            return 0.0
        a, va, wa, total_a = profile_a
        b, vb, wb, total_b = profile_b
        # character 4-grams, weighted by the index's IDF
        grams = sum(w * vb.get(g, 0.0) for g, w in va.items())
        # fuzzy ratio above the floor, as in `features`
        floor = cfg.fuzzy_floor
        ratio = fuzz.ratio(a[:MAX_FUZZY_CHARS], b[:MAX_FUZZY_CHARS]) / 100.0
        fuzzy = max(0.0, (ratio - floor) / (1.0 - floor)) if floor < 1.0 else 0.0
        # IDF-weighted Dice overlap of the terms (a term stands for the known terms it matches)
        shared = sum(min(w, wb[t]) for t, w in wa.items() if t in wb)
        dice = 2.0 * shared / (total_a + total_b) if total_a + total_b > 0 else 0.0
        w_terms = cfg.w_coverage + cfg.w_phrase_cover
        total_weight = cfg.w_ngrams + cfg.w_fuzzy + w_terms
        if total_weight <= 0:
            return 0.0
        mixed = cfg.w_ngrams * grams + cfg.w_fuzzy * fuzzy + w_terms * min(dice, 1.0)
        return round(min(max(mixed / total_weight, 0.0), 1.0), 4)

    def _profile(
        self, question: str
    ) -> tuple[str, dict[str, float], dict[str, float], float] | None:
        """A question as `similarity` compares it (normalised text, 4-gram vector, term
        weights, total weight); cached, since open requests are compared again and again."""
        found = self._profiles.get(question)
        if found is not None:
            return found
        text = focus(question[:MAX_QUESTION_CHARS])
        if is_english(text, self.glossary):
            text = to_serbian(text, self.glossary)
        words = content_words(text)[: MAX_TERMS * 2]
        if not words:
            return None
        typos = [MAX_TYPO_SEARCHES]
        known: dict[str, float] = {}
        total = 0.0
        for term in self.analyzer.terms_of_words(words, limit=MAX_TERMS):
            lookup = self._lookup_cached(term, typos)
            total += lookup.weight
            for target, weight in (lookup.matches or {term: lookup.weight}).items():
                known[target] = max(known.get(target, 0.0), weight)
        joined = " ".join(words)
        profile = (joined, self._gram_weights(joined), known, total)
        if len(self._profiles) >= 2_000:
            self._profiles.clear()
        self._profiles[question] = profile
        return profile

    def _gram_weights(self, text: str) -> dict[str, float]:
        """A text's character 4-gram TF-IDF vector (L2-normalised), with the index's IDF (a
        gram the index has never seen counts as the rarest)."""
        grams: dict[str, int] = {}
        for gram in _char_grams(text):
            grams[gram] = grams.get(gram, 0) + 1
        weights = {
            g: (1.0 + math.log(c)) * self._gram_idf.get(g, self._gram_max_idf)
            for g, c in grams.items()
        }
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {g: w / norm for g, w in weights.items()}

    def _uncovered(self, terms: set[str], index: int) -> bool:
        """Does the question name a subject the KB does not cover, which the entry does not
        speak of either, or ask a detail the entry's answer does not state?"""
        vocabulary = self._forward[index]
        return any(
            subject <= terms and not subject <= vocabulary.keys() for subject in self._not_covered
        ) or any(
            not stated[index] and any(phrase <= terms for phrase in asked)
            for asked, stated in self._details
        )
