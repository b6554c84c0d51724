"""`python -m bot playground`: the demo a new colleague runs first, scripted through a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADING = "Kako naš organ dobija pristup podacima iz službenih evidencija preko eZUP-a?"


def _chat(lines: list[str], database_url: str, cwd: Path) -> str:
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "playground"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, env=env, cwd=cwd,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_piped_questions_get_the_ezup_access_answer_in_both_scripts(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite3'}"
    out = _chat(["kako da dobijem pristup ezupu", "како да добијем приступ еЗУП-у"], url, tmp_path)
    assert out.count(HEADING) == 1  # the Latin question, in Latin
    assert "Како наш орган добија приступ" in out  # the Cyrillic one is answered in Cyrillic
    assert "eZUP" in out and "[1]" in out  # the service menu as numbered options
    assert "Privatnost" in out  # the short privacy notice is part of every welcome


def test_numbers_pick_options_and_language_switch_to_cyrillic(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite3'}"
    out = _chat(["/jezik", "2", "kako da dobijem pristup ezupu"], url, tmp_path)
    assert "Како наш орган добија приступ" in out


def test_unknown_question_offers_a_mentor_and_is_kept(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite3'}"
    out = _chat(["koliko je sati u Tokiju", "/nepostojeca"], url, tmp_path)
    assert "Pitaj mentora" in out
    assert "Ne poznajem tu komandu" in out
    # The same database keeps the questions: a second run sees the first run's user.
    import sqlite3

    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM questions").fetchone()[0] == 1
        assert db.execute("SELECT channel FROM users").fetchall() == [("playground",)]
