"""KB revisions: applied over the YAML base at load, refused when the check fails, picked up by
another instance without a restart, and exported as YAML the base can absorb."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import build_services
from bot.config import Settings
from bot.services.curation import entry_data
from bot.services.users import UserProfile
from knowledge_base.loader import DEFAULT_CONTENT_DIR, load_knowledge_base
from knowledge_base.revisions import apply_to_file, export_revisions
from storage.curation import CurationRepository
from storage.uow import Database

ROOT = Path(__file__).resolve().parents[2]
UNANSWERED = [
    "treba mi ono za lozinku sto se zaboravi",
    "kako da ubacim pecat u word dokument",
    "gde je dugme za zeleni karton u ezupu",
]


def _settings(url: str) -> Settings:
    return Settings(_env_file=None, database_url=url, console_secret="s" * 32)  # type: ignore[call-arg]


async def _curator(database: Database, external_id: str) -> UserProfile:
    from bot.services.users import profile_of

    async with database.uow() as uow:
        row, _ = await uow.users.get_or_create("telegram", external_id)
        row.role = "curator"
        row.display_name = "Kurator Test"
        await uow.commit()
        return profile_of(row)


def test_a_changed_and_a_new_entry_exported_load_back_as_they_were(tmp_path: Path) -> None:
    base = load_knowledge_base()
    changed = entry_data(base.get("ezup-what-is"))  # type: ignore[arg-type]
    changed["alternatives"] = [*changed["alternatives"], "ezup ukratko za novog sluzbenika"]
    new = dict(changed, id="ezup-nova-stavka", question="Nova stavka o eZUP-u?", related=[])
    content = tmp_path / "content"
    shutil.copytree(DEFAULT_CONTENT_DIR, content)
    written = export_revisions([changed, new], tmp_path / "out")
    assert [p.name for p in written] == ["ezup.yaml"]
    shutil.copy(written[0], content / "ezup.yaml")
    reloaded = load_knowledge_base(content)
    for data in (changed, new):
        entry = reloaded.get(str(data["id"]))
        assert entry is not None and entry_data(entry) == data
    # Only the changed entry's lines differ from the base file.
    before = (DEFAULT_CONTENT_DIR / "ezup.yaml").read_text(encoding="utf-8").splitlines()
    after = written[0].read_text(encoding="utf-8").splitlines()
    assert "  - ezup ukratko za novog sluzbenika" in after
    assert len(set(before) - set(after)) <= 3, set(before) - set(after)
    # Once the base has absorbed them, nothing is left to export.
    assert export_revisions([changed, new], tmp_path / "again", content) == []


def test_an_entry_block_is_replaced_in_place() -> None:
    text = "- id: a\n  service: x\n\n- id: b\n  service: x\n"
    data = {"id": "a", "service": "y", "question": "Q?", "answer": "A", "alternatives": ["q"]}
    result = apply_to_file(text, [data])
    assert result.startswith("- id: a\n  service: y\n")
    assert result.endswith("\n- id: b\n  service: x\n")


async def test_revision_reaches_another_instance_and_is_exported(
    database_url: str, tmp_path: Path
) -> None:
    first = await build_services(_settings(database_url))
    second = await build_services(_settings(database_url))
    try:
        text, entry_id = next(
            (q, r.candidates[0].entry_id)
            for q in UNANSWERED
            if (r := first.answers.matcher.match(q)).decision != "answer" and r.candidates
        )
        curator = await _curator(first.database, "424242")
        outcome = await first.curation.add_alternative(curator, entry_id, text, [])
        assert outcome.ok, outcome
        assert first.answers.matcher.match(text).entry_id == entry_id
        assert first.matcher is first.answers.matcher  # AppServices follows the swap
        # The other instance answers from its old matcher until it polls the counter.
        assert second.answers.matcher.match(text).decision != "answer"
        assert await second.curation.refresh()
        assert second.answers.matcher.match(text).decision == "answer"
        assert not await second.curation.refresh()  # nothing newer: no rebuild

        # A fresh start applies it over the base too.
        third = await build_services(_settings(database_url))
        try:
            assert third.answers.matcher.match(text).entry_id == entry_id
        finally:
            await third.close()

        env = {**os.environ, "DATABASE_URL": database_url}
        out = tmp_path / "export"
        run = subprocess.run(
            [sys.executable, "-m", "bot", "revisions", "export", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        entry = first.curation.entry(entry_id)
        assert entry is not None
        exported = out / Path(entry.source_file).name
        assert f"  - {text}" in exported.read_text(encoding="utf-8")
    finally:
        await first.close()
        await second.close()


async def test_a_broken_change_is_refused_and_a_clerk_cannot_change_anything(
    database_url: str,
) -> None:
    from bot.services.curation import CurationRefused

    services = await build_services(_settings(database_url))
    try:
        curator = await _curator(services.database, "515151")
        data = entry_data(services.curation.knowledge_base.get("ezup-what-is"))  # type: ignore[arg-type]
        outcome = await services.curation.save_entry(curator, dict(data, related=["nema-ga"]))
        assert not outcome.ok
        assert any("unknown id 'nema-ga'" in p for p in outcome.problems), outcome.problems
        async with services.database.uow(read_only=True) as uow:
            assert await uow.repository(CurationRepository).latest_revision() == 0

        async with services.database.uow() as uow:
            row, _ = await uow.users.get_or_create("telegram", "515151")
            row.role = "clerk"
            await uow.commit()
        with pytest.raises(CurationRefused):
            await services.curation.save_entry(curator, data)
    finally:
        await services.close()


async def test_a_running_bot_picks_up_another_instances_revision_within_seconds(
    database_url: str,
) -> None:
    """Two instances on one database: the curator saves on one, a clerk of the other running
    bot (scheduler on, polling the revision counter) is answered a few seconds later."""
    import asyncio
    import time

    from tests.fakes.bot_api import FakeBotAPI
    from tests.fakes.harness import BotUnderTest

    async with (
        FakeBotAPI() as api,
        BotUnderTest(api, database_url, background_work=True) as running,
    ):
        assert running.services is not None
        text, entry_id = next(
            (q, r.candidates[0].entry_id)
            for q in UNANSWERED
            if (r := running.services.answers.matcher.match(q)).decision != "answer"
            and r.candidates
        )
        other = await build_services(_settings(database_url))
        try:
            curator = await _curator(other.database, "616161")
            assert (await other.curation.add_alternative(curator, entry_id, text, [])).ok
        finally:
            await other.close()
        deadline = time.monotonic() + 15
        while running.services.answers.matcher.match(text).decision != "answer":
            assert time.monotonic() < deadline, "the revision did not arrive"
            await asyncio.sleep(0.2)
        clerk = running.clerk(626262, language_code=None)
        await clerk.say("/start")
        (answered,) = await clerk.say(text)
        entry = running.services.curation.entry(entry_id)
        assert entry is not None and entry.question.split()[0] in answered.text
