"""The mentor desk: incidents on a service, and canned replies.

Incidents. A mentor or admin declares that a service does not work (`/incident eZUP ne radi
prijava od 9h`: the first word names the service, matched against the KB's services). While it
is open, a clerk whose question concerns that service (the matcher's best candidate, or the
service named in the text) gets the notice first, and is recorded on the incident, as is a clerk
whose escalation is on that service. Closing it tells each recorded clerk once, through the
outbox, in their language and channel. Roles are checked against the database on every
privileged action; declaring and closing go to the audit trail.

Canned replies. Mentors keep short reusable answers (`/sablon_novi naziv | tekst`, `/sabloni`,
`/sablon_obrisi naziv`) with {ime} (the clerk's name), {opstina} and {usluga} filled from the
request. "Šablon" on a request card lists them; choosing one gives the mentor the filled-in
text as a draft, to send as it is ("Pošalji ovako", through the mentor queue's answer) or to
edit and send as their reply.

Action tokens: inc:z:<id> close an incident · sab:<request>:0:0 the canned replies for a request
· sab:<request>:<reply>:0 the draft · sab:<request>:<reply>:1 send the draft as it is.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.i18n import tr
from bot.services.audit import (
    INCIDENT_CLOSE,
    INCIDENT_DECLARE,
    TEMPLATE_DELETE,
    TEMPLATE_SAVE,
    audit_record,
)
from bot.services.messages import reply_to_payload
from bot.services.municipalities import fold
from bot.services.replies import Button, Reply
from bot.services.roles import refusal
from bot.services.users import UserProfile
from knowledge_base.model import KnowledgeBase
from storage.clock import Clock
from storage.desk import CannedReply, DeskRepository, Incident
from storage.mentor import MentorRepository
from storage.models import User
from storage.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

MAX_INCIDENT_TEXT = 500
MAX_CANNED_TEXT = 3000
MAX_CANNED_NAME = 64
VARIABLES = ("ime", "opstina", "usluga")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class DeskResult:
    reply: Reply
    ok: bool

    @property
    def notice(self) -> str:
        return html.unescape(re.sub(r"<[^>]+>", "", self.reply.text))[:190]


class DeskService:
    def __init__(
        self,
        database: Database,
        knowledge_base: KnowledgeBase | None = None,
        *,
        timezone: str = "Europe/Belgrade",
        clock: Clock | None = None,
    ) -> None:
        self._database = database
        self._kb = knowledge_base
        self._zone = ZoneInfo(timezone)
        self.clock = clock or database.clock  # the program's one clock
        # The services' folded names, per KB revision (folding them costs more than the
        # question's whole match; every question asks for them).
        self._keys: tuple[KnowledgeBase | None, list[tuple[str, set[str]]]] | None = None

    def use_knowledge_base(self, knowledge_base: KnowledgeBase) -> None:
        """A newer KB revision (CurationService.refresh): entries map to services by it."""
        self._kb = knowledge_base

    # ================================================================ services by name

    def _service_keys(self) -> list[tuple[str, set[str]]]:
        kb = self._kb
        if self._keys is not None and self._keys[0] is kb:
            return self._keys[1]
        keys = []
        for service in kb.services if kb is not None else ():
            names = {fold(service.id).replace(" ", ""), fold(service.title_sr).replace(" ", "")}
            keys.append((service.id, {n for n in names if n}))
        self._keys = (kb, keys)
        return keys

    def service_named(self, word: str) -> str | None:
        """The KB service a word names ('eZUP', 'ezup', 'ePlaćanje', 'eZUP-a'), like /usluge."""
        folded = fold(word).replace(" ", "")
        if not folded:
            return None
        for service_id, names in self._service_keys():
            if folded in names:
                return service_id
        for service_id, names in self._service_keys():  # a declined form: eZUP-a, eZUP-u
            if any(len(n) >= 3 and folded.startswith(n) and len(folded) - len(n) <= 2
                   for n in names):
                return service_id
        return None

    def services_in(self, text: str) -> set[str]:
        """Services named anywhere in a text."""
        found: set[str] = set()
        words = fold(text).split()
        for index, word in enumerate(words):
            service = self.service_named(word)
            if service is None and index + 1 < len(words):  # 'e zup', 'e placanje'
                service = self.service_named(word + words[index + 1]) if len(word) == 1 else None
            if service is not None:
                found.add(service)
        return found

    def service_of_entry(self, entry_id: str | None) -> str | None:
        if not entry_id or self._kb is None:
            return None
        entry = self._kb.get(entry_id)
        return entry.service if entry is not None else None

    def service_title(self, service_id: str) -> str:
        service = self._kb.service(service_id) if self._kb is not None else None
        return service.title_sr if service is not None else service_id

    def local_time(self, moment: datetime) -> str:
        return moment.astimezone(self._zone).strftime("%d.%m.%Y. %H:%M")

    # =================================================================== privileged

    async def _actor(self, uow: UnitOfWork, actor: UserProfile) -> User | None:
        """The actor's row if the database says they are a mentor or admin."""
        row = await uow.users.get(actor.id)
        if row is None or row.role not in ("mentor", "admin"):
            return None
        return row

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
                         f"inc:z:{incident.id}"),),),
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
                (Button(tr(actor.language, "Zatvori #{n}", n=incident.id), f"inc:z:{incident.id}"),)
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

    # ======================================================================== clerks

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
        if not await repo.any_open(services):  # the usual case
            return []
        incidents = await repo.open_incidents(services)
        for incident in incidents:
            await repo.attach(incident.id, user_id, "question")
        return incidents

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
        if not await repo.any_open(services):  # the usual case
            return 0
        incidents = await repo.open_incidents(services)
        for incident in incidents:
            await repo.attach(incident.id, user_id, "request", request_id)
        return len(incidents)

    # ================================================================= canned replies

    @staticmethod
    def _key(name: str) -> str:
        return fold(name)[:MAX_CANNED_NAME]

    def canned_usage(self, actor: UserProfile) -> Reply:
        return Reply(
            tr(
                actor.language,
                "Upotreba: /sablon_novi naziv | tekst. U tekstu možete koristiti {ime}, "
                "{opstina} i {usluga}; popunjavaju se iz pitanja. /sabloni ih prikazuje, "
                "/sablon_obrisi naziv briše.",
                ime="{ime}",
                opstina="{opstina}",
                usluga="{usluga}",
            )
        )

    async def save_canned(self, actor: UserProfile, args: str) -> DeskResult:
        """`/sablon_novi naziv | tekst`: a new canned reply, or a new text for an existing one."""
        name, sep, text = (args or "").partition("|")
        name = " ".join(name.split())[:MAX_CANNED_NAME]
        text = text.strip()[:MAX_CANNED_TEXT]
        async with self._database.uow() as uow:
            mentor = await self._actor(uow, actor)
            if mentor is None:
                return DeskResult(refusal(actor, "template.save"), False)
            if not sep or not self._key(name) or not text:
                return DeskResult(self.canned_usage(actor), False)
            row, created = await uow.repository(DeskRepository).save_canned_reply(
                self._key(name), name, text, mentor.id
            )
            await audit_record(
                uow, actor, TEMPLATE_SAVE, f"template:{row.id}", {"created": created}
            )
            await uow.commit()
        shown = html.escape(name)
        if created:
            text = tr(actor.language, "Šablon „{name}“ je sačuvan.", name=shown)
        else:
            text = tr(actor.language, "Šablon „{name}“ je izmenjen.", name=shown)
        return DeskResult(Reply(text), True)

    async def list_canned(self, actor: UserProfile) -> Reply:
        """`/sabloni`: every canned reply with the start of its text."""
        async with self._database.uow(read_only=True) as uow:
            if await self._actor(uow, actor) is None:
                return refusal(actor, "template.list")
            rows = await uow.repository(DeskRepository).canned_replies()
        if not rows:
            return Reply(
                tr(actor.language, "Još nema šablona.") + "\n" + self.canned_usage(actor).text
            )
        lines = [tr(actor.language, "<b>Šabloni odgovora</b>")]
        for row in rows:
            lines.append(f"• <b>{html.escape(row.name)}</b>: {html.escape(_short(row.text, 120))}")
        return Reply("\n".join(lines))

    async def delete_canned(self, actor: UserProfile, name: str) -> DeskResult:
        async with self._database.uow() as uow:
            if await self._actor(uow, actor) is None:
                return DeskResult(refusal(actor, "template.delete"), False)
            key = self._key(name)
            row = await uow.repository(DeskRepository).delete_canned_reply(key) if key else None
            if row is None:
                return DeskResult(
                    Reply(
                        tr(
                            actor.language,
                            "Nema šablona „{name}“. Pogledajte /sabloni.",
                            name=html.escape(name.strip()),
                        )
                    ),
                    False,
                )
            await audit_record(uow, actor, TEMPLATE_DELETE, f"template:{row.id}")
            await uow.commit()
        return DeskResult(
            Reply(tr(actor.language, "Šablon „{name}“ je obrisan.", name=html.escape(row.name))),
            True,
        )

    async def canned_choices(self, actor: UserProfile, number: int) -> DeskResult:
        """The canned replies for request #number, one button each."""
        async with self._database.uow(read_only=True) as uow:
            if await self._actor(uow, actor) is None:
                return DeskResult(refusal(actor, "template.choose"), False)
            if await uow.repository(MentorRepository).get(number) is None:
                return DeskResult(self._unknown_request(actor, number), False)
            rows = await uow.repository(DeskRepository).canned_replies()
        if not rows:
            return DeskResult(
                Reply(
                    tr(actor.language, "Još nema šablona.")
                    + "\n"
                    + self.canned_usage(actor).text
                ),
                False,
            )
        buttons = tuple((Button(_short(row.name, 40), f"sab:{number}:{row.id}:0"),) for row in rows)
        return DeskResult(
            Reply(
                tr(actor.language, "Izaberite šablon za odgovor na #{number}:", number=number),
                buttons[:30],
            ),
            True,
        )

    async def filled(self, actor: UserProfile, number: int, reply_id: int) -> str | DeskResult:
        """The canned reply's text filled in for request #number, or the refusal to give."""
        async with self._database.uow(read_only=True) as uow:
            if await self._actor(uow, actor) is None:
                return DeskResult(refusal(actor, "template.choose"), False)
            request = await uow.repository(MentorRepository).get(number)
            if request is None:
                return DeskResult(self._unknown_request(actor, number), False)
            row: CannedReply | None = await uow.repository(DeskRepository).canned_reply(reply_id)
            if row is None:
                return DeskResult(
                    Reply(tr(actor.language, "Taj šablon više ne postoji. Pogledajte /sabloni.")),
                    False,
                )
            clerk = await uow.users.get(request.user_id)
            named = sorted(self.services_in(request.question))
            service = request.service or (named[0] if named else None)
            values = {
                "ime": (clerk.display_name if clerk is not None else "") or "",
                "opstina": request.municipality or "",
                "usluga": self.service_title(service) if service else "",
            }
        text = row.text
        for name in VARIABLES:
            text = text.replace("{" + name + "}", values[name])
        return text

    def draft(self, actor: UserProfile, number: int, reply_id: int, text: str) -> Reply:
        """The filled-in text as a draft the mentor sends as it is or edits."""
        return Reply(
            tr(
                actor.language,
                "Nacrt odgovora na #{number}:\n\n{text}\n\nPošaljite ga ovako ili napišite "
                "konačan tekst kao odgovor na ovu poruku.",
                number=number,
                text=html.escape(text),
            ),
            ((Button(tr(actor.language, "Pošalji ovako"), f"sab:{number}:{reply_id}:1"),),),
        )

    def private_needed(self, actor: UserProfile) -> Reply:
        return Reply(
            tr(
                actor.language,
                "Šablone šaljem u privatni razgovor: prvo mi pošaljite /start u privatnoj poruci.",
            )
        )

    def sent_privately(self, actor: UserProfile) -> Reply:
        return Reply(tr(actor.language, "Šabloni su Vam poslati u privatni razgovor."))

    def _unknown_request(self, actor: UserProfile, number: int) -> Reply:
        return Reply(tr(actor.language, "Pitanje #{number} ne postoji.", number=number))


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
