"""Typos put right before matching: an unknown word becomes the nearest word the KB uses.

The matcher's own typo search works on stems and only for a term no stem explains, so a typo that
happens to stem close to another term ("potpsi" -> "pot") slips through, and the character
n-gram and fuzzy evidence still see the misspelt word. Here every word of the question that the
KB's vocabulary (its phrasings, keywords, answers, synonyms) does not hold is compared with the
vocabulary words of about its length; when one is a single edit away (two for long words; a
swap of two neighbouring letters counts as one) it replaces the word, the more frequent one
winning a tie. A word no KB word is near is left as written (a town, a name). Cached per word and
bounded per question (MAX_SEARCHES), so the lexical path keeps its latency budget.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from rapidfuzz import process
from rapidfuzz.distance import OSA

from knowledge_base.analysis import close
from knowledge_base.normalize import STOP_WORDS, normalize, stem

MIN_LENGTH = 5  # shorter words have too many neighbours one edit away
LONG = 9  # from this length two edits are still a typo
MAX_LENGTH = 24  # longer tokens (codes, run-together text) are not searched
MAX_SEARCHES = 6  # uncached searches per question; further unknown words stay as written
_CACHE_SIZE = 50_000
_WORD = re.compile(r"\w+")


def _words(texts: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w in normalize(text).split() if w.isalpha())
    return counts


class Speller:
    """`trusted`: well-written text (entry questions, answers, synonyms); `loose`: phrasings
    that may carry typos on purpose (alternatives written as clerks type): a loose word a
    trusted word is near is itself a typo, put right like a clerk's."""

    def __init__(
        self,
        trusted: Iterable[str],
        loose: Iterable[str] = (),
        common: frozenset[str] = frozenset(),
    ):
        counts = _words(trusted)
        counts.update(STOP_WORDS)
        self.counts = counts
        self.common = common  # everyday words (`common_words`): never a typo
        self._by_length: dict[int, list[str]] = {}
        for word in counts:
            if len(word) >= MIN_LENGTH - 1:
                self._by_length.setdefault(len(word), []).append(word)
        self._cache: dict[str, str] = {}
        extra = _words(loose)
        for word in extra:
            # written more than once on purpose, or near no trusted word: a real word
            if word not in counts and (extra[word] > 1 or self.word(word) is None):
                counts[word] = extra[word]
                self._by_length.setdefault(len(word), []).append(word)

    def word(self, word: str) -> str | None:
        """The KB word `word` is a typo of, or None (known, too short, or nothing near)."""
        if word in self.counts or word in self.common:
            return None
        if not MIN_LENGTH <= len(word) <= MAX_LENGTH or not word.isalpha():
            return None
        limit = 2 if len(word) >= LONG else 1
        best: tuple[int, int, str] | None = None
        for length in range(len(word) - limit, len(word) + limit + 1):
            bucket = self._by_length.get(length)
            if not bucket:
                continue
            for other, distance, _ in process.extract(
                word, bucket, scorer=OSA.distance, score_cutoff=limit, limit=5
            ):
                if close(stem(other), stem(word)):
                    return None  # another form of the same word: the stems already agree
                key = (int(distance), -self.counts[other], other)
                if best is None or key < best:
                    best = key
        return best[2] if best is not None else None

    def correct(self, text: str) -> str:
        """`text` with its typos put right; the rest (punctuation, diacritics, script) as
        written, so that courtesy and sentences are still told apart (`focus`)."""
        budget = [MAX_SEARCHES]

        def fix(found: re.Match[str]) -> str:
            token = found.group(0)
            words = normalize(token).split()
            if len(words) != 1:
                return token
            word = words[0]
            if word in self.counts or word in self.common or len(word) < MIN_LENGTH:
                return token
            fixed = self._cache.get(word)
            if fixed is None:
                if budget[0] <= 0:
                    return token
                budget[0] -= 1
                fixed = self.word(word) or word
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                self._cache[word] = fixed
            return token if fixed == word else fixed

        return _WORD.sub(fix, text)
