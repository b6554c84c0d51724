"""Implementation roadmaps: where each participating municipality is on the road to eZUP,
ePlaćanje, eSanduče, eDostava and ePisarnica, step by step (templates: knowledge_base/roadmaps).

Rules:
- Admins add and remove participating municipalities; a mentor may take one as theirs.
- A clerk sees and changes only their own municipality's roadmap (the municipality is read
  from the database on every change, and a button naming another one is refused). "Urađeno"
  makes a step `pending`; only a mentor (or admin) confirms it `done` or sends it back.
- "Zapeli smo" asks what blocks the step (the template's typical blockers, or something else),
  marks it `blocked` with that reason and opens a mentor request tagged with service and step.
- Every change writes the step's state and an event (the timeline) in one unit of work, with
  an audit entry; what must reach someone (confirmation requests, confirmations, nudges)
  goes through the outbox. Setting a step to the state it has changes nothing (redelivered
  updates, double taps).

Action tokens (Telegram's 64-byte callback data; `<p>` is the participant id):
  rp:<p>:<service> a service's roadmap · rd:<p>:<svc>:<step> "Urađeno" ·
  rz:<p>:<svc>:<step> "Zapeli smo" · rb:<p>:<svc>:<step>:<i> the blocker chosen (0 other) ·
  rk:<p>:<svc>:<step> mentor confirms · rv:<p>:<svc>:<step> mentor sends back ·
  ro:<p> a municipality's timeline · rm matrix
"""

from __future__ import annotations

import html
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.digits import to_int
from bot.i18n import N_, tr
from bot.services.answering import in_script
from bot.services.audit import audit_record
from bot.services.mentoring import MentoringService
from bot.services.messages import reply_to_payload
from bot.services.municipalities import directory, fold
from bot.services.replies import Button, Reply
from bot.services.roles import admin_refusal, refusal
from bot.services.users import UserProfile
from knowledge_base.model import KnowledgeBase
from knowledge_base.roadmaps import Roadmap, Step
from storage.models import User
from storage.roadmaps import RoadmapEvent, RoadmapMunicipality, RoadmapRepository
from storage.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

ROADMAP_KINDS = ("rp", "rd", "rz", "rb", "rk", "rv", "ro", "rm")
STEP_CHANGE = "roadmap.step"
PARTICIPANT_ADD = "roadmap.add"
PARTICIPANT_REMOVE = "roadmap.remove"
PARTICIPANT_MENTOR = "roadmap.mentor"
GROUP_LANGUAGE = "sr-Latn"
SERVICE_ORDER = ("ezup", "esanduce", "edostava", "eplacanje", "episarnica")
SHORT = {
    "ezup": "eZUP",
    "esanduce": "eSan",
    "edostava": "eDos",
    "eplacanje": "ePla",
    "episarnica": "ePis",
}
MARK = {"not_started": "▫️", "in_progress": "🔸", "pending": "⏳", "done": "✅", "blocked": "⛔"}
STATUS_LABELS = {
    "not_started": N_("nije počet"),
    "in_progress": N_("u toku"),
    "pending": N_("čeka potvrdu mentora"),
    "done": N_("urađeno"),
    "blocked": N_("zapelo"),
}
CSV_HEADER = (
    "opstina",
    "usluga",
    "korak",
    "naziv_koraka",
    "stanje",
    "razlog",
    "promenjeno",
    "promenio",
)
OTHER_BLOCKER = N_("nešto drugo (opisaću mentoru)")
MAX_REASON = 300


@dataclass(frozen=True)
class ServiceProgress:
    service: str
    done: int
    total: int
    blocked: int
    pending: int


@dataclass(frozen=True)
class MatrixRow:
    participant_id: int
    municipality: str
    services: dict[str, ServiceProgress]
    last_activity: datetime | None

    @property
    def blocked(self) -> int:
        return sum(p.blocked for p in self.services.values())

    @property
    def done(self) -> int:
        return sum(p.done for p in self.services.values())

    @property
    def total(self) -> int:
        return sum(p.total for p in self.services.values())


@dataclass(frozen=True)
class BlockedStep:
    municipality: str
    service: str
    step: str
    title: str
    reason: str
    since: datetime


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    service: str
    step: str
    title: str
    old_status: str
    status: str
    reason: str
    actor: str


@dataclass
class Programme:
    """What the programme report shows: the matrix, blocked steps, progress over time."""

    rows: list[MatrixRow]
    blocked: list[BlockedStep]
    # per municipality: [(day, steps done by the end of that day)]
    history: dict[str, list[tuple[date, int]]] = field(default_factory=dict)
    # "service/step" -> questions clerks asked while their municipality was on that step
    questions_by_step: dict[str, int] = field(default_factory=dict)
    services: tuple[str, ...] = SERVICE_ORDER


class RoadmapService:
    def __init__(
        self,
        database: Database,
        roadmaps: dict[str, Roadmap],
        knowledge_base: KnowledgeBase,
        mentoring: MentoringService | None = None,
        *,
        nudge_weeks: int = 2,
        remind_clerks: bool = False,
        timezone: str = "Europe/Belgrade",
    ) -> None:
        self._database = database
        self._kb = knowledge_base
        self._mentoring = mentoring
        self.roadmaps = {s: roadmaps[s] for s in SERVICE_ORDER if s in roadmaps}
        self.roadmaps.update({s: r for s, r in roadmaps.items() if s not in self.roadmaps})
        self.nudge_weeks = nudge_weeks
        self.remind_clerks = remind_clerks
        self._tz = ZoneInfo(timezone)
        self.clock = database.clock

    def use_knowledge_base(self, knowledge_base: KnowledgeBase) -> None:
        """A newer KB revision was applied: entry buttons and titles come from it."""
        self._kb = knowledge_base

    # ====================================================================== helpers

    def service_title(self, language: str, service: str) -> str:
        found = self._kb.service(service)
        if found is None:
            return service
        return found.title_en if language == "en" else in_script(language, found.title_sr)

    def step_title(self, language: str, service: str, step_id: str) -> str:
        roadmap = self.roadmaps.get(service)
        step = roadmap.step(step_id) if roadmap else None
        return in_script(language, step.title) if step else step_id

    def _step(self, service: str, step_id: str) -> Step | None:
        roadmap = self.roadmaps.get(service)
        return roadmap.step(step_id) if roadmap is not None else None

    @staticmethod
    def next_step(roadmap: Roadmap, statuses: dict[str, str]) -> Step | None:
        """The first step not done (the one the municipality is on), or None when all are."""
        return next((s for s in roadmap.steps if statuses.get(s.id) != "done"), None)

    @staticmethod
    def step_to_work_on(roadmap: Roadmap, statuses: dict[str, str]) -> Step | None:
        """What a clerk sees first: the first step neither done nor waiting for a mentor (work
        goes on while a mentor has not confirmed yet), else the first one waiting."""
        open_steps = [s for s in roadmap.steps if statuses.get(s.id) != "done"]
        return next((s for s in open_steps if statuses.get(s.id) != "pending"), None) or (
            open_steps[0] if open_steps else None
        )

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self._tz)

    def date_text(self, moment: datetime | None) -> str:
        return self.local(moment).strftime("%d.%m.%Y") if moment else "—"

    @staticmethod
    def municipality_name(language: str, key: str) -> str:
        unit = directory().by_key(key)
        return unit.name(language) if unit is not None else key

    async def _row(self, uow: UnitOfWork, user: UserProfile) -> User | None:
        return await uow.users.get(user.id)

    def _not_taking_part(self, user: UserProfile) -> Reply:
        return Reply(
            tr(
                user.language,
                "Vaša opština još nije uključena u plan uvođenja usluga. Ako treba da bude, "
                "obratite se mentoru (/mentor). Opštinu birate komandom /opstina.",
            )
        )

    def _stale(self, user: UserProfile) -> Reply:
        return Reply(
            tr(user.language, "Ovo dugme više ne važi. Otvorite plan ponovo komandom /plan.")
        )

    def _foreign(self, user: UserProfile) -> Reply:
        log.warning("roadmap.refused_foreign user_id=%s", user.id)
        return Reply(
            tr(
                user.language,
                "Možete da menjate samo plan svoje opštine. Otvorite ga komandom /plan.",
            )
        )

    # ====================================================================== clerk side

    async def _own(
        self, uow: UnitOfWork, user: UserProfile, participant_id: int | None = None
    ) -> RoadmapMunicipality | Reply:
        """The participating municipality of the user as the database has it (and the one the
        button names must be the same), or the polite reply to give."""
        row = await self._row(uow, user)
        if row is None or not row.municipality:
            return self._not_taking_part(user)
        participant = await uow.repository(RoadmapRepository).participant(row.municipality)
        if participant is None or not participant.active:
            return self._not_taking_part(user)
        if participant_id is not None and participant.id != participant_id:
            return self._foreign(user)
        return participant

    async def plan(self, user: UserProfile) -> Reply:
        """/plan: every service with the step the municipality is on; a button per service."""
        async with self._database.uow(read_only=True) as uow:
            own = await self._own(uow, user)
            if isinstance(own, Reply):
                return own
            states = await uow.repository(RoadmapRepository).states(own.municipality)
        by_service: dict[str, dict[str, str]] = defaultdict(dict)
        for state in states:
            by_service[state.service][state.step] = state.status
        lang = user.language
        lines = [
            tr(
                lang,
                "<b>Plan uvođenja usluga – {municipality}</b>",
                municipality=html.escape(self.municipality_name(lang, own.municipality)),
            )
        ]
        rows: list[tuple[Button, ...]] = []
        for service, roadmap in self.roadmaps.items():
            statuses = by_service.get(service, {})
            done = sum(1 for s in roadmap.steps if statuses.get(s.id) == "done")
            step = self.step_to_work_on(roadmap, statuses)
            title = self.service_title(lang, service)
            if step is None:
                lines.append(
                    tr(
                        lang,
                        "✅ {service}: svi koraci su urađeni ({done}/{total})",
                        service=title,
                        done=done,
                        total=len(roadmap.steps),
                    )
                )
            else:
                status = statuses.get(step.id, "not_started")
                lines.append(
                    f"{MARK[status]} {title} {done}/{len(roadmap.steps)} · "
                    + tr(
                        lang,
                        "sledeći korak: {step} ({status})",
                        step=html.escape(in_script(lang, step.title)),
                        status=tr(lang, STATUS_LABELS[status]),
                    )
                )
            rows.append((Button(f"{title} →", f"rp:{own.id}:{service}"),))
        lines.append("")
        lines.append(tr(lang, "Izaberite uslugu da vidite korake."))
        return Reply("\n".join(lines), tuple(rows))

    async def service_plan(self, user: UserProfile, participant_id: int, service: str) -> Reply:
        roadmap = self.roadmaps.get(service)
        if roadmap is None:
            return self._stale(user)
        async with self._database.uow(read_only=True) as uow:
            own = await self._own(uow, user, participant_id)
            if isinstance(own, Reply):
                return own
            states = {
                s.step: s
                for s in await uow.repository(RoadmapRepository).states(own.municipality)
                if s.service == service
            }
        lang = user.language
        statuses = {k: v.status for k, v in states.items()}
        step = self.step_to_work_on(roadmap, statuses)
        title = self.service_title(lang, service)
        lines = [f"<b>{html.escape(title)}</b>"]
        rows: list[tuple[Button, ...]] = []
        if step is not None:
            state = states.get(step.id)
            status = state.status if state else "not_started"
            lines.append(
                tr(
                    lang,
                    "Sledeći korak: <b>{step}</b> ({status})",
                    step=html.escape(in_script(lang, step.title)),
                    status=tr(lang, STATUS_LABELS[status]),
                )
            )
            lines.append(
                tr(lang, "Urađeno znači: {done}", done=html.escape(in_script(lang, step.done)))
            )
            if status == "blocked" and state is not None and state.reason:
                lines.append(tr(lang, "Zapelo: {reason}", reason=html.escape(state.reason)))
            for entry_id in step.entries[:3]:
                entry = self._kb.get(entry_id)
                if entry is not None:
                    label = in_script(lang, entry.question)
                    label = label if len(label) <= 60 else label[:59].rstrip() + "…"
                    rows.append((Button("📖 " + label, f"e:{entry.id}"),))
            rows.append(
                (
                    Button(tr(lang, "Urađeno"), f"rd:{own.id}:{service}:{step.id}"),
                    Button(tr(lang, "Zapeli smo"), f"rz:{own.id}:{service}:{step.id}"),
                )
            )
        else:
            lines.append(tr(lang, "Svi koraci su urađeni. Čestitamo!"))
        lines.append("")
        for other in roadmap.steps:
            status = statuses.get(other.id, "not_started")
            lines.append(f"{MARK[status]} {html.escape(in_script(lang, other.title))}")
        rows.append((Button(tr(lang, "« Plan"), "rp:0:"),))
        return Reply("\n".join(lines), tuple(rows))

    async def mark_done(
        self, user: UserProfile, participant_id: int, service: str, step_id: str
    ) -> Reply:
        """ "Urađeno": the step waits for a mentor's confirmation (a card to the mentors)."""
        step = self._step(service, step_id)
        if step is None:
            return self._stale(user)
        lang = user.language
        async with self._database.uow() as uow:
            own = await self._own(uow, user, participant_id)
            if isinstance(own, Reply):
                return own
            repo = uow.repository(RoadmapRepository)
            await repo.lock_municipality(own.municipality)
            state = await repo.state(own.municipality, service, step_id, for_update=True)
            status = state.status if state else "not_started"
            if status in ("pending", "done"):
                return Reply(
                    tr(
                        lang,
                        "Korak „{step}“ je već zabeležen ({status}).",
                        step=html.escape(in_script(lang, step.title)),
                        status=tr(lang, STATUS_LABELS[status]),
                    )
                )
            await repo.set_state(
                own.municipality, service, step_id, "pending", reason=None, actor_user_id=user.id
            )
            await audit_record(
                uow,
                user,
                STEP_CHANGE,
                f"roadmap:{own.municipality}",
                {"service": service, "step": step_id, "status": "pending"},
            )
            await self._to_mentors(
                uow,
                own,
                Reply(
                    tr(
                        GROUP_LANGUAGE,
                        "⏳ {municipality} · {service}: službenik {name} javlja da je urađen "
                        "korak „{step}“. Urađeno znači: {done}",
                        municipality=html.escape(own.municipality),
                        service=self.service_title(GROUP_LANGUAGE, service),
                        name=html.escape(user.display_name or "—"),
                        step=html.escape(step.title),
                        done=html.escape(step.done),
                    ),
                    (
                        (
                            Button(
                                tr(GROUP_LANGUAGE, "Potvrdi"), f"rk:{own.id}:{service}:{step_id}"
                            ),
                            Button(tr(GROUP_LANGUAGE, "Vrati"), f"rv:{own.id}:{service}:{step_id}"),
                        ),
                    ),
                ),
                kind="roadmap_confirm",
            )
            await uow.commit()
        log.info("roadmap.pending user_id=%s service=%s step=%s", user.id, service, step_id)
        return Reply(
            tr(
                lang,
                "Hvala! Korak „{step}“ je zabeležen kao urađen i čeka potvrdu mentora.",
                step=html.escape(in_script(lang, step.title)),
            ),
            ((Button(tr(lang, "« Plan"), f"rp:{own.id}:{service}"),),),
        )

    def stuck_prompt(
        self, user: UserProfile, participant_id: int, service: str, step_id: str
    ) -> Reply:
        """ "Zapeli smo": what blocks the step? The template's typical blockers, or other."""
        step = self._step(service, step_id)
        if step is None:
            return self._stale(user)
        lang = user.language
        rows = [
            (Button(in_script(lang, blocker)[:60], f"rb:{participant_id}:{service}:{step_id}:{i}"),)
            for i, blocker in enumerate(step.blockers[:6], start=1)
        ]
        rows.append(
            (Button(tr(lang, OTHER_BLOCKER), f"rb:{participant_id}:{service}:{step_id}:0"),)
        )
        return Reply(
            tr(
                lang,
                "Šta vas koči na koraku „{step}“? Izaberite, pa ćemo obavestiti mentora.",
                step=html.escape(in_script(lang, step.title)),
            ),
            tuple(rows),
        )

    async def stuck(
        self, user: UserProfile, participant_id: int, service: str, step_id: str, blocker: int
    ) -> Reply:
        """The step is blocked with the chosen reason, and a mentor request opens for it."""
        step = self._step(service, step_id)
        if step is None or not 0 <= blocker <= len(step.blockers) or self._mentoring is None:
            return self._stale(user)
        lang = user.language
        reason = step.blockers[blocker - 1] if blocker else tr(GROUP_LANGUAGE, OTHER_BLOCKER)
        async with self._database.uow(read_only=True) as uow:
            own = await self._own(uow, user, participant_id)
            if isinstance(own, Reply):
                return own
            state = await uow.repository(RoadmapRepository).state(
                own.municipality, service, step_id
            )
            blocked_before = len(
                [
                    e
                    for e in await uow.repository(RoadmapRepository).events(own.municipality)
                    if e.service == service and e.step == step_id and e.status == "blocked"
                ]
            )
        if state is not None and state.status == "blocked" and state.reason == reason:
            return Reply(
                tr(lang, "Već smo zabeležili da ste zapeli na ovom koraku; mentor je obavešten.")
            )
        question = tr(
            GROUP_LANGUAGE,
            "Zapeli smo: {service} – korak „{step}“. Razlog: {reason}",
            service=self.service_title(GROUP_LANGUAGE, service),
            step=step.title,
            reason=reason,
        )
        created = await self._mentoring.create_request(
            user,
            text=question,
            source_key=f"rm:{own.id}:{service}:{step_id}:{blocked_before}",
            service=service,
            roadmap_step=step_id,
        )
        async with self._database.uow() as uow:
            repo = uow.repository(RoadmapRepository)
            await repo.lock_municipality(own.municipality)
            await repo.set_state(
                own.municipality,
                service,
                step_id,
                "blocked",
                reason=reason[:MAX_REASON],
                actor_user_id=user.id,
                request_id=created.number,
            )
            await audit_record(
                uow,
                user,
                STEP_CHANGE,
                f"roadmap:{own.municipality}",
                {
                    "service": service,
                    "step": step_id,
                    "status": "blocked",
                    "request": created.number,
                },
            )
            await uow.commit()
        return created.reply

    # ====================================================================== mentor side

    async def _mentor(self, uow: UnitOfWork, actor: UserProfile) -> User | None:
        row = await uow.users.get(actor.id)
        return row if row is not None and row.role in ("mentor", "admin") else None

    async def review(
        self, actor: UserProfile, participant_id: int, service: str, step_id: str, confirm: bool
    ) -> Reply:
        """A mentor confirms a step done (`rk`) or sends it back to in progress (`rv`)."""
        return (await self._review(actor, participant_id, service, step_id, confirm))[0]

    async def _review(
        self, actor: UserProfile, participant_id: int, service: str, step_id: str, confirm: bool
    ) -> tuple[Reply, bool]:
        """The reply, and whether the step changed."""
        step = self._step(service, step_id)
        lang = actor.language
        async with self._database.uow() as uow:
            if await self._mentor(uow, actor) is None:
                return refusal(actor, "roadmap.confirm"), False
            if step is None:
                return self._stale(actor), False
            repo = uow.repository(RoadmapRepository)
            participant = await repo.participant_by_id(participant_id)
            if participant is None or not participant.active:
                return self._stale(actor), False
            await repo.lock_municipality(participant.municipality)
            state = await repo.state(participant.municipality, service, step_id, for_update=True)
            new = "done" if confirm else "in_progress"
            name = self.municipality_name(lang, participant.municipality)
            if state is not None and state.status == new:
                return Reply(
                    tr(
                        lang,
                        "Već je zabeleženo: {municipality} · {step} – {status}.",
                        municipality=html.escape(name),
                        step=html.escape(step.title),
                        status=tr(lang, STATUS_LABELS[new]),
                    )
                ), False
            reported_by = state.updated_by if state is not None else None
            await repo.set_state(
                participant.municipality, service, step_id, new, reason=None, actor_user_id=actor.id
            )
            await audit_record(
                uow,
                actor,
                STEP_CHANGE,
                f"roadmap:{participant.municipality}",
                {"service": service, "step": step_id, "status": new},
            )
            if reported_by and reported_by != actor.id:
                clerk = await uow.users.get(reported_by)
                if clerk is not None and clerk.active:
                    clerk_lang = clerk.language
                    text = (
                        tr(
                            clerk_lang,
                            "✅ Mentor je potvrdio korak „{step}“ ({service}). "
                            "Sledeći korak vidite u /plan.",
                            step=html.escape(in_script(clerk_lang, step.title)),
                            service=self.service_title(clerk_lang, service),
                        )
                        if confirm
                        else tr(
                            clerk_lang,
                            "Mentor je vratio korak „{step}“ ({service}) u rad. "
                            "Ako nije jasno šta nedostaje, pitajte mentora (/mentor).",
                            step=html.escape(in_script(clerk_lang, step.title)),
                            service=self.service_title(clerk_lang, service),
                        )
                    )
                    event_id = (await repo.events(participant.municipality, limit=1))[0].id
                    await uow.outbox.add(
                        channel=clerk.channel,
                        chat_id=clerk.external_id,
                        user_id=clerk.id,
                        kind="roadmap_notice",
                        payload=reply_to_payload(Reply(text)),
                        dedupe_key=f"rm-review:{event_id}",
                    )
            await uow.commit()
        return Reply(
            tr(
                lang,
                "{mark} {municipality} · {service}: „{step}“ – {status} ({name}).",
                mark=MARK[new],
                municipality=html.escape(name),
                service=self.service_title(lang, service),
                step=html.escape(step.title),
                status=tr(lang, STATUS_LABELS[new]),
                name=html.escape(actor.display_name or "—"),
            )
        ), True

    async def _to_mentors(
        self,
        uow: UnitOfWork,
        participant: RoadmapMunicipality,
        reply: Reply,
        *,
        kind: str,
        dedupe_key: str | None = None,
    ) -> bool:
        """To the municipality's own mentor (private chat) or else the mentors' group."""
        if participant.mentor_user_id is not None:
            mentor = await uow.users.get(participant.mentor_user_id)
            if mentor is not None and mentor.active and mentor.role in ("mentor", "admin"):
                row = await uow.outbox.add(
                    channel=mentor.channel,
                    chat_id=mentor.external_id,
                    user_id=mentor.id,
                    kind=kind,
                    payload=reply_to_payload(reply),
                    dedupe_key=dedupe_key,
                    priority=60,
                )
                return row is not None
        if self._mentoring is None or self._mentoring.config.mentor_chat_id is None:
            return False
        row = await uow.outbox.add(
            channel=self._mentoring.config.group_channel,
            chat_id=str(self._mentoring.config.mentor_chat_id),
            kind=kind,
            payload=reply_to_payload(reply),
            dedupe_key=dedupe_key,
            priority=60,
        )
        return row is not None

    # -- the matrix and the timeline -----------------------------------------------------

    async def programme(self, *, with_history: bool = False) -> Programme:
        """The data behind /opstine, the console's matrix and the programme report."""
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(RoadmapRepository)
            participants = await repo.participants()
            states = await repo.states()
            last = await repo.last_activity()
            events = await repo.events(newest=False) if with_history else []
            questions = await repo.questions_by_step() if with_history else {}
        active = {p.municipality for p in participants}
        by_mun: dict[str, dict[tuple[str, str], tuple[str, str | None, datetime]]] = defaultdict(
            dict
        )
        for s in states:
            if s.municipality in active:
                by_mun[s.municipality][(s.service, s.step)] = (s.status, s.reason, s.updated_at)
        rows: list[MatrixRow] = []
        blocked: list[BlockedStep] = []
        for p in participants:
            mine = by_mun.get(p.municipality, {})
            services: dict[str, ServiceProgress] = {}
            for service, roadmap in self.roadmaps.items():
                counts: dict[str, int] = defaultdict(int)
                for step in roadmap.steps:
                    status, reason, since = mine.get(
                        (service, step.id), ("not_started", None, p.added_at)
                    )
                    counts[status] += 1
                    if status == "blocked":
                        blocked.append(
                            BlockedStep(
                                p.municipality, service, step.id, step.title, reason or "", since
                            )
                        )
                services[service] = ServiceProgress(
                    service,
                    counts["done"],
                    len(roadmap.steps),
                    counts["blocked"],
                    counts["pending"],
                )
            rows.append(MatrixRow(p.id, p.municipality, services, last.get(p.municipality)))
        rows.sort(key=lambda r: (-r.blocked, fold(r.municipality)))
        blocked.sort(key=lambda b: (b.since, b.municipality))
        history: dict[str, list[tuple[date, int]]] = {}
        if with_history:
            history = self._history(active, events)
        return Programme(rows, blocked, history, questions, tuple(self.roadmaps))

    def _history(
        self, active: set[str], events: Iterable[RoadmapEvent]
    ) -> dict[str, list[tuple[date, int]]]:
        """Steps done per municipality at the end of each day with a change."""
        done: dict[str, set[tuple[str, str]]] = defaultdict(set)
        series: dict[str, dict[date, int]] = defaultdict(dict)
        for event in events:
            if event.municipality not in active:
                continue
            key = (event.service, event.step)
            if event.status == "done":
                done[event.municipality].add(key)
            else:
                done[event.municipality].discard(key)
            day = self.local(event.at).date()
            series[event.municipality][day] = len(done[event.municipality])
        return {mun: sorted(days.items()) for mun, days in series.items()}

    async def matrix(self, actor: UserProfile) -> Reply:
        """/opstine: municipalities x services as a monospace table, blocked first."""
        async with self._database.uow(read_only=True) as uow:
            if await self._mentor(uow, actor) is None:
                return refusal(actor, "roadmap.matrix")
        data = await self.programme()
        lang = actor.language
        if not data.rows:
            return Reply(
                tr(
                    lang,
                    "Nijedna opština još nije u programu. Administrator je dodaje "
                    "komandom /opstina_dodaj naziv.",
                )
            )
        return Reply(self.matrix_text(lang, data), self.matrix_buttons(data))

    def matrix_text(self, lang: str, data: Programme) -> str:
        width = max(8, min(16, max(len(r.municipality) for r in data.rows)))
        head = f"{'':{width}} " + " ".join(f"{SHORT.get(s, s[:4]):>4}" for s in data.services)
        head += "  " + tr(lang, "aktivnost")
        lines = [head]
        for row in data.rows:
            cells = []
            for service in data.services:
                p = row.services[service]
                cell = f"{p.done}/{p.total}" + ("!" if p.blocked else "")
                cells.append(f"{cell:>4}")
            name = row.municipality[:width]
            when = self.local(row.last_activity).strftime("%d.%m.") if row.last_activity else "—"
            lines.append(f"{name:{width}} " + " ".join(cells) + f"  {when}")
        legend = tr(lang, "urađeno/ukupno koraka; ! = zapelo; zapele opštine su prve")
        title = tr(lang, "<b>Opštine u programu</b>")
        return f"{title}\n<pre>{html.escape(chr(10).join(lines))}</pre>\n{legend}"

    def matrix_buttons(self, data: Programme) -> tuple[tuple[Button, ...], ...]:
        buttons = [
            Button(("⛔ " if r.blocked else "") + r.municipality[:30], f"ro:{r.participant_id}")
            for r in data.rows
        ]
        return tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))

    async def timeline_items(
        self, participant_id: int, limit: int = 30
    ) -> tuple[RoadmapMunicipality | None, list[TimelineItem]]:
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(RoadmapRepository)
            participant = await repo.participant_by_id(participant_id)
            if participant is None:
                return None, []
            events = await repo.events(participant.municipality, limit=limit)
            names: dict[int, str] = {}
            for event in events:
                if event.actor_user_id and event.actor_user_id not in names:
                    user = await uow.users.get(event.actor_user_id)
                    names[event.actor_user_id] = (
                        (user.display_name or user.external_id) if user else "—"
                    )
        items = [
            TimelineItem(
                e.at,
                e.service,
                e.step,
                self.step_title("sr-Latn", e.service, e.step),
                e.old_status,
                e.status,
                e.reason or "",
                names.get(e.actor_user_id or 0, "—"),
            )
            for e in events
        ]
        return participant, items

    async def timeline(self, actor: UserProfile, participant_id: int) -> Reply:
        async with self._database.uow(read_only=True) as uow:
            if await self._mentor(uow, actor) is None:
                return refusal(actor, "roadmap.timeline")
        participant, items = await self.timeline_items(participant_id, limit=15)
        lang = actor.language
        if participant is None:
            return self._stale(actor)
        lines = [
            tr(
                lang,
                "<b>{municipality}</b> – tok rada",
                municipality=html.escape(participant.municipality),
            )
        ]
        if not items:
            lines.append(tr(lang, "Još nema promena."))
        for item in items:
            line = (
                f"{self.local(item.at).strftime('%d.%m. %H:%M')} {MARK[item.status]} "
                f"{self.service_title(lang, item.service)} · {html.escape(item.title)}: "
                f"{tr(lang, STATUS_LABELS[item.status])} ({html.escape(item.actor)})"
            )
            if item.reason:
                line += f" – {html.escape(item.reason)}"
            lines.append(line)
        return Reply("\n".join(lines), ((Button(tr(lang, "« Opštine"), "rm"),),))

    # -- participants ----------------------------------------------------------------------

    async def add_participant(self, actor: UserProfile, query: str) -> Reply:
        return await self._participant_change(actor, query, add=True)

    async def remove_participant(self, actor: UserProfile, query: str) -> Reply:
        return await self._participant_change(actor, query, add=False)

    async def _participant_change(self, actor: UserProfile, query: str, *, add: bool) -> Reply:
        lang = actor.language
        action = PARTICIPANT_ADD if add else PARTICIPANT_REMOVE
        async with self._database.uow() as uow:
            row = await uow.users.get(actor.id)
            if row is None or row.role != "admin":
                return admin_refusal(actor, action)
            found = directory().search(query.strip(), limit=2) if query.strip() else []
            if not found:
                return Reply(
                    tr(
                        lang,
                        "Nisam našao tu opštinu. Upotreba: /opstina_dodaj naziv "
                        "(ili /opstina_ukloni naziv), npr. /opstina_dodaj Čačak.",
                    )
                )
            key = found[0].key
            repo = uow.repository(RoadmapRepository)
            changed = (
                await repo.add_participant(key, actor.id)
                if add
                else await repo.remove_participant(key)
            )
            if changed:
                await audit_record(uow, actor, action, f"roadmap:{key}")
            await uow.commit()
        if add:
            text = (
                N_("Opština {municipality} je dodata u program.")
                if changed
                else N_("Opština {municipality} je već u programu.")
            )
        else:
            text = (
                N_("Opština {municipality} više nije u programu (istorija ostaje).")
                if changed
                else N_("Opština {municipality} nije u programu.")
            )
        return Reply(tr(lang, text, municipality=html.escape(key)))

    async def take_municipality(self, actor: UserProfile, query: str) -> Reply:
        """/opstina_mentor naziv: the mentor takes the municipality (nudges come to them)."""
        lang = actor.language
        async with self._database.uow() as uow:
            if await self._mentor(uow, actor) is None:
                return refusal(actor, PARTICIPANT_MENTOR)
            found = directory().search(query.strip(), limit=1) if query.strip() else []
            repo = uow.repository(RoadmapRepository)
            if not found or not await repo.set_mentor(found[0].key, actor.id):
                return Reply(
                    tr(lang, "Te opštine nema u programu. Upotreba: /opstina_mentor naziv.")
                )
            await audit_record(uow, actor, PARTICIPANT_MENTOR, f"roadmap:{found[0].key}")
            await uow.commit()
        return Reply(
            tr(
                lang,
                "Vi ste mentor opštine {municipality}.",
                municipality=html.escape(found[0].key),
            )
        )

    # -- nudges ------------------------------------------------------------------------------

    async def nudge(self) -> int:
        """Municipalities with no change for `nudge_weeks` are listed to their mentor (or the
        mentors' group) once a week; if configured, their clerks get a friendly reminder of
        the next step. Outbox rows with a per-week key: a rerun queues nothing twice."""
        now = self.clock()
        quiet_since = now - timedelta(weeks=self.nudge_weeks)
        year, week, _ = self.local(now).isocalendar()
        queued = 0
        async with self._database.uow() as uow:
            repo = uow.repository(RoadmapRepository)
            participants = await repo.participants()
            last = await repo.last_activity()
            states = await repo.states()
            quiet = [
                p for p in participants if (last.get(p.municipality) or p.added_at) <= quiet_since
            ]
            by_target: dict[int | None, list[RoadmapMunicipality]] = defaultdict(list)
            for p in quiet:
                by_target[p.mentor_user_id].append(p)
            for target, group in by_target.items():
                names = ", ".join(p.municipality for p in group)
                reply = Reply(
                    tr(
                        GROUP_LANGUAGE,
                        "⏰ Bez napretka više od {weeks} nedelje: {names}. Možda je vreme za "
                        "poziv ili posetu. /opstine",
                        weeks=self.nudge_weeks,
                        names=html.escape(names),
                    ),
                    tuple((Button(p.municipality[:30], f"ro:{p.id}"),) for p in group[:8]),
                )
                if await self._to_mentors(
                    uow,
                    group[0],
                    reply,
                    kind="roadmap_nudge",
                    dedupe_key=f"rm-nudge:{target or 'group'}:{year}-{week}",
                ):
                    queued += 1
            if self.remind_clerks:
                queued += await self._remind_clerks(uow, quiet, states, f"{year}-{week}")
            await uow.commit()
        if queued:
            log.info("roadmap.nudged count=%s", queued)
        return queued

    async def _remind_clerks(
        self, uow: UnitOfWork, quiet: list[RoadmapMunicipality], states: list, week: str
    ) -> int:
        statuses: dict[str, dict[tuple[str, str], str]] = defaultdict(dict)
        for s in states:
            statuses[s.municipality][(s.service, s.step)] = s.status
        queued = 0
        for participant in quiet:
            clerks = await uow.repository(RoadmapRepository).clerks_of(participant.municipality)
            for clerk in clerks:
                lang = clerk.language
                lines = [tr(lang, "Dobar dan! Podsetnik za plan uvođenja usluga – sledeći koraci:")]
                for service, roadmap in self.roadmaps.items():
                    mine = {
                        step: st
                        for (svc, step), st in statuses[participant.municipality].items()
                        if svc == service
                    }
                    step = self.step_to_work_on(roadmap, mine)
                    if step is not None:
                        lines.append(
                            f"• {self.service_title(lang, service)}: "
                            f"{html.escape(in_script(lang, step.title))}"
                        )
                lines.append(
                    tr(
                        lang,
                        "Ako negde zapinje, u /plan pritisnite „Zapeli smo“ – mentor će pomoći.",
                    )
                )
                row = await uow.outbox.add(
                    channel=clerk.channel,
                    chat_id=clerk.external_id,
                    user_id=clerk.id,
                    kind="roadmap_reminder",
                    payload=reply_to_payload(Reply("\n".join(lines))),
                    dedupe_key=f"rm-remind:{clerk.id}:{week}",
                    priority=150,
                )
                queued += row is not None
        return queued

    # -- questions -------------------------------------------------------------------------

    async def current_step(
        self, uow: UnitOfWork, municipality: str | None, service: str | None
    ) -> str | None:
        """ "service/step" the municipality is on for the service (None if not taking part)."""
        if not municipality or service not in self.roadmaps:
            return None
        repo = uow.repository(RoadmapRepository)
        participant = await repo.participant(municipality)
        if participant is None or not participant.active:
            return None
        statuses = {
            s.step: s.status for s in await repo.states(municipality) if s.service == service
        }
        step = self.next_step(self.roadmaps[service], statuses)
        return f"{service}/{step.id if step else 'done'}"

    async def export_rows(self) -> list[tuple[str, ...]]:
        """Every participating municipality's every step, for the report's CSV (header first)."""
        data = await self.programme()
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(RoadmapRepository)
            states = {(s.municipality, s.service, s.step): s for s in await repo.states()}
            names: dict[int, str] = {}
            for known in states.values():
                if known.updated_by and known.updated_by not in names:
                    user = await uow.users.get(known.updated_by)
                    names[known.updated_by] = (
                        (user.display_name or user.external_id) if user else ""
                    )
        rows: list[tuple[str, ...]] = [CSV_HEADER]
        for row in sorted(data.rows, key=lambda r: fold(r.municipality)):
            for svc, roadmap in self.roadmaps.items():
                for step in roadmap.steps:
                    state = states.get((row.municipality, svc, step.id))
                    rows.append(
                        (
                            row.municipality,
                            svc,
                            step.id,
                            step.title,
                            state.status if state else "not_started",
                            (state.reason or "") if state else "",
                            self.local(state.updated_at).strftime("%Y-%m-%d %H:%M")
                            if state
                            else "",
                            names.get(state.updated_by or 0, "") if state else "",
                        )
                    )
        return rows

    # -- buttons -----------------------------------------------------------------------------

    async def perform(self, user: UserProfile, token: str) -> Reply | None:
        """A roadmap button (any channel); None when the token is not one of ours. Forged or
        outdated data gets a polite reply."""
        kind, _, rest = token.partition(":")
        if kind not in ROADMAP_KINDS:
            return None
        parts = rest.split(":") if rest else []
        if kind == "rm":
            return await self.matrix(user)
        pid = to_int(parts[0], 11) if parts else None
        if pid is None:
            return self._stale(user)
        if kind == "ro" and len(parts) == 1:
            return await self.timeline(user, pid)
        if kind == "rp" and len(parts) == 2:
            if pid == 0 or not parts[1]:
                return await self.plan(user)
            return await self.service_plan(user, pid, parts[1])
        if len(parts) < 3 or self._step(parts[1], parts[2]) is None:
            return self._stale(user)
        service, step = parts[1], parts[2]
        if kind == "rd" and len(parts) == 3:
            return await self.mark_done(user, pid, service, step)
        if kind == "rz" and len(parts) == 3:
            async with self._database.uow(read_only=True) as uow:
                own = await self._own(uow, user, pid)
            return own if isinstance(own, Reply) else self.stuck_prompt(user, pid, service, step)
        if kind == "rb" and len(parts) == 4:
            choice = to_int(parts[3], 2)
            if choice is None:
                return self._stale(user)
            return await self.stuck(user, pid, service, step, choice)
        if kind in ("rk", "rv") and len(parts) == 3:
            return await self.review(user, pid, service, step, confirm=kind == "rk")
        return self._stale(user)

    async def decide(self, user: UserProfile, token: str) -> tuple[Reply, bool] | None:
        """A mentor's "Potvrdi" (rk) or "Vrati" (rv): the reply and whether the step changed
        (a channel replaces the card only then). None for any other token."""
        kind, _, rest = token.partition(":")
        parts = rest.split(":")
        if kind not in ("rk", "rv"):
            return None
        pid = to_int(parts[0], 11) if parts else None
        if pid is None or len(parts) != 3 or self._step(parts[1], parts[2]) is None:
            return self._stale(user), False
        return await self._review(user, pid, parts[1], parts[2], confirm=kind == "rk")
