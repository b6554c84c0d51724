"""Unosi: search, view and edit the knowledge base's entries with a preview as Telegram shows
the answer; stale entries (not reviewed in 6 months) listed. A save is a KB revision."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from markupsafe import escape

from bot.console.core import Ctx, page
from bot.console.telegram_html import telegram_preview
from bot.services.curation import CurationRefused, entry_data, lines
from knowledge_base.markup import markup_problems


@page("/unosi", nav="Unosi", order=20)
async def entries(ctx: Ctx) -> web.StreamResponse:
    curation = ctx.services.curation
    query = ctx.query.get("q", "").strip()[:200]
    stale = ctx.query.get("zastareli") == "1"
    found = curation.stale() if stale else curation.entries(query)
    return ctx.render(
        "entries.html",
        title="Zastareli unosi" if stale else "Unosi",
        entries=found,
        query=query,
        stale=stale,
        stale_count=len(curation.stale()),
    )


def _form_data(form: Any, entry_id: str) -> dict[str, Any]:
    return {
        "id": entry_id,
        "service": str(form.get("service", "")).strip(),
        "question": str(form.get("question", "")).strip(),
        "alternatives": lines(str(form.get("alternatives", ""))),
        "keywords": lines(str(form.get("keywords", ""))),
        "answer": str(form.get("answer", "")).replace("\r\n", "\n").strip(),
        "sources": lines(str(form.get("sources", ""))),
        "related": [r for r in lines(str(form.get("related", "")).replace(",", "\n"))],
    }


def _editor(ctx: Ctx, data: dict[str, Any], *, new: bool, **extra: Any) -> web.Response:
    return ctx.render(
        "entry_edit.html",
        title="Novi unos" if new else f"Unos {data['id']}",
        data=data,
        new=new,
        services=ctx.services.curation.services(),
        preview=_preview(ctx, data),
        problems=markup_problems(data.get("answer", "")),
        **extra,
    )


def _preview(ctx: Ctx, data: dict[str, Any]) -> Any:
    answer = ctx.services.answers.fill(str(data.get("answer", "")))
    question = str(data.get("question", ""))
    return escape(question) if not answer else (
        telegram_preview(f"<b>{escape(question)}</b>\n\n{answer}")
    )


@page("/unosi/novi")
async def new_entry(ctx: Ctx) -> web.StreamResponse:
    data = {
        "id": "",
        "service": "",
        "question": ctx.query.get("pitanje", "")[:300],
        "alternatives": [],
        "keywords": [],
        "answer": "",
        "sources": [],
        "related": [],
    }
    return _editor(ctx, data, new=True, question_ids=ctx.request.query.getall("q", []))


@page("/unosi/novi", methods=("POST",))
async def create_entry(ctx: Ctx) -> web.StreamResponse:
    form = await ctx.form()
    data = _form_data(form, str(form.get("id", "")).strip())
    if ctx.services.curation.entry(data["id"]) is not None:
        return _editor(
            ctx, data, new=True, error="Unos sa tom oznakom već postoji.", question_ids=[]
        )
    return await _save(ctx, data, new=True, question_ids=form.getall("q", []))


@page("/unosi/{entry_id}")
async def show_entry(ctx: Ctx) -> web.StreamResponse:
    entry = ctx.services.curation.entry(ctx.request.match_info["entry_id"])
    if entry is None:
        raise web.HTTPNotFound()
    return _editor(ctx, entry_data(entry), new=False, entry=entry)


@page("/unosi/{entry_id}", methods=("POST",))
async def save_entry(ctx: Ctx) -> web.StreamResponse:
    entry_id = ctx.request.match_info["entry_id"]
    if ctx.services.curation.entry(entry_id) is None:
        raise web.HTTPNotFound()
    form = await ctx.form()
    return await _save(ctx, _form_data(form, entry_id), new=False, question_ids=[])


async def _save(
    ctx: Ctx, data: dict[str, Any], *, new: bool, question_ids: list[str]
) -> web.StreamResponse:
    assert ctx.user is not None
    ids = [int(q) for q in question_ids if q.isdigit()]
    try:
        outcome = await ctx.services.curation.save_entry(
            ctx.user,
            data,
            summary=("novi unos " if new else "izmena ") + data["id"],
            question_ids=ids,
        )
    except CurationRefused:
        return ctx.render("forbidden.html", status=403, title="Nije dozvoljeno")
    if not outcome.ok:
        response = _editor(
            ctx, data, new=new, error=outcome.message, check=outcome.problems,
            question_ids=[str(i) for i in ids],
        )
        response.set_status(422)
        return response
    return ctx.redirect(f"/unosi/{data['id']}", note=outcome.message)


@page("/pregled", methods=("POST",))
async def preview(ctx: Ctx) -> web.StreamResponse:
    """The live preview's fragment (console.js posts the editor's fields as they change)."""
    form = await ctx.form()
    data = _form_data(form, str(form.get("id", "")))
    body = ctx.env.get_template("entry_preview.html").render(
        preview=_preview(ctx, data), problems=markup_problems(data["answer"])
    )
    return web.Response(text=body, content_type="text/html")
