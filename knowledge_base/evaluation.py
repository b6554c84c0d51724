"""Accuracy of the matcher (and the baselines) on a labelled question file.

A labelled file is JSON lines: {"question": ..., "expected": entry id or null, "tags": [...]}.
For a covered question (expected is an id) the outcome is one of
  correct     answered with the expected entry
  clarified   a choice was offered and the expected entry is among the options
  clarify-miss a choice was offered without the expected entry
  wrong       answered with another entry
  missed      escalated to a mentor although the KB covers it
and for an out-of-scope question (expected null): answered, clarified or escalated.
Targets (checked on the matcher only): correct >= 90 % and wrong <= 2 % of covered questions,
out-of-scope answered <= 5 % of out-of-scope questions.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge_base.matcher import MatchResult
from knowledge_base.model import KnowledgeBase

TARGET_CORRECT = 0.90
TARGET_WRONG = 0.02
TARGET_OOS_ANSWERED = 0.05

COVERED_OUTCOMES = ("correct", "clarified", "clarify-miss", "wrong", "missed")
OOS_OUTCOMES = ("oos-answered", "oos-clarified", "oos-escalated")


@dataclass(frozen=True)
class Example:
    question: str
    expected: str | None
    tags: tuple[str, ...] = ()


def read_examples(path: Path) -> list[Example]:
    """Labelled questions; raises ValueError naming the line of a malformed one."""
    examples: list[Example] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            question = item["question"]
            expected = item.get("expected")
            tags = tuple(str(t) for t in item.get("tags") or ())
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not a labelled question ({exc})") from exc
        if not isinstance(question, str) or not (expected is None or isinstance(expected, str)):
            raise ValueError(f"{path}:{number}: question must be text, expected an id or null")
        examples.append(Example(question, expected, tags))
    return examples


def outcome(example: Example, result: MatchResult) -> str:
    offered = [c.entry_id for c in result.candidates]
    if example.expected is None:
        return {"answer": "oos-answered", "clarify": "oos-clarified"}.get(
            result.decision, "oos-escalated"
        )
    if result.decision == "answer":
        return "correct" if result.entry_id == example.expected else "wrong"
    if result.decision == "clarify":
        return "clarified" if example.expected in offered else "clarify-miss"
    return "missed"


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)
    ranks: Counter[str] = field(default_factory=Counter)  # right entry first / in the top 3

    def add(self, name: str) -> None:
        self.counts[name] += 1

    @property
    def covered(self) -> int:
        return sum(self.counts[o] for o in COVERED_OUTCOMES)

    @property
    def oos(self) -> int:
        return sum(self.counts[o] for o in OOS_OUTCOMES)

    def rate(self, name: str) -> float:
        total = self.oos if name.startswith("oos-") else self.covered
        return self.counts[name] / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"covered": self.covered, "oos": self.oos}
        for name in ("first", "top3"):
            data[f"{name}_rate"] = round(self.ranks[name] / self.covered, 4) if self.covered else 0
        for name in (*COVERED_OUTCOMES, *OOS_OUTCOMES):
            data[name] = self.counts[name]
            data[f"{name}_rate"] = round(self.rate(name), 4)
        return data


@dataclass
class SystemReport:
    name: str
    total: Tally
    by_service: dict[str, Tally]
    by_tag: dict[str, Tally]
    failures: list[tuple[Example, MatchResult, str]]

    def targets(self) -> dict[str, bool]:
        return {
            f"correct >= {TARGET_CORRECT:.0%}": self.total.rate("correct") >= TARGET_CORRECT,
            f"wrong <= {TARGET_WRONG:.0%}": self.total.rate("wrong") <= TARGET_WRONG,
            f"out-of-scope answered <= {TARGET_OOS_ANSWERED:.0%}": (
                self.total.rate("oos-answered") <= TARGET_OOS_ANSWERED
            ),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "total": self.total.as_dict(),
            "by_service": {k: v.as_dict() for k, v in self.by_service.items()},
            "by_tag": {k: v.as_dict() for k, v in self.by_tag.items()},
            "targets": self.targets(),
            "failures": [
                {
                    "question": ex.question,
                    "expected": ex.expected,
                    "outcome": name,
                    "decision": res.decision,
                    "entry_id": res.entry_id,
                    "score": res.score,
                    "candidates": [c.entry_id for c in res.candidates],
                }
                for ex, res, name in self.failures
            ],
        }


def evaluate(
    name: str,
    match: Callable[[str], MatchResult],
    examples: Iterable[Example],
    kb: KnowledgeBase,
) -> SystemReport:
    total = Tally()
    by_service: dict[str, Tally] = {}
    by_tag: dict[str, Tally] = {}
    failures: list[tuple[Example, MatchResult, str]] = []
    for example in examples:
        result = match(example.question)
        name_ = outcome(example, result)
        total.add(name_)
        if example.expected is not None:  # how the ranking did, whatever the decision
            ids = [c.entry_id for c in result.candidates]
            total.ranks["first"] += bool(ids) and ids[0] == example.expected
            total.ranks["top3"] += example.expected in ids[:3]
        if example.expected is None:
            service = "(out of scope)"
        else:
            entry = kb.get(example.expected)
            service = entry.service if entry is not None else "(unknown id)"
        by_service.setdefault(service, Tally()).add(name_)
        for tag in example.tags:
            tally = by_tag.setdefault(tag, Tally())
            tally.add(name_)
            if example.expected is not None:
                ids = [c.entry_id for c in result.candidates]
                tally.ranks["first"] += bool(ids) and ids[0] == example.expected
                tally.ranks["top3"] += example.expected in ids[:3]
        if name_ not in ("correct", "oos-escalated"):
            failures.append((example, result, name_))
    return SystemReport(name, total, by_service, by_tag, failures)


def _pct(value: float) -> str:
    return f"{value * 100:5.1f}%"


def format_reports(reports: list[SystemReport], *, show_failures: bool = False) -> str:
    """Side-by-side summary, then per-service and per-tag tables of the first report."""
    main = reports[0]
    lines: list[str] = []
    covered, oos = main.total.covered, main.total.oos
    lines.append(f"Questions: {covered} covered, {oos} out of scope")
    lines.append("")
    header = f"{'':32}" + "".join(f"{r.name:>16}" for r in reports)
    lines.append(header)
    rows = [
        ("correct answers (of covered)", "correct"),
        ("clarified, right one offered", "clarified"),
        ("clarified, right one missing", "clarify-miss"),
        ("wrong answers (of covered)", "wrong"),
        ("missed (escalated, covered)", "missed"),
        ("out-of-scope answered", "oos-answered"),
        ("out-of-scope clarified", "oos-clarified"),
        ("out-of-scope escalated", "oos-escalated"),
    ]
    for label, key in rows:
        cells = "".join(f"{r.total.counts[key]:>8} {_pct(r.total.rate(key)):>7}" for r in reports)
        lines.append(f"{label:32}{cells}")
    for label, key in (("right entry first", "first"), ("right entry in the top 3", "top3")):
        cells = "".join(
            f"{r.total.ranks[key]:>8} {_pct(r.total.ranks[key] / max(r.total.covered, 1)):>7}"
            for r in reports
        )
        lines.append(f"{label:32}{cells}")
    lines.append("")
    lines.append(f"Per service ({main.name}): n, correct, clarified, wrong, missed")
    for service, tally in sorted(main.by_service.items()):
        if service == "(out of scope)":
            lines.append(
                f"  {service:18} {tally.oos:4}  answered {_pct(tally.rate('oos-answered'))}"
                f"  clarified {_pct(tally.rate('oos-clarified'))}"
            )
            continue
        lines.append(
            f"  {service:18} {tally.covered:4}  {_pct(tally.rate('correct'))}"
            f"  {_pct(tally.rate('clarified'))}  {_pct(tally.rate('wrong'))}"
            f"  {_pct(tally.rate('missed'))}"
        )
    if main.by_tag:
        lines.append("")
        lines.append(
            f"Per tag ({main.name}): n, correct, clarified, wrong, right first"
            " | out-of-scope answered"
        )
        for tag, tally in sorted(main.by_tag.items()):
            first = tally.ranks["first"] / tally.covered if tally.covered else 0.0
            lines.append(
                f"  {tag:18} {tally.covered + tally.oos:4}  {_pct(tally.rate('correct'))}"
                f"  {_pct(tally.rate('clarified'))}  {_pct(tally.rate('wrong'))}"
                f"  {_pct(first)} | {_pct(tally.rate('oos-answered'))}"
            )
    lines.append("")
    lines.append(f"Targets ({main.name}):")
    for label, ok in main.targets().items():
        lines.append(f"  {'OK  ' if ok else 'MISS'} {label}")
    if show_failures and main.failures:
        lines.append("")
        lines.append(f"Not answered correctly ({main.name}):")
        for example, result, name in main.failures:
            offered = ",".join(c.entry_id for c in result.candidates)
            lines.append(
                f"  [{name}] {example.question!r} expected={example.expected} "
                f"got={result.decision}:{result.entry_id} {result.score:.3f} [{offered}]"
            )
    return "\n".join(lines)


# -- ratchet -------------------------------------------------------------------------------
# The levels main has reached on a question file: {"<file name>": {"correct": min,
# "correct_or_clarified": min, "wrong": max, "oos-answered": max, "tag:english:correct": min}}.
# CI fails when a figure falls below its level; raise the levels as the figures improve.
_AT_MOST = ("wrong", "oos-answered")


def _figure(report: SystemReport, key: str) -> float:
    tally = report.total
    if key.startswith("tag:"):
        _, tag, key = key.split(":", 2)
        tally = report.by_tag.get(tag, Tally())
    if key == "correct_or_clarified":
        return tally.rate("correct") + tally.rate("clarified")
    return tally.rate(key)


def ratchet_failures(report: SystemReport, path: Path, file_name: str) -> list[str]:
    levels = json.loads(path.read_text(encoding="utf-8")).get(file_name, {})
    failures: list[str] = []
    for key, level in levels.items():
        value = _figure(report, key)
        at_most = key.rsplit(":", 1)[-1] in _AT_MOST
        if (value > level + 1e-9) if at_most else (value < level - 1e-9):
            sign = "<=" if at_most else ">="
            failures.append(f"{key} is {value:.1%}, main has reached {sign} {level:.1%}")
    return failures
