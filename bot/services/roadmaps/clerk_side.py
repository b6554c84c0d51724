"""The clerk's side: their municipality's plan, "Urađeno" (pending a mentor's confirmation)
and "Zapeli smo" (a blocker, and a mentor request tagged with the step)."""

from __future__ import annotations

import html
import logging
from collections import defaultdict

from bot.i18n import tr
from bot.services.answering import in_script
from bot.services.audit import audit_record
from bot.services.buttons import ShowEntry, pack
from bot.services.buttons_roadmaps import (
    RoadmapPlan,
    StepBlocker,
    StepConfirm,
    StepDone,
    StepReturn,
    StepStuck,
)
from bot.services.replies import Button, Reply
from bot.services.roadmaps.base import RoadmapBase
from bot.services.roadmaps.common import (
    GROUP_LANGUAGE,
    MARK,
    MAX_REASON,
    OTHER_BLOCKER,
    STATUS_LABELS,
    STEP_CHANGE,
)
from bot.services.users import UserProfile
from storage.roadmaps import RoadmapRepository

log = logging.getLogger(__name__)


class RoadmapClerkSide(RoadmapBase):
    """A municipality's clerk works through its roadmap."""

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
            rows.append((Button(f"{title} →", pack(RoadmapPlan(own.id, service))),))
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
                    rows.append((Button("📖 " + label, pack(ShowEntry(entry.id))),))
            rows.append(
                (
                    Button(tr(lang, "Urađeno"), pack(StepDone(own.id, service, step.id))),
                    Button(tr(lang, "Zapeli smo"), pack(StepStuck(own.id, service, step.id))),
                )
            )
        else:
            lines.append(tr(lang, "Svi koraci su urađeni. Čestitamo!"))
        lines.append("")
        for other in roadmap.steps:
            status = statuses.get(other.id, "not_started")
            lines.append(f"{MARK[status]} {html.escape(in_script(lang, other.title))}")
        rows.append((Button(tr(lang, "« Plan"), pack(RoadmapPlan(0, ""))),))
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
                                tr(GROUP_LANGUAGE, "Potvrdi"),
                                pack(StepConfirm(own.id, service, step_id)),
                            ),
                            Button(
                                tr(GROUP_LANGUAGE, "Vrati"),
                                pack(StepReturn(own.id, service, step_id)),
                            ),
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
            ((Button(tr(lang, "« Plan"), pack(RoadmapPlan(own.id, service))),),),
        )

    def stuck_prompt(
        self, user: UserProfile, participant_id: int, service: str, step_id: str
    ) -> Reply:
        """ "Zapeli smo": what blocks the step? The template's typical blockers, or other."""
        step = self._step(service, step_id)
        if step is None:
            return self._stale(user)
        lang = user.language

        def pick(blocker: int) -> str:
            return pack(StepBlocker(participant_id, service, step_id, blocker))

        rows = [
            (Button(in_script(lang, blocker)[:60], pick(i)),)
            for i, blocker in enumerate(step.blockers[:6], start=1)
        ]
        rows.append(
            (Button(tr(lang, OTHER_BLOCKER), pick(0)),)
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
