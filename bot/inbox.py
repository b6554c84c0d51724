"""The update inbox: nothing a clerk sends is lost when the process dies mid-way.

The dedup claim (a row per update_id) also keeps the update itself until its handling has
ended. Rows whose handling never ended (the process was killed, the machine went down) are
handled again: at start-up and every `scan_every` seconds, for claims older than
`replay_after`. A live instance stamps the claims it still holds anew every third of that
window, so another instance never takes an update that is only waiting for its turn.
An update that keeps failing is given up after `max_replays` tries, so one poisonous update
cannot loop for ever.

In long polling a whole getUpdates batch is claimed in one transaction before the next
getUpdates tells Telegram it arrived (`claim_batch`): a burst waiting in memory for its turn is
already kept when the process dies. Handling that ends is written down at once: by the writing
transaction of this process that commits next (a question being stored, a claim), which
carries the done marks of whatever ended meanwhile, or in one short transaction of its own:
right away when nothing else is going on, otherwise after at most `carry_wait` seconds of
waiting for one (under load one comes within milliseconds): after a kill only the replies of
the last few milliseconds may be sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

from bot.services.delivery import DeliveryService
from bot.services.errors import StorageUnavailable

log = logging.getLogger(__name__)

CHANNEL = "telegram"  # the default; Viber keeps its own inbox (channel "viber")
REPLAY = "inbox_replay"  # handler-data flag: this update is already claimed (a replay, or a
# webhook update claimed before Telegram got its 200)

Feed = Callable[[dict[str, Any]], Awaitable[None]]


def storable(value: Any) -> Any:
    """The update as it can be kept: PostgreSQL's JSON cannot hold NUL characters (which never
    carry meaning in a clerk's message; the answer service drops them too)."""
    if isinstance(value, dict):
        try:
            if "\\u0000" not in json.dumps(value):
                return value  # nothing to drop (the usual case): one pass in C, not a walk
        except (TypeError, ValueError):
            pass
    return _without_nul(value)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {key: _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


class Stage(enum.Enum):
    """Where an update this process holds stands (`UpdateInbox._held`)."""

    KEPT = "kept"  # claimed with its batch (or taken for replay), waiting for its turn here
    IN_FLIGHT = "in_flight"  # being handled by this process right now
    DONE = "done"  # ended, its mark not written yet
    MARKING = "marking"  # ended, its mark handed to a transaction that has not committed yet


class UpdateInbox:
    def __init__(
        self,
        ledger: DeliveryService,
        *,
        flush_every: float = 0.5,
        replay_after: float = 60.0,
        scan_every: float = 15.0,
        max_replays: int = 3,
        channel: str = CHANNEL,
        carry_wait: float = 0.05,
    ) -> None:
        self._ledger = ledger
        self._channel = channel
        self._flush_every = flush_every
        self._replay_after = replay_after
        self._scan_every = scan_every
        self._max_replays = max_replays
        # Every update this process holds, by stage; an update leaves once its mark is written
        # (or its handling stopped without an end). The replay scan never takes one of these.
        self._held: dict[int, Stage] = {}
        self._count: Counter[Stage] = Counter()
        self._ended = asyncio.Event()  # something finished: write it down now
        # Updates this process holds are stamped anew this often, so that another instance's
        # replay scan (claims older than `replay_after`) never takes one still waiting here.
        self._touch_every = max(0.5, replay_after / 3)
        self._task: asyncio.Task[None] | None = None
        # Claims waiting to be written together (see `claim`), and the task writing them.
        self._claims: list[tuple[int, dict[str, Any], asyncio.Future[bool]]] = []
        self._claimer: asyncio.Task[None] | None = None
        # Done marks wait at most this long for another writing transaction to carry them.
        self._carry_wait = carry_wait
        self._uncarry: Callable[[], None] | None = None

    async def claim(self, update_id: int, payload: dict[str, Any]) -> bool:
        """Claim an update and keep it; True only the first time. Raises StorageUnavailable
        when the database cannot take it (the caller lets the sender retry).

        Claims that arrive while another claim is being written go together into the next
        transaction (a webhook burst: one INSERT for many updates instead of one each); each
        caller still returns only once its update is committed."""
        turn: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._claims.append((int(update_id), payload, turn))
        if self._claimer is None or self._claimer.done():
            self._claimer = asyncio.create_task(self._write_claims(), name="inbox-claims")
        return await asyncio.shield(turn)

    async def _write_claims(self) -> None:
        """Write the waiting claims, many per transaction, until none wait."""
        while self._claims:
            waiting, self._claims = self._claims, []
            first: dict[int, asyncio.Future[bool]] = {}  # a repeated id: the first one claims
            payloads = []
            for update_id, payload, turn in waiting:
                if update_id in first:
                    continue
                first[update_id] = turn
                payloads.append(payload)
            try:
                claimed = await self.claim_batch(payloads)
            except BaseException as error:
                for _, _, turn in waiting:
                    if not turn.done():
                        turn.set_exception(
                            error if isinstance(error, Exception) else StorageUnavailable(
                                "the claim was interrupted"
                            )
                        )
                if not isinstance(error, Exception):
                    raise
                continue
            for update_id, _, turn in waiting:
                if not turn.done():
                    turn.set_result(update_id in claimed and first[update_id] is turn)

    async def claim_batch(self, payloads: list[dict[str, Any]]) -> set[int]:
        """Claim and keep a whole getUpdates batch in one transaction; returns the ids claimed
        now. Raises StorageUnavailable: the caller must then not confirm the batch to Telegram
        (the next getUpdates repeats it)."""
        claimed = await self._ledger.claim_many(
            self._channel, [storable(payload) for payload in payloads]
        )
        for update_id in claimed:
            self._move(update_id, Stage.KEPT)
        return claimed

    def _move(self, update_id: int, stage: Stage | None) -> None:
        """Put a held update at `stage`; None: it is no longer held here."""
        before = self._held.pop(update_id, None)
        if before is not None:
            self._count[before] -= 1
        if stage is not None:
            self._held[update_id] = stage
            self._count[stage] += 1

    def _at(self, stage: Stage) -> set[int]:
        return {update_id for update_id, at in self._held.items() if at is stage}

    def _move_all(self, ids: Iterable[int], source: Stage, target: Stage | None) -> None:
        """Move those of `ids` that are at `source` (another stage is left as it is)."""
        for update_id in ids:
            if self._held.get(update_id) is source:
                self._move(update_id, target)

    def take_kept(self, update_id: int) -> bool:
        """True once for an update this process claimed with its batch (its turn has come)."""
        if self._held.get(update_id) is Stage.KEPT:
            self._move(update_id, None)
            return True
        return False

    def started(self, update_id: int) -> None:
        """This process is handling the update: the replay scan leaves it alone, however long
        it takes (only a process that died leaves its updates to be replayed)."""
        self._move(update_id, Stage.IN_FLIGHT)

    def handling(self, update_id: int) -> bool:
        """Is this process handling the update (claimed here and not ended)?"""
        return self._held.get(update_id) is Stage.IN_FLIGHT

    def left_unfinished(self, update_id: int) -> None:
        """Handling stopped without an end (Telegram unreachable, shutdown): the scan may
        handle it again once it is old enough."""
        self._move_all([update_id], Stage.IN_FLIGHT, None)

    def finished(self, update_id: int) -> None:
        """Handling of this update ended (answered, refused or failed): written at next flush."""
        self._move(update_id, Stage.DONE)
        self._ended.set()

    def _take_done(self) -> set[int] | None:
        """The finished updates, handed to a committing transaction to write (`start`)."""
        if not self._count[Stage.DONE]:
            return None
        ids = self._at(Stage.DONE)
        self._move_all(ids, Stage.DONE, Stage.MARKING)
        return ids

    def _give_back(self, ids: set[int]) -> None:
        """That transaction did not commit: written by the next one, or the flush."""
        self._move_all(ids, Stage.MARKING, Stage.DONE)
        self._ended.set()

    def _written(self, ids: set[int]) -> None:
        """That transaction committed: the marks are in the database."""
        self._move_all(ids, Stage.MARKING, None)

    async def flush(self) -> bool:
        """Write down what ended; False when the database could not take it (kept for later)."""
        if not self._count[Stage.DONE]:
            return True
        # The ids stay held (DONE) until written: a replay scan running meanwhile must still
        # see them as ended here, or a failed write would let it answer them again.
        ids = self._at(Stage.DONE)
        try:
            await self._ledger.finish(self._channel, ids)
        except StorageUnavailable:
            log.warning("inbox.flush_failed pending=%s", len(ids))
            return False  # try again at the next flush
        self._move_all(ids, Stage.DONE, None)
        return True

    async def touch(self) -> None:
        """Still ours: the updates this process is handling or holding are stamped now."""
        held = {i for i, at in self._held.items() if at in (Stage.IN_FLIGHT, Stage.KEPT)}
        if not held:
            return
        await self._ledger.touch(self._channel, held)

    async def overdue(self) -> int:
        """Unfinished updates the replay scan should have taken by now (older than the replay
        window and one scan), other than those this process is still handling: more than
        none means replays are not happening (/healthz)."""
        return await self._ledger.count_unfinished(
            self._channel,
            older_than=timedelta(seconds=self._replay_after + self._scan_every),
            exclude=set(self._held),
        )

    async def replay(self, feed: Feed) -> int:
        """Handle again the updates whose handling never ended; returns how many."""
        # The ledger compares by the database's clock: the one that stamped the claims.
        payloads = await self._ledger.take_unfinished(
            self._channel,
            older_than=timedelta(seconds=self._replay_after),
            max_replays=self._max_replays,
            # still being handled here, or finished and not yet written down
            exclude=set(self._held),
        )
        # Ours now: stamped anew with the rest this process holds while they wait their turn
        # (a replay can wait long, e.g. on a chat lock the dead process left in Redis).
        taken = {int(p["update_id"]) for p in payloads if isinstance(p.get("update_id"), int)}
        for update_id in taken:
            self._move(update_id, Stage.KEPT)
        try:
            for payload in payloads:
                replayed = payload.get("update_id")
                log.warning("inbox.replay update_id=%s", replayed)
                try:
                    await feed(payload)
                except Exception:  # a broken update must not stop the others
                    log.exception("inbox.replay_failed update_id=%s", replayed)
                finally:
                    if isinstance(replayed, int):
                        self._move_all([replayed], Stage.KEPT, None)
        finally:
            self._move_all(taken, Stage.KEPT, None)
        return len(payloads)

    def start(self, feed: Feed) -> None:
        self._uncarry = self._ledger.carry_finished(
            self._channel, self._take_done, self._give_back, self._written
        )
        self._task = asyncio.create_task(self._run(feed), name="update-inbox")

    async def stop(self) -> None:
        """After in-flight updates have finished: write what is done, stop the loop."""
        if self._claimer is not None:
            with contextlib.suppress(Exception):
                await self._claimer
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._uncarry is not None:
            self._uncarry()
            self._uncarry = None
        with contextlib.suppress(StorageUnavailable):
            await self.flush()

    async def _run(self, feed: Feed) -> None:
        loop = asyncio.get_running_loop()
        next_scan = loop.time()  # at start-up first
        next_touch = loop.time() + self._touch_every
        replaying: asyncio.Task[None] | None = None
        carry_since: float | None = None  # since when done marks wait to be carried
        try:
            while True:
                if loop.time() >= next_touch:
                    next_touch = loop.time() + self._touch_every
                    try:
                        await self.touch()
                    except StorageUnavailable as exc:
                        log.warning("inbox.touch_unavailable error=%s", exc)
                if loop.time() >= next_scan and (replaying is None or replaying.done()):
                    # In the background: the loop goes on writing marks and stamping what it
                    # holds while a replayed update waits (a chat lock a dead process left).
                    next_scan = loop.time() + self._scan_every
                    replaying = asyncio.create_task(self._replay_logged(feed))
                busy = self._count[Stage.IN_FLIGHT] or self._count[Stage.KEPT]
                if self._count[Stage.DONE] and (self._ledger.writing() or busy):
                    # A writing transaction is open, or soon will be (other updates are being
                    # handled: their questions are stored next): its commit writes these
                    # marks too. With nothing else going on they are written at once.
                    carry_since = loop.time() if carry_since is None else carry_since
                    left = carry_since + self._carry_wait - loop.time()
                    if left > 0:
                        await self._ledger.wait_written(left)
                        continue
                carry_since = None
                if not await self.flush():  # the database is away: try again after a pause
                    await asyncio.sleep(self._flush_every)
                    continue
                self._ended.clear()
                if not self._count[Stage.DONE]:  # wait until something ends (or a scan is due)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._flush_every):
                            await self._ended.wait()
        finally:
            if replaying is not None and not replaying.done():
                replaying.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await replaying

    async def _replay_logged(self, feed: Feed) -> None:
        try:
            await self.replay(feed)
        except StorageUnavailable as exc:
            log.warning("inbox.replay_unavailable error=%s", exc)
