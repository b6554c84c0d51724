"""The cost of writing a clerk's question on PostgreSQL, the two ways storage can do it.

- "transaction": an ordinary writing unit of work, as before issue #19's sixth round: BEGIN,
  the question's INSERT, the carried done mark's UPDATE, COMMIT (four round trips);
- "one statement": `Database.uow(one_write=True)`, as a question that writes nothing else is
  stored now: one autocommit INSERT carrying the done mark as a CTE (storage/carrying.py).

Each question carries one done mark (as under load, where the inbox's marks ride with the next
question). One connection, one question at a time, so the figures are the write's own: this
process's CPU, the server backend's CPU (read from /proc: PostgreSQL must run on this machine)
and wall time, per question, for a few interleaved rounds. Quieter than bench_telegram.py on a
shared machine: no HTTP, no matcher, no second process.

    python bench/bench_question_write.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench

It empties that database's public schema first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.faults import reset_postgres  # noqa: E402
from bot.services.delivery import DeliveryService  # noqa: E402
from storage.uow import Database  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(url: str, questions: int, rounds: int) -> None:
    await reset_postgres(url)
    database = Database.from_url(url, pool_size=1, max_overflow=0)
    await database.upgrade()
    delivery = DeliveryService(database)
    async with database.uow() as uow:
        user, _ = await uow.users.get_or_create("telegram", "1", display_name="Ana")
        await uow.commit()
    async with database.engine.connect() as connection:
        backend = int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    waiting: set[int] = set()

    def take() -> set[int] | None:
        taken = set(waiting)
        waiting.clear()
        return taken or None

    delivery.carry_finished("telegram", take, waiting.update, lambda _ids: None)
    next_id = 1
    print("| round | way | client CPU us/question | server CPU us/question | wall us/question |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for round_ in range(1, rounds + 1):
        for way, one_write in (("transaction", False), ("one statement", True)):
            ids = list(range(next_id, next_id + questions))
            next_id += questions
            await delivery.claim_many("telegram", [{"update_id": i} for i in ids])
            client, server, wall = time.process_time(), cpu_seconds(backend), time.perf_counter()
            for update_id in ids:
                waiting.add(update_id)  # ended: its mark rides with the next question
                async with database.uow(one_write=one_write) as uow:
                    await uow.questions.insert(
                        user_id=user.id, text="kako do ezupa", decision="answer"
                    )
                    await uow.commit()
            client = (time.process_time() - client) / questions * 1e6
            server = (cpu_seconds(backend) - server) / questions * 1e6
            wall = (time.perf_counter() - wall) / questions * 1e6
            print(f"| {round_} | {way} | {client:.0f} | {server:.0f} | {wall:.0f} |")
    await database.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="PostgreSQL (it is emptied)")
    parser.add_argument("--questions", type=int, default=1500, help="per round and way")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        parser.error("PostgreSQL only: on SQLite both ways are the same transaction")
    asyncio.run(run(args.database_url, args.questions, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
