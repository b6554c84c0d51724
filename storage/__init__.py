"""Storage layer: the only code that knows SQL (SQLAlchemy 2 async, Alembic migrations).

Public API (import from ``storage``):

* ``Database.from_url(url=None, clock=utcnow)`` -> ``.uow()``, ``.upgrade()``, ``.ping()``,
  ``.dispose()``, ``.clock``
* ``UnitOfWork``: ``async with db.uow() as uow: ...; await uow.commit()`` with ``uow.users``,
  ``uow.questions``, ``uow.feedback``, ``uow.processed_updates``
* models ``User``, ``Question``, ``Feedback``, ``ProcessedUpdate``
* ``create_engine``, ``default_database_url``, ``validate_database_url``, ``upgrade_schema``
* ``Clock`` and ``utcnow`` (the machine's clock, the default): see ``storage.clock``
* errors ``StorageError``, ``StorageUnavailable``, ``InvalidDatabaseURL``
"""

from storage.clock import Clock, utcnow
from storage.db import (
    create_engine,
    current_revision,
    default_database_url,
    downgrade_schema,
    head_revision,
    upgrade_schema,
    validate_database_url,
    with_server_settings,
)
from storage.errors import (
    InvalidDatabaseURL,
    MigrationError,
    StorageError,
    StorageUnavailable,
    is_transient,
)
from storage.models import Feedback, ProcessedUpdate, Question, User
from storage.uow import Database, UnitOfWork

__all__ = [
    "Clock",
    "Database",
    "Feedback",
    "InvalidDatabaseURL",
    "MigrationError",
    "ProcessedUpdate",
    "Question",
    "StorageError",
    "StorageUnavailable",
    "UnitOfWork",
    "User",
    "create_engine",
    "current_revision",
    "default_database_url",
    "downgrade_schema",
    "head_revision",
    "is_transient",
    "upgrade_schema",
    "utcnow",
    "validate_database_url",
    "with_server_settings",
]
from storage import curation as _curation  # noqa: F401  (console links, KB revisions)
from storage import desk as _desk  # noqa: F401  (incidents, canned replies)
from storage import mentor as _mentor  # noqa: F401  (tables of the mentor queue)
from storage import operations as _operations  # noqa: F401  (audit trail, privacy records)
from storage import trainings as _trainings  # noqa: F401  (tables of the trainings feature)
