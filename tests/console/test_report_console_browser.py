"""The dashboard, the programme report and the attendance list in a real browser: Debian's
Chromium driven by Playwright (the system executable, nothing downloaded), the real Telegram
runtime serving the console, a real database (SQLite and PostgreSQL), a seeded month.

`SCREENSHOTS_DIR=docs/console` writes the README's screenshots while the test runs."""

from __future__ import annotations

import csv
import html
import io
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bot.services.audience import Audience
from bot.services.trainings import TrainingDraft
from storage.models import Feedback, OutboxMessage, Question
from storage.seed import SEED_EXPECTED, seed_programme_month
from tests.conftest import BACKENDS, fresh_database_url
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.clock import BELGRADE, Clock
from tests.fakes.harness import BotUnderTest

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Under libfaketime (CI's second pass) Playwright's node driver never exits after the test
# (observed 2026-12-07: every step passes, then `async_playwright()` waits for it forever);
# the service tests of the report run in that pass.
UNDER_FAKETIME = "faketime" in os.environ.get("LD_PRELOAD", "")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium"),
    pytest.mark.skipif(UNDER_FAKETIME, reason="Playwright's driver hangs under libfaketime"),
]

ADMIN = 7601
CLERK = 7602
LINK = re.compile(r'href="([^"]+/console/login\?t=[^"]+)"')


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database_url(request.param, tmp_path) as database_url:
        yield database_url


def _shot_dir() -> Path | None:
    folder = os.environ.get("SCREENSHOTS_DIR")
    return Path(folder) if folder else None


async def _screenshot(page: object, name: str) -> None:
    folder = _shot_dir()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(folder / name), full_page=True)  # type: ignore[attr-defined]


async def test_dashboard_report_downloads_and_attendance_in_chromium(
    url: str, tmp_path: Path
) -> None:
    clock = Clock()
    month = (clock().astimezone(BELGRADE).date().replace(day=1) - timedelta(days=1)).replace(day=1)
    async with (
        FakeBotAPI() as api,
        BotUnderTest(api, url, admin_ids=[ADMIN], clock=clock) as bot,
    ):
        services = bot.services
        assert services is not None
        await seed_programme_month(services.database, month)
        async with services.database.uow() as uow:  # 👍/👎 of the last days, for the dashboard
            asker = await uow.users.get_by_external("telegram", f"seed-{month:%Y%m}-1")
            assert asker is not None
            for number, (entry, value) in enumerate(
                [("ezup-access-request", "up")] * 3 + [("ezup-access-request", "down"),
                                                       ("eplacanje-ips-qr", "up")]
            ):
                when = clock() - timedelta(days=2, minutes=number)
                question = Question(user_id=asker.id, text="pristup eZUP-u", decision="answer",
                                    entry_id=entry, candidates=[entry], created_at=when)
                uow.session.add(question)
                await uow.session.flush()
                uow.session.add(Feedback(question_id=question.id, user_id=asker.id,
                                         value=value, created_at=when))
            await uow.commit()
        admin_chat, clerk_chat = bot.clerk(ADMIN, None), bot.clerk(CLERK, None)
        await clerk_chat.say("/start")

        # A training starting in two hours, one clerk signed up; then the clock reaches it.
        admin = await services.users.get_or_register("telegram", str(ADMIN), "Admin")
        clerk = await services.users.get_or_register("telegram", str(CLERK), "Milica")
        training_id, _ = await services.trainings.create(admin, TrainingDraft(
            title="eZUP u praksi (test)", service="ezup", starts_at=clock() + timedelta(hours=2),
            duration_minutes=90, link="https://meet.example.rs/x", audience=Audience()))
        assert training_id is not None
        await services.trainings.sign_up(clerk, training_id)
        clock.advance(hours=2, minutes=5)
        (reply,) = await admin_chat.say("/konzola")
        link = html.unescape(LINK.search(reply.text).group(1))  # type: ignore[union-attr]

        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-dev-shm-usage"])
            try:
                context = await browser.new_context(
                    accept_downloads=True, viewport={"width": 1200, "height": 900})
                page = await context.new_page()
                await page.goto(link)
                await page.click("#sign-in")
                await page.wait_for_url("**/console/")

                # The dashboard: the /statistika figures, the weekly chart, 👍/👎.
                await page.click("nav >> text=Pregled")
                await page.wait_for_url("**/console/pregled")
                assert await page.text_content("#open-requests") == "1"  # Čačak's open one
                assert await page.locator("#periods tbody tr").count() == 2
                assert await page.locator("#weeks tbody tr").count() == 8
                chart = page.locator("img.chart")
                assert await chart.evaluate("img => img.complete && img.naturalWidth") == 900
                votes = await page.locator("#votes tbody tr").all_inner_texts()
                assert votes[0].split("\t")[1:] == ["3", "1"] and "ezup-access-request" in votes[0]
                assert votes[1].split("\t")[1:] == ["1", "0"]
                await _screenshot(page, "pregled.png")

                # The programme report of the seeded month: table, chart, downloads.
                await page.click("nav >> text=Izveštaj programa")
                await page.select_option("#mesec", month.strftime("%Y-%m"))
                await page.click("form.inline button")
                await page.wait_for_url(f"**/console/izvestaj?mesec={month:%Y-%m}")
                rows = await page.locator("#programme tbody tr").all_inner_texts()
                cells = {r.split("\t")[0]: r.split("\t") for r in rows}
                assert list(cells) == ["Novi Sad", "Čačak", "Niš", "Kragujevac", "Ukupno"]
                assert cells["Novi Sad"][1:4] == ["3", "12", "75.0 %"]
                assert cells["Ukupno"][6:9] == ["8", "5", "4"]  # signed up, attended, rated
                assert cells["Ukupno"][10] == str(SEED_EXPECTED["Ukupno"]["incidents"])
                chart = page.locator("img.chart")
                assert await chart.evaluate("img => img.complete && img.naturalWidth") == 900
                await _screenshot(page, "izvestaj.png")

                async with page.expect_download() as info:
                    await page.click("#download-csv")
                download = await info.value
                saved = tmp_path / download.suggested_filename
                await download.save_as(saved)
                assert saved.name == f"euprava-izvestaj-{month:%Y-%m}.csv"
                table = list(csv.reader(io.StringIO(saved.read_text("utf-8-sig"))))
                assert table[-1][:3] == ["Ukupno", "8", "25"]

                async with page.expect_download() as info:
                    await page.click("#download-xlsx")
                download = await info.value
                saved = tmp_path / download.suggested_filename
                await download.save_as(saved)
                sheet = load_workbook(saved).active
                assert sheet is not None
                last = [c.value for c in list(sheet.iter_rows())[-1]]
                assert last[:3] == ["Ukupno", 8, 25]

                # Attendance: the trainer marks the clerk present from the console.
                await page.click("nav >> text=Prisustvo na obukama")
                await _screenshot(page, "obuke.png")
                await page.click("text=eZUP u praksi (test)")
                assert "Prisutno: 0 od 1" in (await page.text_content("#present") or "")
                await page.click("#attendance button")
                await page.wait_for_selector("text=Sačuvano.")
                assert "Prisutno: 1 od 1" in (await page.text_content("#present") or "")
                await page.fill("#link", "htp:/x.rs")
                await page.click("#materials button")
                assert "Link nije ispravan" in (await page.text_content(".note") or "")
                await page.fill("#link", "=cmd|' /C calc'!A0")
                await page.click("#materials button")
                assert "Upišite link" in (await page.text_content(".note") or "")
                await page.fill("#link", "https://materijali.example.rs/ezup.pdf")
                await page.click("#materials button")
                await page.wait_for_selector("text=Link ka materijalima je sačuvan")
                assert await page.input_value("#link") == "https://materijali.example.rs/ezup.pdf"
                await _screenshot(page, "prisustvo.png")
            finally:
                await browser.close()

        lines = await services.trainings.attendance.lines(admin, training_id)
        assert lines is not None and [line.attended for line in lines] == [True]
        # The clerk's feedback question is queued for the end of the training.
        async with services.database.uow(read_only=True) as uow:
            row = await uow.session.scalar(select(OutboxMessage).where(
                OutboxMessage.dedupe_key == f"tfeedback:{training_id}:{clerk.id}"))
        assert row is not None and row.status == "pending"
        assert "https://materijali.example.rs/ezup.pdf" in row.payload["text"]
