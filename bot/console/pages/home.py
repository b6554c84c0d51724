"""Sign-in (the one-time link from /konzola), sign-out and the start page."""

from __future__ import annotations

from aiohttp import web

from bot.console.core import COOKIE, Ctx, page
from bot.services.console_access import CONSOLE_ROLES
from bot.services.curation import CurationRefused


@page("/login", public=True)
async def login_form(ctx: Ctx) -> web.StreamResponse:
    """The link from the bot opens this page; the sign-in itself is the button's POST, so a
    link preview or a scanner that fetches the address does not use the link up."""
    return ctx.render("login.html", title="Prijava", token=ctx.query.get("t", ""))


@page("/login", methods=("POST",), public=True)
async def login(ctx: Ctx) -> web.StreamResponse:
    form = await ctx.form()
    token = form.get("t")
    signed_in = await ctx.services.console.sign_in(token if isinstance(token, str) else "")
    if signed_in is None:
        return ctx.render("login_refused.html", status=403, title="Prijava nije uspela")
    # A mentor's work in the console is the roadmaps; the start page is the curators'.
    start = "/" if signed_in.user.role in CONSOLE_ROLES else "/opstine"
    response = web.Response(status=303, headers={"Location": ctx.url(start)})
    secure = ctx.request.secure or ctx.services.console.base_url.startswith("https://")
    response.set_cookie(
        COOKIE,
        signed_in.session,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=secure,
        max_age=12 * 3600,
    )
    return response


@page("/logout", methods=("POST",))
async def logout(ctx: Ctx) -> web.StreamResponse:
    response = web.Response(status=303, headers={"Location": ctx.url("/login")})
    response.del_cookie(COOKIE, path="/console")
    return response


@page("/", nav="Početna", order=0)
async def home(ctx: Ctx) -> web.StreamResponse:
    assert ctx.user is not None
    curation = ctx.services.curation
    try:
        queue = await curation.queue(ctx.user)
    except CurationRefused:
        return ctx.render("forbidden.html", status=403, title="Nije dozvoljeno")
    counts = {
        "groups": len(queue.groups),
        "questions": sum(g.count for g in queue.groups),
        "signals": len(queue.signals),
        "drafts": len(queue.drafts),
        "stale": len(curation.stale()),
        "revision": curation.revision,
    }
    return ctx.render("home.html", title="Konzola baze znanja", counts=counts)
