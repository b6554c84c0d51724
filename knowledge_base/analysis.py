"""From text to matching terms: normalise, drop stop words, stem, apply the synonym groups.

Documents (entry questions, alternatives, keywords) and clerks' questions go through the same
`Analyzer`, so "eSanduče", "e-inbox" and "sandučić" all become the canonical term of their group.
Two stems are *close* when they are equal or one extends the other by at most two letters
(Snowball is not always consistent: potpis -> "potpi", potpisa -> "potpis").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from knowledge_base.normalize import STOP_WORDS, normalize, stem

MAX_TERMS = 64


def content_words(text: str) -> list[str]:
    """Normalised words without stop words and stray single letters."""
    return [
        w for w in normalize(text).split() if w not in STOP_WORDS and (len(w) > 1 or w.isdigit())
    ]


def close(a: str, b: str) -> bool:
    """Same stem, or one stem is the other plus a letter (shorter has 4+) or two (5+)."""
    if a == b:
        return True
    if len(a) > len(b):
        a, b = b, a
    extra = len(b) - len(a)
    return b.startswith(a) and ((extra == 1 and len(a) >= 4) or (extra == 2 and len(a) >= 5))


def same_token(variant: tuple[str, str], token: tuple[str, str]) -> bool:
    """Does a (word, stem) of a synonym variant match a (word, stem) of the text?

    Short stems are ambiguous (pos <- "pos", "pošte"), so with a stem under four letters the
    words themselves must agree up to one added letter (pos, posa).
    """
    (vw, vs), (tw, ts) = variant, token
    if vw == tw:
        return True
    if len(vs) >= 4 and len(ts) >= 4:
        return close(vs, ts)
    return vs == ts and tw.startswith(vw) and len(tw) - len(vw) <= 1


def _bucket(token: tuple[str, str]) -> str:
    return token[0][:2]


class Analyzer:
    """Text -> list of terms (stems and canonical synonym terms), order kept."""

    def __init__(self, synonyms: Iterable[Sequence[str]] = ()):
        # variant (word, stem) tuples -> canonical stems, bucketed by the first word's letters
        self._rules: dict[str, list[tuple[tuple[tuple[str, str], ...], tuple[str, ...]]]] = {}
        seen: set[tuple[tuple[str, str], ...]] = set()
        for group in synonyms:
            if not group:
                continue
            canonical = tuple(s for _, s in self._tokens(group[0]))
            if not canonical:
                continue
            for variant in group:
                tokens = tuple(self._tokens(variant))
                if not tokens or tokens in seen:
                    continue
                seen.add(tokens)
                self._rules.setdefault(_bucket(tokens[0]), []).append((tokens, canonical))
        for rules in self._rules.values():
            rules.sort(key=lambda rule: -len(rule[0]))  # longest variant wins

    def aliases(self) -> dict[str, str]:
        """One-word variants and their one-word canonical term (cloudu -> klaud), for typos."""
        out: dict[str, str] = {}
        for rules in self._rules.values():
            for variant, canonical in rules:
                if len(variant) == 1 and len(canonical) == 1:
                    out.setdefault(variant[0][1], canonical[0])
        return out

    @staticmethod
    def _tokens(text: str) -> list[tuple[str, str]]:
        return [(w, stem(w)) for w in content_words(text)]

    def _apply_synonyms(self, tokens: list[tuple[str, str]]) -> list[str]:
        if not self._rules:
            return [s for _, s in tokens]
        out: list[str] = []
        i = 0
        while i < len(tokens):
            for variant, canonical in self._rules.get(_bucket(tokens[i]), ()):
                n = len(variant)
                if i + n <= len(tokens) and all(
                    same_token(variant[k], tokens[i + k]) for k in range(n)
                ):
                    out.extend(canonical)
                    i += n
                    break
            else:
                out.append(tokens[i][1])
                i += 1
        return out

    def terms(self, text: str, limit: int | None = None) -> list[str]:
        """Terms of `text`; with `limit`, at most that many distinct terms (first ones kept)."""
        return self.terms_of_words(content_words(text), limit)

    def terms_of_words(self, words: list[str], limit: int | None = None) -> list[str]:
        """Terms of words already passed through `content_words`."""
        if limit is not None:
            words = words[: limit * 2]
        result = self._apply_synonyms([(w, stem(w)) for w in words])
        if limit is not None:
            result = list(dict.fromkeys(result))[:limit]
        return result
