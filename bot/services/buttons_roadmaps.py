"""The implementation roadmaps' button tokens (`rm`, `ro:`, `rp:`, `rd:`, `rz:`, `rb:`,
`rk:`, `rv:`) as typed values.

`pack` / `parse` live in bot/services/buttons.py, which dispatches over these kinds as well;
the packed strings are the ones older messages carry (`rp:0:` included: the plan itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias


@dataclass(frozen=True)
class RoadmapMatrix:
    """The coordinators' matrix of municipalities."""

    KIND: ClassVar[str] = "rm"


@dataclass(frozen=True)
class RoadmapTimeline:
    """One municipality's timeline."""

    KIND: ClassVar[str] = "ro"
    participant_id: int


@dataclass(frozen=True)
class RoadmapPlan:
    """The plan of one service; `participant_id` 0 or an empty `service`: the whole plan."""

    KIND: ClassVar[str] = "rp"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"service"})
    participant_id: int
    service: str


@dataclass(frozen=True)
class _StepToken:
    """The step a button is about: one municipality's (participant's) service and step."""

    participant_id: int
    service: str
    step: str


@dataclass(frozen=True)
class StepDone(_StepToken):
    """"Urađeno" on a step."""

    KIND: ClassVar[str] = "rd"


@dataclass(frozen=True)
class StepStuck(_StepToken):
    """"Zapeli smo" on a step: the blockers are offered next."""

    KIND: ClassVar[str] = "rz"


@dataclass(frozen=True)
class StepBlocker(_StepToken):
    """The blocker picked: a template's typical one (1..) or 0, another."""

    KIND: ClassVar[str] = "rb"
    blocker: int


@dataclass(frozen=True)
class StepConfirm(_StepToken):
    """A mentor's "Potvrdi" on a reported step."""

    KIND: ClassVar[str] = "rk"


@dataclass(frozen=True)
class StepReturn(_StepToken):
    """A mentor's "Vrati" on a reported step."""

    KIND: ClassVar[str] = "rv"


RoadmapToken: TypeAlias = (
    RoadmapMatrix | RoadmapTimeline | RoadmapPlan | StepDone | StepStuck | StepBlocker
    | StepConfirm | StepReturn
)
ROADMAP_TOKEN_KINDS: tuple[type[Any], ...] = (
    RoadmapMatrix,
    RoadmapTimeline,
    RoadmapPlan,
    StepDone,
    StepStuck,
    StepBlocker,
    StepConfirm,
    StepReturn,
)
