"""KB revisions as YAML for the repository (`python -m bot revisions export DIR`).

Curators' approved changes live in the database as KB revisions (whole entries as plain data,
applied over the reviewed YAML base at load; see bot/services/curation/). This writes each
content file that a revision changes into DIR, as the base file with the revised entries put in
place of the old ones (new entries at the end); every other line stays as it was, so the diff
a reviewer reads is the change itself. Copy the files over knowledge_base/content/, run
`python -m knowledge_base check`, open the pull request: once merged, the base has absorbed the
revisions (a revision equal to its base entry changes nothing, and is not exported again).
The revisions are read from the database by bot/services/kb_exports.py; this module only writes
the files (the KB imports nothing of ours).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from knowledge_base.loader import DEFAULT_CONTENT_DIR, load_knowledge_base
from knowledge_base.model import Entry

FIELDS = (
    "id",
    "service",
    "question",
    "alternatives",
    "keywords",
    "answer",
    "sources",
    "related",
    "reviewed",
    "reviewed_by",
)
FLOW_FIELDS = ("keywords", "related")  # written [a, b] as in the content files


def entry_data(entry: Entry) -> dict[str, Any]:
    """An entry as plain data in the YAML fields (what a KB revision stores)."""
    data: dict[str, Any] = {
        "id": entry.id,
        "service": entry.service,
        "question": entry.question,
        "alternatives": list(entry.alternatives),
        "keywords": list(entry.keywords),
        "answer": entry.answer,
        "sources": list(entry.sources),
        "related": list(entry.related),
        "reviewed": entry.reviewed.isoformat() if entry.reviewed else None,
    }
    if entry.reviewed_by:
        data["reviewed_by"] = entry.reviewed_by
    return data


class _Flow(list[str]):
    pass


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _flow(dumper: yaml.SafeDumper, value: _Flow) -> yaml.SequenceNode:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", list(value), flow_style=True)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(_Flow, _flow)


def entry_yaml(data: Mapping[str, Any]) -> str:
    """One entry as a YAML list item in the content files' layout."""
    item: dict[str, Any] = {}
    for name in FIELDS:
        value = data.get(name)
        if value is None or (name == "reviewed_by" and not value):
            continue
        if name == "answer":
            value = str(value).strip() + "\n"
        elif name == "reviewed":
            value = dt.date.fromisoformat(str(value))
        elif name in FLOW_FIELDS:
            value = _Flow(value)
        item[name] = value
    return yaml.dump(
        [item], Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=10_000, indent=2
    )


def _block(text: str, entry_id: str) -> tuple[int, int] | None:
    """Where the entry `entry_id` starts and ends in a content file's text."""
    start = re.search(rf"""^- id: ['"]?{re.escape(entry_id)}['"]?\s*$""", text, re.M)
    if start is None:
        return None
    following = re.compile(r"^- id:", re.M).search(text, start.end())
    end = following.start() if following else len(text)
    return start.start(), end


def apply_to_file(text: str, changes: Sequence[Mapping[str, Any]]) -> str:
    """The content file's text with each changed entry put in place of its old block (a blank
    line after it, as in the files), new entries appended."""
    for data in changes:
        dumped = entry_yaml(data)
        where = _block(text, str(data["id"]))
        if where is None:
            text = text.rstrip("\n") + "\n\n" + dumped
        else:
            start, end = where
            tail = "\n" if end < len(text) else ""
            text = text[:start] + dumped + tail + text[end:]
    return text


def export_revisions(
    revisions: Sequence[Mapping[str, Any]],
    directory: Path,
    content_dir: Path = DEFAULT_CONTENT_DIR,
) -> list[Path]:
    """Write every content file the revisions change (as in `apply_to_file`) into
    `directory`; revisions equal to their base entry are already absorbed and skipped."""
    base = load_knowledge_base(content_dir)
    newest: dict[str, Mapping[str, Any]] = {}
    for data in revisions:
        newest.pop(str(data["id"]), None)
        newest[str(data["id"])] = data
    by_file: dict[str, list[Mapping[str, Any]]] = {}
    for entry_id, data in newest.items():
        old = base.get(entry_id)
        if old is not None and entry_data(old) == {k: data.get(k) for k in entry_data(old)}:
            continue
        name = Path(old.source_file).name if old is not None else f"{data['service']}.yaml"
        by_file.setdefault(name, []).append(data)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, changes in sorted(by_file.items()):
        source = content_dir / name
        text = source.read_text(encoding="utf-8") if source.exists() else ""
        target = directory / name
        target.write_text(apply_to_file(text, changes), encoding="utf-8")
        written.append(target)
    return written
