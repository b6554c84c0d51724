"""Privacy's vocabulary: the retention setting, the notice shown at onboarding, the export file
and deletion result values, and the tokens and constants the parts share."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from bot.i18n import tr
from bot.services.buttons import pack
from bot.services.buttons_mentoring import DeletionChoice
from bot.services.users import UserProfile

EXPORT_FORMAT = "euprava-bot/licni-podaci"
CONFIRM_SECONDS = 15 * 60  # a deletion button older than this asks again
TOMBSTONE_PREFIX = "deleted-"
DELETED_CLOSE_REASON = "deleted"
OPEN_REQUEST_STATES = ("new", "claimed", "answered")
EXPORT_KIND = "privacy_export"  # the outbox row that carries an export file (see queue_export)
EXPORT_LINK_SECONDS = 15 * 60  # how long such a row may be sent and its file fetched

# The confirmation buttons' tokens (bot/services/buttons_mentoring.py: `DeletionChoice`);
# the yes-button adds the moment it was offered: `pd:yes:<unix time>`.
ACTION_CONFIRM = "pd:yes"
ACTION_CANCEL = pack(DeletionChoice("no", 0))


def privacy_notice(language: str, months: int = 12) -> str:
    """The short notice shown at onboarding (/start)."""
    return tr(
        language,
        "🔒 Privatnost: čuvamo Vaše ime iz aplikacije, opštinu i pitanja koja postavite, samo da "
        "bismo Vam odgovorili i poboljšali odgovore. Tekst pitanja se posle {months} meseci "
        "briše, a ostaje samo anonimna statistika. Komanda /moji_podaci šalje Vam sve što o Vama "
        "čuvamo, a /obrisi_me briše Vaše podatke.",
        months=months,
    )


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content: bytes
    caption: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DeletionResult:
    user_id: int
    done: bool  # False when there was nothing (left) to delete
    counts: dict[str, int] = field(default_factory=dict)
    closed_requests: tuple[int, ...] = ()


class RegistrationCanceller(Protocol):
    """The trainings service: cancelling a registration moves the waiting list up."""

    def cancel_registration(self, user: UserProfile, training_id: int) -> Awaitable[object]: ...


def is_tombstone(external_id: str | None) -> bool:
    return bool(external_id) and str(external_id).startswith(TOMBSTONE_PREFIX)

