"""The mentor queue's, the desk's, the incidents', the broadcasts', the interests' and the
privacy buttons' tokens as typed values (`ms:`, `mo:`, `mc:`, `mh:`, `mq:`, `sab:`, `inc:`,
`bc:`, `int:`, `pd:`).

`pack` / `parse` live in bot/services/buttons.py, which dispatches over these kinds as well;
the packed strings are the ones older messages carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias


@dataclass(frozen=True)
class ComposeChoice:
    """"Pošalji mentoru" (`send`) or "Otkaži" (`cancel`) while composing a request."""

    KIND: ClassVar[str] = "ms"
    action: str  # send | cancel


@dataclass(frozen=True)
class OpenOwn:
    """A follower opens their own request after all."""

    KIND: ClassVar[str] = "mo"
    number: int


@dataclass(frozen=True)
class LeaveContact:
    """Leave a call-back contact for request `number`."""

    KIND: ClassVar[str] = "mc"
    number: int


@dataclass(frozen=True)
class HandOver:
    """Hand-over: 0 the choices, a user id forwards to that mentor, -1 ITE, -2 the Ministry."""

    KIND: ClassVar[str] = "mh"
    SIGNED: ClassVar[frozenset[str]] = frozenset({"target"})
    number: int
    target: int


@dataclass(frozen=True)
class QueueAction:
    """A button on a request's card: c claim, u release, z close, k to the KB, a attachments."""

    KIND: ClassVar[str] = "mq"
    action: str
    number: int


@dataclass(frozen=True)
class CloseIncident:
    """"Zatvori" under an incident (`action` z)."""

    KIND: ClassVar[str] = "inc"
    action: str
    number: int


@dataclass(frozen=True)
class BroadcastAction:
    """Under a broadcast's preview: go / no; under its progress message: stop."""

    KIND: ClassVar[str] = "bc"
    action: str
    broadcast_id: int


@dataclass(frozen=True)
class CannedChoice:
    """The desk's canned replies for request `number`: 0 lists them; `send` 1 sends the
    draft as it is."""

    KIND: ClassVar[str] = "sab"
    number: int
    reply: int
    send: int


@dataclass(frozen=True)
class ToggleInterest:
    """A service (or `*`, everything) in the clerk's interests for trainings."""

    KIND: ClassVar[str] = "int"
    service_id: str


@dataclass(frozen=True)
class DeletionChoice:
    """"Delete my data": `yes` with the unix time it was offered, or `no` with 0."""

    KIND: ClassVar[str] = "pd"
    choice: str  # yes | no
    stamp: int


FeatureToken: TypeAlias = (
    ComposeChoice | OpenOwn | LeaveContact | HandOver | QueueAction | CloseIncident
    | BroadcastAction | CannedChoice | ToggleInterest | DeletionChoice
)
FEATURE_KINDS: tuple[type[Any], ...] = (
    ComposeChoice,
    OpenOwn,
    LeaveContact,
    HandOver,
    QueueAction,
    CloseIncident,
    BroadcastAction,
    CannedChoice,
    ToggleInterest,
    DeletionChoice,
)
