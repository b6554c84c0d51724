"""Proba: type a question, see the bot's decision, the top candidates and their scores, now and
with an unsaved change (a new phrasing of an entry), before anything is saved."""

from __future__ import annotations

from aiohttp import web

from bot.console.core import Ctx, page
from bot.services.curation import entry_data


@page("/proba", nav="Proba", order=30)
async def test_pane(ctx: Ctx) -> web.StreamResponse:
    return await _pane(
        ctx, ctx.query.get("pitanje", ""), ctx.query.get("unos", ""), ctx.query.get("nova", "")
    )


@page("/proba", methods=("POST",))
async def test_pane_post(ctx: Ctx) -> web.StreamResponse:
    form = await ctx.form()
    return await _pane(
        ctx, str(form.get("pitanje", "")), str(form.get("unos", "")), str(form.get("nova", ""))
    )


async def _pane(ctx: Ctx, question: str, entry_id: str, phrasing: str) -> web.StreamResponse:
    curation = ctx.services.curation
    question, entry_id, phrasing = question.strip()[:500], entry_id.strip(), phrasing.strip()
    before = after = None
    problems: tuple[str, ...] = ()
    error = ""
    if question:
        change = None
        if entry_id and phrasing:
            entry = curation.entry(entry_id)
            if entry is None:
                error = f"Nema unosa sa oznakom {entry_id}."
            else:
                change = entry_data(entry)
                change["alternatives"] = [*entry.alternatives, phrasing]
        before, after, problems = await curation.trial(question, change)
    return ctx.render(
        "test_pane.html",
        title="Proba",
        question=question,
        entry_id=entry_id,
        phrasing=phrasing,
        before=before,
        after=after,
        problems=problems,
        error=error,
        entry_title=lambda eid: _title(ctx, eid),
    )


def _title(ctx: Ctx, entry_id: str) -> str:
    entry = ctx.services.curation.entry(entry_id)
    return entry.question if entry is not None else ""
