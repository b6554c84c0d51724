"""The curators' console over HTTP: the real Telegram runtime (the bot sends the /konzola link),
a real database (SQLite and PostgreSQL), the console on the bot's own aiohttp server. The pages
themselves in a real browser: tests/console/test_console_browser.py."""

from __future__ import annotations

import html
import re

import aiohttp
import pytest

from tests.console.conftest import ADMIN
from tests.fakes.clock import Clock
from tests.fakes.harness import BotUnderTest

pytestmark = pytest.mark.asyncio(loop_scope="module")

LINK = re.compile(r'href="([^"]+/console/login\?t=[^"]+)"')


_ids = iter(range(7100, 7999))


async def new_curator(bot: BotUnderTest) -> int:
    """A user made curator by the admin with /dodaj_kuratora."""
    user_id = next(_ids)
    person = bot.clerk(user_id, language_code=None)
    await person.say("/start")
    admin = bot.clerk(ADMIN, language_code=None)
    (granted,) = await admin.say(f"/dodaj_kuratora {user_id}")
    assert "kurator" in granted.text or "curator" in granted.text, granted.text
    return user_id


async def link_for(bot: BotUnderTest, user_id: int) -> str:
    (reply,) = await bot.clerk(user_id, language_code=None).say("/konzola")
    found = LINK.search(reply.text)
    assert found, reply.text
    return html.unescape(found.group(1))


async def sign_in(link: str) -> tuple[aiohttp.ClientSession, int]:
    """Open the link, press "Prijavi me"; the session (with its cookie) and the status."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # 127.0.0.1
    async with session.get(link) as page:
        assert page.status == 200
        body = await page.text()
    token = re.search(r'name="t" value="([^"]+)"', body)
    assert token, body
    base = link.split("/console/")[0]
    async with session.post(
        base + "/console/login", data={"t": html.unescape(token.group(1))}, allow_redirects=False
    ) as response:
        return session, response.status


async def test_curator_signs_in_with_the_link_and_sees_the_console(bot: BotUnderTest) -> None:
    curator = await new_curator(bot)
    link = await link_for(bot, curator)
    assert link.startswith(bot.http_url + "/console/login?t=")
    session, status = await sign_in(link)
    async with session:
        assert status == 303
        cookie = next(c for c in session.cookie_jar if c.key == "console_session")
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        async with session.get(bot.http_url + "/console/") as home:
            assert home.status == 200
            body = await home.text()
            assert "Konzola baze znanja" in body and "Odjava" in body
            assert home.headers["X-Frame-Options"] == "DENY"
    assert bot.services is not None
    admin = await bot.services.users.get_or_register("telegram", str(ADMIN), "Admin")
    actions = [item.action for item in await bot.services.audit.latest(admin, limit=5)]
    assert actions[:2] == ["console.sign_in", "console.link"]


async def test_a_used_link_is_refused(bot: BotUnderTest) -> None:
    link = await link_for(bot, await new_curator(bot))
    first, status = await sign_in(link)
    await first.close()
    assert status == 303
    second, status = await sign_in(link)
    await second.close()
    assert status == 403


async def test_an_expired_link_is_refused(bot: BotUnderTest, clock: Clock) -> None:
    link = await link_for(bot, await new_curator(bot))
    clock.advance(minutes=11)
    session, status = await sign_in(link)
    await session.close()
    assert status == 403


async def test_a_clerk_gets_no_link_and_a_revoked_curators_link_is_refused(
    bot: BotUnderTest,
) -> None:
    clerk = bot.clerk(next(_ids), language_code=None)
    await clerk.say("/start")
    (refused,) = await clerk.say("/konzola")
    assert "kuratorima i administratorima" in refused.text
    assert not LINK.search(refused.text)

    curator = await new_curator(bot)
    link = await link_for(bot, curator)
    await bot.clerk(ADMIN, language_code=None).say(f"/ukloni_kuratora {curator}")
    session, status = await sign_in(link)
    await session.close()
    assert status == 403


async def test_pages_need_a_session_and_forms_need_the_csrf_token(bot: BotUnderTest) -> None:
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(bot.http_url + "/console/") as page,
    ):
        assert page.status == 401
        assert "/konzola" in await page.text()
    session, _ = await sign_in(await link_for(bot, await new_curator(bot)))
    async with session:
        async with session.post(
            bot.http_url + "/console/logout", data={"csrf": "wrong"}, allow_redirects=False
        ) as forged:
            assert forged.status == 403
        async with session.get(bot.http_url + "/console/") as home:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await home.text())
        assert csrf
        async with session.post(
            bot.http_url + "/console/logout", data={"csrf": csrf.group(1)}, allow_redirects=False
        ) as out:
            assert out.status == 303
        async with session.get(bot.http_url + "/console/") as after:
            assert after.status == 401


# -- the review queue, over HTTP ----------------------------------------------------------------

UNANSWERED = [
    "kako da ubacim pecat u word dokument",
    "treba mi ono za lozinku sto se zaboravi",
    "gde je dugme za zeleni karton u ezupu",
]


def unanswered_question(bot: BotUnderTest) -> tuple[str, str]:
    """A phrasing the bot does not answer now, and the matcher's first guess for it."""
    assert bot.services is not None
    for text in UNANSWERED:
        result = bot.services.answers.matcher.match(text)
        if result.decision != "answer" and result.candidates:
            return text, result.candidates[0].entry_id
    raise AssertionError("every candidate question is answered already")


async def form_token(session: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    async with session.get(url) as page:
        assert page.status == 200, page.status
        body = await page.text()
    found = re.search(r'name="csrf" value="([^"]+)"', body)
    assert found, body
    return found.group(1), body


async def test_a_group_of_unanswered_questions_becomes_an_alternative(bot: BotUnderTest) -> None:
    assert bot.services is not None
    text, entry_id = unanswered_question(bot)
    clerks = [bot.clerk(next(_ids), language_code=None) for _ in range(2)]
    for clerk in clerks:
        await clerk.say("/start")
        (before,) = await clerk.say(text)
        assert "Pitaj mentora" in before.button_labels or len(before.button_labels) > 1

    session, _ = await sign_in(await link_for(bot, await new_curator(bot)))
    async with session:
        csrf, body = await form_token(session, bot.http_url + "/console/predlozi")
        assert html.escape(text) in body
        assert entry_id in body
        ids = re.findall(r'name="q" value="(\d+)"', body.split(html.escape(text), 1)[1])
        assert len(set(ids)) >= 2
        async with session.post(
            bot.http_url + "/console/predlozi/formulacija",
            data=[("csrf", csrf), ("phrasing", text), ("entry_id", entry_id)]
            + [("q", i) for i in dict.fromkeys(ids)],
        ) as saved:
            assert saved.status == 200
            assert "bot je već koristi" in await saved.text()
        _, after = await form_token(session, bot.http_url + "/console/predlozi")
        assert html.escape(text) not in after

    newcomer = bot.clerk(next(_ids), language_code=None)
    await newcomer.say("/start")
    (answered,) = await newcomer.say(text)
    entry = bot.services.curation.entry(entry_id)
    assert entry is not None and text in entry.alternatives
    assert html.escape(entry.question) in answered.text
    assert entry.reviewed == bot.services.curation.today()


async def test_a_change_that_fails_the_check_is_refused_with_its_message(
    bot: BotUnderTest,
) -> None:
    assert bot.services is not None
    entry = next(iter(bot.services.curation.knowledge_base.entries.values()))
    session, _ = await sign_in(await link_for(bot, await new_curator(bot)))
    async with session:
        csrf, _ = await form_token(session, bot.http_url + f"/console/unosi/{entry.id}")
        revision = bot.services.curation.revision
        async with session.post(
            bot.http_url + f"/console/unosi/{entry.id}",
            data={
                "csrf": csrf,
                "service": entry.service,
                "question": entry.question,
                "alternatives": "\n".join(entry.alternatives),
                "answer": "<b>Nezatvoreno",
                "sources": "\n".join(entry.sources),
            },
        ) as refused:
            assert refused.status == 422
            body = await refused.text()
        assert "is never closed" in body
        assert bot.services.curation.revision == revision


async def test_the_test_pane_shows_the_decision_before_and_after_an_unsaved_change(
    bot: BotUnderTest,
) -> None:
    assert bot.services is not None
    text = "kako da obrišem staru kantu za smeće u eSandučetu"
    result = bot.services.answers.matcher.match(text)
    if result.decision == "answer":
        pytest.skip("the matcher answers this phrasing already")
    entry_id = result.candidates[0].entry_id
    session, _ = await sign_in(await link_for(bot, await new_curator(bot)))
    async with session:
        csrf, _ = await form_token(session, bot.http_url + "/console/proba")
        revision = bot.services.curation.revision
        async with session.post(
            bot.http_url + "/console/proba",
            data={"csrf": csrf, "pitanje": text, "unos": entry_id, "nova": text},
        ) as pane:
            assert pane.status == 200
            body = await pane.text()
    now, changed = body.split("Sa izmenom", 1)
    assert "Odgovara" not in now.split("Sada", 1)[1]
    assert "Odgovara" in changed and entry_id in changed
    assert bot.services.curation.revision == revision  # nothing was saved
    assert bot.services.answers.matcher.match(text).decision != "answer"


async def test_a_group_becomes_a_new_entry_written_in_the_console(bot: BotUnderTest) -> None:
    assert bot.services is not None
    text = "šta znači crveni trougao na SMO ekranu"
    if bot.services.answers.matcher.match(text).decision == "answer":
        pytest.skip("the matcher answers this phrasing already")
    clerk = bot.clerk(next(_ids), language_code=None)
    await clerk.say("/start")
    await clerk.say(text)
    session, _ = await sign_in(await link_for(bot, await new_curator(bot)))
    source = "https://www.ite.gov.rs/tekst/sr/95/sistem-za-razmenu-podataka-ezup.php"
    async with session:
        _, queue = await form_token(session, bot.http_url + "/console/predlozi")
        card = queue.split(html.escape(text), 1)[1].split("</section>", 1)[0]
        new_link = html.unescape(re.search(r'href="(/console/unosi/novi\?[^"]+)"', card).group(1))
        csrf, editor = await form_token(session, bot.http_url + new_link)
        assert f'value="{html.escape(text)}"' in editor  # the question, filled in
        ids = re.findall(r'name="q" value="(\d+)"', editor)
        assert ids
        async with session.post(
            bot.http_url + "/console/unosi/novi",
            data=[
                ("csrf", csrf),
                ("id", "smo-crveni-trougao"),
                ("service", "ezup"),
                ("question", "Šta znači crveni trougao na ekranu SMO?"),
                ("alternatives", f"{text}\ncrveni trougao smo"),
                ("answer", f'Znak upozorenja.\nIzvor: <a href="{source}">ITE</a>'),
                ("sources", source),
                *[("q", i) for i in ids],
            ],
        ) as saved:
            assert saved.status == 200, await saved.text()
            assert "Unos smo-crveni-trougao" in await saved.text()
        _, after = await form_token(session, bot.http_url + "/console/predlozi")
        assert html.escape(text) not in after
    (answered,) = await bot.clerk(next(_ids), language_code=None).say(text)
    assert "crveni trougao na ekranu SMO" in answered.text


async def test_konzola_in_a_group_sends_no_link(bot: BotUnderTest) -> None:
    from tests.fakes.bot_api import message_update

    curator = await new_curator(bot)
    update = message_update(bot.next_update_id(), curator, "/konzola", language_code=None)
    update["message"]["chat"] = {"id": -100777, "type": "supergroup", "title": "Mentori"}
    await bot.deliver(update)
    sent = bot.api.calls_of("sendMessage")
    assert not any("/console/login" in str(call.params.get("text", "")) for call in sent[-3:])
    assert not any(str(call.params.get("chat_id")) == "-100777" for call in sent)


async def test_an_unsaved_edit_of_an_entry_is_tried_in_the_pane(bot: BotUnderTest) -> None:
    assert bot.services is not None
    text = "eplacanje mi ne prikazuje zelenu kvacicu"
    result = bot.services.answers.matcher.match(text)
    if result.decision == "answer" or not result.candidates:
        pytest.skip("the matcher answers this phrasing already")
    entry = bot.services.curation.entry(result.candidates[0].entry_id)
    assert entry is not None
    session, _ = await sign_in(await link_for(bot, await new_curator(bot)))
    async with session:
        csrf, _ = await form_token(session, bot.http_url + f"/console/unosi/{entry.id}")
        async with session.post(
            bot.http_url + "/console/unosi-proba",
            data={
                "csrf": csrf,
                "id": entry.id,
                "service": entry.service,
                "question": entry.question,
                "alternatives": "\n".join([*entry.alternatives, text]),
                "keywords": "\n".join(entry.keywords),
                "answer": entry.answer,
                "sources": "\n".join(entry.sources),
                "related": ", ".join(entry.related),
                "probno": text,
            },
        ) as pane:
            assert pane.status == 200
            body = await pane.text()
    now, changed = body.split(f"Sa izmenom unosa {entry.id}", 1)
    assert "Odgovara" not in now.split("Sada", 1)[1]
    assert "Odgovara" in changed
    assert bot.services.answers.matcher.match(text).decision != "answer"  # nothing saved


async def test_a_mentor_signs_in_for_the_roadmaps_and_opens_no_knowledge_base_page(
    bot: BotUnderTest,
) -> None:
    """Mentors work with the municipalities' roadmaps in the console (issue #18); editing the
    knowledge base stays with curators and admins."""
    mentor = next(_ids)
    await bot.clerk(mentor, language_code=None).say("/start")
    await bot.clerk(ADMIN, language_code=None).say(f"/dodaj_mentora {mentor}")
    session, status = await sign_in(await link_for(bot, mentor))
    async with session:
        assert status == 303
        async with session.get(bot.http_url + "/console/opstine") as matrix:
            assert matrix.status == 200
        async with session.get(bot.http_url + "/console/unosi") as entries:
            assert entries.status in (401, 403)
            assert "Sačuvaj" not in await entries.text()
