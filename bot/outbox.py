"""The dispatcher: sends what waits in the outbox, paced, retried, and marked exactly once.

State changes (a mentor's answer, a reminder falling due, a broadcast) write outbox rows in the
same transaction; this loop claims due rows, hands each to its channel's sender and records the
outcome. A 429 waits `retry_after`; 5xx and network errors back off; a 403 marks the user
inactive. Rows claimed by an instance that died become due again when their lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from bot.ratelimit import LocalRateLimiter, SendRateLimiter
from storage.clock import Clock
from storage.errors import StorageUnavailable
from storage.uow import Database

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# Seconds between tries to record a delivery while the database is unavailable (~15 s in all).
RECORD_RETRY_PAUSES = (0.1, 0.3, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Outgoing:
    """One outbox row, detached from the database session."""

    id: int
    channel: str
    chat_id: str
    user_id: int | None
    kind: str
    payload: dict[str, Any]
    attempts: int
    batch: str | None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class SendOutcome:
    status: Literal["sent", "retry", "blocked", "failed"]
    retry_after: float | None = None
    external_id: str | None = None
    error: str | None = None


class Sender(Protocol):
    async def send(self, message: Outgoing) -> SendOutcome: ...


def backoff(attempts: int) -> float:
    """Seconds before the next try: 2, 4, 8 ... capped at 5 minutes."""
    return float(min(300, 2 ** max(1, attempts)))


class OutboxDispatcher:
    """Claims due messages in batches and delivers them through the channel senders."""

    def __init__(
        self,
        database: Database,
        senders: Mapping[str, Sender],
        limiter: SendRateLimiter | None = None,
        *,
        batch_size: int = 60,
        lease_seconds: float = 120.0,
        idle_seconds: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        self._database = database
        self._senders = senders
        self._limiter = limiter or LocalRateLimiter()
        self._batch_size = batch_size
        self._lease = lease_seconds
        self._idle = idle_seconds
        self._clock = clock or database.clock  # the program's one clock
        self.on_delivered: list[Callable[[Outgoing, SendOutcome], Any]] = []
        self._leases: dict[int, datetime] = {}  # claimed rows -> until when we hold them
        # When run_forever last tried to claim or finished a message (monotonic; /healthz).
        self.last_activity: float | None = None

    async def run_once(self) -> int:
        """Deliver one batch of due messages; returns how many were handled."""
        claimed = await self._claim()
        await self._send_batch(claimed)
        return len(claimed)

    async def _claim(self) -> list[Outgoing]:
        async with self._database.uow() as uow:
            rows = await uow.outbox.claim_due(
                limit=self._batch_size,
                lease_seconds=self._lease,
                now=self._clock(),
                channels=list(self._senders),
            )
            claimed = [
                Outgoing(r.id, r.channel, r.chat_id, r.user_id, r.kind, dict(r.payload),
                         r.attempts, r.batch, r.expires_at)
                for r in rows
                if r.channel in self._senders
            ]
            leases = {r.id: r.lease_until for r in rows if r.lease_until is not None}
            await uow.commit()
        self._leases.update(leases)
        return claimed

    async def _still_ours(self, message: Outgoing, rest: list[Outgoing]) -> bool:
        """True while this instance's claim holds ``message``. A lease less than half left is
        extended first, for the message and the rest of its chat's queue (they wait their turn
        in the rate limiter): a queue draining slower than the lease is never claimed and sent
        by another instance too. False when another instance took the row meanwhile."""
        lease = self._leases.get(message.id)
        if lease is not None and self._clock() + timedelta(seconds=self._lease / 2) < lease:
            return True
        new_lease = self._clock() + timedelta(seconds=self._lease)
        claims = {m.id: m.attempts for m in rest if m.id in self._leases}
        claims[message.id] = message.attempts
        async with self._database.uow() as uow:
            renewed = await uow.outbox.renew_lease(claims, new_lease)
            await uow.commit()
        for message_id in claims:
            if message_id in renewed:
                self._leases[message_id] = new_lease
            else:
                self._leases.pop(message_id, None)
        if message.id not in renewed:
            log.warning("outbox: lease lost to another instance, not sending",
                        extra={"outbox_id": message.id})
            return False
        return True

    async def _send_batch(
        self, claimed: list[Outgoing], each_done: Callable[[], None] | None = None
    ) -> None:
        by_chat: dict[tuple[str, str], list[Outgoing]] = defaultdict(list)
        for message in claimed:
            by_chat[(message.channel, message.chat_id)].append(message)
        await asyncio.gather(
            *(self._deliver_in_order(queue, each_done) for queue in by_chat.values())
        )

    async def _deliver_in_order(
        self, queue: list[Outgoing], each_done: Callable[[], None] | None
    ) -> None:
        """Messages to one chat go one after another, in the order they were queued.

        Every message is counted done, whatever happens: one the dispatcher cannot finish (the
        database stayed away longer than the retries) stops only this chat's queue; its rows
        stay claimed and are taken again, in order, when the lease runs out."""
        for index, message in enumerate(queue):
            try:
                await self._deliver(message, queue[index + 1:])
            except Exception:
                log.exception(
                    "outbox: delivery could not be finished; the rest of the chat's queue "
                    "waits for its lease to run out",
                    extra={"outbox_id": message.id, "left": len(queue) - index - 1},
                )
                for left in queue[index:]:
                    self._leases.pop(left.id, None)
                    if each_done is not None:
                        each_done()
                return
            if each_done is not None:
                each_done()

    async def _deliver(self, message: Outgoing, rest: list[Outgoing] | None = None) -> None:
        try:
            await self._deliver_held(message, rest or [])
        finally:
            self._leases.pop(message.id, None)

    async def _deliver_held(self, message: Outgoing, rest: list[Outgoing]) -> None:
        if message.expires_at is not None and self._clock() >= message.expires_at:
            await self._expire(message)
            return
        await self._limiter.acquire(message.chat_id)
        if not await self._still_ours(message, rest):
            return
        try:
            outcome = await self._senders[message.channel].send(message)
        except Exception as error:  # a sender bug must not stop the loop or lose the row
            log.exception("outbox send crashed", extra={"outbox_id": message.id})
            outcome = SendOutcome("retry", error=repr(error))
        if outcome.status == "retry" and outcome.retry_after:
            self._limiter.pause(outcome.retry_after)
        await self._record(message, outcome)
        for callback in self.on_delivered:
            result = callback(message, outcome)
            if asyncio.iscoroutine(result):
                await result

    async def _expire(self, message: Outgoing) -> None:
        """Fell due while we were down and is no use now (the training already started)."""
        async with self._database.uow() as uow:
            await uow.outbox.mark_final(message.id, "expired", "due too late",
                                         claim=message.attempts)
            await uow.commit()
        log.warning(
            "outbox message expired before it could be sent",
            extra={"outbox_id": message.id, "kind": message.kind, "user_id": message.user_id},
        )

    async def _record(self, message: Outgoing, outcome: SendOutcome) -> None:
        """Store the outcome. A short database outage is waited out (the message went out;
        failing to mark it would send it again), a long one is raised to the caller."""
        for pause in (*RECORD_RETRY_PAUSES, None):
            try:
                await self._record_once(message, outcome)
                return
            except StorageUnavailable:
                if pause is None:
                    raise
                log.warning("outbox: database unavailable while recording a delivery, retrying",
                            extra={"outbox_id": message.id})
                await asyncio.sleep(pause)

    async def _record_once(self, message: Outgoing, outcome: SendOutcome) -> None:
        async with self._database.uow() as uow:
            claim = message.attempts  # only the claim holding the row may record its outcome
            if outcome.status == "sent":
                if not await uow.outbox.mark_sent(message.id, outcome.external_id, claim=claim):
                    log.warning("outbox: sent, but the row was no longer ours to mark",
                                extra={"outbox_id": message.id})
            elif outcome.status == "blocked":
                await uow.outbox.mark_final(message.id, "blocked", outcome.error, claim=claim)
                if message.user_id is not None:
                    user = await uow.users.get(message.user_id)
                    if user is not None:
                        user.active = False
            elif outcome.status == "failed" or message.attempts >= MAX_ATTEMPTS:
                await uow.outbox.mark_final(message.id, "failed", outcome.error, claim=claim)
            else:
                delay = outcome.retry_after or backoff(message.attempts)
                not_before = self._clock() + timedelta(seconds=delay)
                await uow.outbox.mark_retry(message.id, not_before, outcome.error or "retry",
                                            claim=claim)
            await uow.commit()
        log.info(
            "outbox delivery",
            extra={"outbox_id": message.id, "kind": message.kind, "status": outcome.status,
                   "user_id": message.user_id},
        )

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Keep delivering until `stop` is set. A new batch is claimed as soon as fewer than a
        batch's worth of messages are still waiting to go, so pacing never waits on the
        database, and a message held back (one a second to a chat: a broadcast's progress
        edits) never holds up the rest. On stop, claimed messages are finished (nothing is
        left half-sent); a database outage only pauses."""
        in_flight: set[asyncio.Task[None]] = set()
        waiting = 0  # claimed, not yet delivered
        progress = asyncio.Event()

        def one_done() -> None:
            nonlocal waiting
            waiting -= 1
            self.last_activity = time.monotonic()
            progress.set()

        def batch_done(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("outbox batch failed", exc_info=task.exception())

        try:
            while not stop.is_set():
                if waiting < self._batch_size:
                    self.last_activity = time.monotonic()
                    try:
                        # Shielded: a dispatcher cancelled mid-claim leaves a finished claim
                        # (its rows become due again when the lease runs out), never a
                        # transaction cut in half.
                        claimed = await asyncio.shield(self._claim())
                    except StorageUnavailable:
                        log.warning("outbox: database unavailable, retrying shortly")
                        claimed = []
                    if claimed:
                        waiting += len(claimed)
                        task = asyncio.create_task(self._send_batch(claimed, one_done))
                        in_flight.add(task)
                        task.add_done_callback(batch_done)
                        continue
                    # Nothing due: look again after a short pause (or when stopped).
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel
                    # arriving as the awaited event is set, and the loop would never stop.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._idle):
                            await stop.wait()
                    continue
                progress.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._idle):
                        await progress.wait()
        finally:
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    def stalled_for(self) -> float:
        """Seconds run_forever has neither tried to claim nor finished a message (0 before it
        started). A healthy loop tries at least every `idle_seconds`, or finishes a message."""
        if self.last_activity is None:
            return 0.0
        return max(0.0, time.monotonic() - self.last_activity)

    async def drain(self, max_rounds: int = 1000) -> int:
        """Deliver until nothing is due (tests and one-shot tools)."""
        total = 0
        for _ in range(max_rounds):
            handled = await self.run_once()
            if handled == 0:
                break
            total += handled
        return total
