"""Implementation roadmaps per municipality: which municipalities take part, where each one is
on every service's steps, and the trail of every change (who, when, from what to what).

A step with no row is "not_started". Every change of a step writes its new state and an event
in the same transaction; the events are the municipality's timeline, the audit of the roadmap
and the programme report's history.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.clock import stamp
from storage.errors import guarded
from storage.models import Base, Question, User
from storage.repositories import Repository
from storage.types import UTCDateTime

__all__ = [
    "STEP_STATUSES",
    "RoadmapEvent",
    "RoadmapMunicipality",
    "RoadmapRepository",
    "RoadmapStepState",
]

# not_started -> in_progress -> pending (a clerk said done, a mentor confirms) -> done;
# blocked (with a reason) from any of them.
STEP_STATUSES: tuple[str, ...] = ("not_started", "in_progress", "pending", "done", "blocked")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class RoadmapMunicipality(Base):
    """A municipality taking part in the programme (`municipality`: the key users store)."""

    __tablename__ = "roadmap_municipalities"
    __table_args__ = (UniqueConstraint("municipality"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    mentor_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    added_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


class RoadmapStepState(Base):
    __tablename__ = "roadmap_steps"
    __table_args__ = (
        UniqueConstraint("municipality", "service", "step"),
        CheckConstraint(_in("status", STEP_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality: Mapped[str] = mapped_column(String(128))
    service: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    updated_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


class RoadmapEvent(Base):
    __tablename__ = "roadmap_events"
    __table_args__ = (
        CheckConstraint(_in("status", STEP_STATUSES), name="status"),
        Index(None, "municipality", "at"),
        Index(None, "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality: Mapped[str] = mapped_column(String(128))
    service: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(32))
    old_status: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    actor_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # A mentor request opened by "Zapeli smo" on this step.
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("mentor_requests.id", ondelete="SET NULL"), default=None
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


class RoadmapRepository(Repository):
    """Use as ``uow.repository(RoadmapRepository)``."""

    # -- participants ------------------------------------------------------------------------

    @guarded
    async def participants(self, *, active: bool = True) -> list[RoadmapMunicipality]:
        stmt = select(RoadmapMunicipality)
        if active:
            stmt = stmt.where(RoadmapMunicipality.active.is_(True))
        return list(await self.session.scalars(stmt.order_by(RoadmapMunicipality.municipality)))

    @guarded
    async def participant(self, municipality: str) -> RoadmapMunicipality | None:
        return await self.session.scalar(
            select(RoadmapMunicipality).where(RoadmapMunicipality.municipality == municipality)
        )

    @guarded
    async def participant_by_id(self, participant_id: int) -> RoadmapMunicipality | None:
        return await self.session.get(RoadmapMunicipality, participant_id)

    @guarded
    async def add_participant(self, municipality: str, added_by: int | None) -> bool:
        """True when the municipality was not taking part before (added or re-activated)."""
        row = await self.participant(municipality)
        if row is not None:
            if row.active:
                return False
            row.active = True
            await self.session.flush()
            return True
        self.session.add(
            RoadmapMunicipality(municipality=municipality, added_by=added_by, added_at=self.now())
        )
        await self.session.flush()
        return True

    @guarded
    async def remove_participant(self, municipality: str) -> bool:
        """Stops listing it (its history stays); False when it was not taking part."""
        row = await self.participant(municipality)
        if row is None or not row.active:
            return False
        row.active = False
        await self.session.flush()
        return True

    @guarded
    async def set_mentor(self, municipality: str, mentor_user_id: int | None) -> bool:
        row = await self.participant(municipality)
        if row is None or not row.active:
            return False
        row.mentor_user_id = mentor_user_id
        await self.session.flush()
        return True

    # -- steps -------------------------------------------------------------------------------

    @guarded
    async def states(self, municipality: str | None = None) -> list[RoadmapStepState]:
        stmt = select(RoadmapStepState)
        if municipality is not None:
            stmt = stmt.where(RoadmapStepState.municipality == municipality)
        return list(await self.session.scalars(stmt.order_by(RoadmapStepState.id)))

    @guarded
    async def state(
        self, municipality: str, service: str, step: str, *, for_update: bool = False
    ) -> RoadmapStepState | None:
        stmt = select(RoadmapStepState).where(
            RoadmapStepState.municipality == municipality,
            RoadmapStepState.service == service,
            RoadmapStepState.step == step,
        )
        if for_update and self.dialect_name == "postgresql":
            stmt = stmt.with_for_update()
        return await self.session.scalar(stmt, execution_options={"populate_existing": True})

    @guarded
    async def lock_municipality(self, municipality: str) -> None:
        """Serialise changes to one municipality's roadmap (PostgreSQL; SQLite has one writer)."""
        if self.dialect_name == "postgresql":
            await self.session.scalar(
                select(RoadmapMunicipality.id)
                .where(RoadmapMunicipality.municipality == municipality)
                .with_for_update()
            )

    @guarded
    async def set_state(
        self,
        municipality: str,
        service: str,
        step: str,
        status: str,
        *,
        reason: str | None,
        actor_user_id: int | None,
        request_id: int | None = None,
    ) -> RoadmapEvent:
        """Write the step's new state and its event (flushes)."""
        if status not in STEP_STATUSES:
            raise ValueError(f"unknown step status {status!r}")
        now = self.now()
        row = await self.state(municipality, service, step)
        old = row.status if row is not None else "not_started"
        if row is None:
            row = RoadmapStepState(
                municipality=municipality, service=service, step=step, status=status
            )
            self.session.add(row)
        row.status = status
        row.reason = reason
        row.updated_by = actor_user_id
        row.updated_at = now
        event = RoadmapEvent(
            municipality=municipality,
            service=service,
            step=step,
            old_status=old,
            status=status,
            reason=reason,
            actor_user_id=actor_user_id,
            request_id=request_id,
            at=now,
        )
        self.session.add(event)
        await self.session.flush()
        return event

    # -- history -----------------------------------------------------------------------------

    @guarded
    async def events(
        self, municipality: str | None = None, *, limit: int | None = None, newest: bool = True
    ) -> list[RoadmapEvent]:
        stmt = select(RoadmapEvent)
        if municipality is not None:
            stmt = stmt.where(RoadmapEvent.municipality == municipality)
        order = (
            (RoadmapEvent.at.desc(), RoadmapEvent.id.desc())
            if newest
            else (RoadmapEvent.at, RoadmapEvent.id)
        )
        stmt = stmt.order_by(*order)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list(await self.session.scalars(stmt))

    @guarded
    async def last_activity(self) -> dict[str, datetime]:
        stmt = select(RoadmapEvent.municipality, func.max(RoadmapEvent.at)).group_by(
            RoadmapEvent.municipality
        )
        return {mun: at for mun, at in (await self.session.execute(stmt)).all() if at}

    @guarded
    async def clerks_of(self, municipality: str) -> list[User]:
        """Active clerks whose municipality is this one."""
        stmt = select(User).where(
            User.municipality == municipality, User.active.is_(True), User.role == "clerk"
        )
        return list(await self.session.scalars(stmt.order_by(User.id)))

    @guarded
    async def questions_by_step(self) -> dict[str, int]:
        """How many questions clerks asked while their municipality was on each step."""
        stmt = (
            select(Question.roadmap_step, func.count())
            .where(Question.roadmap_step.is_not(None))
            .group_by(Question.roadmap_step)
        )
        return {step: int(n) for step, n in (await self.session.execute(stmt)).all() if step}
