"""The weekly job: mentors hear of municipalities that have been quiet too long (and, when
enabled, their clerks are reminded of the step to work on)."""

from __future__ import annotations

import html
import logging
from collections import defaultdict
from datetime import timedelta

from bot.i18n import tr
from bot.services.answering import in_script
from bot.services.buttons import pack
from bot.services.buttons_roadmaps import RoadmapTimeline
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply
from bot.services.roadmaps.base import RoadmapBase
from bot.services.roadmaps.common import (
    GROUP_LANGUAGE,
)
from storage.roadmaps import RoadmapMunicipality, RoadmapRepository
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)


class RoadmapNudges(RoadmapBase):
    """Scheduled nudges about quiet roadmaps."""

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
                    tuple(
                        (Button(p.municipality[:30], pack(RoadmapTimeline(p.id))),)
                        for p in group[:8]
                    ),
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
