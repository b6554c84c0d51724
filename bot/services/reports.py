"""Reports for admins: /statistika (text + chart PNG) and /izvoz (CSV).

For the last 7 and 30 days: questions, share answered by the bot, escalations to mentors,
median and 90th-percentile time to the first mentor answer, open requests, ratings, per service
and per municipality, and the questions the bot most often could not answer, grouped by
similarity (rapidfuzz) so curators see which entries to write next.
"""

from __future__ import annotations

import html
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from rapidfuzz import fuzz

from bot import csv_safe
from bot.i18n import tr
from bot.services.replies import Reply
from bot.services.roles import admin_refusal
from bot.services.users import UserProfile
from knowledge_base.model import KnowledgeBase
from knowledge_base.normalize import normalize
from storage.clock import Clock
from storage.desk import DeskRepository
from storage.mentor import MentorRepository, MentorRequest
from storage.models import Question
from storage.uow import Database

PERIODS = (7, 30)
WEEKS_IN_CHART = 8
SIMILARITY = 72  # token_set_ratio at or above which two unanswered questions are one group


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class QuestionGroup:
    example: str
    count: int
    examples: tuple[str, ...]


class AnswerFigures:
    """The figures a period's report and a municipality's programme row both derive from their
    counts: the bot's share of answers, the median first mentor answer, the average rating."""

    questions: int
    answered_by_bot: int
    first_answer_minutes: list[float]
    ratings: list[int]

    @property
    def bot_share(self) -> float | None:
        return self.answered_by_bot / self.questions if self.questions else None

    @property
    def median_minutes(self) -> float | None:
        return percentile(self.first_answer_minutes, 50)

    @property
    def average_rating(self) -> float | None:
        return sum(self.ratings) / len(self.ratings) if self.ratings else None


@dataclass
class PeriodStats(AnswerFigures):
    days: int
    start: datetime
    end: datetime
    questions: int = 0
    answered_by_bot: int = 0
    escalations: int = 0
    answered_by_mentor: int = 0
    first_answer_minutes: list[float] = field(default_factory=list)
    ratings: list[int] = field(default_factory=list)
    per_service: dict[str, dict[str, int]] = field(default_factory=dict)
    per_municipality: dict[str, dict[str, int]] = field(default_factory=dict)
    unanswered: list[QuestionGroup] = field(default_factory=list)
    incidents: int = 0
    incident_clerks: int = 0

    @property
    def p90_minutes(self) -> float | None:
        return percentile(self.first_answer_minutes, 90)


@dataclass(frozen=True)
class WeekPoint:
    start: datetime
    questions: int
    bot_share: float | None
    escalations: int
    median_hours: float | None


@dataclass
class Report:
    generated_at: datetime
    open_requests: int
    periods: list[PeriodStats]
    weeks: list[WeekPoint]
    incidents: list[IncidentLine] = field(default_factory=list)


@dataclass(frozen=True)
class IncidentLine:
    """An incident of the report's longest period (or still open) and its clerks."""

    number: int
    service: str
    declared_at: datetime
    closed_at: datetime | None
    clerks: int


def group_similar(texts: list[str], limit: int = 8) -> list[QuestionGroup]:
    """Greedy clustering: each question joins the first group whose leader it resembles."""
    groups: list[tuple[str, list[str]]] = []  # (normalised leader, original texts)
    for text in texts:
        key = normalize(text)
        if not key:
            continue
        for leader, members in groups:
            if fuzz.token_set_ratio(key, leader) >= SIMILARITY:
                members.append(text)
                break
        else:
            groups.append((key, [text]))
    groups.sort(key=lambda item: -len(item[1]))
    return [
        QuestionGroup(members[0], len(members), tuple(dict.fromkeys(members))[:3])
        for _leader, members in groups[:limit]
    ]


def _bump(table: dict[str, dict[str, int]], key: str, column: str) -> None:
    table.setdefault(key, {"questions": 0, "bot": 0, "escalations": 0})
    table[key][column] += 1


class ReportService:
    def __init__(
        self,
        database: Database,
        knowledge_base: KnowledgeBase | None = None,
        *,
        clock: Clock | None = None,
        timezone: str = "Europe/Belgrade",
    ) -> None:
        self._database = database
        self._kb = knowledge_base
        self._clock = clock or database.clock  # the program's one clock
        self._timezone = timezone

    def _service_of(self, entry_id: str | None) -> str:
        if not entry_id:
            return "—"
        if self._kb is not None:
            entry = self._kb.get(entry_id)
            if entry is not None:
                return entry.service
        return entry_id.split("-", 1)[0]

    async def _is_admin(self, actor: UserProfile) -> bool:
        async with self._database.uow(read_only=True) as uow:
            row = await uow.users.get(actor.id)
            return row is not None and row.role == "admin"

    async def build(self) -> Report:
        now = self._clock()
        longest = max(max(PERIODS), WEEKS_IN_CHART * 7)
        since = now - timedelta(days=longest)
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(MentorRepository)
            questions = await repo.questions_between(since, now)
            requests = await repo.created_between(since, now)
            open_requests = await repo.count_open()
            desk = uow.repository(DeskRepository)
            incidents = await desk.incidents_since(since)
            clerks = await desk.clerk_counts([i.id for i in incidents])
            towns = await repo.municipalities_of(
                {q.user_id for q in questions} | {r.user_id for r in requests}
            )
        periods = [
            self._period(days, now, questions, requests, towns) for days in PERIODS
        ]
        weeks = self._weeks(now, questions, requests)
        lines = [
            IncidentLine(i.id, i.service, i.declared_at, i.closed_at, clerks.get(i.id, 0))
            for i in incidents
        ]
        for stats in periods:
            in_period = [i for i in lines if i.declared_at >= stats.start]
            stats.incidents = len(in_period)
            stats.incident_clerks = sum(i.clerks for i in in_period)
        return Report(now, open_requests, periods, weeks, lines)

    @staticmethod
    def bot_answered(question: Question) -> bool:
        return question.decision == "answer" or (
            question.decision == "clarify" and question.chosen_entry_id is not None
        )

    def _period(
        self,
        days: int,
        now: datetime,
        questions: list[Question],
        requests: list[MentorRequest],
        towns: dict[int, str | None],
    ) -> PeriodStats:
        start = now - timedelta(days=days)
        stats = PeriodStats(days, start, now)
        unanswered: list[str] = []
        for question in questions:
            if question.created_at < start:
                continue
            stats.questions += 1
            service = self._service_of(question.chosen_entry_id or question.entry_id)
            town = towns.get(question.user_id) or "—"
            _bump(stats.per_service, service, "questions")
            _bump(stats.per_municipality, town, "questions")
            if self.bot_answered(question):
                stats.answered_by_bot += 1
                _bump(stats.per_service, service, "bot")
                _bump(stats.per_municipality, town, "bot")
            elif question.decision == "escalate":
                unanswered.append(question.text)
        for request in requests:
            if request.created_at < start:
                continue
            stats.escalations += 1
            _bump(stats.per_service, request.service or "—", "escalations")
            _bump(stats.per_municipality, request.municipality or "—", "escalations")
            if request.first_answer_at is not None:
                stats.answered_by_mentor += 1
                minutes = (request.first_answer_at - request.created_at).total_seconds() / 60
                stats.first_answer_minutes.append(minutes)
            if request.rating:
                stats.ratings.append(request.rating)
        stats.unanswered = group_similar(unanswered)
        return stats

    def _weeks(
        self, now: datetime, questions: list[Question], requests: list[MentorRequest]
    ) -> list[WeekPoint]:
        points: list[WeekPoint] = []
        for index in range(WEEKS_IN_CHART, 0, -1):
            start = now - timedelta(days=7 * index)
            end = start + timedelta(days=7)
            in_week = [q for q in questions if start <= q.created_at < end]
            escalated = [r for r in requests if start <= r.created_at < end]
            answered = [
                (r.first_answer_at - r.created_at).total_seconds() / 3600
                for r in escalated
                if r.first_answer_at is not None
            ]
            bot = sum(1 for q in in_week if self.bot_answered(q))
            points.append(
                WeekPoint(
                    start,
                    len(in_week),
                    bot / len(in_week) if in_week else None,
                    len(escalated),
                    percentile(answered, 50),
                )
            )
        return points

    # ------------------------------------------------------------------ presentation

    async def statistics(self, actor: UserProfile) -> tuple[Reply, bytes | None]:
        """/statistika: the text, and the chart as PNG (None when matplotlib is missing)."""
        if not await self._is_admin(actor):
            return admin_refusal(actor, "reports.statistics"), None
        report = await self.build()
        return Reply(self.render(actor.language, report)), chart_png(report)

    async def export_csv(self, actor: UserProfile) -> tuple[Reply, bytes | None]:
        """/izvoz: the same data as CSV."""
        if not await self._is_admin(actor):
            return admin_refusal(actor, "reports.export"), None
        report = await self.build()
        return Reply(tr(actor.language, "Statistika kao CSV (UTF-8, zarez kao separator).")), (
            to_csv(report)
        )

    def render(self, language: str, report: Report) -> str:
        lines = [tr(language, "<b>Statistika</b>")]
        lines.append(tr(language, "Otvorenih pitanja kod mentora: {n}", n=report.open_requests))
        zone = ZoneInfo(self._timezone)
        for incident in report.incidents:
            declared = incident.declared_at.astimezone(zone).strftime("%d.%m. %H:%M")
            if incident.closed_at is None:
                lines.append(
                    tr(
                        language,
                        "⚠️ Otvoren incident #{number}: {service}, od {time}; službenika: {clerks}",
                        number=incident.number,
                        service=html.escape(incident.service),
                        time=declared,
                        clerks=incident.clerks,
                    )
                )
        for stats in report.periods:
            lines.append("")
            lines.append(tr(language, "<b>Poslednjih {days} dana</b>", days=stats.days))
            share = f"{stats.bot_share:.0%}" if stats.bot_share is not None else "—"
            lines.append(
                tr(
                    language,
                    "Pitanja: {questions} · odgovorio bot: {share} · mentorima: {escalations}",
                    questions=stats.questions,
                    share=share,
                    escalations=stats.escalations,
                )
            )
            lines.append(
                tr(
                    language,
                    "Do prvog odgovora mentora: medijana {median}, 90% za {p90}",
                    median=_duration(stats.median_minutes),
                    p90=_duration(stats.p90_minutes),
                )
            )
            if stats.incidents:
                lines.append(
                    tr(
                        language,
                        "Incidenti: {count} · službenika pogođeno: {clerks}",
                        count=stats.incidents,
                        clerks=stats.incident_clerks,
                    )
                )
            if stats.ratings:
                lines.append(
                    tr(
                        language,
                        "Ocene: {average:.1f} / 5 ({count})",
                        average=stats.average_rating or 0.0,
                        count=len(stats.ratings),
                    )
                )
            if stats.per_service:
                lines.append(tr(language, "Po uslugama (pitanja / bot / mentori):"))
                for key, row in _top(stats.per_service):
                    lines.append(
                        f"  {html.escape(key)}: {row['questions']} / {row['bot']} / "
                        f"{row['escalations']}"
                    )
            if stats.per_municipality:
                lines.append(tr(language, "Po opštinama (pitanja / bot / mentori):"))
                for key, row in _top(stats.per_municipality):
                    lines.append(
                        f"  {html.escape(key)}: {row['questions']} / {row['bot']} / "
                        f"{row['escalations']}"
                    )
            if stats.unanswered:
                lines.append(tr(language, "Pitanja na koja bot najčešće nema odgovor:"))
                for group in stats.unanswered[:5]:
                    lines.append(f"  {group.count}× <i>{html.escape(group.example[:120])}</i>")
        return "\n".join(lines)


def _top(table: dict[str, dict[str, int]], limit: int = 8) -> list[tuple[str, dict[str, int]]]:
    return sorted(table.items(), key=lambda item: (-item[1]["questions"] - item[1]["escalations"],
                                                   item[0]))[:limit]


def _duration(minutes: float | None) -> str:
    if minutes is None:
        return "—"
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


def to_csv(report: Report) -> bytes:
    out = io.StringIO()
    writer = csv_safe.writer(out)  # user text (questions, municipalities) is never a formula
    writer.writerow(["section", "period_days", "key", "metric", "value"])
    writer.writerow(["summary", "", "", "open_requests", report.open_requests])
    for stats in report.periods:
        d = stats.days
        summary = {
            "questions": stats.questions,
            "answered_by_bot": stats.answered_by_bot,
            "bot_share": "" if stats.bot_share is None else round(stats.bot_share, 4),
            "escalations": stats.escalations,
            "answered_by_mentor": stats.answered_by_mentor,
            "first_answer_median_minutes": _round(stats.median_minutes),
            "first_answer_p90_minutes": _round(stats.p90_minutes),
            "ratings": len(stats.ratings),
            "rating_average": _round(stats.average_rating),
        }
        for metric, value in summary.items():
            writer.writerow(["summary", d, "", metric, value])
        for section, table in (
            ("service", stats.per_service),
            ("municipality", stats.per_municipality),
        ):
            for key, row in sorted(table.items()):
                for metric, value in row.items():
                    writer.writerow([section, d, key, metric, value])
        for group in stats.unanswered:
            writer.writerow(["unanswered", d, group.example, "count", group.count])
        for rating, count in sorted(Counter(stats.ratings).items()):
            writer.writerow(["rating", d, rating, "count", count])
    for week in report.weeks:
        key = week.start.date().isoformat()
        writer.writerow(["week", 7, key, "questions", week.questions])
        writer.writerow(["week", 7, key, "bot_share", _round(week.bot_share, 4)])
        writer.writerow(["week", 7, key, "escalations", week.escalations])
        writer.writerow(["week", 7, key, "first_answer_median_hours", _round(week.median_hours)])
    return out.getvalue().encode("utf-8")


def _round(value: float | None, digits: int = 1) -> float | str:
    return "" if value is None else round(value, digits)


def chart_png(report: Report) -> bytes | None:
    """Four small panels: questions per week, the bot's share, escalations, time to answer."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a declared dependency
        return None
    labels = [week.start.strftime("%d.%m.") for week in report.weeks]
    figure, axes = plt.subplots(2, 2, figsize=(9, 6), dpi=100)
    try:
        (a, b), (c, d) = axes
        a.bar(labels, [w.questions for w in report.weeks], color="#2c6fbb")
        a.set_title("Pitanja nedeljno")
        b.plot(labels, [(w.bot_share or 0) * 100 for w in report.weeks], marker="o",
               color="#2a9d4b")
        b.set_ylim(0, 100)
        b.set_title("Odgovorio bot (%)")
        c.bar(labels, [w.escalations for w in report.weeks], color="#d9822b")
        c.set_title("Prosleđeno mentorima")
        d.plot(labels, [w.median_hours or 0 for w in report.weeks], marker="o", color="#b23a48")
        d.set_title("Do prvog odgovora (h, medijana)")
        for axis in (a, b, c, d):
            axis.tick_params(axis="x", labelrotation=45, labelsize=7)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)
