"""The roadmap pages of the console in a real browser (Playwright with the system Chromium):
the matrix and the programme report over six weeks of progress in five municipalities.

With ROADMAP_SCREENSHOTS=DIR the two pages are also saved there as PNG (how the README's
docs/roadmaps/matrix.png and report.png were made)."""

from __future__ import annotations

import html
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from bot.services.users import UserProfile
from tests.conftest import fresh_database_url
from tests.console.test_console import LINK
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.clock import Clock, ordinary_wednesday
from tests.fakes.mentor_harness import ADMIN_ID, MentorBot

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FAKETIME_VARS = ("LD_PRELOAD", "FAKETIME", "FAKETIME_DONT_FAKE_MONOTONIC")
playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no system Chromium"),
]

# (municipality, [(week, service, step, outcome)]) - outcome: done | blocked:<blocker index>
SCENARIO = {
    "Čačak": [(0, "ezup", "admin", "done"), (1, "ezup", "kes", "done"),
              (2, "eplacanje", "sporazum", "done"), (4, "ezup", "pristup", "blocked:1")],
    "Beočin": [(0, "episarnica", "administrator", "done"), (1, "episarnica", "pisarnica", "done"),
               (3, "ezup", "admin", "done"), (4, "episarnica", "obuka", "done"),
               (5, "esanduce", "prijava", "done")],
    "Kragujevac": [(1, "episarnica", "administrator", "done"),
                   (2, "episarnica", "pisarnica", "blocked:1")],
    "Niš": [(2, "ezup", "admin", "done")],
    "Pirot": [],
}


async def _person(bot: MentorBot, external: str, role: str, municipality: str | None):
    assert bot.services is not None
    services = bot.services
    profile = await services.users.get_or_register("telegram", external, f"Službenik {external}")
    async with services.database.uow() as uow:
        row = await uow.users.get(profile.id)
        assert row is not None
        row.role, row.municipality = role, municipality
        await uow.commit()
    found = await services.users.get(profile.id)
    assert found is not None
    return found


async def build_programme(bot: MentorBot, clock: Clock) -> None:
    assert bot.services is not None
    roadmaps = bot.services.roadmaps
    admin = await _person(bot, str(ADMIN_ID), "admin", None)
    mentor = await _person(bot, "88001", "mentor", None)
    clerks: dict[str, UserProfile] = {}
    for index, municipality in enumerate(SCENARIO):
        await roadmaps.add_participant(admin, municipality)
        clerks[municipality] = await _person(bot, str(88100 + index), "clerk", municipality)
    start = clock.now
    for week in range(6):
        clock.set(start + timedelta(weeks=week))
        for municipality, changes in SCENARIO.items():
            pid = next(r.participant_id for r in (await roadmaps.programme()).rows
                       if r.municipality == municipality)
            for when, service, step, outcome in changes:
                if when != week:
                    continue
                if outcome == "done":
                    await roadmaps.mark_done(clerks[municipality], pid, service, step)
                    await roadmaps.review(mentor, pid, service, step, confirm=True)
                else:
                    await roadmaps.stuck(clerks[municipality], pid, service, step,
                                         int(outcome.split(":")[1]))
    clock.set(start + timedelta(weeks=6))


@pytest.mark.timeout(300)
async def test_matrix_and_report_pages_in_chromium(tmp_path: Path):
    clock = Clock(ordinary_wednesday() - timedelta(weeks=6))
    shots = Path(os.environ.get("ROADMAP_SCREENSHOTS") or tmp_path)
    async with (
        fresh_database_url("sqlite", tmp_path) as url,
        FakeBotAPI() as api,
        MentorBot(api, url, clock=clock) as bot,
    ):
        await build_programme(bot, clock)
        assert bot.services is not None
        admin = await bot.services.users.get_or_register("telegram", str(ADMIN_ID), "Admin")
        found = LINK.search((await bot.services.console.request_link(admin)).text)
        assert found
        link = html.unescape(found.group(1))
        # The driver and the browser run on the real clock even under CI's libfaketime pass
        # (the program's own clock is injected; a faked clock only hangs Chromium).
        saved = {k: os.environ.pop(k) for k in list(os.environ) if k in FAKETIME_VARS}
        try:
            driver = playwright_api.async_playwright()
            p = await driver.__aenter__()
            browser = await p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
        finally:
            os.environ.update(saved)
        try:
            page = await browser.new_page(viewport={"width": 1000, "height": 640})
            await page.goto(link)
            await page.click("#sign-in")
            await page.goto(bot.http_url + "/console/opstine")
            rows = await page.locator("table.matrix tbody tr").all_inner_texts()
            # Blocked municipalities first (Čačak, Kragujevac), then by name.
            assert [r.split("\t")[0] for r in rows] == [
                "Čačak", "Kragujevac", "Beočin", "Niš", "Pirot"
            ]
            assert "2/5 !" in rows[0] and "1/3" in rows[0]
            assert "3/4" in rows[2]
            await page.screenshot(path=str(shots / "matrix.png"), full_page=True)

            await page.click("text=Kragujevac")
            assert "tok rada" in await page.inner_text("h1")
            assert "nedostaju tehnički uslovi" in await page.inner_text("table")

            await page.goto(bot.http_url + "/console/plan-izvestaj")
            assert await page.locator("svg.chart polyline").count() == 5
            blocked = await page.locator("table").nth(1).inner_text()
            assert "postupak nije naveden" in blocked and "nedostaju tehnički uslovi" in blocked
            await page.screenshot(path=str(shots / "report.png"), full_page=True)
            async with page.expect_download() as download_info:
                await page.click("text=Preuzmi CSV")
            download = await download_info.value
            text = Path(await download.path()).read_text(encoding="utf-8-sig")
            assert text.count(",done,") == 10 and text.count(",blocked,") == 2
            await browser.close()
        finally:
            await driver.__aexit__(None, None, None)
