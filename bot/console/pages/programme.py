"""The dashboard (what /statistika tells, as a page, plus 👍/👎 per entry), the programme report
per municipality and month (table, chart, CSV/XLSX) and the trainers' attendance list.

Admins only: the page's role is checked against the database on every request, and the
services check again (`ProgrammeService.allowed`, `AttendanceService` for the list).
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.console.core import ADMINS, Ctx, page
from bot.digits import to_int
from bot.services.programme import (
    COLUMNS,
    ProgrammeReport,
    chart_png,
    parse_month,
    row_values,
    to_csv,
    to_xlsx,
)
from bot.services.reports import chart_png as statistics_png
from bot.services.trainings import Invalid, parse_place

CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _minutes(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} min" if value < 90 else f"{value / 60:.1f} h"


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key == "bot_share":
        return f"{value:.1f} %"
    if key == "first_answer_median_minutes":
        return _minutes(float(value))
    if key == "feedback_average":
        return f"{value:.2f}"
    return str(value)


async def _forbidden(ctx: Ctx) -> web.Response:
    return ctx.render("forbidden.html", status=403, title="Nije dozvoljeno")


async def _allowed(ctx: Ctx) -> bool:
    return ctx.user is not None and await ctx.services.programme.allowed(ctx.user)


# -- the dashboard ---------------------------------------------------------------------------


@page("/pregled", nav="Pregled", order=20, roles=ADMINS)
async def dashboard(ctx: Ctx) -> web.StreamResponse:
    if not await _allowed(ctx):
        return await _forbidden(ctx)
    data = await ctx.services.programme.dashboard()
    report = data.report
    zone = ZoneInfo(ctx.services.settings.timezone)
    periods = [
        {
            "days": p.days,
            "questions": p.questions,
            "share": "—" if p.bot_share is None else f"{p.bot_share:.0%}",
            "escalations": p.escalations,
            "median": _minutes(p.median_minutes),
            "p90": _minutes(p.p90_minutes),
            "incidents": p.incidents,
            "rating": "—" if p.average_rating is None else f"{p.average_rating:.1f}",
        }
        for p in report.periods
    ]
    weeks = [
        {
            "start": w.start.astimezone(zone).strftime("%d.%m.%Y."),
            "questions": w.questions,
            "share": "—" if w.bot_share is None else f"{w.bot_share:.0%}",
            "escalations": w.escalations,
            "median": "—" if w.median_hours is None else f"{w.median_hours:.1f} h",
        }
        for w in report.weeks
    ]
    titles = {}
    for vote in data.votes:
        entry = ctx.services.knowledge_base.get(vote.entry_id)
        titles[vote.entry_id] = entry.question if entry is not None else vote.entry_id
    unanswered = report.periods[-1].unanswered[:8]
    return ctx.render(
        "dashboard.html", title="Pregled", open_requests=report.open_requests,
        periods=periods, weeks=weeks, votes=data.votes, titles=titles, unanswered=unanswered,
        incidents=[i for i in report.incidents if i.closed_at is None],
        generated=report.generated_at.astimezone(zone).strftime("%d.%m.%Y. %H:%M"),
    )


@page("/pregled/grafikon.png", roles=ADMINS)
async def dashboard_chart(ctx: Ctx) -> web.StreamResponse:
    if not await _allowed(ctx):
        return await _forbidden(ctx)
    png = statistics_png((await ctx.services.programme.dashboard()).report)
    if png is None:
        raise web.HTTPNotFound()
    return web.Response(body=png, content_type="image/png")


# -- the programme report -----------------------------------------------------------------------


async def _report(ctx: Ctx) -> ProgrammeReport:
    programme = ctx.services.programme
    month = parse_month(ctx.query.get("mesec"), programme.today())
    return await programme.build(month)


def _months(today: date, count: int = 12) -> list[str]:
    months, year, number = [], today.year, today.month
    for _ in range(count):
        months.append(f"{year:04d}-{number:02d}")
        year, number = (year - 1, 12) if number == 1 else (year, number - 1)
    return months


@page("/izvestaj", nav="Izveštaj programa", order=30, roles=ADMINS)
async def programme_report(ctx: Ctx) -> web.StreamResponse:
    if not await _allowed(ctx):
        return await _forbidden(ctx)
    report = await _report(ctx)
    month = report.month.strftime("%Y-%m")
    rows = [
        [_cell(key, row_values(line)[key]) for key, _title in COLUMNS]
        for line in [*report.rows, report.total]
    ]
    return ctx.render(
        "programme.html", title="Izveštaj programa", month=month,
        months=_months(ctx.services.programme.today()), headers=[t for _k, t in COLUMNS],
        rows=rows, empty=not report.rows,
        label=report.month.strftime("%m.%Y."),
    )


@page("/izvestaj/grafikon.png", roles=ADMINS)
async def programme_chart(ctx: Ctx) -> web.StreamResponse:
    if not await _allowed(ctx):
        return await _forbidden(ctx)
    png = chart_png(await _report(ctx))
    if png is None:
        raise web.HTTPNotFound()
    return web.Response(body=png, content_type="image/png")


def _download(body: bytes, kind: str, name: str) -> web.Response:
    return web.Response(body=body, headers={
        "Content-Type": kind, "Content-Disposition": f'attachment; filename="{name}"'})


@page("/izvestaj.csv", roles=ADMINS)
async def programme_csv(ctx: Ctx) -> web.StreamResponse:
    if not await _allowed(ctx):
        return await _forbidden(ctx)
    report = await _report(ctx)
    name = f"euprava-izvestaj-{report.month:%Y-%m}.csv"
    return _download(to_csv(report), CSV + "; charset=utf-8", name)


@page("/izvestaj.xlsx", roles=ADMINS)
async def programme_xlsx(ctx: Ctx) -> web.StreamResponse:
    if not await _allowed(ctx):
        return await _forbidden(ctx)
    report = await _report(ctx)
    return _download(to_xlsx(report), XLSX, f"euprava-izvestaj-{report.month:%Y-%m}.xlsx")


# -- attendance --------------------------------------------------------------------------------


@page("/obuke", nav="Prisustvo na obukama", order=40, roles=ADMINS)
async def trainings(ctx: Ctx) -> web.StreamResponse:
    assert ctx.user is not None
    items = await ctx.services.trainings.attendance.trainings_for(ctx.user)
    if items is None:
        return await _forbidden(ctx)
    zone = ZoneInfo(ctx.services.settings.timezone)
    rows = [
        {"id": t.id, "title": t.title, "when": t.starts_at.astimezone(zone).strftime(
            "%d.%m.%Y. %H:%M"), "registered": t.registered, "attended": t.attended}
        for t in items
    ]
    return ctx.render("trainings.html", title="Prisustvo na obukama", trainings=rows)


@page("/obuke/{id}", roles=ADMINS)
async def attendance(ctx: Ctx) -> web.StreamResponse:
    assert ctx.user is not None
    training_id = to_int(ctx.request.match_info["id"])
    if training_id is None:
        raise web.HTTPNotFound()
    service = ctx.services.trainings
    view = await service.get(training_id)
    lines = await service.attendance.lines(ctx.user, training_id)
    if view is None:
        raise web.HTTPNotFound()
    if lines is None:
        return await _forbidden(ctx)
    return ctx.render("attendance.html", title=f"Prisustvo: {view.title}", training=view,
                      lines=lines, present=sum(1 for line in lines if line.attended))


@page("/obuke/{id}", methods=("POST",), roles=ADMINS)
async def attendance_toggle(ctx: Ctx) -> web.StreamResponse:
    assert ctx.user is not None
    training_id = to_int(ctx.request.match_info["id"])
    form = await ctx.form()
    clerk = to_int(str(form.get("user_id", "")))
    if training_id is None or clerk is None:
        raise web.HTTPNotFound()
    reply = await ctx.services.trainings.attendance.toggle(ctx.user, training_id, clerk)
    note = "Sačuvano." if reply.buttons else reply.text
    return ctx.redirect(f"/obuke/{training_id}", note=note)


@page("/obuke/{id}/materijali", methods=("POST",), roles=ADMINS)
async def materials(ctx: Ctx) -> web.StreamResponse:
    """The trainer's materials link (sent with the feedback question)."""
    assert ctx.user is not None
    training_id = to_int(ctx.request.match_info["id"])
    if training_id is None:
        raise web.HTTPNotFound()
    form = await ctx.form()
    try:
        link, _address = parse_place(str(form.get("link", "")))
    except Invalid as error:
        return ctx.redirect(f"/obuke/{training_id}", note=error.message(ctx.user.language))
    if link is None:
        return ctx.redirect(f"/obuke/{training_id}", note="Upišite link (https://...).")
    reply = await ctx.services.trainings.attendance.set_materials(ctx.user, training_id, link)
    return ctx.redirect(f"/obuke/{training_id}", note=reply.text)
