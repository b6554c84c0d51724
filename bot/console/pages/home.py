"""Sign-in (the one-time link from /konzola), sign-out and the start page."""

from __future__ import annotations

from aiohttp import web

from bot.console.core import COOKIE, Ctx, page


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
    response = web.Response(status=303, headers={"Location": ctx.url("/")})
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
    return ctx.render("home.html", title="Konzola baze znanja")
