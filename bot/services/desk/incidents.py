"""Incidents: a service does not work. Declared and closed by mentors; clerks asking about it
hear the notice first and, when it is closed, that it works again."""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable

from bot.i18n import tr
from bot.services.audit import (
    INCIDENT_CLOSE,
    INCIDENT_DECLARE,
    audit_record,
)
from bot.services.buttons import pack
from bot.services.buttons_mentoring import CloseIncident
from bot.services.desk.base import DeskBase
from bot.services.desk.common import (
    MAX_INCIDENT_TEXT,
    DeskResult,
)
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply
from bot.services.roles import refusal
from bot.services.users import UserProfile
from storage.desk import DeskRepository, Incident
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)


class DeskIncidents(DeskBase):
    """Declaring, listing and closing incidents, and what clerks hear of them."""

    def incident_usage(self, actor: UserProfile) -> Reply:
        names = ", ".join(s.id for s in self._kb.services) if self._kb is not None else ""
        return Reply(
            tr(
                actor.language,
                "Upotreba: /incident usluga opis, npr. /incident eZUP ne radi prijava od 9h. "
                "Usluge: {names}. /incident bez teksta prikazuje otvorene incidente.",
                names=names,
            )
        )

    async def declare(self, actor: UserProfile, args: str) -> DeskResult:
        """`/incident <service> <text>`: open an incident on the service."""
        word, _, text = (args or "").strip().partition(" ")
        text = " ".join(text.split())[:MAX_INCIDENT_TEXT]
        async with self._database.uow() as uow:
            mentor = await self._actor(uow, actor)
            if mentor is None:
                return DeskResult(refusal(actor, "incident.declare"), False)
            service = self.service_named(word)
            if service is None or not text:
                if service is None and word:
                    return DeskResult(
                        Reply(
                            tr(
                                actor.language,
                                "Ne poznajem uslugu „{name}“.",
                                name=html.escape(word),
                            )
                            + "\n"
                            + self.incident_usage(actor).text
                        ),
                        False,
                    )
                return DeskResult(self.incident_usage(actor), False)
            repo = uow.repository(DeskRepository)
            incident = await repo.add_incident(service, text, mentor.id)
            await audit_record(
                uow, actor, INCIDENT_DECLARE, f"incident:{incident.id}", {"service": service}
            )
            await uow.commit()
        log.info("incident.declared user_id=%s incident=%s service=%s", actor.id, incident.id,
                 service)
        return DeskResult(
            Reply(
                tr(
                    actor.language,
                    "Incident #{number} na usluzi {service} je otvoren. Službenici koji pitaju o "
                    "ovoj usluzi dobiće obaveštenje; zatvorite ga sa /incident_zatvori {number}.",
                    number=incident.id,
                    service=html.escape(self.service_title(service)),
                ),
                ((Button(tr(actor.language, "Zatvori #{n}", n=incident.id),
                         pack(CloseIncident("z", incident.id))),),),
            ),
            True,
        )

    async def open_list(self, actor: UserProfile) -> Reply:
        """`/incident` alone: the open incidents, each with a close button."""
        async with self._database.uow(read_only=True) as uow:
            if await self._actor(uow, actor) is None:
                return refusal(actor, "incident.list")
            repo = uow.repository(DeskRepository)
            incidents = await repo.open_incidents()
            counts = await repo.clerk_counts([i.id for i in incidents])
        if not incidents:
            return Reply(
                tr(actor.language, "Nema otvorenih incidenata.")
                + "\n"
                + self.incident_usage(actor).text
            )
        lines = [tr(actor.language, "<b>Otvoreni incidenti</b>")]
        rows: list[tuple[Button, ...]] = []
        for incident in incidents:
            lines.append(
                tr(
                    actor.language,
                    "#{number} · {service} · od {time} · službenika: {clerks}\n   <i>{text}</i>",
                    number=incident.id,
                    service=html.escape(self.service_title(incident.service)),
                    time=self.local_time(incident.declared_at),
                    clerks=counts.get(incident.id, 0),
                    text=html.escape(incident.text),
                )
            )
            rows.append(
                (Button(tr(actor.language, "Zatvori #{n}", n=incident.id),
                        pack(CloseIncident("z", incident.id))),)
            )
        return Reply("\n".join(lines), tuple(rows))

    async def close(self, actor: UserProfile, incident_id: int) -> DeskResult:
        """Close an incident and tell each recorded clerk once (outbox, their language)."""
        now = self.clock()
        async with self._database.uow() as uow:
            mentor = await self._actor(uow, actor)
            if mentor is None:
                return DeskResult(refusal(actor, "incident.close"), False)
            repo = uow.repository(DeskRepository)
            incident = await repo.incident(incident_id, for_update=True)
            if incident is None:
                return DeskResult(
                    Reply(tr(actor.language, "Incident #{n} ne postoji.", n=incident_id)), False
                )
            if incident.closed_at is not None:
                return DeskResult(
                    Reply(tr(actor.language, "Incident #{n} je već zatvoren.", n=incident_id)),
                    True,
                )
            incident.closed_at = now
            incident.closed_by = mentor.id
            told = 0
            for row in await repo.clerks_of(incident.id):
                clerk = await uow.users.get(row.user_id)
                if clerk is None:
                    continue
                added = await uow.outbox.add(
                    channel=clerk.channel,
                    chat_id=clerk.external_id,
                    user_id=clerk.id,
                    kind="incident_closed",
                    payload=reply_to_payload(self._closed_notice(clerk.language, incident)),
                    dedupe_key=f"incident:closed:{incident.id}:{clerk.id}",
                    priority=50,
                )
                told += added is not None
            await audit_record(
                uow, actor, INCIDENT_CLOSE, f"incident:{incident.id}",
                {"service": incident.service, "clerks": told},
            )
            await uow.commit()
        log.info("incident.closed user_id=%s incident=%s told=%s", actor.id, incident_id, told)
        return DeskResult(
            Reply(
                tr(
                    actor.language,
                    "Incident #{number} ({service}) je zatvoren. Obaveštenih službenika: {count}.",
                    number=incident_id,
                    service=html.escape(self.service_title(incident.service)),
                    count=told,
                )
            ),
            True,
        )

    def _closed_notice(self, language: str, incident: Incident) -> Reply:
        return Reply(
            tr(
                language,
                "✅ Usluga {service} ponovo radi. Problem „{text}“ je otklonjen. Hvala na "
                "strpljenju!",
                service=html.escape(self.service_title(incident.service)),
                text=html.escape(incident.text),
            )
        )

    async def notice_for(
        self, user: UserProfile, question: str, entry_ids: Iterable[str | None]
    ) -> Reply | None:
        """The notice of an open incident on the service a clerk's question concerns (the
        matcher's best candidate's service, or one named in the text); the clerk is recorded
        on the incident so that closing it tells them. None when nothing is open."""
        services = self.services_of_question(question, entry_ids)
        if not services:
            return None
        async with self._database.uow(read_only=True) as uow:  # the usual case: none open
            if not await uow.repository(DeskRepository).open_incidents(services):
                return None
        async with self._database.uow() as uow:
            incidents = await self.attach_to_open(uow, user.id, services)
            await uow.commit()
        return self.notice(user.language, incidents)

    def services_of_question(self, question: str, entry_ids: Iterable[str | None]) -> set[str]:
        """The services a question concerns: named in its text, and the service of the
        matcher's first candidate that has one."""
        services = self.services_in(question)
        for entry_id in entry_ids:
            service = self.service_of_entry(entry_id)
            if service is not None:
                services.add(service)
                break
        return services

    async def attach_to_open(
        self, uow: UnitOfWork, user_id: int, services: set[str]
    ) -> list[Incident]:
        """Inside the caller's unit of work (the question's own, on the hot path): the open
        incidents on these services, with the clerk recorded on each."""
        if not services:
            return []
        repo = uow.repository(DeskRepository)
        if not await self._any_open(repo, services):  # the usual case
            return []
        incidents = await repo.open_incidents(services)
        for incident in incidents:
            await repo.attach(incident.id, user_id, "question")
        return incidents

    def surely_none_open(self, services: set[str]) -> bool:
        """Known without asking the database that no incident is open on these services (the
        usual case): a question then writes nothing but itself (`attach_to_open` adds none)."""
        if not services:
            return True
        known = self.open_services.get() if self.open_services.enabled else None
        return known is not None and known.isdisjoint(services)

    async def _any_open(self, repo: DeskRepository, services: set[str]) -> bool:
        """Is an incident open on one of these services? From `open_services` when it knows."""
        cache = self.open_services
        if not cache.enabled:
            return await repo.any_open(services)
        known = cache.get()
        if known is None:
            generation = cache.generation()
            known = await repo.open_services()
            cache.put(known, generation)
        return not known.isdisjoint(services)

    def notice(self, language: str, incidents: list[Incident]) -> Reply | None:
        """What the clerk reads first about these incidents (None: nothing open)."""
        if not incidents:
            return None
        return Reply("\n\n".join(self._notice_text(language, i) for i in incidents))

    def _notice_text(self, language: str, incident: Incident) -> str:
        return tr(
            language,
            "⚠️ <b>Poznat problem: {service}</b>\n{text}\nPrijavljeno: {time}. Radi se na "
            "rešenju; javićemo Vam kada proradi.",
            service=html.escape(self.service_title(incident.service)),
            text=html.escape(incident.text),
            time=self.local_time(incident.declared_at),
        )

    async def attach_request(
        self, uow: UnitOfWork, user_id: int, request_id: int, services: set[str]
    ) -> int:
        """Inside the escalation's unit of work: record the clerk on open incidents of the
        request's service(s). Returns how many incidents."""
        if not services:
            return 0
        repo = uow.repository(DeskRepository)
        if not await self._any_open(repo, services):  # the usual case
            return 0
        incidents = await repo.open_incidents(services)
        for incident in incidents:
            await repo.attach(incident.id, user_id, "request", request_id)
        return len(incidents)
