"""The trainings' button tokens (`tr:<verb>:...`) as typed values.

Each kind's `KIND` holds the two first segments (`tr:j`), so the packed strings are exactly
the ones older messages carry. `pack` / `parse` live in bot/services/buttons.py, which
dispatches over these kinds as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias


@dataclass(frozen=True)
class TrainingList:
    """The upcoming trainings, as /obuke shows them (a button under a KB answer)."""

    KIND: ClassVar[str] = "tr:l"


@dataclass(frozen=True)
class TrainingJoin:
    KIND: ClassVar[str] = "tr:j"
    training_id: int


@dataclass(frozen=True)
class TrainingWaitlist:
    KIND: ClassVar[str] = "tr:w"
    training_id: int


@dataclass(frozen=True)
class TrainingLeave:
    """Cancel one's registration (or leave the waiting list)."""

    KIND: ClassVar[str] = "tr:x"
    training_id: int


@dataclass(frozen=True)
class TrainingManage:
    """The admin's view of one training."""

    KIND: ClassVar[str] = "tr:s"
    training_id: int


@dataclass(frozen=True)
class TrainingCancel:
    """The admin asks to cancel a training (a confirmation follows)."""

    KIND: ClassVar[str] = "tr:c"
    training_id: int


@dataclass(frozen=True)
class TrainingCancelConfirmed:
    KIND: ClassVar[str] = "tr:cy"
    training_id: int


@dataclass(frozen=True)
class TrainingChangeTime:
    """Starts a dialogue: the new start time is the next message."""

    KIND: ClassVar[str] = "tr:t"
    training_id: int


@dataclass(frozen=True)
class TrainingChangePlace:
    """Starts a dialogue: the new link or address is the next message."""

    KIND: ClassVar[str] = "tr:p"
    training_id: int


@dataclass(frozen=True)
class TrainingMaterials:
    """Starts a dialogue: the trainer's materials link is the next message."""

    KIND: ClassVar[str] = "tr:mat"
    training_id: int


@dataclass(frozen=True)
class CheckIn:
    """"Prisutan/na sam" at the start of a training."""

    KIND: ClassVar[str] = "tr:in"
    training_id: int


@dataclass(frozen=True)
class AttendanceList:
    KIND: ClassVar[str] = "tr:a"
    training_id: int


@dataclass(frozen=True)
class AttendanceToggle:
    """The trainer marks participant `user_id` present / absent."""

    KIND: ClassVar[str] = "tr:at"
    training_id: int
    user_id: int


@dataclass(frozen=True)
class TrainingRating:
    """A participant's 1-5 rating after a training."""

    KIND: ClassVar[str] = "tr:f"
    training_id: int
    rating: int


@dataclass(frozen=True)
class TrainingComment:
    """Starts a dialogue: a comment after the rating is the next message."""

    KIND: ClassVar[str] = "tr:fc"
    training_id: int


TrainingToken: TypeAlias = (
    TrainingList
    | TrainingJoin
    | TrainingWaitlist
    | TrainingLeave
    | TrainingManage
    | TrainingCancel
    | TrainingCancelConfirmed
    | TrainingChangeTime
    | TrainingChangePlace
    | TrainingMaterials
    | CheckIn
    | AttendanceList
    | AttendanceToggle
    | TrainingRating
    | TrainingComment
)
TRAINING_KINDS: tuple[type[Any], ...] = (
    TrainingList,
    TrainingJoin,
    TrainingWaitlist,
    TrainingLeave,
    TrainingManage,
    TrainingCancel,
    TrainingCancelConfirmed,
    TrainingChangeTime,
    TrainingChangePlace,
    TrainingMaterials,
    CheckIn,
    AttendanceList,
    AttendanceToggle,
    TrainingRating,
    TrainingComment,
)
