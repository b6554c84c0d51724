"""What can go wrong below the services, as the channels see it.

Channels answer "try again later" (or 503) when the database is away; they learn of it through
this module, not by importing storage, so the rule "channels only translate" holds.
"""

from storage.errors import InvalidDatabaseURL, StorageError, StorageUnavailable

__all__ = ["InvalidDatabaseURL", "StorageError", "StorageUnavailable"]
