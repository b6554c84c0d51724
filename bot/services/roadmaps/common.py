"""The roadmaps' vocabulary: step states, audit actions, labels and the values the programme
report is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from bot.i18n import N_

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
