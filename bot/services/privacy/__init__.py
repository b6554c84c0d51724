"""Privacy (Serbia's personal data protection law follows the GDPR): a notice at onboarding, an
export of everything held about a clerk, deletion after confirmation, and retention.

* Export (/moji_podaci): the user's row, every row that belongs to them (questions, feedback,
  mentor requests and their threads, training registrations, messages queued for them...) found
  from the schema, as one JSON file. Recorded in ``privacy_requests`` (counts only).
* Deletion (/obrisi_me, confirmed with a button): name, channel id (replaced by a tombstone),
  municipality and interests removed, the user inactive; question texts replaced by
  ``[obrisano]`` while decision, entry and time stay for statistics; open mentor requests closed
  with a note to the mentor (and the group card no longer shows the question); messages not yet
  sent to them cancelled. One unit of work, audited (``privacy.delete``).
* Retention: a daily job anonymises question texts, request threads (whatever their state,
  once quiet for the period) and sent messages older than RETENTION_MONTHS (default 12), by
  the injected clock, and clears the bytes of expired export files.
* Export by link (Viber, which fetches files from a URL instead of taking an upload): see
  ``PrivacyService.queue_export``.

The package is split by responsibility: common, base, export, deletion (with
mentor_requests), retention.
"""

from __future__ import annotations

from bot.services.privacy.common import (
    ACTION_CANCEL,
    ACTION_CONFIRM,
    CONFIRM_SECONDS,
    DELETED_CLOSE_REASON,
    EXPORT_FORMAT,
    EXPORT_KIND,
    EXPORT_LINK_SECONDS,
    OPEN_REQUEST_STATES,
    TOMBSTONE_PREFIX,
    DeletionResult,
    ExportFile,
    RegistrationCanceller,
    is_tombstone,
    privacy_notice,
)
from bot.services.privacy.deletion import PrivacyDeletion
from bot.services.privacy.retention import PrivacyRetention
from storage.operations import REDACTED

__all__ = [
    "ACTION_CANCEL",
    "ACTION_CONFIRM",
    "CONFIRM_SECONDS",
    "DELETED_CLOSE_REASON",
    "EXPORT_FORMAT",
    "EXPORT_KIND",
    "EXPORT_LINK_SECONDS",
    "OPEN_REQUEST_STATES",
    "REDACTED",
    "TOMBSTONE_PREFIX",
    "DeletionResult",
    "ExportFile",
    "PrivacyService",
    "RegistrationCanceller",
    "is_tombstone",
    "privacy_notice",
]


class PrivacyService(PrivacyDeletion, PrivacyRetention):
    """Privacy for every channel: notice, export, deletion and retention."""
