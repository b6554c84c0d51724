"""Delivery bookkeeping the channels need, kept out of the channels: the ledger of incoming
updates (claim, finish, stamp, replay, prune), replies queued for later, and the documents our
file links serve. Channels call this service; only it opens units of work for them, so
`handlers/`, `bot/telegram/` and `bot/channels/` never import storage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.i18n import tr
from bot.services.replies import Reply
from storage.uow import Carried, Database, UnitOfWork

DEFAULT_LANGUAGE = "sr-Latn"


@dataclass(frozen=True)
class QueuedReply:
    """A reply a channel could not send now, for the outbox to deliver (retried, paced)."""

    channel: str
    chat_id: str | int
    user_id: int | None
    payload: dict[str, Any]
    dedupe_key: str
    priority: int = 10


class DeliveryService:
    """The update ledger, queued replies and document links, over the database."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def now(self) -> datetime:
        """The business clock (the one that stamps the ledger's rows)."""
        return self._database.clock()

    # -- the update ledger (processed_updates) --------------------------------------------------

    async def claim(self, channel: str, update_id: int, payload: dict[str, Any] | None) -> bool:
        """Claim an incoming update (and keep it until it is finished); True only the first
        time. Raises StorageUnavailable when the database cannot take it."""
        async with self._database.uow(one_write=True) as uow:
            claimed = await uow.processed_updates.claim(channel, update_id, payload)
            await uow.commit()
        return claimed

    async def claim_many(self, channel: str, payloads: list[dict[str, Any]]) -> set[int]:
        """Claim a whole batch in one statement (committing by itself on PostgreSQL: no
        BEGIN and COMMIT round trips); returns the ids claimed now."""
        async with self._database.uow(one_write=True) as uow:
            claimed = await uow.processed_updates.claim_many(channel, payloads)
            await uow.commit()
        return claimed

    async def finish(self, channel: str, update_ids: Iterable[int]) -> None:
        """Handling of these updates ended: drop the kept copies (urgent: it frees the claims)."""
        async with self._database.uow(urgent=True, one_write=True) as uow:
            await uow.processed_updates.finish(channel, update_ids)
            await uow.commit()

    def carry_finished(
        self,
        channel: str,
        take: Callable[[], set[int] | None],
        give_back: Callable[[set[int]], None],
        written: Callable[[set[int]], None],
    ) -> Callable[[], None]:
        """Let the next writing transaction of this process write the updates `take` hands
        over as finished, just before it commits (`give_back` when it does not commit): under
        load a question's transaction carries the done marks of the ones answered before it,
        instead of a transaction of their own; `written` once committed. Returns the function
        that stops it."""

        async def write(uow: UnitOfWork, update_ids: set[int]) -> None:
            await uow.processed_updates.finish(channel, update_ids)

        def fold(uow: UnitOfWork, update_ids: set[int]) -> tuple[Any, dict[str, Any]]:
            return uow.processed_updates.finish_cte(channel, update_ids)

        return self._database.carry(Carried(take, write, give_back, written, fold))

    def writing(self) -> bool:
        """A writing transaction of this process is open (and will carry finished updates)."""
        return self._database.writing > 0

    async def wait_written(self, timeout: float) -> None:
        """Until a writing transaction of this process ends, or `timeout` seconds."""
        await self._database.wait_written(timeout)

    async def touch(self, channel: str, update_ids: Iterable[int]) -> None:
        """Still being handled here: their claims count from now."""
        async with self._database.uow(urgent=True, one_write=True) as uow:
            await uow.processed_updates.touch(channel, update_ids)
            await uow.commit()

    async def count_unfinished(
        self, channel: str, *, older_than: timedelta, exclude: Iterable[int] = ()
    ) -> int:
        """Kept updates claimed more than ``older_than`` ago whose handling never ended."""
        async with self._database.uow(read_only=True) as uow:
            return await uow.processed_updates.count_unfinished(
                channel, started_before=self.now() - older_than, exclude=exclude
            )

    async def take_unfinished(
        self,
        channel: str,
        *,
        older_than: timedelta,
        max_replays: int,
        exclude: Iterable[int] = (),
    ) -> list[dict[str, Any]]:
        """Updates a dead process left unfinished, each taken by one instance only."""
        async with self._database.uow() as uow:
            payloads = await uow.processed_updates.take_unfinished(
                channel,
                started_before=self.now() - older_than,
                max_replays=max_replays,
                exclude=exclude,
            )
            await uow.commit()
        return payloads

    async def prune(self, keep: timedelta) -> int:
        """Forget claims older than ``keep`` (redeliveries stop within a day); how many went."""
        async with self._database.uow() as uow:
            removed = await uow.processed_updates.prune(self.now() - keep)
            await uow.commit()
        return removed

    def kept_for_later(self, language: str) -> Reply:
        """What a clerk hears when the message arrived but cannot be kept or answered yet
        (the database is away): it is not lost, the answer comes once the system is back."""
        return Reply(
            tr(
                language,
                "Izvinite, trenutno imamo tehničku smetnju. Vaša poruka nije izgubljena: "
                "odgovoriću čim sistem ponovo proradi.",
            )
        )

    def storage_failed(self, language: str, *, tap: bool) -> Reply:
        """The one rule for every channel when the database fails mid-handling: a message is
        kept and answered once the database is back; a button tap is not replayed (its
        message may have changed meanwhile), so the clerk is asked to tap again."""
        if not tap:
            return self.kept_for_later(language)
        return Reply(
            tr(
                language,
                "Trenutno imamo tehničku smetnju i ne mogu da obradim poruku. "
                "Molim Vas, pokušajte ponovo za nekoliko trenutaka.",
            )
        )

    # -- replies and documents (outbox rows) ----------------------------------------------------

    async def queue_reply(self, reply: QueuedReply) -> None:
        """Put a reply in the outbox. Raises StorageUnavailable (the caller logs the loss)."""
        async with self._database.uow() as uow:
            await uow.outbox.add(
                channel=reply.channel,
                chat_id=reply.chat_id,
                user_id=reply.user_id,
                kind="reply",
                payload=reply.payload,
                dedupe_key=reply.dedupe_key,
                priority=reply.priority,
            )
            await uow.commit()

    async def document(self, channel: str, outbox_id: int) -> dict[str, Any] | None:
        """The document of a channel's outbox row while its link is valid (until the row's
        `expires_at`, if it has one), else None."""
        async with self._database.uow(read_only=True) as uow:
            row = await uow.outbox.get(outbox_id)
            if row is None or row.channel != channel:
                return None
            if row.expires_at is not None and self.now() >= row.expires_at:
                return None
            document = dict(row.payload).get("document")
        return dict(document) if isinstance(document, dict) else None

    async def language_of(self, user_id: int) -> str:
        """The receiver's language for a delivery (Serbian Latin when the user is gone)."""
        async with self._database.uow(read_only=True) as uow:
            user = await uow.users.get(user_id)
            return user.language if user is not None else DEFAULT_LANGUAGE
