"""Matcher benchmark: index build time, per-question latency and index memory.

Runs on the real KB and on synthetic KBs of 1,000 and 10,000 entries made from it (perturbed
copies of the real entries with new ids, reordered and dropped words, typos and invented words,
so the vocabulary grows as a real, larger KB's would). Questions are the labelled eval questions
plus perturbed alternatives. Prints a markdown table; with --check, exits non-zero when p99
misses the budget (5 ms at 1,000 entries, 50 ms at 10,000).

    python bench/bench_matcher.py [--sizes 1000 10000] [--questions 1000] [--check]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from knowledge_base.loader import PACKAGE_DIR, load_knowledge_base  # noqa: E402
from knowledge_base.matcher import Matcher  # noqa: E402
from knowledge_base.model import Entry, KnowledgeBase  # noqa: E402

BUDGET_MS = {1000: 5.0, 10000: 50.0}
_SYLLABLES = [
    "ba",
    "be",
    "bi",
    "bo",
    "bu",
    "da",
    "de",
    "di",
    "do",
    "du",
    "ka",
    "ke",
    "ki",
    "ko",
    "ku",
    "la",
    "le",
    "li",
    "lo",
    "lu",
    "ma",
    "me",
    "mi",
    "mo",
    "mu",
    "na",
    "ne",
    "ni",
]
_SYLLABLES += [
    "no",
    "nu",
    "pa",
    "pe",
    "pi",
    "po",
    "pu",
    "ra",
    "re",
    "ri",
    "ro",
    "ru",
    "sa",
    "se",
    "si",
    "so",
    "su",
    "ta",
    "te",
    "ti",
    "to",
    "tu",
    "va",
    "ve",
    "vi",
    "vo",
    "za",
]


def _invented(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + rng.choice("aeiourstn") + word[i:]


def _perturb(text: str, rng: random.Random, pool: list[str], invented: list[str]) -> str:
    words = text.split()
    if len(words) > 3 and rng.random() < 0.5:
        words.pop(rng.randrange(len(words)))
    if len(words) > 2 and rng.random() < 0.3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    words = [_typo(w, rng) if rng.random() < 0.1 else w for w in words]
    words.insert(rng.randrange(len(words) + 1), rng.choice(pool))
    words.insert(rng.randrange(len(words) + 1), rng.choice(invented))
    return " ".join(words)


def synthetic_kb(kb: KnowledgeBase, size: int, seed: int = 7) -> KnowledgeBase:
    """`size` entries: the real ones, then perturbed copies of them with new ids."""
    rng = random.Random(seed)
    base = list(kb.entries.values())
    pool = sorted({w for e in base for t in (e.question, *e.alternatives) for w in t.split()})
    invented = [_invented(rng) for _ in range(max(size // 2, 50))]
    entries: dict[str, Entry] = {e.id: e for e in base[:size]}
    copy = 0
    while len(entries) < size:
        source = base[copy % len(base)]
        copy += 1
        new_id = f"{source.id}-syn{copy}"
        topic = [rng.choice(invented) for _ in range(2)]  # what makes this copy its own entry
        entries[new_id] = dataclasses.replace(
            source,
            id=new_id,
            question=_perturb(source.question, rng, pool, topic),
            alternatives=[_perturb(a, rng, pool, topic) for a in source.alternatives],
            keywords=[*source.keywords[:3], *topic],
            related=[],
        )
    return KnowledgeBase(entries, kb.services, kb.synonyms)


def questions(kb: KnowledgeBase, count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    labelled: list[str] = []
    for name in ("dev.jsonl", "test.jsonl"):
        path = PACKAGE_DIR / "eval" / name
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    labelled.append(json.loads(line)["question"])
    base = list(kb.entries.values())
    pool = sorted({w for e in base for w in e.question.split()})
    out = list(labelled)
    while len(out) < count:
        entry = rng.choice(base)
        text = rng.choice([entry.question, *entry.alternatives])
        out.append(_perturb(text, rng, pool, [_invented(rng)]))
    rng.shuffle(out)
    return out[:count]


@dataclasses.dataclass
class Row:
    name: str
    entries: int
    build_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    index_mb: float
    budget_ms: float | None

    @property
    def ok(self) -> bool:
        return self.budget_ms is None or self.p99_ms < self.budget_ms


def measure(name: str, kb: KnowledgeBase, qs: list[str]) -> Row:
    gc.collect()
    started = time.perf_counter()
    matcher = Matcher.from_knowledge_base(kb, semantic=False)  # the lexical path (the budget)
    build = time.perf_counter() - started
    gc.collect()  # the index is long-lived: let it settle in the oldest GC generation first
    for q in qs[:50]:  # warm the stem cache like a running bot would
        matcher.match(q)
    timings: list[float] = []
    for q in qs:
        t0 = time.perf_counter()
        matcher.match(q)
        timings.append((time.perf_counter() - t0) * 1000.0)
    timings.sort()
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    del matcher
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    matcher = Matcher.from_knowledge_base(kb, semantic=False)
    index = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del matcher
    return Row(
        name,
        len(kb.entries),
        build,
        statistics.median(timings),
        p99,
        timings[-1],
        index / 2**20,
        BUDGET_MS.get(len(kb.entries)),
    )


def measure_semantic(kb: KnowledgeBase, qs: list[str]) -> str:
    """How often the semantic second opinion runs, and what one costs (native code, run off the
    event loop by the bot); the lexical path above does not include it."""
    matcher = Matcher.from_knowledge_base(kb)
    timings: list[float] = []
    for q in qs:
        assessment = matcher.assess(q)
        result = matcher.decide(assessment)
        if matcher.wants_second_opinion(result, assessment):
            t0 = time.perf_counter()
            matcher.second_opinion(assessment, result)
            timings.append((time.perf_counter() - t0) * 1000.0)
    if not timings:
        return "semantic second opinion: not available or never needed"
    timings.sort()
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    return (
        f"semantic second opinion (real KB): run for {len(timings)} of {len(qs)} questions "
        f"({len(timings) / len(qs):.0%}); p50 {statistics.median(timings):.1f} ms, p99 {p99:.1f} ms"
        " (the first includes loading the phrasing vectors)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--check", action="store_true", help="exit 1 when a p99 budget is missed")
    parser.add_argument("--semantic-questions", type=int, default=300)
    args = parser.parse_args(argv)
    kb = load_knowledge_base()
    qs = questions(kb, args.questions)
    rows = [measure("real KB", kb, qs)]
    for size in args.sizes:
        rows.append(measure(f"synthetic {size:,}", synthetic_kb(kb, size), qs))
    print(f"Matcher benchmark: {len(qs)} questions per KB, Python {sys.version.split()[0]}\n")
    print("| KB | entries | index build | p50 | p99 | max | index memory | p99 budget |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        budget = (
            "-" if r.budget_ms is None else (f"< {r.budget_ms:g} ms {'OK' if r.ok else 'MISSED'}")
        )
        print(
            f"| {r.name} | {r.entries:,} | {r.build_s:.2f} s | {r.p50_ms:.2f} ms | "
            f"{r.p99_ms:.2f} ms | {r.max_ms:.2f} ms | {r.index_mb:.1f} MB | {budget} |"
        )
    print()
    print(measure_semantic(kb, qs[: args.semantic_questions]))
    return 1 if args.check and not all(r.ok for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
