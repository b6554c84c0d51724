"""Cross-validation over the knowledge base: questions the index has never seen, from the KB itself.

An evaluation on phrasings that are also in the index measures memory, not matching. Here:
- **held-out phrasings**: an entry's phrasings (its question and alternatives) are grouped with
  their near-duplicates (character similarity >= NEAR_DUPLICATE) and the groups dealt into
  `folds`; each fold is matched against an index built without it (every entry keeps at least one
  phrasing and its keywords). The expected entry is the one the phrasing belongs to.
- **held-out entries**: the entries are dealt into folds; each fold's phrasings are matched
  against an index without those entries at all. Nothing can be answered right: these are the
  hardest out-of-scope questions there are, close to what the KB covers.

Both kinds feed the decision model (`tune`) and the honest figures (`python -m knowledge_base
crossval`). Matching runs the full pipeline (courtesy, English, failure reports) like a clerk's
question does.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from dataclasses import dataclass

from rapidfuzz import fuzz

from knowledge_base.matcher import Assessment, Matcher
from knowledge_base.model import Entry, KnowledgeBase
from knowledge_base.normalize import normalize

NEAR_DUPLICATE = 85.0
SEED = 20261207


@dataclass(frozen=True)
class Query:
    """One cross-validated question: its assessment against an index that does not hold it."""

    question: str
    expected: str | None
    kind: str  # "phrasing" or "entry"
    fold: int
    assessment: Assessment
    matcher: Matcher

    @property
    def top_id(self) -> str | None:
        ranked = self.assessment.ranked
        return self.matcher.entries[ranked[0][1]].id if ranked else None


def _groups(phrasings: list[str]) -> list[list[str]]:
    """Near-duplicate phrasings of one entry, kept together (single-link)."""
    texts = [normalize(p) for p in phrasings]
    parent = list(range(len(phrasings)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            if fuzz.ratio(texts[i], texts[j]) >= NEAR_DUPLICATE:
                parent[root(i)] = root(j)
    grouped: dict[int, list[str]] = {}
    for i, phrasing in enumerate(phrasings):
        grouped.setdefault(root(i), []).append(phrasing)
    return list(grouped.values())


def entry_without(entry: Entry, removed: set[str]) -> Entry:
    """`entry` without the phrasings in `removed` (at least one must stay)."""
    kept = [p for p in [entry.question, *entry.alternatives] if p not in removed]
    return dataclasses.replace(entry, question=kept[0], alternatives=kept[1:])


def matcher_over(kb: KnowledgeBase, entries: list[Entry], template: Matcher) -> Matcher:
    """A matcher like `template` (config, model, glossary) over these entries of `kb`."""
    matcher = Matcher(
        entries,
        kb.synonyms,
        template.config,
        model=template.model,
        glossary=template.glossary,
        services=kb.services,
    )
    matcher.set_not_covered(kb.not_covered, kb.details)
    return matcher


def held_out_phrasings(kb: KnowledgeBase, template: Matcher, folds: int = 5) -> Iterator[Query]:
    rng = random.Random(SEED)
    assignment: dict[str, dict[str, int]] = {}  # entry id -> phrasing -> fold
    for entry in kb.entries.values():
        groups = _groups([entry.question, *entry.alternatives])
        rng.shuffle(groups)
        start = rng.randrange(folds)
        assignment[entry.id] = {
            p: (start + k) % folds for k, group in enumerate(groups) for p in group
        }
    for fold in range(folds):
        removed: dict[str, set[str]] = {}
        entries: list[Entry] = []
        for entry in kb.entries.values():
            out = {p for p, f in assignment[entry.id].items() if f == fold}
            if len(out) >= len(assignment[entry.id]):
                out = set()  # an entry of one near-duplicate group stays whole
            removed[entry.id] = out
            entries.append(entry_without(entry, out) if out else entry)
        matcher = matcher_over(kb, entries, template)
        for entry_id, phrasings in removed.items():
            for phrasing in sorted(phrasings):
                yield Query(phrasing, entry_id, "phrasing", fold, matcher.assess(phrasing), matcher)


def held_out_entries(
    kb: KnowledgeBase, template: Matcher, folds: int = 5, per_entry: int = 4
) -> Iterator[Query]:
    rng = random.Random(SEED + 1)
    ids = list(kb.entries)
    rng.shuffle(ids)
    for fold in range(folds):
        out = set(ids[fold::folds])
        matcher = matcher_over(kb, [e for e in kb.entries.values() if e.id not in out], template)
        for entry_id in sorted(out):
            entry = kb.entries[entry_id]
            phrasings = [entry.question, *entry.alternatives]
            for phrasing in rng.sample(phrasings, min(per_entry, len(phrasings))):
                yield Query(phrasing, None, "entry", fold, matcher.assess(phrasing), matcher)


def queries(kb: KnowledgeBase, template: Matcher, folds: int = 5) -> list[Query]:
    return [*held_out_phrasings(kb, template, folds), *held_out_entries(kb, template, folds)]
