"""Queries of the programme report and the console dashboard (issue #16).

Used as ``uow.repository(ProgrammeRepository)``. Questions and mentor requests of a period come
from ``MentorRepository`` (as for /statistika); what only the report needs lives here: training
registrations with attendance and feedback, incidents by the municipalities of their clerks, and
the 👍/👎 of each knowledge-base entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select

from storage.desk import Incident, IncidentClerk
from storage.errors import guarded
from storage.models import Feedback, Question, User
from storage.repositories import Repository
from storage.trainings import Registration, Training

__all__ = ["EntryVotes", "ProgrammeRepository", "SignUp"]


@dataclass(frozen=True)
class SignUp:
    """One clerk registered for a training that started in the period."""

    training_id: int
    user_id: int
    municipality: str | None
    attended: bool
    rating: int | None


@dataclass(frozen=True)
class EntryVotes:
    entry_id: str
    up: int
    down: int


class ProgrammeRepository(Repository):
    @guarded
    async def sign_ups(self, start: datetime, end: datetime) -> list[SignUp]:
        """Registrations (not the waiting list) for active trainings starting in [start, end)."""
        stmt = (
            select(Registration.training_id, Registration.user_id, User.municipality,
                   Registration.attended_at, Registration.rating)
            .join(Training, Training.id == Registration.training_id)
            .join(User, User.id == Registration.user_id)
            .where(Training.status == "active", Training.starts_at >= start,
                   Training.starts_at < end, Registration.status == "registered")
            .order_by(Registration.id)
        )
        return [
            SignUp(int(t), int(u), m, attended is not None, rating)
            for t, u, m, attended, rating in (await self.session.execute(stmt)).all()
        ]

    @guarded
    async def incidents_open_between(self, start: datetime, end: datetime) -> list[int]:
        """Incidents open at some moment of [start, end)."""
        stmt = select(Incident.id).where(
            Incident.declared_at < end,
            Incident.closed_at.is_(None) | (Incident.closed_at >= start),
        )
        return [int(i) for i in (await self.session.scalars(stmt.order_by(Incident.id))).all()]

    @guarded
    async def incident_municipalities(
        self, incident_ids: list[int]
    ) -> list[tuple[int, str | None]]:
        """(incident, municipality) once for each municipality whose clerks it touched."""
        if not incident_ids:
            return []
        stmt = (
            select(IncidentClerk.incident_id, User.municipality)
            .join(User, User.id == IncidentClerk.user_id)
            .where(IncidentClerk.incident_id.in_(incident_ids))
            .distinct()
        )
        return [(int(i), m) for i, m in (await self.session.execute(stmt)).all()]

    @guarded
    async def entry_votes(
        self, start: datetime, end: datetime, limit: int = 50
    ) -> list[EntryVotes]:
        """👍/👎 per answered entry for feedback given in [start, end), most voted first."""
        entry = func.coalesce(Question.chosen_entry_id, Question.entry_id)
        up = func.sum(case((Feedback.value == "up", 1), else_=0))
        down = func.sum(case((Feedback.value == "down", 1), else_=0))
        stmt = (
            select(entry, up, down)
            .join(Question, Question.id == Feedback.question_id)
            .where(Feedback.created_at >= start, Feedback.created_at < end, entry.is_not(None))
            .group_by(entry)
            .order_by((up + down).desc(), entry)
            .limit(limit)
        )
        return [
            EntryVotes(str(e), int(u or 0), int(d or 0))
            for e, u, d in (await self.session.execute(stmt)).all()
        ]

