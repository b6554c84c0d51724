"""The curators' console in a real browser: Debian's Chromium (/usr/bin/chromium, installed by
.ci/run) driven by Playwright, never a downloaded browser. The bot is the real Telegram runtime
against the fake Bot API, on SQLite and PostgreSQL; the curator signs in with the link the bot
sends, approves a suggestion, tries it in the test pane, and a clerk's next question of that
group is answered. Expired, reused and clerks' links are refused.

`CONSOLE_SCREENSHOTS=docs/console` saves a PNG of each page there (the README shows them)."""

from __future__ import annotations

import html
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.console.conftest import ADMIN
from tests.fakes.clock import Clock
from tests.fakes.harness import BotUnderTest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium (apt-get install chromium chromium-driver; .ci/run does)",
    ),
]
playwright_api = pytest.importorskip("playwright.async_api")

LINK = re.compile(r'href="([^"]+/console/login\?t=[^"]+)"')
UNANSWERED = [
    "treba mi ono za lozinku sto se zaboravi",
    "kako da ubacim pecat u word dokument",
    "gde je dugme za zeleni karton u ezupu",
]
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS", "")
_ids = iter(range(8100, 8999))


def _real_clock_environment() -> dict[str, str]:
    """The environment without libfaketime: CI's second pass moves the clock of the tests and
    the bot a year ahead; the browser and its driver keep the machine's own (Chromium under
    libfaketime starves the bot of CPU), and the bot's clock alone decides what has expired."""
    return {
        key: value
        for key, value in os.environ.items()
        if key != "LD_PRELOAD" and not key.startswith("FAKETIME")
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(_real_clock_environment())  # the driver starts with it
    try:
        driver_context = playwright_api.async_playwright()
        driver = await driver_context.__aenter__()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        chromium = await driver.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-dev-shm-usage"],
            env=_real_clock_environment(),
        )
        try:
            yield chromium
        finally:
            await chromium.close()
    finally:
        await driver_context.__aexit__(None, None, None)


@pytest_asyncio.fixture(loop_scope="module")
async def phone(browser: Any) -> AsyncIterator[Any]:
    """A fresh browser profile the size of a phone (no cookies of other tests)."""
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="sr-RS")
    page = await context.new_page()
    try:
        yield page
    finally:
        await context.close()


async def curator_link(bot: BotUnderTest, *, demote: bool = False) -> str:
    user_id = next(_ids)
    await bot.clerk(user_id, language_code=None).say("/start")
    admin = bot.clerk(ADMIN, language_code=None)
    await admin.say(f"/dodaj_kuratora {user_id}")
    (reply,) = await bot.clerk(user_id, language_code=None).say("/konzola")
    found = LINK.search(reply.text)
    assert found, reply.text
    if demote:
        await admin.say(f"/ukloni_kuratora {user_id}")
    return html.unescape(found.group(1))


async def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def sign_in(page: Any, link: str) -> None:
    await page.goto(link)
    await shot(page, "01-prijava")
    await page.click("#sign-in")


async def test_curator_turns_unanswered_questions_into_an_alternative(
    bot: BotUnderTest, phone: Any
) -> None:
    assert bot.services is not None
    matcher = bot.services.answers.matcher
    text, entry_id = next(
        (q, r.candidates[0].entry_id)
        for q in UNANSWERED
        if (r := matcher.match(q)).decision != "answer" and r.candidates
    )
    for _ in range(3):  # three clerks of two municipalities ask it
        clerk = bot.clerk(next(_ids), language_code=None)
        await clerk.say("/start")
        await clerk.tap("Latinica")
        await clerk.say("cacak")
        await clerk.tap("Čačak")
        (unsure,) = await clerk.say(text)
        assert "pitaj mentora" in " ".join(unsure.button_labels).lower()  # unsure: mentor offered

    await sign_in(phone, await curator_link(bot))
    await phone.wait_for_selector("text=Konzola baze znanja")
    await shot(phone, "02-pocetna")

    await phone.click("nav >> text=Predlozi")
    card = phone.locator("section.suggestion", has_text=text).first
    await card.wait_for()
    assert "3 pitanja" in await card.inner_text()
    assert "Čačak (3)" in await card.inner_text()
    await shot(phone, "03-predlozi")
    await card.locator(f'input[name="entry_id"][value="{entry_id}"]').check()
    await card.locator("text=Dodaj kao formulaciju").last.click()

    # The test pane opens with the phrasing: the bot now answers it with that entry.
    await phone.wait_for_selector("text=bot je već koristi")
    await phone.click("#try")
    decision = phone.locator("section.trial").first
    await decision.wait_for()
    assert "Odgovara" in await decision.inner_text()
    assert entry_id in await decision.inner_text()
    await shot(phone, "04-proba")

    # A clerk's next question of that group is answered, with no restart.
    clerk = bot.clerk(next(_ids), language_code=None)
    await clerk.say("/start")
    (answered,) = await clerk.say(text)
    entry = bot.services.curation.entry(entry_id)
    assert entry is not None
    assert html.escape(entry.question) in answered.text

    # The entry, with its preview as Telegram shows it, and the stale list.
    await phone.goto(bot.http_url + f"/console/unosi/{entry_id}")
    assert text in await phone.input_value("#alternatives")
    await phone.fill("#answer", "<b>Probni</b> odgovor\nIzvor: <a href=\"https://euprava.gov.rs\">eUprava</a>")
    await phone.wait_for_selector(".preview b:text('Probni')")
    await shot(phone, "05-unos")
    await phone.goto(bot.http_url + "/console/unosi")
    await phone.fill("input[name=q]", "lozinka")
    await phone.click("text=Traži")
    await phone.wait_for_selector(f"a[href='/console/unosi/{entry_id}']")
    await shot(phone, "06-unosi")
    await phone.click("nav >> text=Revizije")
    row = phone.locator("tbody tr", has_text=entry_id).first
    await row.wait_for()
    assert "Milica" in await row.inner_text()  # the curator who approved it
    await shot(phone, "08-revizije")


async def test_expired_reused_and_clerks_links_are_refused(
    bot: BotUnderTest, phone: Any, clock: Clock
) -> None:
    used = await curator_link(bot)
    await sign_in(phone, used)
    await phone.wait_for_selector("text=Konzola baze znanja")
    await phone.context.clear_cookies()
    await sign_in(phone, used)
    await phone.wait_for_selector("text=Prijava nije uspela")
    await shot(phone, "07-odbijena-prijava")

    demoted = await curator_link(bot, demote=True)  # now a clerk again
    await sign_in(phone, demoted)
    await phone.wait_for_selector("text=Prijava nije uspela")

    expired = await curator_link(bot)
    clock.advance(minutes=11)
    await sign_in(phone, expired)
    await phone.wait_for_selector("text=Prijava nije uspela")
    await phone.goto(bot.http_url + "/console/predlozi")
    assert "Potrebna je prijava" in await phone.inner_text("main")
