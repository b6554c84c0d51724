"""Questions about subjects the programme does not cover, and small talk.

`ReferralFinder.find(question)` returns the group of `knowledge_base/not_covered.yaml` the
question names (building permits, property tax, civil registry, company registration, ... or
small talk), so the bot can say where to go instead of offering a mentor for something that is
not the programme's. Phrases are matched like the matcher reads text (Latin/Cyrillic, diacritics,
Serbian stems): every content word of a phrase must appear in the question. A phrase with no
words (an emoji) matches a message made of nothing but symbols.
"""

from __future__ import annotations

from collections.abc import Sequence

from knowledge_base.model import ReferralGroup
from knowledge_base.normalize import STOP_WORDS, stem, words

# Small talk is a short message; in a longer one the same words are part of a real question.
SMALL_TALK_MAX_WORDS = 6


def _stems(text: str, keep_stop_words: bool = False) -> frozenset[str]:
    return frozenset(stem(w) for w in words(text) if keep_stop_words or w not in STOP_WORDS)


class ReferralFinder:
    def __init__(self, groups: Sequence[ReferralGroup]):
        self.groups = list(groups)
        self._phrases: list[tuple[ReferralGroup, frozenset[str]]] = []
        self._symbols: list[tuple[ReferralGroup, str]] = []
        for group in self.groups:
            for phrase in group.phrases:
                # Small talk is made of function words ("kako si"): keep them all.
                stems = _stems(phrase, keep_stop_words=group.kind == "small_talk")
                if stems:
                    self._phrases.append((group, stems))
                elif phrase.strip():
                    self._symbols.append((group, phrase.strip()))

    def find(self, question: str) -> ReferralGroup | None:
        """The first group (in file order) that `question` names, or None."""
        text = question.strip()
        if not text:
            return None
        question_words = words(text)
        if not question_words:
            for group, symbol in self._symbols:
                if symbol in text:
                    return group
            # A message of symbols only (emoji, "?!") is small talk when such a group exists.
            return next((g for g in self.groups if g.kind == "small_talk"), None)
        stems = frozenset(stem(w) for w in question_words if w not in STOP_WORDS)
        all_stems = frozenset(stem(w) for w in question_words)
        for group, phrase in self._phrases:
            if group.kind == "small_talk":
                if len(question_words) <= SMALL_TALK_MAX_WORDS and phrase <= all_stems:
                    return group
            elif phrase <= stems:
                return group
        return None
