"""One clock for the whole program (storage/clock.py).

* A guard: no module of the program reads the machine's clock for business time except
  storage/clock.py. Rows stamped by one clock and compared with another decide wrongly what is
  due (issue #11: outbox rows stamped by the machine's clock were not due for the services'
  clock). Monotonic clocks (time.monotonic, perf_counter, loop.time()) measure timeouts and
  pacing and are not flagged.
* The storage side: a Database on a given clock stamps rows by it, and what is due by that clock
  is found without any clock passed by hand.
"""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.clock import utcnow
from storage.models import OutboxMessage
from storage.uow import Database

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "storage", "knowledge_base")
CLOCK_MODULE = "storage/clock.py"

# (file, line text) pairs allowed to read the machine's clock; keep it short and say why.
ALLOWED: dict[str, str] = {
    # `python -m knowledge_base check` is a curator's tool, not the bot: entries not reviewed for
    # six months are counted from the person's today (tests pass --today)
    "knowledge_base/cli.py": "today = args.today or dt.date.today()  # a curator's today: the "
    "review age counts from it",
}

_NOW_METHODS = {"now", "utcnow", "today"}  # datetime.now(), date.today(), dt.datetime.utcnow()
_TIME_FUNCTIONS = {"time", "time_ns", "localtime", "gmtime", "ctime", "asctime", "strftime"}
_SQL_NOW_FUNCTIONS = {"now", "current_timestamp", "current_date", "current_time",
                      "localtimestamp", "localtime", "sysdate", "clock_timestamp",
                      "statement_timestamp", "transaction_timestamp"}
_SQL_NOW_TEXT = re.compile(
    r"\bnow\s*\(\s*\)|current_timestamp|current_date\b|localtimestamp|'now'", re.IGNORECASE
)


def _dotted(node: ast.AST) -> str:
    """`a.b.c` for Name/Attribute chains, "" otherwise."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _reads_the_clock(parts: list[str]) -> bool:
    """`datetime.now`, `dt.date.today`, `time.time`, `func.now` and the like."""
    if len(parts) < 2:
        return False
    owner, name = parts[-2], parts[-1]
    return (
        (name in _NOW_METHODS and owner in {"datetime", "date"})
        or (name in _TIME_FUNCTIONS and parts[:-1] == ["time"])
        or (name.lower() in _SQL_NOW_FUNCTIONS and owner == "func")
    )


def clock_reads(source: str) -> list[tuple[int, str]]:
    """(line, what) for every read of the machine's clock in `source`."""
    found: list[tuple[int, str]] = []
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _reads_the_clock(_dotted(node).split(".")):
            found.append((node.lineno, _dotted(node)))
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            for alias in node.names:
                if alias.name in _TIME_FUNCTIONS:
                    found.append((node.lineno, f"from time import {alias.name}"))
        elif isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] == "utcnow":
            # utcnow is the machine's clock: code takes "now" from an injected clock instead
            # (passing `utcnow` itself as the default clock is fine; calling it is not).
            found.append((node.lineno, f"{_dotted(node.func)}()"))
        elif isinstance(node, ast.keyword) and node.arg in {"default", "onupdate"}:
            if _dotted(node.value).split(".")[-1] == "utcnow":
                found.append((node.value.lineno, f"{node.arg}=utcnow (the machine's clock)"))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and _SQL_NOW_TEXT.search(node.value)
        ):
            found.append((node.lineno, f"SQL clock in {node.value[:40]!r}"))
    return found


def program_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_only_the_clock_module_reads_the_machines_clock() -> None:
    offences = []
    for path in program_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative == CLOCK_MODULE:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for line, what in clock_reads(path.read_text(encoding="utf-8")):
            if ALLOWED.get(relative) == lines[line - 1].strip():
                continue
            offences.append(f"{relative}:{line}: {what}")
    assert not offences, (
        "business time must come from the injected clock (storage/clock.py; services use "
        "database.clock, repositories self.now()):\n" + "\n".join(offences)
    )


def test_the_files_are_found() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in program_files()}
    expected = {CLOCK_MODULE, "bot/outbox.py", "storage/repositories.py", "handlers/__init__.py"}
    assert expected <= files


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime, UTC\nx = datetime.now(UTC)",
        "import datetime as dt\nx = dt.datetime.now(dt.UTC)",
        "import datetime\nx = datetime.datetime.utcnow()",
        "from datetime import date\nx = date.today()",
        "import time\nx = time.time()",
        "import time\nclock = time.time",
        "from time import time",
        "from storage.clock import utcnow\nx = utcnow()",
        "import storage.clock\nx = storage.clock.utcnow()",
        "from sqlalchemy import func\nc = Column(DateTime, server_default=func.now())",
        "c = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)",
        "q = text(\"SELECT * FROM outbox WHERE not_before <= CURRENT_TIMESTAMP\")",
        "q = text(\"DELETE FROM t WHERE at < datetime('now')\")",
    ],
)
def test_the_guard_catches(source: str) -> None:
    assert clock_reads(source), source


@pytest.mark.parametrize(
    "source",
    [
        "import time\nstarted = time.monotonic()\nelapsed = time.perf_counter()",
        "def f(clock=utcnow):\n    return clock()",
        "now = self.clock()\nwhen = database.clock() + delta",
        "x = datetime.fromtimestamp(record.created, UTC)",
        "def f():\n    '''Compare with now() of the clock.'''",
    ],
)
def test_the_guard_lets_through(source: str) -> None:
    assert clock_reads(source) == [], source


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_storage_stamps_rows_by_the_database_clock(database_url: str) -> None:
    """The defect of issue #11 on its own: rows stamped without an explicit time get the
    database's clock, so the dispatcher's question "what is due now?" (asked on the same
    clock) finds them, whatever the machine's clock says."""
    for offset in (timedelta(days=-800), timedelta(days=1100)):
        clock = FixedClock((utcnow() + offset).replace(microsecond=0))
        database = Database.from_url(database_url, clock=clock)
        try:
            async with database.uow() as uow:
                user, _ = await uow.users.get_or_create("telegram", f"7{offset.days}")
                row = await uow.outbox.add(
                    channel="telegram", chat_id=user.external_id, kind="text",
                    payload={"text": "x"}, user_id=user.id,
                )
                assert row is not None
                await uow.commit()
            assert user.created_at == clock.now and user.updated_at == clock.now
            assert row.not_before == clock.now and row.created_at == clock.now
            async with database.uow() as uow:
                claimed = await uow.outbox.claim_due(limit=10)  # "now" = the database's clock
                assert [c.id for c in claimed] == [row.id]
                assert claimed[0].lease_until == clock.now + timedelta(seconds=60)
                await uow.outbox.mark_sent(row.id)
                await uow.commit()
            async with database.uow(read_only=True) as uow:
                sent = await uow.session.get(OutboxMessage, row.id)
                assert sent is not None and sent.sent_at == clock.now
        finally:
            await database.dispose()


def test_the_default_clock_is_the_machines_utc_clock() -> None:
    before = datetime.now(UTC)
    now = utcnow()
    assert now.tzinfo is UTC and before <= now <= datetime.now(UTC)
