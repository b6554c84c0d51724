"""The programme report for the partners (ITE, the Ministry, NALED, UNDP), per municipality and
month, and the console dashboard's data.

`ProgrammeService.build(month)` returns plain data (`ProgrammeReport`): for each municipality
clerks active, questions, the share the bot answered, escalations, the median time to the first
mentor answer, trainings signed up for and attended, the attendees' feedback and the incidents
that touched the municipality's clerks. Channels render it (the console page with a chart) or
download it (`to_csv`, `to_xlsx`: every text cell is formula-safe, as `bot/csv_safe.py`).

Definitions (Europe/Belgrade month):
- clerks active: distinct users who asked a question, escalated, or attended a training;
- questions / bot share / escalations / first answer: as /statistika (`bot/services/reports.py`);
  a question counts for its clerk's municipality, a mentor request for the one it was filed in;
- signed up / attended: registrations (not the waiting list) for trainings that started in the
  month, and those with a check-in or the trainer's mark; feedback: the attendees' 1-5;
- incidents: incidents open at some moment of the month that touched a clerk of the
  municipality (the total counts each incident once).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot import csv_safe
from bot.services.reports import AnswerFigures, Report, ReportService
from bot.services.users import UserProfile
from storage.clock import Clock
from storage.mentor import MentorRepository
from storage.programme import EntryVotes, ProgrammeRepository
from storage.seed import seed_programme_month
from storage.uow import Database

__all__ = [
    "COLUMNS",
    "Dashboard",
    "ProgrammeReport",
    "ProgrammeRow",
    "ProgrammeService",
    "month_bounds",
    "parse_month",
    "to_csv",
    "to_xlsx",
]

NO_MUNICIPALITY = "—"


def month_bounds(month: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, in `tz`."""
    first = month.replace(day=1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return (datetime.combine(first, time(), tz), datetime.combine(following, time(), tz))


def parse_month(text: str | None, today: date) -> date:
    """`2026-11` -> 2026-11-01; anything else (or nothing) -> the current month."""
    if text:
        year, _, number = text.partition("-")
        if year.isdigit() and number.isdigit() and len(year) == 4 and 1 <= int(number) <= 12:
            return date(int(year), int(number), 1)
    return today.replace(day=1)


@dataclass
class ProgrammeRow(AnswerFigures):
    municipality: str
    clerks_active: int = 0
    questions: int = 0
    answered_by_bot: int = 0
    escalations: int = 0
    first_answer_minutes: list[float] = field(default_factory=list)
    signed_up: int = 0
    attended: int = 0
    ratings: list[int] = field(default_factory=list)
    incidents: int = 0


# (key, column title) in the order of the page and the downloads.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("municipality", "Opština"),
    ("clerks_active", "Aktivni službenici"),
    ("questions", "Pitanja"),
    ("bot_share", "Odgovorio bot (%)"),
    ("escalations", "Mentorima"),
    ("first_answer_median_minutes", "Do prvog odgovora (min, medijana)"),
    ("signed_up", "Prijavljeno na obuke"),
    ("attended", "Prisustvovalo"),
    ("feedback_count", "Ocena obuka (broj)"),
    ("feedback_average", "Ocena obuka (prosek)"),
    ("incidents", "Incidenti"),
)


def row_values(row: ProgrammeRow) -> dict[str, Any]:
    """A row as the downloads and the page show it (None where there is nothing to show)."""
    share = row.bot_share
    median = row.median_minutes
    average = row.average_rating
    return {
        "municipality": row.municipality,
        "clerks_active": row.clerks_active,
        "questions": row.questions,
        "bot_share": None if share is None else round(share * 100, 1),
        "escalations": row.escalations,
        "first_answer_median_minutes": None if median is None else round(median, 1),
        "signed_up": row.signed_up,
        "attended": row.attended,
        "feedback_count": len(row.ratings),
        "feedback_average": None if average is None else round(average, 2),
        "incidents": row.incidents,
    }


@dataclass
class ProgrammeReport:
    month: date
    start: datetime
    end: datetime
    generated_at: datetime
    rows: list[ProgrammeRow]
    total: ProgrammeRow


@dataclass
class Dashboard:
    """The console's dashboard: /statistika's report plus 👍/👎 per entry (last 30 days)."""

    report: Report
    votes: list[EntryVotes]


class ProgrammeService:
    def __init__(
        self,
        database: Database,
        reports: ReportService,
        *,
        clock: Clock | None = None,
        timezone: str = "Europe/Belgrade",
    ) -> None:
        self._database = database
        self._reports = reports
        self._clock = clock or database.clock
        self._tz = ZoneInfo(timezone)

    def today(self) -> date:
        return self._clock().astimezone(self._tz).date()

    async def seed_demo(self) -> date:
        """`python -m bot seed-demo` (and `make demo SEED=1`): last month's sample activity
        (four municipalities, questions, escalations, trainings with check-ins and feedback),
        so the dashboard and the report have something to show. Idempotent."""
        month = (self.today().replace(day=1) - timedelta(days=1)).replace(day=1)
        await seed_programme_month(self._database, month)
        return month

    async def allowed(self, actor: UserProfile) -> bool:
        """Admins only, checked against the database at every read."""
        async with self._database.uow(read_only=True) as uow:
            row = await uow.users.get(actor.id)
            return row is not None and row.active and row.role == "admin"

    async def dashboard(self) -> Dashboard:
        report = await self._reports.build()
        start = report.periods[-1].start
        async with self._database.uow(read_only=True) as uow:
            votes = await uow.repository(ProgrammeRepository).entry_votes(
                start, report.generated_at)
        return Dashboard(report, votes)

    async def build(self, month: date) -> ProgrammeReport:
        start, end = month_bounds(month, self._tz)
        async with self._database.uow(read_only=True) as uow:
            mentor = uow.repository(MentorRepository)
            programme = uow.repository(ProgrammeRepository)
            questions = await mentor.questions_between(start, end)
            requests = await mentor.created_between(start, end)
            towns = await mentor.municipalities_of({q.user_id for q in questions})
            sign_ups = await programme.sign_ups(start, end)
            incidents = await programme.incidents_open_between(start, end)
            touched = await programme.incident_municipalities(incidents)
        rows: dict[str, ProgrammeRow] = {}
        active: dict[str, set[int]] = {}

        def row(town: str | None) -> ProgrammeRow:
            key = town or NO_MUNICIPALITY
            return rows.setdefault(key, ProgrammeRow(key))

        def seen(town: str | None, user_id: int) -> None:
            active.setdefault(town or NO_MUNICIPALITY, set()).add(user_id)

        for question in questions:
            town = towns.get(question.user_id)
            line = row(town)
            line.questions += 1
            line.answered_by_bot += ReportService.bot_answered(question)
            seen(town, question.user_id)
        for request in requests:
            line = row(request.municipality)
            line.escalations += 1
            if request.first_answer_at is not None:
                line.first_answer_minutes.append(
                    (request.first_answer_at - request.created_at).total_seconds() / 60)
            seen(request.municipality, request.user_id)
        for sign_up in sign_ups:
            line = row(sign_up.municipality)
            line.signed_up += 1
            if sign_up.attended:
                line.attended += 1
                seen(sign_up.municipality, sign_up.user_id)
                if sign_up.rating is not None:
                    line.ratings.append(sign_up.rating)
        for _incident, town in touched:
            row(town).incidents += 1
        total = ProgrammeRow("Ukupno")
        for key, line in rows.items():
            line.clerks_active = len(active.get(key, set()))
            total.questions += line.questions
            total.answered_by_bot += line.answered_by_bot
            total.escalations += line.escalations
            total.first_answer_minutes += line.first_answer_minutes
            total.signed_up += line.signed_up
            total.attended += line.attended
            total.ratings += line.ratings
        total.clerks_active = len(set().union(*active.values())) if active else 0
        total.incidents = len(incidents)
        ordered = sorted(rows.values(), key=lambda r: (r.municipality == NO_MUNICIPALITY,
                                                       -r.questions, r.municipality))
        return ProgrammeReport(month.replace(day=1), start, end, self._clock(), ordered, total)


def _table(report: ProgrammeReport) -> list[list[Any]]:
    lines = [[title for _key, title in COLUMNS]]
    for line in [*report.rows, report.total]:
        values = row_values(line)
        lines.append([values[key] for key, _title in COLUMNS])
    return lines


def to_csv(report: ProgrammeReport) -> bytes:
    """UTF-8 with BOM (Excel opens Serbian letters right), comma-separated, formula-safe."""
    out = io.StringIO()
    writer = csv_safe.writer(out)
    writer.writerow(["Mesec", report.month.strftime("%Y-%m")])
    for line in _table(report):
        writer.writerow(["" if cell is None else cell for cell in line])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(report: ProgrammeReport) -> bytes:
    """One sheet, the same table; text cells pass `csv_safe.safe_cell` and are stored as text
    (never as a formula), numbers as numbers."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = report.month.strftime("%Y-%m")
    sheet.append(["Mesec", report.month.strftime("%Y-%m")])
    table = _table(report)
    for index, line in enumerate(table):
        sheet.append([csv_safe.safe_cell(cell) for cell in line])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # a string cell, even if it looks like a formula
            if index in (0, len(table) - 1):  # the titles and the total
                cell.font = Font(bold=True)
    sheet.column_dimensions["A"].width = 24
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def chart_png(report: ProgrammeReport) -> bytes | None:
    """Per municipality: questions, escalations, signed up and attended (grouped bars)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a declared dependency
        return None
    rows = report.rows[:12]
    labels = [r.municipality for r in rows]
    series = (
        ("Pitanja", [r.questions for r in rows], "#2c6fbb"),
        ("Mentorima", [r.escalations for r in rows], "#d9822b"),
        ("Prijavljeno na obuke", [r.signed_up for r in rows], "#8e6bbf"),
        ("Prisustvovalo", [r.attended for r in rows], "#2a9d4b"),
    )
    figure, axis = plt.subplots(figsize=(9, 4.5), dpi=100)
    try:
        width = 0.2
        for offset, (name, values, color) in enumerate(series):
            axis.bar([i + (offset - 1.5) * width for i in range(len(rows))], values, width,
                     label=name, color=color)
        axis.set_xticks(range(len(rows)))
        axis.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        axis.set_title(f"Program eUprava za sve — {report.month.strftime('%m.%Y.')}")
        axis.legend(fontsize=8)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)
