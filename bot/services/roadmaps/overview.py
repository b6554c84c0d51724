"""The programme as mentors and the report see it: the matrix of municipalities by service,
blocked steps, progress over time, a municipality's timeline and the CSV export."""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime

from bot.i18n import tr
from bot.services.buttons import pack
from bot.services.buttons_roadmaps import RoadmapMatrix, RoadmapTimeline
from bot.services.municipalities import fold
from bot.services.replies import Button, Reply
from bot.services.roadmaps.base import RoadmapBase
from bot.services.roadmaps.common import (
    CSV_HEADER,
    MARK,
    SHORT,
    STATUS_LABELS,
    BlockedStep,
    MatrixRow,
    Programme,
    ServiceProgress,
    TimelineItem,
)
from bot.services.roles import refusal
from bot.services.users import UserProfile
from storage.roadmaps import RoadmapEvent, RoadmapMunicipality, RoadmapRepository
from storage.uow import UnitOfWork


class RoadmapOverview(RoadmapBase):
    """Read-only views over every participating municipality."""

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
            Button(
                ("⛔ " if r.blocked else "") + r.municipality[:30],
                pack(RoadmapTimeline(r.participant_id)),
            )
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
        return Reply("\n".join(lines), ((Button(tr(lang, "« Opštine"), pack(RoadmapMatrix())),),))

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
