"""KB drafts from mentors' answers: `python -m knowledge_base drafts export DIR`.

Mentors tap "Dodaj u bazu znanja" on an answered request; the question and the answer are stored
as a draft with personal data already removed (bot/services/pii.py). This writes the drafts as
knowledge-base YAML, one file per service (``drafts-<service>.yaml``), in the format of
knowledge_base/content/<service>.yaml, for a curator to edit (alternatives, keywords, sources)
and move into the content folder through a pull request.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import re
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from storage.mentor import KnowledgeDraft, MentorRepository
from storage.uow import Database

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


def draft_entry(draft: KnowledgeDraft, today: date) -> dict[str, Any]:
    service = draft.service if draft.service in KNOWN_SERVICES else "other"
    question = _plain(draft.question)
    number = draft.request_id or draft.id
    answer = html.escape(draft.answer.strip(), quote=False)
    answer += f"\nIzvor: odgovor mentora (zahtev #{number})."
    return {
        "id": f"draft-{service}-{draft.id}",
        "service": service,
        "question": question,
        "alternatives": _alternatives(question, list(getattr(draft, "alternatives", None) or [])),
        "keywords": [],
        "answer": answer + "\n",
        "sources": [f"Odgovor mentora, zahtev #{number}"],
        "related": [],
        "reviewed": today,
    }


async def export_drafts(database: Database, directory: Path) -> list[Path]:
    """Write every draft; returns the files written. Drafts are marked exported."""
    directory.mkdir(parents=True, exist_ok=True)
    now = database.clock()
    today = now.date()
    async with database.uow() as uow:
        repo = uow.repository(MentorRepository)
        drafts = await repo.drafts()
        by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for draft in drafts:
            entry = draft_entry(draft, today)
            by_service[entry["service"]].append(entry)
            if draft.exported_at is None:
                draft.exported_at = now
        await uow.commit()
    written: list[Path] = []
    for service, entries in sorted(by_service.items()):
        path = directory / f"drafts-{service}.yaml"
        body = yaml.dump(entries, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
        path.write_text(HEADER + body, encoding="utf-8")
        written.append(path)
    return written


def cmd_drafts(args: argparse.Namespace) -> int:
    """`drafts export DIR`: the database is DATABASE_URL (or --database-url)."""
    if args.drafts_command != "export":  # pragma: no cover - argparse enforces the choice
        return 2

    async def run() -> list[Path]:
        database = Database.from_url(args.database_url or os.environ.get("DATABASE_URL") or None)
        try:
            return await export_drafts(database, args.directory)
        finally:
            await database.dispose()

    written = asyncio.run(run())
    for path in written:
        print(path)
    if not written:
        print("no drafts yet")
    return 0


def add_parser(sub: Any) -> None:
    """Registers `drafts export DIR` on the knowledge_base CLI's subparsers."""
    drafts = sub.add_parser("drafts", help="KB drafts written from mentors' answers")
    drafts_sub = drafts.add_subparsers(dest="drafts_command", required=True)
    export = drafts_sub.add_parser("export", help="write the drafts as KB YAML into DIR")
    export.add_argument("directory", type=Path, metavar="DIR")
    export.add_argument("--database-url", default=None, help="default: $DATABASE_URL")
