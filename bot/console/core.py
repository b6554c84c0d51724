"""The console's frame: the page registry, the request context, sign-in and CSRF checks.

A page is an async function taking a `Ctx`, registered with `@page`:

    from bot.console import Ctx, page

    @page("/primer", nav="Primer", order=50)            # GET, curators and admins
    async def example(ctx: Ctx) -> web.StreamResponse:
        return ctx.render("primer.html", title="Primer", items=...)

    @page("/primer", methods=("POST",), roles=ADMINS)   # forms: CSRF checked before the call
    async def example_save(ctx: Ctx) -> web.StreamResponse:
        form = await ctx.form()
        ...call a service with ctx.user...
        return ctx.redirect("/primer", note="Sačuvano.")

Before a page runs, the session cookie is checked and the user re-read from the database
(`ConsoleAccessService.member`): no valid session -> the sign-in explanation (401), a role not
in `roles` -> 403. A POST whose `csrf` field does not match the session -> 403.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from bot.app import AppServices
from bot.services.console_access import CONSOLE_ROLES
from bot.services.users import UserProfile

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
COOKIE = "console_session"
CURATORS: tuple[str, ...] = CONSOLE_ROLES  # curators and admins
ADMINS: tuple[str, ...] = ("admin",)
SERVICES_KEY: web.AppKey[AppServices] = web.AppKey("services", AppServices)
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

Handler = Callable[["Ctx"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class PageSpec:
    path: str
    handler: Handler
    methods: tuple[str, ...]
    roles: tuple[str, ...]
    nav: str | None
    order: int
    public: bool


PAGES: list[PageSpec] = []


def page(
    path: str,
    *,
    methods: tuple[str, ...] = ("GET",),
    roles: tuple[str, ...] = CURATORS,
    nav: str | None = None,
    order: int = 100,
    public: bool = False,
) -> Callable[[Handler], Handler]:
    """Register a console page at /console{path}. `roles`: who may open it (checked against the
    database on every request); `nav`: its title in the navigation (None: not listed);
    `public`: no sign-in needed (only the sign-in pages themselves)."""

    def register(handler: Handler) -> Handler:
        PAGES.append(
            PageSpec(path, handler, tuple(m.upper() for m in methods), roles, nav, order, public)
        )
        return handler

    return register


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return env


@dataclass
class Ctx:
    """What a page gets: the request, the services, the signed-in user, the CSRF token."""

    request: web.Request
    services: AppServices
    user: UserProfile | None
    session: str | None
    env: jinja2.Environment
    _form: MultiDictProxy[Any] | None = field(default=None, repr=False)

    @property
    def csrf(self) -> str:
        return self.services.console.csrf_token(self.session) if self.session else ""

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query

    async def form(self) -> MultiDictProxy[Any]:
        """The POSTed form (its CSRF token already checked)."""
        if self._form is None:
            self._form = await self.request.post()
        return self._form

    def url(self, path: str) -> str:
        return "/console" + path

    def render(self, template: str, *, status: int = 200, **values: Any) -> web.Response:
        nav = [
            (spec.nav, self.url(spec.path))
            for spec in sorted(PAGES, key=lambda s: (s.order, s.path))
            if spec.nav and "GET" in spec.methods and self.user and self.user.role in spec.roles
        ]
        body = self.env.get_template(template).render(
            user=self.user,
            csrf=self.csrf,
            nav=nav,
            note=self.request.query.get("note", ""),
            path=self.request.path,
            url=self.url,
            **values,
        )
        return web.Response(text=body, status=status, content_type="text/html")

    def redirect(self, path: str, note: str | None = None) -> web.Response:
        location = self.url(path)
        if note:
            location += ("&" if "?" in location else "?") + "note=" + quote(note)
        return web.Response(status=303, headers={"Location": location})


def _wrap(spec: PageSpec, env: jinja2.Environment) -> Callable[[web.Request], Awaitable[Any]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES_KEY]
        session = request.cookies.get(COOKIE)
        user: UserProfile | None = None
        if session:
            user = await services.console.member(session, roles=(*CONSOLE_ROLES, *spec.roles))
        ctx = Ctx(request, services, user, session if user else None, env)
        if not spec.public:
            if user is None:
                return ctx.render("signin_needed.html", status=401, title="Prijava")
            if user.role not in spec.roles:
                log.warning(
                    "console.refused user_id=%s role=%s path=%s", user.id, user.role, spec.path
                )
                return ctx.render("forbidden.html", status=403, title="Nije dozvoljeno")
            if request.method == "POST":
                form = await ctx.form()
                token = form.get("csrf")
                if not services.console.csrf_ok(session, token if isinstance(token, str) else None):
                    log.warning("console.csrf_refused user_id=%s path=%s", user.id, spec.path)
                    return ctx.render("forbidden.html", status=403, title="Nije dozvoljeno")
        response = await spec.handler(ctx)
        return response

    return handle


async def _static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = (STATIC / name).resolve()
    if path.parent != STATIC or not path.is_file():
        raise web.HTTPNotFound()
    kind = {"css": "text/css", "js": "text/javascript"}.get(path.suffix.lstrip("."), "")
    if not kind:
        raise web.HTTPNotFound()
    return web.Response(body=path.read_bytes(), content_type=kind, charset="utf-8")


@web.middleware
async def _headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def load_pages() -> None:
    """Import every module of bot.console.pages (each registers its pages with @page)."""
    from bot.console import pages

    for module in pkgutil.iter_modules(pages.__path__):
        importlib.import_module(f"{pages.__name__}.{module.name}")


def build_console(services: AppServices) -> web.Application:
    """The console as an aiohttp sub-application (mounted at /console by `setup_console`)."""
    load_pages()
    env = _environment()
    app = web.Application(middlewares=[_headers], client_max_size=1024 * 1024)
    app[SERVICES_KEY] = services
    app.router.add_get("/static/{name}", _static)
    seen: set[tuple[str, str]] = set()
    for spec in PAGES:
        for method in spec.methods:
            if (method, spec.path) in seen:  # a module imported twice registers twice
                continue
            seen.add((method, spec.path))
            app.router.add_route(method, spec.path, _wrap(spec, env))
    return app


def setup_console(app: web.Application, services: AppServices) -> web.Application:
    """Mount the console at /console on the bot's own HTTP app."""
    console = build_console(services)
    app.add_subapp("/console", console)

    async def to_console(request: web.Request) -> web.StreamResponse:
        return web.Response(status=301, headers={"Location": "/console/"})

    app.router.add_get("/console", to_console)
    return console
