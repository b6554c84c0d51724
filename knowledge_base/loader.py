"""Loading and validating the knowledge base files.

Layout (all inside the `knowledge_base` package, never read from elsewhere at run time)::

    knowledge_base/content/services.yaml    services: - {id, title, title_en}
    knowledge_base/content/<service>.yaml   entries (any file name except services.yaml)
    knowledge_base/topics.yaml              ids every KB must have: - {id, service, question}
    knowledge_base/synonyms.yaml            synonym groups: - [canonical, variant, ...]
    knowledge_base/eval/*.jsonl             labelled questions (checked by `check` only)

For another content directory (tests, curators' drafts) the three files next to it are used:
`<dir>/../topics.yaml`, `<dir>/../synonyms.yaml` and `<dir>/../eval/`; a missing topics or
synonyms file there simply means "none".
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from knowledge_base.markup import LONG_ANSWER, TELEGRAM_LIMIT, markup_problems, visible_length
from knowledge_base.model import Entry, KnowledgeBase, KnowledgeBaseError, Problem, Service
from knowledge_base.normalize import STOP_WORDS, words

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CONTENT_DIR = PACKAGE_DIR / "content"
SERVICES_FILE = "services.yaml"

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
REQUIRED_FIELDS = ("id", "service", "question", "alternatives", "answer", "reviewed")
LIST_FIELDS = ("alternatives", "keywords", "sources", "related")
KNOWN_FIELDS = frozenset((*REQUIRED_FIELDS, *LIST_FIELDS))
FEW_ALTERNATIVES = 6


class _Collector:
    """Problems found while reading, with file paths shown relative to the working directory."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    @staticmethod
    def _name(path: Path) -> str:
        try:
            return str(path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(path)

    def error(self, path: Path, entry_id: str | None, message: str) -> None:
        self.problems.append(Problem(self._name(path), entry_id, message, "error"))

    def warning(self, path: Path, entry_id: str | None, message: str) -> None:
        self.problems.append(Problem(self._name(path), entry_id, message, "warning"))


def _read_yaml(path: Path, out: _Collector) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        out.error(path, None, f"cannot read: {exc}")
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        out.error(path, None, f"invalid YAML{line}: {getattr(exc, 'problem', exc)}")
    return None


def _read_services(path: Path, out: _Collector) -> list[Service]:
    if not path.exists():
        out.error(path, None, "services file is missing")
        return []
    data = _read_yaml(path, out)
    if data is None:
        return []
    if not isinstance(data, list):
        out.error(path, None, "must be a YAML list of {id, title, title_en}")
        return []
    services: list[Service] = []
    seen: set[str] = set()
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            out.error(path, None, f"service without an id: {item!r}")
            continue
        sid = item["id"]
        if sid in seen:
            out.error(path, sid, "duplicate service id")
            continue
        seen.add(sid)
        title = item.get("title") or item.get("title_sr")
        if not isinstance(title, str):
            out.error(path, sid, "service has no title")
            title = sid
        title_en = item.get("title_en")
        services.append(Service(sid, title, title_en if isinstance(title_en, str) else title))
    return services


def _string_list(value: Any) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _parse_entry(item: Any, path: Path, index: int, out: _Collector) -> Entry | None:
    if not isinstance(item, dict):
        out.error(path, f"#{index + 1}", "entry is not a mapping (id: ..., question: ...)")
        return None
    raw_id = item.get("id")
    eid = raw_id if isinstance(raw_id, str) and raw_id else f"#{index + 1}"
    ok = True
    for name in REQUIRED_FIELDS:
        if item.get(name) in (None, "", []):
            out.error(path, eid, f"missing field '{name}'")
            ok = False
    for name in sorted(set(item) - KNOWN_FIELDS, key=str):
        out.error(path, eid, f"unknown field '{name}'")
    if isinstance(raw_id, str) and raw_id and not ID_PATTERN.match(raw_id):
        out.error(path, eid, "id must be lower-case words joined by '-' (like ezup-login)")
    for name in ("id", "service", "question", "answer"):
        if name in item and item[name] is not None and not isinstance(item[name], str):
            out.error(path, eid, f"'{name}' must be text")
            ok = False
    lists: dict[str, list[str]] = {}
    for name in LIST_FIELDS:
        parsed = _string_list(item.get(name))
        if parsed is None:
            out.error(path, eid, f"'{name}' must be a list of texts")
            ok = False
            parsed = []
        lists[name] = [v.strip() for v in parsed if v.strip()]
    reviewed: Any = item.get("reviewed")
    if isinstance(reviewed, str):
        try:
            reviewed = dt.date.fromisoformat(reviewed)
        except ValueError:
            out.error(path, eid, f"'reviewed' must be a date like 2026-11-27, not {reviewed!r}")
            ok = False
    elif isinstance(reviewed, dt.datetime):
        reviewed = reviewed.date()
    elif reviewed is not None and not isinstance(reviewed, dt.date):
        out.error(path, eid, "'reviewed' must be a date like 2026-11-27")
        ok = False
    if not ok or not (reviewed is None or isinstance(reviewed, dt.date)):
        return None
    return Entry(
        id=item["id"],
        service=item["service"],
        question=item["question"].strip(),
        alternatives=lists["alternatives"],
        keywords=lists["keywords"],
        answer=item["answer"].strip(),
        sources=lists["sources"],
        related=lists["related"],
        reviewed=reviewed,
        source_file=str(path),
    )


def _check_entry(entry: Entry, path: Path, services: set[str], out: _Collector) -> None:
    if services and entry.service not in services:
        known = ", ".join(sorted(services))
        out.error(path, entry.id, f"unknown service '{entry.service}' (known: {known})")
    for problem in markup_problems(entry.answer):
        out.error(path, entry.id, f"answer markup: {problem}")
    for problem in markup_problems(entry.question):
        out.error(path, entry.id, f"question text: {problem}")
    length = visible_length(entry.answer)
    message_length = length + len(entry.question) + 2  # the bot sends the question as a heading
    if message_length > TELEGRAM_LIMIT:
        out.error(
            path,
            entry.id,
            f"answer is {length} characters; with its heading {message_length} > Telegram's "
            f"{TELEGRAM_LIMIT}: split it into two entries linked with 'related'",
        )
    elif length > LONG_ANSWER:
        out.warning(path, entry.id, f"answer is {length} characters (style limit {LONG_ANSWER})")
    if len(entry.alternatives) < FEW_ALTERNATIVES:
        out.warning(
            path,
            entry.id,
            f"only {len(entry.alternatives)} alternatives (write {FEW_ALTERNATIVES}-12 ways "
            "clerks ask it: the matcher learns from them)",
        )
    dupes = [a for a, n in Counter(a.lower() for a in entry.alternatives).items() if n > 1]
    if dupes:
        out.warning(path, entry.id, f"repeated alternatives: {dupes}")


def _read_topics(path: Path | None, out: _Collector) -> list[dict[str, str]]:
    if path is None:
        return []
    if not path.exists():
        out.error(path, None, "topics file is missing")
        return []
    data = _read_yaml(path, out)
    if data is None:
        return []
    if not isinstance(data, list):
        out.error(path, None, "must be a YAML list of {id, service, question}")
        return []
    topics: list[dict[str, str]] = []
    for item in data:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            topics.append({str(k): str(v) for k, v in item.items()})
        else:
            out.error(path, None, f"topic without an id: {item!r}")
    return topics


def _read_synonyms(path: Path | None, out: _Collector) -> list[list[str]]:
    if path is None or not path.exists():
        return []
    data = _read_yaml(path, out)
    if data is None:
        return []
    if not isinstance(data, list):
        out.error(path, None, "must be a YAML list of groups: - [canonical, variant, ...]")
        return []
    groups: list[list[str]] = []
    owner: dict[str, str] = {}
    for number, group in enumerate(data, start=1):
        label = f"group {number}"
        if not isinstance(group, list) or not group:
            out.error(path, label, "a group must be a non-empty list of texts")
            continue
        texts = [str(v) for v in group if isinstance(v, (str, int, float))]
        if len(texts) != len(group):
            out.error(path, label, "a group must be a list of texts")
            continue
        label = f"group {number} ({texts[0]})"
        if len(texts) < 2:
            out.warning(path, label, "a group with one item does nothing")
        for text in texts:
            key = " ".join(w for w in words(text) if w not in STOP_WORDS)
            if not key:
                out.error(path, label, f"{text!r} has no words left after normalisation")
                continue
            previous = owner.setdefault(key, texts[0])
            if normalize_key(previous) != normalize_key(texts[0]):
                out.warning(
                    path, label, f"{text!r} is also a variant of {previous!r}: the first wins"
                )
        groups.append(texts)
    return groups


def normalize_key(text: str) -> str:
    return " ".join(words(text))


def _check_eval(eval_dir: Path | None, ids: set[str], out: _Collector) -> None:
    if eval_dir is None or not eval_dir.is_dir():
        return
    for path in sorted(eval_dir.glob("*.jsonl")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            out.error(path, None, f"cannot read: {exc}")
            continue
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"line {number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                out.error(path, where, f"invalid JSON: {exc.msg}")
                continue
            if not isinstance(item, dict) or not isinstance(item.get("question"), str):
                out.error(path, where, "needs {question, expected, tags}")
                continue
            expected = item.get("expected")
            if expected is not None and (not isinstance(expected, str) or expected not in ids):
                out.error(path, where, f"unknown expected id {expected!r}")


def _resolve(content_dir: Path | None) -> tuple[Path, Path, Path, Path]:
    directory = DEFAULT_CONTENT_DIR if content_dir is None else Path(content_dir)
    base = directory.parent
    return directory, base / "topics.yaml", base / "synonyms.yaml", base / "eval"


def _read_all(
    content_dir: Path | None, *, include_eval: bool
) -> tuple[KnowledgeBase, list[Problem]]:
    directory, topics_path, synonyms_path, eval_dir = _resolve(content_dir)
    out = _Collector()
    if not directory.is_dir():
        out.error(directory, None, "content directory does not exist")
        return KnowledgeBase({}, []), out.problems
    services = _read_services(directory / SERVICES_FILE, out)
    service_ids = {s.id for s in services}
    entries: dict[str, Entry] = {}
    files = sorted(p for p in directory.glob("*.yaml") if p.name != SERVICES_FILE)
    if not files:
        out.error(directory, None, "no entry files (*.yaml)")
    for path in files:
        data = _read_yaml(path, out)
        if data is None:
            continue
        if not isinstance(data, list):
            out.error(path, None, "must be a YAML list of entries")
            continue
        for index, item in enumerate(data):
            entry = _parse_entry(item, path, index, out)
            if entry is None:
                continue
            if entry.id in entries:
                first = _Collector._name(Path(entries[entry.id].source_file))
                out.error(path, entry.id, f"duplicate id (first defined in {first})")
                continue
            _check_entry(entry, path, service_ids, out)
            entries[entry.id] = entry
    for entry in entries.values():
        path = Path(entry.source_file)
        for related in entry.related:
            if related == entry.id:
                out.error(path, entry.id, "'related' lists the entry itself")
            elif related not in entries:
                out.error(path, entry.id, f"'related' points to unknown id '{related}'")
    topics = _read_topics(topics_path if topics_path.exists() or content_dir is None else None, out)
    for topic in topics:
        tid = topic["id"]
        if tid not in entries:
            out.error(topics_path, tid, f"required topic has no entry: {topic.get('question', '')}")
        elif "service" in topic and entries[tid].service != topic["service"]:
            out.error(
                Path(entries[tid].source_file),
                tid,
                f"service is '{entries[tid].service}' but topics.yaml says '{topic['service']}'",
            )
    synonyms = _read_synonyms(synonyms_path, out)
    not_covered = _read_not_covered(synonyms_path.parent / "not_covered.yaml", out)
    if include_eval:
        _check_eval(eval_dir, set(entries), out)
    return KnowledgeBase(entries, services, synonyms, not_covered), out.problems


def _read_not_covered(path: Path, out: _Collector) -> list[str]:
    """Subjects the KB knowingly leaves out: a list of short phrases."""
    if not path.exists():
        return []
    data = _read_yaml(path, out)
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        out.error(path, None, "must be a YAML list of phrases")
        return []
    return [item for item in data if item.strip()]


def check_knowledge_base(content_dir: Path | None = None) -> list[Problem]:
    """Every problem (errors and warnings) in the KB files and the evaluation files."""
    return _read_all(content_dir, include_eval=True)[1]


def load_knowledge_base(content_dir: Path | None = None) -> KnowledgeBase:
    """The validated KB; raises KnowledgeBaseError listing every error (warnings are allowed)."""
    kb, problems = _read_all(content_dir, include_eval=False)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        raise KnowledgeBaseError(errors)
    return kb
