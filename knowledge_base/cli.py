"""`python -m knowledge_base check | match | eval | tune` (see --help of each)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from knowledge_base.baselines import PlainBM25Baseline, RapidfuzzBaseline
from knowledge_base.evaluation import evaluate, format_reports, ratchet_failures, read_examples
from knowledge_base.loader import check_knowledge_base, load_knowledge_base
from knowledge_base.matcher import Matcher, MatchResult
from knowledge_base.model import KnowledgeBase, KnowledgeBaseError


def _result_json(result: MatchResult) -> str:
    return json.dumps(
        {
            "question": result.question,
            "decision": result.decision,
            "entry_id": result.entry_id,
            "score": round(result.score, 4),
            "candidates": [{"entry_id": c.entry_id, "score": c.score} for c in result.candidates],
        },
        ensure_ascii=False,
    )


def _load(content_dir: Path | None) -> KnowledgeBase | None:
    try:
        return load_knowledge_base(content_dir)
    except KnowledgeBaseError as exc:
        print(exc, file=sys.stderr)
        print("Run `python -m knowledge_base check` for details.", file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    today = args.today or dt.date.today()  # a curator's today: the review age counts from it
    problems = check_knowledge_base(args.content_dir, today=today)
    errors = [p for p in problems if p.level == "error"]
    for problem in problems:
        print(problem)
    if errors:
        print(f"{len(errors)} error(s), {len(problems) - len(errors)} warning(s)")
        return 1
    kb = load_knowledge_base(args.content_dir)
    print(
        f"OK: {len(kb.entries)} entries, {len(kb.services)} services, "
        f"{len(kb.synonyms)} synonym groups, {len(problems)} warning(s)"
    )
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    kb = _load(args.content_dir)
    if kb is None:
        return 2
    matcher = Matcher.from_knowledge_base(kb)
    if args.jsonl:
        for line in sys.stdin:
            result = matcher.match(line.rstrip("\r\n"))
            sys.stdout.write(_result_json(result) + "\n")
            sys.stdout.flush()
        return 0
    questions = args.question or [line.rstrip("\r\n") for line in sys.stdin]
    for question in questions:
        result = matcher.match(question)
        print(f"{result.decision:8} {result.entry_id or '-'}  {result.score:.3f}  {question}")
        for candidate in result.candidates:
            entry = kb.get(candidate.entry_id)
            title = entry.question if entry else ""
            print(f"         {candidate.score:.3f} {candidate.entry_id}: {title}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    kb = _load(args.content_dir)
    if kb is None:
        return 2
    try:
        examples = read_examples(args.file)
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    unknown = sorted({e.expected for e in examples if e.expected and e.expected not in kb.entries})
    if unknown:
        print(f"warning: expected ids not in the KB: {', '.join(unknown)}", file=sys.stderr)
    started = time.perf_counter()
    matcher = Matcher.from_knowledge_base(kb)
    reports = [evaluate("matcher", matcher.match, examples, kb)]
    elapsed = time.perf_counter() - started
    if not args.no_baselines:
        entries = list(kb.entries.values())
        for baseline in (RapidfuzzBaseline(entries), PlainBM25Baseline(entries)):
            reports.append(evaluate(baseline.name, baseline.match, examples, kb))
    ok = all(reports[0].targets().values())
    if args.ratchet is not None:
        falls = ratchet_failures(reports[0], args.ratchet, args.file.name)
        for line in falls:
            print(f"RATCHET {args.file.name}: {line}", file=sys.stderr)
        ok = not falls
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(args.file),
                    "targets_met": ok,
                    "seconds": round(elapsed, 3),
                    "systems": [r.as_dict() for r in reports],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        print(f"{args.file}: {len(examples)} questions, matcher took {elapsed:.2f} s")
        print(format_reports(reports, show_failures=args.failures))
    return 0 if ok else 1


def cmd_crossval(args: argparse.Namespace) -> int:
    from knowledge_base.tune import tune

    kb = _load(args.content_dir)
    if kb is None:
        return 2
    print(tune(kb, [e for path in args.dev for e in read_examples(path)], write=False))
    return 0


def cmd_semantic(args: argparse.Namespace) -> int:
    from knowledge_base.semantic import VECTORS_FILE, SemanticIndex

    kb = _load(args.content_dir)
    if kb is None:
        return 2
    count = SemanticIndex(list(kb.entries.values())).save()
    print(f"{count} phrasings embedded into {VECTORS_FILE}")
    return 0


def cmd_words(args: argparse.Namespace) -> int:
    from knowledge_base.common_words import WORDS_FILE, build

    print(f"{build()} everyday words written to {WORDS_FILE}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from knowledge_base.tune import tune

    kb = _load(args.content_dir)
    if kb is None:
        return 2
    print(tune(kb, [e for path in args.file for e in read_examples(path)]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m knowledge_base", description="Knowledge base tools"
    )
    parser.add_argument(
        "--content-dir",
        type=Path,
        default=None,
        help="entry files directory (default: the bundled knowledge_base/content)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate all KB files; non-zero exit on any error")
    check.add_argument(
        "--today",
        type=dt.date.fromisoformat,
        default=None,
        help="date the review age is counted from (default: today), e.g. 2026-12-07",
    )
    match = sub.add_parser("match", help="match questions (arguments or stdin lines)")
    match.add_argument("--jsonl", action="store_true", help="one JSON object per stdin line")
    match.add_argument("question", nargs="*")
    ev = sub.add_parser("eval", help="accuracy on a labelled JSONL file, with baselines")
    ev.add_argument("file", type=Path)
    ev.add_argument("--json", action="store_true", help="machine-readable report")
    ev.add_argument(
        "--failures", action="store_true", help="list every question not answered right"
    )
    ev.add_argument("--no-baselines", action="store_true")
    ev.add_argument(
        "--ratchet",
        type=Path,
        default=None,
        help="JSON of the levels main has reached; exit 1 only when a figure falls below them",
    )
    sub.add_parser(
        "semantic", help="embed every phrasing for the semantic second opinion (after KB edits)"
    )
    sub.add_parser(
        "words", help="write the everyday-word list the speller leaves alone (needs wordfreq)"
    )
    cv = sub.add_parser(
        "crossval", help="out-of-fold figures on held-out KB phrasings and entries (no writing)"
    )
    cv.add_argument(
        "dev",
        type=Path,
        nargs="*",
        default=[Path("knowledge_base/eval/dev.jsonl")],
        help="labelled files fitted on (default: the dev file)",
    )
    tune = sub.add_parser(
        "tune", help="fit the decision model on cross-validated KB queries and a dev file"
    )
    tune.add_argument(
        "file", type=Path, nargs="+", help="labelled files (dev, dev2, ...); never test or blind"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8", errors="replace")
    args = build_parser().parse_args(argv)
    commands = {
        "check": cmd_check,
        "match": cmd_match,
        "eval": cmd_eval,
        "tune": cmd_tune,
        "crossval": cmd_crossval,
        "semantic": cmd_semantic,
        "words": cmd_words,
    }
    return commands[args.command](args)
