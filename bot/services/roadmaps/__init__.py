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

from bot.digits import to_int
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
