"""The database's KB material as files for the repository: mentors' drafts and the revisions
curators approved (`python -m bot drafts export DIR`, `python -m bot revisions export DIR`).

This service reads the rows; knowledge_base/drafts.py and knowledge_base/revisions.py write
the YAML (they know the content format and nothing of the database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from knowledge_base.drafts import Draft, write_drafts
from knowledge_base.loader import DEFAULT_CONTENT_DIR
from knowledge_base.revisions import export_revisions
from storage.curation import CurationRepository
from storage.mentor import MentorRepository
from storage.uow import Database


class KbExportService:
    """Drafts and revisions out of the database, into YAML files."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def export_drafts(self, directory: Path) -> list[Path]:
        """Write every draft as KB YAML; returns the files written. Drafts are marked
        exported (the console's queue shows which are new)."""
        now = self._database.clock()
        async with self._database.uow() as uow:
            rows = await uow.repository(MentorRepository).drafts()
            drafts = [
                Draft(
                    id=row.id,
                    service=row.service,
                    question=row.question,
                    answer=row.answer,
                    request_id=row.request_id,
                    alternatives=tuple(row.alternatives or ()),
                )
                for row in rows
            ]
            for row in rows:
                if row.exported_at is None:
                    row.exported_at = now
            await uow.commit()
        return write_drafts(drafts, directory, now.date())

    async def revisions(self) -> list[dict[str, Any]]:
        """Every approved revision's entry data, oldest first."""
        async with self._database.uow(read_only=True) as uow:
            rows = await uow.repository(CurationRepository).revisions()
            return [dict(row.data) for row in rows]

    async def export_revisions(
        self, directory: Path, content_dir: Path = DEFAULT_CONTENT_DIR
    ) -> list[Path]:
        """Write the content files the revisions change; returns them (none when the
        repository's files already hold every revision)."""
        return export_revisions(await self.revisions(), directory, content_dir)
