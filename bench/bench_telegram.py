"""Benchmark of the Telegram channel, end to end.

The bot runs as a real process (`python -m bot run`) against the fake Bot API server of the
tests, which lives in this process together with the load generator, so one clock measures
"update handed to Telegram -> sendMessage received from the bot". 500 simulated clerks ask
realistic questions (the KB's alternatives and the eval set, Latin and Cyrillic, some out of
scope) through the full pipeline: dedup claim, user load, matcher, question stored, reply sent.

For each mode (long polling, webhook), after a warm-up in which every clerk writes once (so
they are registered, as in a deployment that has been running; not measured):
- sustained: a steady RATE updates/s for DURATION seconds; p50/p99/max latency;
- burst: BURST updates at once; throughput until the last reply arrived.

    python bench/bench_telegram.py                      # SQLite in a temp dir
    python bench/bench_telegram.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
Target: p99 under 100 ms at 50 updates/s sustained.

The anchor: in the same run, with the same fake API and the same load, a minimal aiogram bot
(bench/minimal_bot.py: a fixed reply to every text, no database) goes first in each mode, and
our CPU per update and burst throughput are printed as a ratio to it. The machine may be shared
and noisy; the ratio is what to compare between runs (`--no-anchor` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.bot_api import Call, FakeBotAPI, message_update  # noqa: E402

SECRET = "bench-secret"
FIRST_CLERK = 900_000_000


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    mode: str
    phase: str
    bot: str = "ours"
    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    cpu: float = float("nan")  # CPU seconds the bot process used during the run

    @property
    def received(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.received / max(self.finished - self.started, 1e-9)

    @property
    def cpu_per_update(self) -> float:
        return self.cpu / max(self.received, 1)

    def row(self) -> str:
        ms = sorted(x * 1000 for x in self.latencies)
        p50 = statistics.median(ms) if ms else float("nan")
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else float("nan")
        worst = ms[-1] if ms else float("nan")
        elapsed = max(self.finished - self.started, 1e-9)
        cpu_ms = self.cpu_per_update * 1000
        return (
            f"| {self.bot} | {self.mode} | {self.phase} | {self.sent} | {self.received} | "
            f"{self.received / elapsed:.1f} | {p50:.1f} | {p99:.1f} | {worst:.1f} | "
            f"{cpu_ms:.1f} |"
        )


def questions() -> list[str]:
    """What clerks write: KB alternatives, eval questions, and some things we cannot answer."""
    found: list[str] = []
    for path in sorted((ROOT / "knowledge_base" / "content").glob("*.yaml")):
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, list):
            for entry in data:
                if isinstance(entry, dict):
                    found.extend(str(a) for a in entry.get("alternatives", []) or [])
    for path in sorted((ROOT / "knowledge_base" / "eval").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                found.append(json.loads(line)["question"])
    found.extend(["koliko je plata referenta", "gde je parking", "dobar dan", "hvala"])
    return found or ["kako da dobijem pristup ezupu"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.api = FakeBotAPI()
        self.pending: dict[int, deque[float]] = defaultdict(deque)
        self.run: Run | None = None
        self.questions = questions()
        self.rng = random.Random(42)
        self.http: aiohttp.ClientSession | None = None
        self.rates = [float(rate) for rate in str(args.rate).split(",") if rate.strip()]

    def _on_call(self, call: Call) -> None:
        if call.method != "sendMessage" or not call.ok or call.chat_id is None:
            return
        queue = self.pending.get(call.chat_id)
        if queue and self.run is not None:
            self.run.latencies.append(time.perf_counter() - queue.popleft())
            self.run.finished = time.perf_counter()

    async def start_bot(
        self, mode: str, workdir: Path, bot: str = "ours"
    ) -> tuple[asyncio.subprocess.Process, int]:
        port = free_port()
        database_url = self.args.database_url or (
            f"sqlite+aiosqlite:///{workdir / f'bench-{mode}.sqlite3'}"
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WEBHOOK_"))},
            "PYTHONPATH": str(ROOT),
            "TELEGRAM_BOT_TOKEN": self.api.token,
            "TELEGRAM_API_BASE": self.api.base_url,
            "DATABASE_URL": database_url,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(port),
            "LOG_LEVEL": self.args.log_level,
        }
        if mode == "webhook":
            env["WEBHOOK_URL"] = "https://bot.example.rs/telegram/webhook"
            env["WEBHOOK_SECRET"] = SECRET
        log = (workdir / f"{bot}-{mode}.log").open("wb")
        # BENCH_PROFILE=DIR: the bot runs under cProfile and leaves DIR/bot-MODE.prof.
        profile_dir = os.environ.get("BENCH_PROFILE")
        profiler = ["-m", "cProfile", "-o", f"{profile_dir}/bot-{mode}.prof"] if profile_dir else []
        program = ["-m", "bot", "run"]
        if bot != "ours":  # the anchor, never profiled
            program, profiler = [str(ROOT / "bench" / "minimal_bot.py")], []
        process = await asyncio.create_subprocess_exec(
            sys.executable, *profiler, *program,
            cwd=workdir, env=env, stdout=log, stderr=log,
        )
        ready_method = "setWebhook" if mode == "webhook" else "getUpdates"
        await self.api.wait_until(
            lambda: bool(self.api.calls_of(ready_method)) or process.returncode is not None,
            timeout=120,
            what=f"bot ready ({mode})",
        )
        if process.returncode is not None:
            raise SystemExit(f"bot exited early, see {workdir / f'{bot}-{mode}.log'}")
        if mode == "webhook":  # wait until its HTTP server answers
            assert self.http is not None
            for _ in range(200):
                try:
                    async with self.http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status in (200, 503):
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
        return process, port

    async def send(self, mode: str, port: int, clerk: int) -> None:
        update = message_update(
            self.api.next_update_id(), clerk, self.rng.choice(self.questions), language_code=None
        )
        self.pending[clerk].append(time.perf_counter())
        if self.run is not None:
            self.run.sent += 1
        if mode == "webhook":
            assert self.http is not None
            async with self.http.post(
                f"http://127.0.0.1:{port}/telegram/webhook",
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            ) as response:
                await response.read()
        else:
            await self.api.queue_update(update)

    async def drain(self, run: Run, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while run.received < run.sent and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)

    async def sustained(self, mode: str, port: int, rate: float, bot: str = "ours") -> Run:
        run = self.run = Run(mode, f"sustained {rate:g}/s", bot)
        clerks = [FIRST_CLERK + i for i in range(self.args.clerks)]
        total = int(rate * self.args.duration)
        run.started = start = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.send(mode, port, clerks[i % len(clerks)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        await self.drain(run, 30)
        run.finished = max(run.finished, start + total / rate)
        return run

    async def burst(self, mode: str, port: int, bot: str = "ours") -> Run:
        run = self.run = Run(mode, f"burst {self.args.burst}", bot)
        clerks = [FIRST_CLERK + i for i in range(self.args.clerks)]
        run.started = time.perf_counter()
        await asyncio.gather(
            *(self.send(mode, port, clerks[i % len(clerks)]) for i in range(self.args.burst))
        )
        await self.drain(run, 120)
        return run

    async def main(self) -> list[Run]:
        await self.api.start()
        self.api.listeners.append(self._on_call)
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        runs: list[Run] = []
        try:
            with tempfile.TemporaryDirectory(prefix="bench-telegram-") as tmp_dir:
                tmp = self.args.log_dir or tmp_dir
                Path(tmp).mkdir(parents=True, exist_ok=True)
                bots = ["minimal", "ours"] if self.args.anchor else ["ours"]
                for mode, bot in [(m, b) for m in self.args.modes.split(",") for b in bots]:
                    self.pending.clear()
                    process, port = await self.start_bot(mode, Path(tmp), bot)
                    try:
                        # Warm-up, not measured: every clerk writes once (registered, as in a
                        # deployment that has been running), caches and pools are filled.
                        warm = self.run = Run(mode, "warm-up", bot)
                        for start in range(0, self.args.clerks, 25):
                            await asyncio.gather(
                                *(
                                    self.send(mode, port, FIRST_CLERK + i)
                                    for i in range(start, min(start + 25, self.args.clerks))
                                )
                            )
                            await self.drain(warm, 30)
                        for rate in self.rates:
                            cpu_before = cpu_seconds(process.pid)
                            run = await self.sustained(mode, port, rate, bot)
                            run.cpu = cpu_seconds(process.pid) - cpu_before
                            runs.append(run)
                            await asyncio.sleep(1)  # let the clerks' per-minute windows breathe
                        if self.args.burst:
                            cpu_before = cpu_seconds(process.pid)
                            run = await self.burst(mode, port, bot)
                            run.cpu = cpu_seconds(process.pid) - cpu_before
                            runs.append(run)
                    finally:
                        process.send_signal(signal.SIGTERM)
                        await asyncio.wait_for(process.wait(), 60)
                    self.api.calls.clear()
        finally:
            await self.http.close()
            await self.api.stop()
        return runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clerks", type=int, default=500)
    parser.add_argument(
        "--rate", default="25,50", help="sustained updates per second (comma-separated list)"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of sustained load")
    parser.add_argument("--burst", type=int, default=500, help="updates sent at once (0: skip)")
    parser.add_argument("--modes", default="polling,webhook")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-dir", help="keep the bot's logs (and SQLite files) here")
    parser.add_argument(
        "--anchor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the minimal aiogram bot first in each mode and print ratios to it",
    )
    return parser.parse_args(argv)


def print_ratios(runs: list[Run]) -> None:
    """Our bot against the minimal aiogram bot of the same run, load by load."""
    anchors = {(r.mode, r.phase): r for r in runs if r.bot == "minimal"}
    rows = [
        (r, anchors[(r.mode, r.phase)])
        for r in runs
        if r.bot == "ours" and (r.mode, r.phase) in anchors
    ]
    if not rows:
        return
    print("\n#### Ratio to the minimal aiogram bot (same run, same load)\n")
    print(
        "| mode | load | CPU ms/update ours / minimal | ratio "
        "| replies/s ours / minimal | ratio |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for ours, minimal in rows:
        cpu_ratio = ours.cpu_per_update / max(minimal.cpu_per_update, 1e-9)
        rate_ratio = ours.throughput / max(minimal.throughput, 1e-9)
        print(
            f"| {ours.mode} | {ours.phase} | {ours.cpu_per_update * 1000:.1f} / "
            f"{minimal.cpu_per_update * 1000:.1f} | {cpu_ratio:.1f}x | "
            f"{ours.throughput:.1f} / {minimal.throughput:.1f} | {rate_ratio:.2f} |"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = asyncio.run(Bench(args).main())
    backend = (args.database_url or "sqlite").split(":", 1)[0]
    print(f"\n### Telegram channel: {args.clerks} clerks, database {backend}\n")
    print(
        "| bot | mode | load | sent | replied | replies/s | p50 ms | p99 ms | max ms "
        "| bot CPU ms/update |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for run in runs:
        print(run.row())
    print_ratios(runs)
    target = [r for r in runs if r.phase == "sustained 50/s" and r.bot == "ours"]
    if target:
        ok = all(
            r.received == r.sent
            and sorted(r.latencies)[min(len(r.latencies) - 1, int(len(r.latencies) * 0.99))] < 0.1
            for r in target
        )
        print(f"\nTarget p99 < 100 ms at 50 updates/s sustained: {'met' if ok else 'NOT met'}")
    print(f"Machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
