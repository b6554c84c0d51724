"""Curating the knowledge base without a developer: the review queue of questions the bot could
not answer, edits of entries, and the KB revisions that carry them to every instance.

Where changes live: the YAML files in knowledge_base/content stay the reviewed base. An approved
change is a KB revision in the database (the whole entry as plain data); at load the newest
revision of each entry is applied over the base (`load_knowledge_base(overrides=...)`). Every
instance polls the highest revision id (`refresh`, every few seconds) and, when it grew, builds
the new KB and matcher off the event loop and swaps them into the answering service at once. A
change that fails `knowledge_base check` is refused with the check's messages.
`python -m bot revisions export DIR` writes the revisions as YAML for the repository.

Every change re-checks the curator's role against the database and is written to the audit
trail in the same unit of work. Channel-neutral: the console (bot/console/) only translates.

The package is split by responsibility: common, base (the KB in use), entries, review_queue,
trial.
"""

from __future__ import annotations

from bot.services.curation.common import (
    ENTRY_FIELDS,
    GROUP_SIMILARITY,
    GUESSES,
    QUEUE_DAYS,
    QUEUE_DECISIONS,
    SIGNAL_LABELS,
    CurationRefused,
    DraftItem,
    Guess,
    Outcome,
    Queue,
    RevisionItem,
    SignalItem,
    SuggestionGroup,
    Swap,
    Trial,
    base_entries,
    build_knowledge,
    decide,
    latest_per_entry,
    lines,
)
from bot.services.curation.entries import CurationEntries
from bot.services.curation.review_queue import CurationQueue
from bot.services.curation.trial import CurationTrial
from knowledge_base.revisions import entry_data

__all__ = [
    "ENTRY_FIELDS",
    "GROUP_SIMILARITY",
    "GUESSES",
    "QUEUE_DAYS",
    "QUEUE_DECISIONS",
    "SIGNAL_LABELS",
    "CurationRefused",
    "CurationService",
    "DraftItem",
    "Guess",
    "Outcome",
    "Queue",
    "RevisionItem",
    "SignalItem",
    "SuggestionGroup",
    "Swap",
    "Trial",
    "base_entries",
    "build_knowledge",
    "decide",
    "entry_data",
    "latest_per_entry",
    "lines",
]


class CurationService(CurationEntries, CurationQueue, CurationTrial):
    """Curating the knowledge base, for the console."""
