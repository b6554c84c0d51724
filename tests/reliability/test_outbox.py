"""The outbox: messages that must arrive do arrive, once, within Telegram's limits."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import event, text

from bot.channels.telegram_sender import TelegramSender
from bot.outbox import OutboxDispatcher, Outgoing, SendOutcome
from bot.ratelimit import LocalRateLimiter
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply
from storage.clock import utcnow
from storage.models import User
from storage.uow import Database
from tests.fakes.bot_api import BOT_TOKEN, FakeBotAPI


def _bot(api: FakeBotAPI) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.base_url))
    return Bot(BOT_TOKEN, session=session)


async def _clerk(database: Database, telegram_id: int) -> int:
    async with database.uow() as uow:
        user = await uow.users.add(User(channel="telegram", external_id=str(telegram_id)))
        await uow.commit()
        return user.id


async def _queue(database: Database, user_id: int, chat_id: int, text: str, key: str) -> bool:
    async with database.uow() as uow:
        row = await uow.outbox.add(
            channel="telegram", chat_id=chat_id, user_id=user_id, kind="notice",
            payload=reply_to_payload(Reply(text, ((Button("OK", "menu"),),))), dedupe_key=key,
        )
        await uow.commit()
        return row is not None


async def _statuses(database: Database) -> list[str]:
    async with database.uow() as uow:
        result = await uow.session.execute(text("SELECT status FROM outbox ORDER BY id"))
        return [row[0] for row in result.all()]


def _dispatcher(database: Database, bot: Bot, clock=utcnow) -> OutboxDispatcher:
    limiter = LocalRateLimiter(
        per_second=1000, per_chat_interval=0, per_group_interval=0,
        clock=lambda: clock().timestamp(),
    )
    return OutboxDispatcher(database, {"telegram": TelegramSender(bot)}, limiter, clock=clock)


async def test_queued_message_reaches_the_clerk_once_with_its_buttons(database: Database):
    user_id = await _clerk(database, 501)
    assert await _queue(database, user_id, 501, "Odgovor mentora", "answer:1")
    assert not await _queue(database, user_id, 501, "Odgovor mentora", "answer:1")  # same key
    async with FakeBotAPI() as api:
        bot = _bot(api)
        try:
            dispatcher = _dispatcher(database, bot)
            assert await dispatcher.drain() == 1
            assert await dispatcher.drain() == 0
        finally:
            await bot.session.close()
        sent = api.calls_of("sendMessage")
        assert [call.text for call in sent] == ["Odgovor mentora"]
        assert api.last_seen(501).button_labels == ["OK"]
    assert await _statuses(database) == ["sent"]


async def test_429_waits_retry_after_then_delivers(database: Database):
    user_id = await _clerk(database, 502)
    await _queue(database, user_id, 502, "Podsetnik", "r:1")
    now = [utcnow()]
    async with FakeBotAPI() as api:
        bot = _bot(api)
        try:
            dispatcher = _dispatcher(database, bot, clock=lambda: now[0])
            api.fail_next(1, status=429, retry_after=7, method="sendMessage")
            await dispatcher.run_once()
            assert await _statuses(database) == ["pending"]
            now[0] += timedelta(seconds=3)
            assert await dispatcher.run_once() == 0  # retry_after not over yet
            now[0] += timedelta(seconds=5)
            assert await dispatcher.run_once() == 1
        finally:
            await bot.session.close()
        assert [c.status for c in api.calls_of("sendMessage")] == [429, 200]
    assert await _statuses(database) == ["sent"]


async def test_a_long_message_whose_later_part_fails_is_not_sent_twice(database: Database):
    user_id = await _clerk(database, 514)
    long_text = "\n\n".join(f"Odeljak {n}: " + "reč " * 300 for n in range(5))  # > 4,096
    await _queue(database, user_id, 514, long_text, "long:1")
    now = [utcnow()]
    async with FakeBotAPI() as api:
        bot = _bot(api)
        try:
            dispatcher = _dispatcher(database, bot, clock=lambda: now[0])
            api.fail_next(1, status=429, retry_after=2, method="sendMessage", after=1)
            await dispatcher.run_once()
            assert await _statuses(database) == ["pending"]
            now[0] += timedelta(seconds=3)
            assert await dispatcher.run_once() == 1
        finally:
            await bot.session.close()
        delivered = [c.text for c in api.calls_of("sendMessage") if c.status == 200]
        assert len(delivered) == len(set(delivered)) >= 2  # every part once, none repeated
        assert delivered[0].startswith("Odeljak 0")
    assert await _statuses(database) == ["sent"]


async def test_403_marks_the_clerk_inactive_and_stops_trying(database: Database):
    user_id = await _clerk(database, 503)
    await _queue(database, user_id, 503, "Obaveštenje", "b:1")
    async with FakeBotAPI() as api:
        bot = _bot(api)
        try:
            api.fail_next(1, status=403, method="sendMessage")
            await _dispatcher(database, bot).drain()
        finally:
            await bot.session.close()
    assert await _statuses(database) == ["blocked"]
    async with database.uow() as uow:
        user = await uow.users.get(user_id)
        assert user is not None and user.active is False


async def test_server_error_is_retried_with_backoff(database: Database):
    user_id = await _clerk(database, 504)
    await _queue(database, user_id, 504, "Poruka", "x:1")
    now = [utcnow()]
    async with FakeBotAPI() as api:
        bot = _bot(api)
        try:
            api.fail_next(1, status=502, method="sendMessage")
            dispatcher = _dispatcher(database, bot, clock=lambda: now[0])
            await dispatcher.run_once()
            assert await _statuses(database) == ["pending"]
            now[0] += timedelta(minutes=1)
            await dispatcher.drain()
        finally:
            await bot.session.close()
    assert await _statuses(database) == ["sent"]


async def test_claim_left_by_a_dead_instance_is_taken_again_after_the_lease(database: Database):
    user_id = await _clerk(database, 505)
    await _queue(database, user_id, 505, "Poruka", "y:1")
    async with database.uow() as uow:  # an instance claims the row and dies before sending
        assert len(await uow.outbox.claim_due(limit=10, lease_seconds=60)) == 1
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.outbox.claim_due(limit=10) == []  # still leased
    later = utcnow() + timedelta(minutes=2)
    async with FakeBotAPI() as api:
        bot = _bot(api)
        try:
            assert await _dispatcher(database, bot, clock=lambda: later).drain() == 1
        finally:
            await bot.session.close()
        assert len(api.calls_of("sendMessage")) == 1


def test_rate_limiter_spaces_sends_globally_and_per_chat():
    def limiter() -> LocalRateLimiter:
        return LocalRateLimiter(per_second=30, per_chat_interval=1.0, per_group_interval=3.0,
                                clock=lambda: 100.0)

    across_chats = limiter()
    slots = [across_chats.try_reserve(str(chat)) for chat in range(60)]
    assert all(reserved for _, reserved in slots)
    assert slots[-1][0] - slots[0][0] == pytest.approx(59 / 30)  # 30 a second across chats

    one_chat = limiter()
    assert one_chat.try_reserve("7") == (100.0, True)
    assert one_chat.try_reserve("7") == (pytest.approx(101.0), False)  # one a second to a chat
    # ... and that chat waiting takes no slot from anybody else:
    assert one_chat.try_reserve("8") == (pytest.approx(100 + 1 / 30), True)

    group = limiter()
    assert group.try_reserve("-100200") == (100.0, True)
    assert group.try_reserve("-100200") == (pytest.approx(103.0), False)  # 20 a minute to a group


async def test_sends_held_back_by_the_one_second_window_go_in_order() -> None:
    """Messages the window holds back leave first come, first served: none is overtaken again
    and again until it outlives its lease (it would then be claimed and sent twice)."""
    limiter = LocalRateLimiter(per_second=40.9, per_chat_interval=0)  # window of 40 a second
    order: list[int] = []

    async def send(number: int) -> None:
        await limiter.acquire(str(number))
        order.append(number)

    await asyncio.gather(*(send(number) for number in range(120)))
    assert order == sorted(order)


async def test_a_chat_in_its_gap_does_not_hold_up_a_broadcast() -> None:
    """Progress edits to the admin's chat (one a second) go between broadcast messages to
    other chats without stalling them."""
    limiter = LocalRateLimiter(per_second=100, per_chat_interval=1.0)
    stamps: list[float] = []

    async def send(chat: str) -> None:
        await limiter.acquire(chat)
        stamps.append(time.monotonic())

    await send("admin")
    started = time.monotonic()
    await asyncio.gather(send("admin"), *(send(str(chat)) for chat in range(50)))
    others = sorted(stamps[1:])[:-1]  # everything but the admin's second message
    assert others[-1] - started < 0.8, "the broadcast waited for the admin's chat"
    assert max(stamps) - stamps[0] >= 0.99  # the admin still got only one a second


async def test_message_due_too_late_is_expired_not_sent(database: Database):
    user_id = await _clerk(database, 506)
    async with database.uow() as uow:
        await uow.outbox.add(
            channel="telegram", chat_id=506, user_id=user_id, kind="reminder",
            payload={"text": "Obuka počinje za 1 sat"}, expires_at=utcnow() - timedelta(minutes=5),
        )
        await uow.commit()
    async with FakeBotAPI() as api:
        bot = _bot(api)
        try:
            await _dispatcher(database, bot).drain()
        finally:
            await bot.session.close()
        assert api.calls_of("sendMessage") == []
    assert await _statuses(database) == ["expired"]


class _Blips:
    """Makes the real database fail the next ``count`` statements matching ``prefix`` with the
    driver's own OperationalError (as a dropped connection would), through an engine event."""

    def __init__(self, database: Database, prefix: str, contains: str = "") -> None:
        self._engine = database.engine.sync_engine
        self._prefix = prefix.lower()
        self._contains = contains.lower()
        self.left = 0
        self.raised = 0
        event.listen(self._engine, "before_cursor_execute", self._before)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        sql = statement.lower().lstrip()
        if self.left > 0 and sql.startswith(self._prefix) and self._contains in sql:
            self.left -= 1
            self.raised += 1
            raise self._engine.dialect.loaded_dbapi.OperationalError("simulated blip")

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._before)


async def _wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_two_short_database_blips_do_not_stop_the_outbox(database: Database):
    """Marking a sent row fails twice (the database blinked); the dispatcher goes on claiming
    and the messages queued afterwards still go out."""
    user_a = await _clerk(database, 511)
    user_b = await _clerk(database, 512)
    user_c = await _clerk(database, 513)
    for n in range(6):
        await _queue(database, user_a, 511, f"A{n}", f"blip:a:{n}")
    for n in range(6):
        await _queue(database, user_b, 512, f"B{n}", f"blip:b:{n}")
    blips = _Blips(database, "update outbox", contains="sent_at")
    async with FakeBotAPI() as api:
        bot = _bot(api)
        stop = asyncio.Event()
        limiter = LocalRateLimiter(per_second=1000, per_chat_interval=0, per_group_interval=0)
        dispatcher = OutboxDispatcher(
            database, {"telegram": TelegramSender(bot)}, limiter,
            batch_size=6, lease_seconds=600, idle_seconds=0.05,
        )
        try:
            # The first two marks fail (set before the start: arming the second blip after
            # the first send raced with a dispatcher that had already marked the rest).
            blips.left = 2
            runner = asyncio.create_task(dispatcher.run_forever(stop))
            assert await _wait_for(lambda: _sent_count(api, "A", 1))
            assert await _wait_for(lambda: _sent_count(api, "B", 1))
            for n in range(5):
                await _queue(database, user_c, 513, f"C{n}", f"blip:c:{n}")
            assert await _wait_for(lambda: _sent_count(api, "C", 5), timeout=15), (
                "the outbox stopped after two database blips"
            )
            assert blips.raised == 2
        finally:
            stop.set()
            await runner
            blips.close()
            await bot.session.close()
        sent = [call.text for call in api.calls_of("sendMessage")]
    assert sorted(set(sent)) == sorted(
        [f"A{n}" for n in range(6)] + [f"B{n}" for n in range(6)] + [f"C{n}" for n in range(5)]
    )
    assert len(sent) == len(set(sent)), "a blip made a message go out twice"


async def _sent_count_impl(api: FakeBotAPI, prefix: str) -> int:
    return sum(1 for call in api.calls_of("sendMessage") if (call.text or "").startswith(prefix))


def _sent_count(api: FakeBotAPI, prefix: str, at_least: int):
    async def check() -> bool:
        return await _sent_count_impl(api, prefix) >= at_least

    return check()


async def test_a_queue_slower_than_the_lease_is_sent_once(database: Database):
    """One chat's queue takes longer to drain (one a second) than the lease: the instance
    holding the rows keeps them, another instance never sends them too. (The lease is a few
    seconds, not one: on a loaded machine a one-second lease ran out before its renewal.)"""
    user_id = await _clerk(database, 521)
    for n in range(5):
        await _queue(database, user_id, 521, f"Q{n}", f"lease:{n}")
    async with FakeBotAPI() as api:
        bot = _bot(api)
        stop = asyncio.Event()

        def instance() -> OutboxDispatcher:
            limiter = LocalRateLimiter(per_second=1000, per_chat_interval=1.0,
                                       per_group_interval=0)
            return OutboxDispatcher(database, {"telegram": TelegramSender(bot)}, limiter,
                                    lease_seconds=3.0, idle_seconds=0.05)

        first, second = instance(), instance()
        try:
            one = asyncio.create_task(first.run_forever(stop))
            await asyncio.sleep(0.2)  # the first instance claims the whole queue
            two = asyncio.create_task(second.run_forever(stop))
            assert await _wait_for(lambda: _sent_count(api, "Q", 5), timeout=30)
            await asyncio.sleep(3.5)  # leases of anything still claimed run out
        finally:
            stop.set()
            await asyncio.gather(one, two)
            await bot.session.close()
        sent = [call.text for call in api.calls_of("sendMessage")]
    assert sent == [f"Q{n}" for n in range(5)]
    assert await _statuses(database) == ["sent"] * 5



class _InstantChannel:
    """Stands in for a channel whose API answers at once."""

    async def send(self, message: Outgoing) -> SendOutcome:
        return SendOutcome("sent")


@pytest.mark.parametrize("hops", range(6))
async def test_a_cancelled_dispatcher_always_stops(database: Database, hops: int) -> None:
    """A process shutting down cancels the dispatcher. The cancel may arrive in the instant a
    delivery wakes the loop; it must stop all the same, never carry on polling for good
    (``asyncio.wait_for`` on Python 3.11 swallowed exactly that cancel)."""
    user_id = await _clerk(database, 520 + hops)
    for n in range(3):
        await _queue(database, user_id, 520 + hops, f"S{n}", f"stop:{hops}:{n}")
    limiter = LocalRateLimiter(per_second=1000, per_chat_interval=0, per_group_interval=0)
    dispatcher = OutboxDispatcher(database, {"telegram": _InstantChannel()}, limiter,
                                  batch_size=1, idle_seconds=0.05)
    loop = asyncio.get_running_loop()
    runner = asyncio.create_task(dispatcher.run_forever(asyncio.Event()))

    def cancel_after(hops_left: int) -> None:
        if hops_left == 0:
            runner.cancel()
        else:
            loop.call_soon(cancel_after, hops_left - 1)

    dispatcher.on_delivered.append(lambda message, outcome: cancel_after(hops))
    done, _ = await asyncio.wait({runner}, timeout=3)
    assert done, "the dispatcher ignored the cancel and kept running"


def _all_sent(database: Database):
    async def check() -> bool:
        return set(await _statuses(database)) == {"sent"}

    return check


async def test_a_database_error_at_any_write_of_a_delivery_sends_it_once(database: Database):
    """Each write the dispatcher makes for one message (its claim, its "sent" mark, whatever
    else) fails in turn, at the driver; with a lease short enough to run out meanwhile, the
    message still goes out exactly once and ends marked sent."""
    from tests.reliability.test_write_faults import WriteFaults

    faults = WriteFaults()
    faults.attach(database.engines)
    user_id = await _clerk(database, 531)
    try:
        async with FakeBotAPI() as api:
            bot = _bot(api)
            limiter = LocalRateLimiter(per_second=1000, per_chat_interval=0, per_group_interval=0)
            dispatcher = OutboxDispatcher(
                database, {"telegram": TelegramSender(bot)}, limiter,
                # short enough to run out while a lost mark is retried, long enough that a
                # loaded machine's stall during one send does not (it failed once at 0.5 s)
                lease_seconds=1.0, idle_seconds=0.05,
            )
            stop = asyncio.Event()
            runner = asyncio.create_task(dispatcher.run_forever(stop))
            try:
                writes = -1
                k = 0
                injected: list[str] = []
                while writes < 0 or k <= writes:
                    text_k = f"W{k}"
                    # Armed before the message is queued (the dispatcher may claim it at once);
                    # write 1 is this test's own insert, so the dispatcher's k-th write is k + 1.
                    faults.arm(k + 1 if k else 0)
                    await _queue(database, user_id, 531, text_k, f"faults:{k}")
                    assert await _wait_for(lambda t=text_k: _sent_count(api, t, 1), timeout=15)
                    assert await _wait_for(_all_sent(database), timeout=15)
                    await asyncio.sleep(2.5)  # a lost "sent" mark would let the lease run out
                    if k == 0:
                        writes = faults.count - 1  # one delivery's writes, learnt fault-free
                        assert writes >= 2
                    injected += faults.failed
                    faults.arm(0)
                    k += 1
            finally:
                stop.set()
                await runner
                await bot.session.close()
            sent = [call.text for call in api.calls_of("sendMessage")]
    finally:
        faults.remove()
    assert len(injected) == writes, injected
    assert sorted(sent) == sorted(set(sent)), f"sent twice: {sent}"
    assert await _statuses(database) == ["sent"] * len(sent)
