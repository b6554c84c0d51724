"""The programme report per municipality and month (issue #16), service level: the seeded month
(questions, escalations, incidents, trainings with check-ins and feedback) on SQLite and
PostgreSQL, the month's bounds, the CSV and XLSX downloads (formula-safe), the admin check and
the dashboard's 👍/👎 per entry."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook

from bot.services.programme import (
    COLUMNS,
    ProgrammeService,
    chart_png,
    parse_month,
    row_values,
    to_csv,
    to_xlsx,
)
from bot.services.reports import ReportService
from bot.services.users import UserService
from storage.models import User
from storage.seed import SEED_EXPECTED, seed_programme_month
from storage.uow import Database
from tests.fakes.clock import BELGRADE, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def previous_month(clock: Clock) -> date:
    return (clock().astimezone(BELGRADE).date().replace(day=1) - timedelta(days=1)).replace(day=1)


def service(database: Database) -> ProgrammeService:
    return ProgrammeService(database, ReportService(database))


async def test_seeded_month_per_municipality(database: Database, clock: Clock) -> None:
    month = previous_month(clock)
    expected = await seed_programme_month(database, month)
    await seed_programme_month(database, month)  # a second run adds nothing
    report = await service(database).build(month)
    shown = {row.municipality: row_values(row) for row in [*report.rows, report.total]}
    assert list(shown) == ["Novi Sad", "Čačak", "Niš", "Kragujevac", "Ukupno"]
    for town, values in expected.items():
        for key, value in values.items():
            assert shown[town][key] == value, (town, key)

    # The month next to it holds none of it (bounds are the Belgrade month, half-open).
    after = (month + timedelta(days=32)).replace(day=1)
    empty = await service(database).build(after)
    assert empty.total.signed_up == 0 and empty.total.attended == 0
    assert empty.total.questions == 1  # the one stamped at the next month's first instant


async def test_downloads_are_formula_safe(database: Database, clock: Clock) -> None:
    month = previous_month(clock)
    await seed_programme_month(database, month)
    async with database.uow() as uow:  # a municipality name that would be a formula
        row = await uow.users.get_by_external("telegram", f"seed-{month:%Y%m}-1")
        assert row is not None
        row.municipality = '=HYPERLINK("http://evil.example","klik")'
        await uow.commit()
    report = await service(database).build(month)

    text = to_csv(report).decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["Mesec", month.strftime("%Y-%m")]
    assert lines[1] == [title for _key, title in COLUMNS]
    towns = [line[0] for line in lines[2:]]
    assert "'=HYPERLINK(\"http://evil.example\",\"klik\")" in towns
    assert not any(cell.startswith("=") for line in lines for cell in line)
    assert lines[-1][0] == "Ukupno" and lines[-1][2] == "25"

    book = load_workbook(io.BytesIO(to_xlsx(report)))
    sheet = book.active
    assert sheet is not None
    values = [[cell.value for cell in line] for line in sheet.iter_rows()]
    assert values[1] == [title for _key, title in COLUMNS]
    formulas = [c for line in sheet.iter_rows() for c in line if c.data_type == "f"]
    assert formulas == []
    assert any(v[0] == "'=HYPERLINK(\"http://evil.example\",\"klik\")" for v in values)
    total = values[-1]
    assert total[0] == "Ukupno" and total[2] == 25 and total[7] == 5  # numbers stay numbers

    png = chart_png(report)
    assert png is not None and png.startswith(b"\x89PNG")


async def test_only_admins_and_dashboard_votes(database: Database, clock: Clock) -> None:
    async with database.uow() as uow:
        await uow.users.add(User(channel="telegram", external_id="71", role="admin"))
        await uow.users.add(User(channel="telegram", external_id="72", role="mentor"))
        await uow.commit()
    users = UserService(database)
    admin = await users.get_or_register("telegram", "71")
    mentor = await users.get_or_register("telegram", "72")
    programme = service(database)
    assert await programme.allowed(admin) and not await programme.allowed(mentor)
    async with database.uow() as uow:  # revoked: the next read is refused
        row = await uow.users.get(admin.id)
        assert row is not None
        row.role = "clerk"
        await uow.commit()
    assert not await programme.allowed(admin)

    # 👍/👎 per entry over the last 30 days: seed the current clock's days too.
    month = previous_month(clock)
    await seed_programme_month(database, month)
    dashboard = await programme.dashboard()
    votes = {v.entry_id: (v.up, v.down) for v in dashboard.votes}
    in_window = clock() - timedelta(days=30)
    assert dashboard.report.periods[-1].start == in_window
    assert set(votes) <= {"ezup-access-request", "esanduce-what-is", "ezup-deadline",
                          "eplacanje-ips-qr"}
    assert all(up + down == 1 for up, down in votes.values())


def test_parse_month() -> None:
    today = date(2026, 12, 7)
    assert parse_month("2026-11", today) == date(2026, 11, 1)
    assert parse_month("2026-13", today) == date(2026, 12, 1)
    assert parse_month(None, today) == date(2026, 12, 1)
    assert parse_month("=1+1", today) == date(2026, 12, 1)


def test_expected_totals_add_up() -> None:
    towns = [v for k, v in SEED_EXPECTED.items() if k != "Ukupno"]
    for key in ("questions", "escalations", "signed_up", "attended", "feedback_count"):
        assert sum(int(v[key] or 0) for v in towns) == SEED_EXPECTED["Ukupno"][key]
