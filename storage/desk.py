"""The mentor desk's tables and their repository: incidents on a service (and the clerks who
were told about one), and the mentors' canned replies.

An incident is open while `closed_at` is NULL. A clerk is attached to an incident once (the
notice they got while it was open, or their escalation on its service): closing the incident
tells each attached clerk once.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.clock import stamp
from storage.errors import guarded
from storage.models import Base
from storage.repositories import Repository
from storage.types import UTCDateTime

__all__ = ["CannedReply", "DeskRepository", "Incident", "IncidentClerk"]


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (Index(None, "service", "closed_at"), Index(None, "declared_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    declared_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    closed_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class IncidentClerk(Base):
    """A clerk affected by an incident: told about it (`question`) or escalated on its service
    (`request`, with the request's number). One row per clerk and incident."""

    __tablename__ = "incident_clerks"
    __table_args__ = (UniqueConstraint("incident_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    via: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("mentor_requests.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)


class CannedReply(Base):
    """A mentor's reusable answer; `key` is the folded name (unique), `name` as written."""

    __tablename__ = "canned_replies"
    __table_args__ = (UniqueConstraint("key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=stamp, onupdate=stamp)


class DeskRepository(Repository):
    """Incidents and canned replies. Use as ``uow.repository(DeskRepository)``."""

    # -- incidents ---------------------------------------------------------------------------

    @guarded
    async def add_incident(self, service: str, text: str, declared_by: int | None) -> Incident:
        incident = Incident(
            service=service, text=text, declared_by=declared_by, declared_at=self.now()
        )
        self.session.add(incident)
        await self.session.flush()
        return incident

    @guarded
    async def incident(self, incident_id: int, *, for_update: bool = False) -> Incident | None:
        if not for_update or self.dialect_name != "postgresql":
            return await self.session.get(Incident, incident_id)
        stmt = select(Incident).where(Incident.id == incident_id).with_for_update()
        return await self.session.scalar(stmt, execution_options={"populate_existing": True})

    @guarded
    async def any_open(self, services: set[str]) -> bool:
        """Is an incident open on one of these services? (Asked for every clerk's question:
        a Core statement, no ORM rows in the usual case of none.)"""
        connection = await self.session.connection()
        found = await connection.execute(_any_open(), {"services": sorted(services)})
        return found.first() is not None

    @guarded
    async def open_services(self) -> frozenset[str]:
        """The services with an open incident (usually none): what a cache of `any_open`
        keeps (bot.services.desk.base.OpenServices)."""
        connection = await self.session.connection()
        found = await connection.execute(_open_services())
        return frozenset(str(service) for service in found.scalars())

    @guarded
    async def open_incidents(self, services: set[str] | None = None) -> list[Incident]:
        stmt = select(Incident).where(Incident.closed_at.is_(None))
        if services is not None:
            stmt = stmt.where(Incident.service.in_(sorted(services)))
        return list(await self.session.scalars(stmt.order_by(Incident.declared_at, Incident.id)))

    @guarded
    async def incidents_since(self, since: datetime) -> list[Incident]:
        stmt = select(Incident).where(
            (Incident.declared_at >= since) | Incident.closed_at.is_(None)
        )
        return list(await self.session.scalars(stmt.order_by(Incident.declared_at)))

    @guarded
    async def attach(
        self, incident_id: int, user_id: int, via: str, request_id: int | None = None
    ) -> bool:
        """Record the clerk on the incident; False when they already were (the first reason
        stays, a request number is added to it)."""
        found = await self.session.scalar(
            select(IncidentClerk).where(
                IncidentClerk.incident_id == incident_id, IncidentClerk.user_id == user_id
            )
        )
        if found is not None:
            if request_id is not None and found.request_id is None:
                found.request_id = request_id
            return False
        stmt = (
            self._insert(IncidentClerk.__table__)
            .values(
                incident_id=incident_id,
                user_id=user_id,
                via=via,
                request_id=request_id,
                created_at=self.now(),
            )
            .on_conflict_do_nothing(index_elements=["incident_id", "user_id"])
        )
        result = await self.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    @guarded
    async def clerks_of(self, incident_id: int) -> list[IncidentClerk]:
        stmt = select(IncidentClerk).where(IncidentClerk.incident_id == incident_id)
        return list(await self.session.scalars(stmt.order_by(IncidentClerk.id)))

    @guarded
    async def clerk_counts(self, incident_ids: list[int]) -> dict[int, int]:
        if not incident_ids:
            return {}
        stmt = (
            select(IncidentClerk.incident_id, func.count())
            .where(IncidentClerk.incident_id.in_(incident_ids))
            .group_by(IncidentClerk.incident_id)
        )
        return {int(i): int(n) for i, n in (await self.session.execute(stmt)).all()}

    # -- canned replies ----------------------------------------------------------------------

    @guarded
    async def canned_replies(self) -> list[CannedReply]:
        return list(await self.session.scalars(select(CannedReply).order_by(CannedReply.key)))

    @guarded
    async def canned_reply(self, reply_id: int) -> CannedReply | None:
        return await self.session.get(CannedReply, reply_id)

    @guarded
    async def canned_reply_by_key(self, key: str) -> CannedReply | None:
        return await self.session.scalar(select(CannedReply).where(CannedReply.key == key))

    @guarded
    async def save_canned_reply(
        self, key: str, name: str, text: str, user_id: int | None
    ) -> tuple[CannedReply, bool]:
        """Create the reply, or replace the text of the one with this key; (row, created)."""
        found = await self.canned_reply_by_key(key)
        now = self.now()
        if found is not None:
            found.name, found.text, found.updated_at = name, text, now
            await self.session.flush()
            return found, False
        row = CannedReply(
            key=key, name=name, text=text, created_by=user_id, created_at=now, updated_at=now
        )
        self.session.add(row)
        await self.session.flush()
        return row, True

    @guarded
    async def delete_canned_reply(self, key: str) -> CannedReply | None:
        found = await self.canned_reply_by_key(key)
        if found is not None:
            await self.session.delete(found)
            await self.session.flush()
        return found


@lru_cache(maxsize=1)
def _any_open() -> Select[tuple[int]]:
    """`DeskRepository.any_open`'s statement, built once (it runs for every question)."""
    table = Incident.__table__
    return (
        select(table.c.id)
        .where(
            table.c.closed_at.is_(None),
            table.c.service.in_(bindparam("services", expanding=True)),
        )
        .limit(1)
    )


@lru_cache(maxsize=1)
def _open_services() -> Select[tuple[str]]:
    """`DeskRepository.open_services`'s statement, built once."""
    table = Incident.__table__
    return select(table.c.service).where(table.c.closed_at.is_(None)).distinct()
