"""Benchmark: a broadcast to 10,000 clerks at Telegram's limit, killed halfway and resumed.

A fake Bot API server (the tests' fake, made strict) answers 429 to any message above 30 in
the last second (sliding window, every send/edit method counted). The dispatcher runs in a
separate process (`--worker`): the real BroadcastService, OutboxDispatcher, TelegramSender
(aiogram) and rate limiter over a real database. Halfway through, the worker is killed with
SIGKILL; a second worker starts, waits for the dead one's leases to run out, and finishes.

Reported: achieved rate (target >= 27/s, i.e. 90 % of 30/s), number of 429s (target 0),
duplicates and losses after the kill (target 0 and 0). At-least-once delivery has one honest
window: a message Telegram accepted just before the kill, whose row was not yet marked 'sent';
the table shows how many were in flight at the kill and how many of them were repeated.

    python bench/bench_broadcast.py                       # 10,000 clerks, SQLite in a temp dir
    BENCH_BROADCAST_COUNT=1000 python bench/bench_broadcast.py
    python bench/bench_broadcast.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
    REDIS_URL=redis://127.0.0.1:6379/15 python bench/bench_broadcast.py   # shared limiter
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.bot_api import Call, FakeBotAPI  # noqa: E402

FIRST_CLERK = 700_000_000
ADMIN_ID = 699_999_999
TEXT = "Bench: <b>nova verzija eZUP-a</b> od ponedeljka"
MARK = "nova verzija eZUP-a"
LEASE_SECONDS = 15.0


class StrictBotAPI(FakeBotAPI):
    """The fake Bot API, but like Telegram: more than `limit` messages in any 1 s -> 429."""

    def __init__(self, limit: int = 30, window: float = 1.0) -> None:
        super().__init__()
        self.limit = limit
        self.window = window
        self.recent: deque[float] = deque()
        self.too_many = 0
        self.keep_chats = False

    async def __aenter__(self) -> StrictBotAPI:
        await self.start()
        return self

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"].lower()
        if method.startswith(("send", "edit")):
            now = time.monotonic()
            while self.recent and self.recent[0] <= now - self.window:
                self.recent.popleft()
            if len(self.recent) >= self.limit:
                self.too_many += 1
                await self._read_params(request)
                self.calls.append(Call(request.match_info["method"], {}, "", 429))
                return web.json_response(
                    {"ok": False, "error_code": 429, "description": "Too Many Requests: retry "
                     "after 1", "parameters": {"retry_after": 1}}, status=429)
            self.recent.append(now)
        return await super()._handle(request)


# --------------------------------------------------------------------------- worker process


async def worker(database_url: str, api_base: str, token: str, broadcast_id: int,
                 rate: float, loops: int) -> None:
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    from bot.channels.telegram_sender import TelegramSender
    from bot.outbox import OutboxDispatcher
    from bot.ratelimit import LocalRateLimiter, SendRateLimiter
    from bot.services.broadcasts import BroadcastService
    from storage.uow import Database

    database = Database.from_url(database_url)
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_base)))
    limiter: SendRateLimiter
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        from bot.redis_ratelimit import RedisRateLimiter

        limiter = RedisRateLimiter.from_url(redis_url, per_second=rate,
                                            prefix=f"bench:{os.getppid()}")
    else:
        limiter = LocalRateLimiter(per_second=rate)
    # With --loops > 1 several dispatcher loops share the limiter, as instances would: while
    # one records its batch and claims the next, another is sending.
    dispatchers = [
        OutboxDispatcher(database, {"telegram": TelegramSender(bot)}, limiter,
                         batch_size=60, lease_seconds=LEASE_SECONDS)
        for _ in range(loops)
    ]
    service = BroadcastService(database)
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            await service.tick()
            if await service.state(broadcast_id) != "running":
                async with database.uow(read_only=True) as uow:
                    if await uow.outbox.pending_count() == 0:
                        stop.set()
                        return
            await asyncio.sleep(2.0)

    try:
        await asyncio.gather(*(d.run_forever(stop) for d in dispatchers), ticker())
    finally:
        await bot.session.close()
        await database.dispose()


# --------------------------------------------------------------------------- orchestration


async def prepare(database_url: str, count: int) -> int:
    from sqlalchemy import insert

    from bot.services.audience import Audience
    from bot.services.broadcasts import BroadcastService
    from bot.services.users import UserService
    from storage.models import User
    from storage.uow import Database

    database = Database.from_url(database_url)
    try:
        await database.upgrade()
        async with database.uow() as uow:
            await uow.users.add(User(channel="telegram", external_id=str(ADMIN_ID), role="admin",
                                     onboarded=True))
            await uow.session.execute(
                insert(User),
                [{"channel": "telegram", "external_id": str(FIRST_CLERK + i), "role": "clerk",
                  "language": "sr-Latn", "active": True, "onboarded": True,
                  "municipality": "Novi Sad"} for i in range(count)],
            )
            await uow.commit()
        admin = await UserService(database).get_or_register("telegram", str(ADMIN_ID))
        service = BroadcastService(database)
        broadcast_id, _ = await service.draft(admin, TEXT, Audience())
        assert broadcast_id is not None
        await service.start(admin, broadcast_id, admin_channel="telegram",
                            admin_chat_id=str(ADMIN_ID))
        return broadcast_id
    finally:
        await database.dispose()


async def sending_rows(database_url: str, broadcast_id: int) -> set[int]:
    from sqlalchemy import select

    from storage.models import OutboxMessage
    from storage.uow import Database

    database = Database.from_url(database_url)
    try:
        async with database.uow(read_only=True) as uow:
            rows = await uow.session.scalars(select(OutboxMessage.chat_id).where(
                OutboxMessage.batch == f"broadcast:{broadcast_id}",
                OutboxMessage.status == "sending"))
            return {int(chat) for chat in rows}
    finally:
        await database.dispose()


def spawn(args: argparse.Namespace, api: FakeBotAPI, broadcast_id: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", "--database-url", args.database_url,
         "--api-base", api.base_url, "--token", api.token, "--broadcast-id", str(broadcast_id),
         "--rate", str(args.rate), "--loops", str(args.loops)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def rate_of(stamps: list[float]) -> float:
    if len(stamps) < 2:
        return 0.0
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


async def orchestrate(args: argparse.Namespace) -> int:
    count = args.count
    if args.reset:
        from bench.faults import reset_postgres

        await reset_postgres(args.database_url)
    broadcast_id = await prepare(args.database_url, count)
    async with StrictBotAPI(limit=30) as api:
        phase: dict[str, list[float]] = {"before kill": [], "after restart": []}
        current = ["before kill"]
        too_many_at = {"before kill": 0, "after restart": 0}

        def listen(call: Call) -> None:
            if call.method == "sendMessage" and call.ok and MARK in call.text:
                phase[current[0]].append(call.at)

        api.listeners.append(listen)
        started = time.monotonic()
        first = spawn(args, api, broadcast_id)
        # With --instances N, N-1 more workers run beside it all along (as instances behind a
        # load balancer would); only the first is killed.
        others = [spawn(args, api, broadcast_id) for _ in range(args.instances - 1)]
        half = count // 2
        await api.wait_until(lambda: len(phase["before kill"]) >= half, timeout=count / 10 + 120,
                             what="half of the broadcast")
        first.send_signal(signal.SIGKILL)
        first.wait()
        await asyncio.sleep(0.5)  # requests already on the wire reach the server
        too_many_at["before kill"] = api.too_many
        delivered_before = {c.chat_id for c in api.calls_of("sendMessage")
                            if c.ok and MARK in c.text}
        in_flight = await sending_rows(args.database_url, broadcast_id) & {
            c for c in delivered_before if c is not None}
        current[0] = "after restart"
        restart = time.monotonic()
        second = spawn(args, api, broadcast_id)
        loop = asyncio.get_running_loop()
        codes = [await loop.run_in_executor(None, worker.wait) for worker in (second, *others)]
        code = max(codes, key=abs)
        total_time = time.monotonic() - started
        too_many_at["after restart"] = api.too_many - too_many_at["before kill"]

        got = Counter(c.chat_id for c in api.calls_of("sendMessage") if c.ok and MARK in c.text)
        expected = {FIRST_CLERK + i for i in range(count)} | {ADMIN_ID}
        duplicates = sum(n - 1 for n in got.values() if n > 1)
        repeated_in_flight = sum(1 for chat, n in got.items() if n > 1 and chat in in_flight)
        lost = len(expected - set(got))
        report = [m.text for m in api.seen_by(ADMIN_ID) if m.text.startswith("✅")]
        resumed_after = (phase["after restart"][0] - restart) if phase["after restart"] else 0.0

    both = phase["before kill"] + phase["after restart"]
    shared = " via Redis" if os.environ.get("REDIS_URL") else ""
    print(f"\n## Broadcast to {count:,} clerks (+ the admin), limit 30 msg/s, limiter "
          f"{args.rate:g}/s{shared}, {args.instances} instance(s) of {args.loops} dispatcher "
          f"loop(s), "
          f"{'PostgreSQL' if 'postgresql' in args.database_url else 'SQLite'}\n")
    print("| measure | value | target |")
    print("| --- | --- | --- |")
    print(f"| achieved rate before the kill | {rate_of(phase['before kill']):.1f} msg/s | >= 27 |")
    print(f"| achieved rate after the restart | {rate_of(phase['after restart']):.1f} msg/s "
          f"| >= 27 |")
    print(f"| 429 answers | {api.too_many} ({too_many_at['before kill']} before, "
          f"{too_many_at['after restart']} after) | 0 |")
    print(f"| messages delivered | {len(got):,} of {len(expected):,} | all |")
    print(f"| lost (never delivered) | {lost} | 0 |")
    print(f"| duplicates | {duplicates} | 0 |")
    print(f"| in flight at the SIGKILL (sent, not yet marked) | {len(in_flight)} | - |")
    print(f"| of those repeated after the restart | {repeated_in_flight} | - |")
    print(f"| restart to first message (lease {LEASE_SECONDS:g} s) | {resumed_after:.1f} s | - |")
    print(f"| wall time incl. restart | {total_time:.0f} s ({len(both)} messages) | - |")
    print(f"| final report to the admin | {'yes' if len(report) == 1 else len(report)} | 1 |")
    if code != 0:
        print(f"\nsecond worker exited with {code}")
    ok = api.too_many == 0 and lost == 0 and rate_of(phase["before kill"]) >= 27
    return 0 if ok and code == 0 else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--count", type=int,
                        default=int(os.environ.get("BENCH_BROADCAST_COUNT", "10000")))
    parser.add_argument("--rate", type=float,
                        default=float(os.environ.get("BENCH_BROADCAST_RATE", "28.5")))
    parser.add_argument("--loops", type=int, default=1, help="dispatcher loops per worker")
    parser.add_argument("--reset", action="store_true",
                        help="empty the PostgreSQL database's public schema first")
    parser.add_argument("--instances", type=int, default=1,
                        help="workers running at once (share REDIS_URL's rate limit)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--api-base", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--broadcast-id", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        asyncio.run(worker(args.database_url, args.api_base, args.token, args.broadcast_id,
                           args.rate, args.loops))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        if not args.database_url:
            args.database_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        return asyncio.run(orchestrate(args))


if __name__ == "__main__":
    sys.exit(main())
