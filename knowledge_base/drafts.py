"""KB drafts from mentors' answers as knowledge-base YAML (`python -m bot drafts export DIR`).

Mentors tap "Dodaj u bazu znanja" on an answered request; the question and the answer are stored
as a draft with personal data already removed (bot/services/pii.py). This writes the drafts as
knowledge-base YAML, one file per service (``drafts-<service>.yaml``), in the format of
knowledge_base/content/<service>.yaml, for a curator to edit (alternatives, keywords, sources)
and move into the content folder through a pull request. The drafts are read from the database
by bot/services/kb_exports.py; this module only writes them (the KB imports nothing of ours).
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

HEADER = (
    "# NACRTI iz odgovora mentora – pregledati pre objavljivanja.\n"
    "# Lični podaci su uklonjeni automatski ([ime], [JMBG], [telefon], [e-pošta]); proverite ih.\n"
    "# Dopišite alternatives (6-12), keywords, sources i related, promenite id, pa premestite\n"
    "# unos u knowledge_base/content/<usluga>.yaml. 'reviewed' je datum izvoza.\n"
)
KNOWN_SERVICES = (
    "project",
    "ezup",
    "esanduce",
    "edostava",
    "eplacanje",
    "episarnica",
    "eid",
    "epecat",
    "lei",
    "other",
    "bot",
)


@dataclass(frozen=True)
class Draft:
    """A mentor's answer kept for the KB, personal data already removed."""

    id: int
    service: str | None
    question: str
    answer: str
    request_id: int | None = None
    alternatives: Sequence[str] = ()


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _alternatives(question: str, others: list[str]) -> list[str]:
    """The question and the other clerks' phrasings (followers'), lower case, once each."""
    found: list[str] = []
    for text in [question, *others]:
        phrasing = _plain(str(text)).lower().rstrip("?!. ")
        if phrasing and phrasing not in found:
            found.append(phrasing)
    return found


def draft_entry(draft: Draft, today: date) -> dict[str, Any]:
    service = draft.service if draft.service in KNOWN_SERVICES else "other"
    question = _plain(draft.question)
    number = draft.request_id or draft.id
    answer = html.escape(draft.answer.strip(), quote=False)
    answer += f"\nIzvor: odgovor mentora (zahtev #{number})."
    return {
        "id": f"draft-{service}-{draft.id}",
        "service": service,
        "question": question,
        "alternatives": _alternatives(question, list(draft.alternatives)),
        "keywords": [],
        "answer": answer + "\n",
        "sources": [f"Odgovor mentora, zahtev #{number}"],
        "related": [],
        "reviewed": today,
    }


def write_drafts(drafts: Iterable[Draft], directory: Path, today: date) -> list[Path]:
    """Write the drafts as ``drafts-<service>.yaml`` files in ``directory``; returns them."""
    by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for draft in drafts:
        entry = draft_entry(draft, today)
        by_service[entry["service"]].append(entry)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for service, entries in sorted(by_service.items()):
        path = directory / f"drafts-{service}.yaml"
        body = yaml.dump(entries, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
        path.write_text(HEADER + body, encoding="utf-8")
        written.append(path)
    return written
