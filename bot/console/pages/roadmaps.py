"""Roadmaps in the console: the matrix of municipalities x services (blocked first), a
municipality's timeline, and the programme report (progress over time as a chart, blocked steps
with their reasons, questions per step, a CSV download). Reading only: changes are made in the
bot (clerks' "Urađeno", mentors' confirmation), where the service checks the roles."""

from __future__ import annotations

import io
from datetime import date, timedelta

from aiohttp import web

from bot.console.core import Ctx, page
from bot.csv_safe import writer
from bot.services.municipalities import fold
from bot.services.roadmaps import STATUS_LABELS, MatrixRow, Programme

ROADMAP_ROLES = ("mentor", "curator", "admin")
COLORS = (
    "#0b57a4",
    "#c2410c",
    "#15803d",
    "#7e22ce",
    "#b91c1c",
    "#0e7490",
    "#a16207",
    "#be185d",
    "#4d7c0f",
    "#334155",
)


def _cells(ctx: Ctx, data: Programme) -> list[dict[str, object]]:
    roadmaps = ctx.services.roadmaps
    out: list[dict[str, object]] = []
    for row in data.rows:
        out.append(
            {
                "id": row.participant_id,
                "name": row.municipality,
                "cells": [
                    (p.done, p.total, p.blocked, p.pending)
                    for p in (row.services[s] for s in data.services)
                ],
                "done": row.done,
                "total": row.total,
                "blocked": row.blocked,
                "last": roadmaps.date_text(row.last_activity) if row.last_activity else "—",
            }
        )
    return out


def _titles(ctx: Ctx, data: Programme) -> list[str]:
    return [ctx.services.roadmaps.service_title("sr-Latn", s) for s in data.services]


@page("/opstine", nav="Opštine", order=50, roles=ROADMAP_ROLES)
async def matrix(ctx: Ctx) -> web.StreamResponse:
    data = await ctx.services.roadmaps.programme()
    return ctx.render(
        "roadmap_matrix.html",
        title="Opštine u programu",
        rows=_cells(ctx, data),
        services=_titles(ctx, data),
    )


@page("/opstina", roles=ROADMAP_ROLES)
async def timeline(ctx: Ctx) -> web.StreamResponse:
    number = ctx.query.get("id", "")
    roadmaps = ctx.services.roadmaps
    participant, items = (
        await roadmaps.timeline_items(int(number), limit=200)
        if number.isdigit() and len(number) < 10
        else (None, [])
    )
    if participant is None:
        raise web.HTTPNotFound()
    events = [
        {
            "at": roadmaps.local(item.at).strftime("%d.%m.%Y %H:%M"),
            "service": roadmaps.service_title("sr-Latn", item.service),
            "step": item.title,
            "old": STATUS_LABELS[item.old_status],
            "status": STATUS_LABELS[item.status],
            "kind": item.status,
            "reason": item.reason,
            "actor": item.actor,
        }
        for item in items
    ]
    return ctx.render("roadmap_timeline.html", title=participant.municipality, events=events)


def chart(data: Programme, today: date, width: int = 640, height: int = 260) -> dict[str, object]:
    """Steps done per municipality over time, as SVG polylines (no script, no inline style)."""
    starts = [points[0][0] for points in data.history.values() if points]
    first = min(starts) if starts else today
    first = min(first, today - timedelta(days=7))
    days = max((today - first).days, 1)
    top = max((r.total for r in data.rows), default=1) or 1
    left, bottom, right, upper = 36, height - 24, width - 8, 8

    def x(day: date) -> float:
        return round(left + (right - left) * (day - first).days / days, 1)

    def y(value: int) -> float:
        return round(bottom - (bottom - upper) * value / top, 1)

    lines = []
    for index, row in enumerate(sorted(data.rows, key=lambda r: fold(r.municipality))):
        points = data.history.get(row.municipality, [])
        coords = [(x(first), y(0))]
        value = 0
        for day, value in points:
            coords.append((x(day), coords[-1][1]))
            coords.append((x(day), y(value)))
        coords.append((x(today), y(value)))
        lines.append(
            {
                "name": row.municipality,
                "color": COLORS[index % len(COLORS)],
                "points": " ".join(f"{a},{b}" for a, b in coords),
                "done": row.done,
            }
        )
    ticks = [(y(v), v) for v in sorted({0, top // 2, top})]
    return {
        "width": width,
        "height": height,
        "lines": lines,
        "ticks": ticks,
        "left": left,
        "right": right,
        "bottom": bottom,
        "first": first.strftime("%d.%m.%Y"),
        "today": today.strftime("%d.%m.%Y"),
    }


@page("/plan-izvestaj", nav="Izveštaj o uvođenju", order=55, roles=ROADMAP_ROLES)
async def report(ctx: Ctx) -> web.StreamResponse:
    roadmaps = ctx.services.roadmaps
    data = await roadmaps.programme(with_history=True)
    today = roadmaps.local(roadmaps.clock()).date()
    blocked = [
        {
            "municipality": b.municipality,
            "service": roadmaps.service_title("sr-Latn", b.service),
            "step": b.title,
            "reason": b.reason,
            "since": roadmaps.date_text(b.since),
        }
        for b in data.blocked
    ]
    questions = [
        (
            roadmaps.service_title("sr-Latn", key.partition("/")[0]),
            roadmaps.step_title("sr-Latn", *key.split("/", 1)) if "/" in key else key,
            count,
        )
        for key, count in sorted(data.questions_by_step.items(), key=lambda kv: -kv[1])
    ]
    totals = _totals(data.rows, data.services)
    return ctx.render(
        "roadmap_report.html",
        title="Izveštaj o uvođenju usluga",
        rows=_cells(ctx, data),
        services=_titles(ctx, data),
        totals=totals,
        chart=chart(data, today),
        blocked=blocked,
        questions=questions,
    )


def _totals(rows: list[MatrixRow], services: tuple[str, ...]) -> list[tuple[int, int]]:
    return [
        (sum(r.services[s].done for r in rows), sum(r.services[s].total for r in rows))
        for s in services
    ]


@page("/plan-izvestaj.csv", roles=ROADMAP_ROLES)
async def report_csv(ctx: Ctx) -> web.StreamResponse:
    rows = await ctx.services.roadmaps.export_rows()
    buffer = io.StringIO()
    writer(buffer).writerows(rows)
    return web.Response(
        body=("\ufeff" + buffer.getvalue()).encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="plan-uvodjenja.csv"'},
    )
