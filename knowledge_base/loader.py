"""Loading and validating the knowledge base files.

Layout (all inside the `knowledge_base` package, never read from elsewhere at run time)::

    knowledge_base/content/services.yaml    services: - {id, title, title_en}
    knowledge_base/content/<service>.yaml   entries (any file name except services.yaml)
    knowledge_base/topics.yaml              ids every KB must have: - {id, service, question}
    knowledge_base/synonyms.yaml            synonym groups: - [canonical, variant, ...]
    knowledge_base/not_covered.yaml         subjects left out, with where to go instead
    knowledge_base/details.yaml             details an answer may not state: - {id, asked, stated}
    knowledge_base/eval/*.jsonl             labelled questions (checked by `check` only)

For another content directory (tests, curators' drafts) the three files next to it are used:
`<dir>/../topics.yaml`, `<dir>/../synonyms.yaml` and `<dir>/../eval/`; a missing topics or
synonyms file there simply means "none".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from knowledge_base.markup import LONG_ANSWER, TELEGRAM_LIMIT, markup_problems, visible_length
from knowledge_base.model import (
    Detail,
    Entry,
    KnowledgeBase,
    KnowledgeBaseError,
    Problem,
    ReferralGroup,
    Service,
)
from knowledge_base.normalize import STOP_WORDS, words

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CONTENT_DIR = PACKAGE_DIR / "content"
SERVICES_FILE = "services.yaml"

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
REQUIRED_FIELDS = ("id", "service", "question", "alternatives", "answer", "reviewed")
LIST_FIELDS = ("alternatives", "keywords", "sources", "related")
KNOWN_FIELDS = frozenset((*REQUIRED_FIELDS, *LIST_FIELDS, "reviewed_by"))
FEW_ALTERNATIVES = 6
# An entry not checked against its sources for this many months is listed by `check`.
REVIEW_MONTHS = 6
# Services whose entries describe the bot itself and need no outside source.
SOURCELESS_SERVICES = frozenset({"bot"})

# A source is a whole https address a person can open, or a regulation citation: the act's
# name and either its Official Gazette number or an article ("ZUP, čl. 57").
_URL = re.compile(r"^https://(?P<host>[a-z0-9-]+(?:\.[a-z0-9-]+)+)(?::\d+)?(?:[/?#]\S*)?$", re.I)
_ACT = re.compile(
    r"^(?:Zakon|Uredba|Pravilnik|Uputstvo|Odluka|Instrukcija|Usklađeni dinarski iznosi|ZUP)\b"
)
_GAZETTE_OR_ARTICLE = re.compile(r"Sl\. glasnik|Službeni glasnik|\bčl\. ?\d+")
# Test and staging hosts are not for clerks: test.eid.gov.rs, cms.test-uzda.gov.rs, ...
_TEST_HOST = re.compile(r"(?:^|[.-])(?:test|staging|demo)[.-]", re.I)
_SOURCE_LINK = re.compile(r'^Izvor: .*<a href="https://[^"]+">', re.S)
# Notes for editors that must not reach a clerk: say whom to ask instead.
EDITOR_NOTES = (
    "nismo našli",
    "nisu u našim izvorima",
    "nije u našim izvorima",
    "u našim izvorima",
    "dostupni izvori ne navode",
    "nije pronađen u dostupnim izvorima",
    "nisu pronađeni u izvorima",
    "nije opisano u izvorima",
    "nije opisano u dostupnim izvorima",
    "nisu opisani u dostupnim izvorima",
    "koraci potiču",
    "podatak iz sekundarnog izvora",
    "izvorima koje smo",
    "ne odgovaramo napamet",
)
# The same notes in the English texts of referrals.
EDITOR_NOTES_EN = (
    "sources we",
    "we found",
    "we checked",
    "we do not guess",
    "not in the public sources",
)


def editor_notes(text: str, notes: Sequence[str] = EDITOR_NOTES) -> list[str]:
    """The notes for editors found in `text` (a clerk should read whom to ask instead)."""
    lowered = text.lower()
    return [note for note in notes if note in lowered]


def source_problem(source: str) -> str | None:
    """Why `source` is not an address a clerk can open or a regulation citation (None if it is)."""
    url = _URL.match(source)
    if url is not None:
        if _TEST_HOST.search(url.group("host") + "."):
            return f"source {source!r} is a test or staging site: cite the public page"
        return None
    if source.startswith("http"):
        return f"source {source!r} is not a whole https address"
    if _ACT.match(source) and _GAZETTE_OR_ARTICLE.search(source):
        return None
    return (
        f"source {source!r} is neither a whole https address nor a regulation citation "
        "(act, Sl. glasnik number or article)"
    )


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day `months` calendar months earlier (the last day of a shorter month)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable")


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
    reviewed_by = item.get("reviewed_by")
    if reviewed_by is not None and (not isinstance(reviewed_by, str) or not reviewed_by.strip()):
        out.error(path, eid, "'reviewed_by' must be the name of the person or team who checked it")
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
        reviewed_by=reviewed_by.strip() if isinstance(reviewed_by, str) else None,
    )


def _check_sources(entry: Entry, path: Path, out: _Collector) -> None:
    for source in entry.sources:
        problem = source_problem(source)
        if problem is not None:
            out.error(path, entry.id, problem)
    for href in re.findall(r'href="([^"]*)"', entry.answer):
        link = _URL.match(href)
        if link is not None and _TEST_HOST.search(link.group("host") + "."):
            out.error(path, entry.id, f"answer links to a test or staging site: {href}")
    if entry.service in SOURCELESS_SERVICES:
        return
    if not entry.sources:
        out.error(path, entry.id, "no sources: list the pages or regulations the answer rests on")
    last = entry.answer.strip().splitlines()[-1] if entry.answer.strip() else ""
    if not _SOURCE_LINK.match(last):
        out.error(
            path,
            entry.id,
            'the last line must be "Izvor: <a href="https://...">...</a>" (a link to the source)',
        )
    for note in editor_notes(entry.answer):
        out.error(
            path,
            entry.id,
            f"answer contains a note for editors ({note!r}): tell the clerk whom to ask instead",
        )


def _check_review(entry: Entry, path: Path, today: dt.date, out: _Collector) -> None:
    if entry.reviewed is None:
        return
    if entry.reviewed > today:
        out.error(path, entry.id, f"'reviewed' {entry.reviewed} is in the future")
    elif entry.reviewed < months_before(today, REVIEW_MONTHS):
        out.warning(
            path,
            entry.id,
            f"not reviewed for over {REVIEW_MONTHS} months (last {entry.reviewed}): check it "
            "against its sources and update 'reviewed' and 'reviewed_by'",
        )
    if entry.service not in SOURCELESS_SERVICES and not entry.reviewed_by:
        out.warning(path, entry.id, "'reviewed_by' is missing: who checked it against its sources?")


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


def _apply_overrides(
    entries: dict[str, Entry],
    overrides: Sequence[Mapping[str, Any]],
    directory: Path,
    service_ids: set[str],
    out: _Collector,
    include_eval: bool,
    today: dt.date | None,
) -> None:
    """Approved changes (KB revisions, as plain data in the YAML fields) over the reviewed base:
    an entry with the same id is replaced, a new id is added. Later overrides win. Problems are
    reported against "revision:<id>". The entry keeps the file it belongs in (`source_file`):
    the base entry's, or `<service>.yaml` for a new one."""
    for index, item in enumerate(overrides):
        label = Path(f"revision:{item.get('id', '#' + str(index + 1))}")
        entry = _parse_entry(dict(item), label, index, out)
        if entry is None:
            continue
        base = entries.get(entry.id)
        home = base.source_file if base is not None else str(directory / f"{entry.service}.yaml")
        entry = dataclasses.replace(entry, source_file=home)
        _check_entry(entry, label, service_ids, out)
        if include_eval:
            _check_sources(entry, label, out)
            if today is not None:
                _check_review(entry, label, today, out)
        entries[entry.id] = entry


def _read_all(
    content_dir: Path | None,
    *,
    include_eval: bool,
    today: dt.date | None = None,
    overrides: Sequence[Mapping[str, Any]] = (),
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
            if include_eval:  # content rules: `check` enforces them, loading stays lenient
                _check_sources(entry, path, out)
                if today is not None:  # the review age needs a date to count from
                    _check_review(entry, path, today, out)
            entries[entry.id] = entry
    _apply_overrides(entries, overrides, directory, service_ids, out, include_eval, today)
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
    referrals = _read_not_covered(synonyms_path.parent / "not_covered.yaml", out)
    # The matcher holds back a confident answer for the subjects, not for small talk.
    not_covered = [p for g in referrals if g.kind == "referral" for p in g.phrases if words(p)]
    details = _read_details(synonyms_path.parent / "details.yaml", out)
    if include_eval:
        _check_eval(eval_dir, set(entries), out)
        # The implementation roadmaps beside the content are reviewed and checked with it.
        from knowledge_base.roadmaps import check_roadmaps

        out.problems.extend(
            check_roadmaps(
                directory.parent / "roadmaps",
                services=service_ids,
                entries=set(entries),
                source_problem=source_problem,
            )
        )
    return KnowledgeBase(entries, services, synonyms, not_covered, referrals, details), out.problems


def _yaml_mappings(
    path: Path, out: _Collector, noun: str, fields: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The items of a YAML file that is a list of mappings (a missing file: none), each with
    its label for messages ("group 3"); a file or an item of another shape is reported."""
    if not path.exists():
        return
    data = _read_yaml(path, out)
    if data is None:
        return
    if not isinstance(data, list):
        out.error(path, None, f"must be a YAML list of {noun}s {fields}")
        return
    for number, item in enumerate(data, start=1):
        label = f"{noun} {number}"
        if isinstance(item, dict):
            yield label, item
        else:
            out.error(path, label, f"a {noun} must be a mapping {fields}")


def _read_details(path: Path, out: _Collector) -> list[Detail]:
    """Kinds of detail a clerk may ask of any subject, each with the phrases that ask it and
    the phrases by which an answer states it (see `Detail`; a missing file means none).

        - id: price
          asked: [koliko košta, cena]
          stated: [dinar, besplatno]
    """
    details: list[Detail] = []
    seen: set[str] = set()
    for label, item in _yaml_mappings(path, out, "detail", "{id, asked, stated}"):
        did = item.get("id")
        if not isinstance(did, str) or not ID_PATTERN.match(did) or did in seen:
            out.error(path, label, "detail id must be unique lower-case words joined by '-'")
            continue
        seen.add(did)
        for name in sorted(set(item) - {"id", "asked", "stated"}):
            out.error(path, did, f"unknown field '{name}'")
        asked, stated = _string_list(item.get("asked")), _string_list(item.get("stated"))
        if not asked or not stated:
            out.error(path, did, "'asked' and 'stated' must be non-empty lists of texts")
            continue
        for phrase in (*asked, *stated):
            if not words(phrase):
                out.error(path, did, f"phrase {phrase!r} has no words")
        details.append(Detail(did, tuple(asked), tuple(stated)))
    return details


REFERRAL_KINDS = ("referral", "small_talk")


def _read_not_covered(path: Path, out: _Collector) -> list[ReferralGroup]:
    """Subjects the KB knowingly leaves out, grouped: each group has its phrases, the referral
    text the clerk gets (Serbian Latin, `text_en` for English) and the source of that pointer.

        - id: gradjevinske-dozvole
          phrases: [građevinska dozvola, lokacijski uslovi]
          text: "Ovo je van programa eUprava za sve: ..."
          text_en: "This is outside eGovernment for All: ..."
          source: https://ceop.apr.gov.rs/...

    A group with `kind: small_talk` gets a short friendly reply and needs no source. A phrase
    with no words (an emoji) matches a message made of nothing else.
    """
    groups: list[ReferralGroup] = []
    seen: set[str] = set()
    owner: dict[str, str] = {}
    for label, item in _yaml_mappings(path, out, "group", "{id, phrases, text, source}"):
        gid = item.get("id")
        if not isinstance(gid, str) or not ID_PATTERN.match(gid):
            out.error(path, label, "group id must be lower-case words joined by '-'")
            continue
        if gid in seen:
            out.error(path, gid, "duplicate group id")
            continue
        seen.add(gid)
        unknown = sorted(set(item) - {"id", "kind", "phrases", "text", "text_en", "source"})
        for name in unknown:
            out.error(path, gid, f"unknown field '{name}'")
        kind = item.get("kind", "referral")
        if kind not in REFERRAL_KINDS:
            out.error(path, gid, f"kind must be one of {', '.join(REFERRAL_KINDS)}")
            continue
        phrases = _string_list(item.get("phrases"))
        if not phrases:
            out.error(path, gid, "'phrases' must be a non-empty list of texts")
            continue
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            out.error(path, gid, "'text' (the reply the clerk gets) is missing")
            continue
        for problem in markup_problems(text):
            out.error(path, gid, f"text markup: {problem}")
        raw_en = item.get("text_en")
        if raw_en is not None and not isinstance(raw_en, str):
            out.error(path, gid, "'text_en' must be text")
        text_en = raw_en if isinstance(raw_en, str) else None
        found = editor_notes(text) + editor_notes(text_en or "", EDITOR_NOTES_EN)
        for note in found:
            out.error(
                path, gid, f"text contains a note for editors ({note!r}): say whom to ask instead"
            )
        source = item.get("source")
        if kind == "referral":
            if not isinstance(source, str) or not source.strip():
                out.error(path, gid, "a referral needs a 'source' (https address or regulation)")
                continue
            source_issue = source_problem(source.strip())
            if source_issue is not None:
                out.error(path, gid, source_issue)
            if not re.search(r'<a href="https://', text):
                out.warning(path, gid, "the referral text has no link to where the clerk should go")
        for phrase in phrases:
            key = " ".join(w for w in words(phrase) if w not in STOP_WORDS) or phrase.strip()
            if kind == "referral" and not words(phrase):
                out.error(path, gid, f"phrase {phrase!r} has no words")
            previous = owner.setdefault(key, gid)
            if previous != gid:
                out.error(path, gid, f"phrase {phrase!r} is also in group '{previous}'")
        groups.append(
            ReferralGroup(
                id=gid,
                phrases=tuple(p.strip() for p in phrases if p.strip()),
                text=text.strip(),
                text_en=(text_en or text).strip(),
                source=source.strip() if isinstance(source, str) else "",
                kind=kind,
            )
        )
    return groups


def check_knowledge_base(
    content_dir: Path | None = None,
    *,
    today: dt.date | None = None,
    overrides: Sequence[Mapping[str, Any]] = (),
) -> list[Problem]:
    """Every problem (errors and warnings) in the KB files and the evaluation files; entries
    last reviewed more than REVIEW_MONTHS before `today` are listed (no `today`, no age check).
    `overrides`: approved changes applied over the files (see `load_knowledge_base`)."""
    return _read_all(content_dir, include_eval=True, today=today, overrides=overrides)[1]


def load_knowledge_base(
    content_dir: Path | None = None, overrides: Sequence[Mapping[str, Any]] = ()
) -> KnowledgeBase:
    """The validated KB; raises KnowledgeBaseError listing every error (warnings are allowed).

    `overrides` are whole entries as plain data (the YAML fields, e.g. from the database's KB
    revisions), applied in order over the reviewed files: same id replaces, a new id adds."""
    kb, problems = _read_all(content_dir, include_eval=False, overrides=overrides)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        raise KnowledgeBaseError(errors)
    return kb
