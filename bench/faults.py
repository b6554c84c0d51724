"""Fault injection: a burst of clerks' questions while the bot is killed (SIGKILL) mid-way and
Telegram answers some sends with 429 and 502. Counts what a clerk would notice.

Real bot processes (`python -m bot run`), a real database, the tests' fake Bot API:

- SQLite, one instance, long polling: the burst is fetched by getUpdates; the bot is killed
  after a random number of answers and started again on the same database.
- PostgreSQL (``--database-url``), two instances in webhook mode sharing Redis, as behind a
  load balancer: the script plays Telegram, posting each update to an instance and, when that
  fails (connection refused, 5xx), to the other one after a pause, as Telegram retries. One
  instance is killed mid-burst and started again.

Reported per run: updates lost (a clerk who never got an answer), answers sent twice (a clerk
who got the same answer more than once), and the kill point. Target: 0 lost; duplicates only
for the answers in flight at the kill (sent, not yet written down: a few milliseconds' worth).

    python bench/faults.py                                   # SQLite, 500 clerks
    python bench/faults.py --database-url postgresql+asyncpg://postgres@127.0.0.1/test \\
        --instances 2 --redis-url redis://127.0.0.1:6379/9
    python bench/faults.py --count 100 --runs 1              # the quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.bot_api import Call, FakeBotAPI, message_update  # noqa: E402

QUESTION = "kako da dobijem pristup ezupu"
SECRET = "faults-secret"
WEBHOOK_PATH = "/telegram/webhook"
FIRST_CLERK = 810_000_000


@dataclass
class Outcome:
    scenario: str
    updates: int
    killed_after: int
    lost: int = 0
    duplicated: int = 0
    telegram_errors: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Instance:
    def __init__(self, name: str, env: dict[str, str], workdir: Path, port: int) -> None:
        self.name, self.env, self.workdir, self.port = name, env, workdir, port
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        log = (self.workdir / f"{self.name}.log").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=self.workdir,
            env={**self.env, "HTTP_PORT": str(self.port)}, stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        log.close()

    async def wait_healthy(self, http: aiohttp.ClientSession, timeout: float = 180) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(self.url + "/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.3)
        raise RuntimeError(f"{self.name} did not become healthy; see {self.workdir}")

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def answers(api: FakeBotAPI, chats: range) -> Counter[int]:
    wanted = set(chats)
    return Counter(c.chat_id for c in api.calls_of("sendMessage")
                   if c.ok and c.chat_id in wanted)


class TelegramTrouble:
    """Every `every`-th send gets a 429 (retry after 1 s) or a 502, alternately."""

    def __init__(self, api: FakeBotAPI, every: int) -> None:
        self.api, self.every, self.seen, self.injected = api, every, 0, 0
        api.listeners.append(self.listen)

    def listen(self, call: Call) -> None:
        if call.method != "sendMessage" or not self.every:
            return
        self.seen += 1
        if self.seen % self.every == 0:
            if self.injected % 2:
                self.api.fail_next(1, status=502, method="sendMessage")
            else:
                self.api.fail_next(1, status=429, retry_after=1, method="sendMessage")
            self.injected += 1


async def post_like_telegram(http: aiohttp.ClientSession, instances: list[Instance],
                             update: dict[str, object], first: int) -> None:
    """Deliver one webhook update; on failure try the next instance after a pause, as
    Telegram does, until one answers 200."""
    attempt = first
    while True:
        instance = instances[attempt % len(instances)]
        try:
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            async with http.post(instance.url + WEBHOOK_PATH, json=update, headers=headers,
                                 timeout=aiohttp.ClientTimeout(total=30)) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, OSError, TimeoutError):
            pass
        attempt += 1
        await asyncio.sleep(0.5)


async def run_once(args: argparse.Namespace, seed: int) -> Outcome:
    rng = random.Random(seed)
    count = args.count
    chats = range(FIRST_CLERK, FIRST_CLERK + count)
    kill_after = rng.randint(max(1, count // 10), max(2, count * 6 // 10))
    webhook = args.instances > 1
    scenario = (f"{'PostgreSQL' if args.database_url else 'SQLite'}, {args.instances} "
                f"instance{'s' if args.instances > 1 else ''}, "
                f"{'webhook' if webhook else 'long polling'}")
    outcome = Outcome(scenario, count, kill_after)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        workdir = Path(tmp)
        database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bot.sqlite3'}"
        if args.database_url:
            await reset_postgres(args.database_url)
        async with FakeBotAPI() as api, aiohttp.ClientSession() as http:
            trouble = TelegramTrouble(api, args.trouble_every)
            env = {
                **{k: v for k, v in os.environ.items()
                   if not k.startswith(("TELEGRAM_", "DATABASE_", "WEBHOOK_", "HTTP_", "REDIS_"))},
                "PYTHONPATH": str(ROOT),
                "TELEGRAM_BOT_TOKEN": api.token,
                "TELEGRAM_API_BASE": api.base_url,
                "DATABASE_URL": database_url,
                "HTTP_HOST": "127.0.0.1",
                "INBOX_REPLAY_AFTER_SECONDS": "5",
                "USER_MESSAGES_PER_MINUTE": "0",
                "LOG_LEVEL": "WARNING",
            }
            if webhook:
                env.update(WEBHOOK_URL=f"https://bot.example.rs{WEBHOOK_PATH}",
                           WEBHOOK_SECRET=SECRET)
            if args.redis_url:
                env["REDIS_URL"] = args.redis_url
            instances = [Instance(f"bot-{n}", env, workdir, free_port())
                         for n in range(args.instances)]
            for instance in instances:
                await instance.start()
            await asyncio.gather(*(i.wait_healthy(http) for i in instances))

            killed = asyncio.Event()

            def watch(call: Call) -> None:
                if (not killed.is_set() and call.method == "sendMessage" and call.ok
                        and sum(answers(api, chats).values()) >= kill_after):
                    instances[0].kill()
                    killed.set()

            api.listeners.append(watch)
            updates = [message_update(api.next_update_id(), chat, QUESTION) for chat in chats]
            if webhook:
                slots = asyncio.Semaphore(40)  # Telegram keeps up to 40 connections open

                async def deliver(n: int, update: dict[str, object]) -> None:
                    async with slots:
                        await post_like_telegram(http, instances, update, n)

                posting = asyncio.gather(*(deliver(n, u) for n, u in enumerate(updates)))
            else:
                for update in updates:
                    await api.queue_update(update)
                posting = asyncio.gather()
            await asyncio.wait_for(killed.wait(), args.timeout)
            assert instances[0].process is not None
            await instances[0].process.wait()
            await asyncio.sleep(1.0)
            await instances[0].start()
            await posting
            deadline = loop.time() + args.timeout
            while loop.time() < deadline and len(answers(api, chats)) < count:
                await asyncio.sleep(0.5)
            await asyncio.sleep(3.0)  # late repeats would show here
            got = answers(api, chats)
            outcome.lost = count - len(got)
            outcome.duplicated = sum(1 for n in got.values() if n > 1)
            outcome.telegram_errors = trouble.injected
            await asyncio.gather(*(i.stop() for i in instances))
            for instance in instances:
                log = (workdir / f"{instance.name}.log").read_text(errors="replace")
                replayed = log.count('"event": "inbox.replay"')
                outcome.notes.append(f"{instance.name} replayed {replayed} updates")
    outcome.seconds = loop.time() - started
    return outcome


async def reset_postgres(database_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| run | updates | killed after answers | Telegram 429/502 | lost | sent twice | s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        lines.append(f"| {o.scenario} | {o.updates} | {o.killed_after} | {o.telegram_errors} "
                     f"| **{o.lost}** | {o.duplicated} | {o.seconds:.0f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default SQLite)")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--trouble-every", type=int, default=40,
                        help="every N-th sendMessage gets a 429 or 502 (0: none)")
    parser.add_argument("--timeout", type=float, default=240.0)
    args = parser.parse_args(argv)
    if args.instances > 1 and not args.database_url:
        parser.error("several instances need --database-url (PostgreSQL)")
    return args


async def main_async(args: argparse.Namespace) -> int:
    outcomes = [await run_once(args, args.seed + n) for n in range(args.runs)]
    print(table(outcomes))
    for outcome in outcomes:
        print(f"{outcome.scenario}: " + "; ".join(outcome.notes))
    return 1 if any(o.lost for o in outcomes) else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
