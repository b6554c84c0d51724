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

The package is split by responsibility (common, base, clerk_side, review, overview,
participants, nudges); `RoadmapService` puts the layers together and routes the buttons.
"""

from __future__ import annotations

from bot.services.buttons import parse
from bot.services.buttons_roadmaps import (
    RoadmapMatrix,
    RoadmapPlan,
    RoadmapTimeline,
    StepBlocker,
    StepConfirm,
    StepDone,
    StepReturn,
    StepStuck,
)
from bot.services.replies import Reply
from bot.services.roadmaps.clerk_side import RoadmapClerkSide
from bot.services.roadmaps.common import (
    CSV_HEADER,
    GROUP_LANGUAGE,
    MARK,
    MAX_REASON,
    OTHER_BLOCKER,
    PARTICIPANT_ADD,
    PARTICIPANT_MENTOR,
    PARTICIPANT_REMOVE,
    ROADMAP_KINDS,
    SERVICE_ORDER,
    SHORT,
    STATUS_LABELS,
    STEP_CHANGE,
    BlockedStep,
    MatrixRow,
    Programme,
    ServiceProgress,
    TimelineItem,
)
from bot.services.roadmaps.nudges import RoadmapNudges
from bot.services.roadmaps.overview import RoadmapOverview
from bot.services.roadmaps.participants import RoadmapParticipants
from bot.services.roadmaps.review import RoadmapReview
from bot.services.users import UserProfile

__all__ = [
    "CSV_HEADER",
    "GROUP_LANGUAGE",
    "MARK",
    "MAX_REASON",
    "OTHER_BLOCKER",
    "PARTICIPANT_ADD",
    "PARTICIPANT_MENTOR",
    "PARTICIPANT_REMOVE",
    "ROADMAP_KINDS",
    "SERVICE_ORDER",
    "SHORT",
    "STATUS_LABELS",
    "STEP_CHANGE",
    "BlockedStep",
    "MatrixRow",
    "Programme",
    "RoadmapService",
    "ServiceProgress",
    "TimelineItem",
]


class RoadmapService(
    RoadmapClerkSide, RoadmapReview, RoadmapOverview, RoadmapParticipants, RoadmapNudges
):
    """Implementation roadmaps for every channel: the layers, and the buttons' routing."""

    async def perform(self, user: UserProfile, token: str) -> Reply | None:
        """A roadmap button (any channel); None when the token is not one of ours. Forged or
        outdated data gets a polite reply."""
        if token.partition(":")[0] not in ROADMAP_KINDS:
            return None
        tapped = parse(token)
        match tapped:
            case RoadmapMatrix():
                return await self.matrix(user)
            case RoadmapTimeline(pid):
                return await self.timeline(user, pid)
            case RoadmapPlan(pid, service):
                if pid == 0 or not service:
                    return await self.plan(user)
                return await self.service_plan(user, pid, service)
        if not isinstance(tapped, StepDone | StepStuck | StepBlocker | StepConfirm | StepReturn):
            return self._stale(user)
        if self._step(tapped.service, tapped.step) is None:
            return self._stale(user)
        match tapped:
            case StepDone(pid, service, step):
                return await self.mark_done(user, pid, service, step)
            case StepStuck(pid, service, step):
                async with self._database.uow(read_only=True) as uow:
                    own = await self._own(uow, user, pid)
                if isinstance(own, Reply):
                    return own
                return self.stuck_prompt(user, pid, service, step)
            case StepBlocker(pid, service, step, choice) if choice < 100:
                return await self.stuck(user, pid, service, step, choice)
            case StepConfirm(pid, service, step) | StepReturn(pid, service, step):
                confirm = isinstance(tapped, StepConfirm)
                return await self.review(user, pid, service, step, confirm=confirm)
        return self._stale(user)

    async def decide(self, user: UserProfile, token: str) -> tuple[Reply, bool] | None:
        """A mentor's "Potvrdi" (rk) or "Vrati" (rv): the reply and whether the step changed
        (a channel replaces the card only then). None for any other token."""
        if token.partition(":")[0] not in ("rk", "rv"):
            return None
        tapped = parse(token)
        if not isinstance(tapped, StepConfirm | StepReturn):
            return self._stale(user), False
        if self._step(tapped.service, tapped.step) is None:
            return self._stale(user), False
        confirm = isinstance(tapped, StepConfirm)
        return await self._review(user, tapped.participant_id, tapped.service, tapped.step,
                                  confirm=confirm)
