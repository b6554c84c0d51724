"""Predlozi: the review queue. Questions the bot did not answer confidently, grouped by
similarity; a group becomes an alternative of an entry, a new entry, "not covered" or is ignored."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from bot.console.core import Ctx, page
from bot.services.curation import CurationRefused


def question_ids(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.isdigit()][:500]


@page("/predlozi", nav="Predlozi", order=10)
async def suggestions(ctx: Ctx) -> web.StreamResponse:
    assert ctx.user is not None
    try:
        groups = await ctx.services.curation.suggestions(ctx.user)
    except CurationRefused:
        return ctx.render("forbidden.html", status=403, title="Nije dozvoljeno")
    return ctx.render("suggestions.html", title="Predlozi", groups=groups)


@page("/predlozi/formulacija", methods=("POST",))
async def add_alternative(ctx: Ctx) -> web.StreamResponse:
    assert ctx.user is not None
    form = await ctx.form()
    ids = question_ids(form.getall("q", []))
    other = str(form.get("other_entry") or "").strip()
    entry_id = other or str(form.get("entry_id") or "").strip()
    try:
        outcome = await ctx.services.curation.add_alternative(
            ctx.user, entry_id, str(form.get("phrasing", "")), ids
        )
    except CurationRefused:
        return ctx.render("forbidden.html", status=403, title="Nije dozvoljeno")
    if not outcome.ok:
        return ctx.render(
            "refused_change.html", status=422, title="Izmena nije sačuvana", outcome=outcome
        )
    phrasing = quote(str(form.get("phrasing", "")).strip()[:300])
    return ctx.redirect(f"/proba?pitanje={phrasing}", note=outcome.message)


@page("/predlozi/oznaci", methods=("POST",))
async def mark(ctx: Ctx) -> web.StreamResponse:
    assert ctx.user is not None
    form = await ctx.form()
    try:
        outcome = await ctx.services.curation.mark(
            ctx.user, question_ids(form.getall("q", [])), str(form.get("outcome", ""))
        )
    except CurationRefused:
        return ctx.render("forbidden.html", status=403, title="Nije dozvoljeno")
    return ctx.redirect("/predlozi", note=outcome.message)
