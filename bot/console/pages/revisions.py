"""Revizije: the approved changes (KB revisions) the bot uses on top of the YAML files, and
which of them the repository's files have absorbed (`python -m bot revisions export`)."""

from __future__ import annotations

from aiohttp import web

from bot.console.core import Ctx, page
from bot.services.curation import CurationRefused


@page("/revizije", nav="Revizije", order=40)
async def revisions(ctx: Ctx) -> web.StreamResponse:
    assert ctx.user is not None
    try:
        items = await ctx.services.curation.revisions(ctx.user)
    except CurationRefused:
        return ctx.render("forbidden.html", status=403, title="Nije dozvoljeno")
    return ctx.render(
        "revisions.html", title="Revizije", items=items, current=ctx.services.curation.revision
    )
