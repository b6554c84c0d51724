"""`python -m bot playground`: the demo a new colleague runs first, scripted through a pipe."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from storage.clock import utcnow

ROOT = Path(__file__).resolve().parents[2]
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
    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM questions").fetchone()[0] == 1
        assert db.execute("SELECT channel FROM users").fetchall() == [("playground",)]


# -- the playground is the whole product (issue #12) -------------------------------------------

UNKNOWN = "Ne poznajem tu komandu"


def _replies(out: str) -> list[tuple[str, str]]:
    """(typed line, what the bot printed after it), in order."""
    replies = []
    for chunk in out.split("\n👤 ")[1:]:
        line, _, answer = chunk.partition("\n")
        replies.append((line.strip(), answer))
    return replies


def _turns(out: str) -> dict[str, str]:
    """What the bot printed after each typed line, by the line (the last one when repeated)."""
    return dict(_replies(out))


def _url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite3'}"


def test_every_command_that_pomoc_lists_gives_a_real_answer(tmp_path):
    help_text = _turns(_chat(["/pomoc"], _url(tmp_path), tmp_path))["/pomoc"]
    listed = sorted(set(re.findall(r"/[a-z_]+", help_text)))
    assert {"/teme", "/mentor", "/obuke", "/jezik", "/opstina", "/moji_podaci"} <= set(listed)
    commands = [*listed, "/usluge", "/start"]
    turns = _turns(_chat(commands, _url(tmp_path), tmp_path))
    for command in commands:
        answer = turns[command].strip()
        assert answer, f"{command} got no answer"
        assert UNKNOWN not in answer, f"{command} is listed by /pomoc but not known"
    assert "Pošalji mentoru" in turns["/mentor"]
    assert "Da, obriši moje podatke" in turns["/obrisi_me"]
    exports = list(tmp_path.glob("moji_podaci_*.json"))
    assert len(exports) == 1 and str(exports[0]) in turns["/moji_podaci"]
    assert json.loads(exports[0].read_text(encoding="utf-8"))["user"]
    assert UNKNOWN in _turns(_chat(["/nepostojeca"], _url(tmp_path), tmp_path))["/nepostojeca"]


def test_onboarding_asks_script_and_municipality_of_a_new_clerk_once(tmp_path):
    out = _chat(["1", "Čač", "1"], _url(tmp_path), tmp_path)
    replies = [answer for _line, answer in _replies(out)]
    assert "Choose your language" in out.split("\n👤 ")[0]  # before the first line
    assert "U kojoj opštini" in replies[0]
    assert "Čačak" in replies[1]
    assert "Zabeleženo: Čačak" in replies[2]
    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        row = db.execute("SELECT language, municipality, onboarded FROM users").fetchone()
    assert row[0] == "sr-Latn" and row[1] and row[2] == 1
    again = _chat(["/teme"], _url(tmp_path), tmp_path)
    assert "Choose your language" not in again  # a known clerk gets the topics instead


def test_training_sign_up_writes_the_calendar_file(tmp_path):
    when = (utcnow() + timedelta(days=10)).astimezone(ZoneInfo("Europe/Belgrade"))
    start = when.strftime("%d.%m.%Y") + " 10:00"
    out = _chat(
        [
            "/mentor_mod",
            f"/obuka_nova Obuka za eZUP; ezup; {start}; 90; https://meet.example.rs/obuka; 20",
            "/sluzbenik",
            "/obuke",
            "1",
        ],
        _url(tmp_path),
        tmp_path,
    )
    turns = _turns(out)
    assert "Obuka je objavljena" in turns[f"/obuka_nova Obuka za eZUP; ezup; {start}; 90; "
                                          "https://meet.example.rs/obuka; 20"]
    assert "Obuka za eZUP" in turns["/obuke"]
    assert "Prijavljeni ste na obuku" in turns["1"]
    calendars = list(tmp_path.glob("*.ics"))
    assert len(calendars) == 1 and str(calendars[0]) in turns["1"]
    content = calendars[0].read_text(encoding="utf-8")
    assert "BEGIN:VCALENDAR" in content and "Obuka za eZUP" in content


def test_obrisi_me_deletes_the_clerk_after_confirmation(tmp_path):
    out = _chat(["koliko je sati u Tokiju", "/obrisi_me", "1"], _url(tmp_path), tmp_path)
    assert "Vaši podaci su obrisani" in _turns(out)["1"]
    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        local = db.execute("SELECT count(*) FROM users WHERE external_id = 'local'").fetchone()
        assert local == (0,)
        assert db.execute(
            "SELECT count(*) FROM questions WHERE text LIKE '%Tokiju%'"
        ).fetchone() == (0,)
    # Writing again starts as a new user.
    again = _turns(_chat(["/pomoc"], _url(tmp_path), tmp_path))
    assert "Kako da me koristite" in again["/pomoc"]


def test_a_mentor_answers_in_the_same_playground_and_the_clerk_gets_it(tmp_path):
    question = "Kako se menja lozinka za eSanduce na portalu?"
    answer = "Lozinka se menja na portalu eUprava, u podešavanjima naloga."
    out = _chat(
        [
            "/red",  # a clerk is not a mentor
            f"/mentor {question}",
            "Probala sam dva puta.",
            "1",  # Pošalji mentoru
            "/mentor_mod",
            "/red",
            "1",  # Preuzmi #1
            f"/odgovori 1 {answer}",
            "1",  # the clerk's "Rešeno, hvala" under the delivered answer
            "5",
        ],
        _url(tmp_path),
        tmp_path,
    )
    replies = [answer for _line, answer in _replies(out)]
    assert "dostupna samo mentorima" in replies[0]
    assert "Primljeno" in replies[3] and "#1" in replies[3]
    assert "Mentorski režim" in replies[4]
    assert "#1" in replies[5] and question in replies[5]
    assert "Preuzeli ste #1" in replies[6]
    delivered = replies[7]
    assert "📨" in delivered and answer in delivered and "Rešeno, hvala" in delivered
    assert "Kako ocenjujete odgovor mentora" in replies[8]
    assert "Hvala na oceni" in replies[9]
    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        state, details = db.execute("SELECT state, details FROM mentor_requests").fetchone()
        assert db.execute("SELECT status FROM outbox WHERE kind = 'mentor_answer'").fetchone() == (
            "sent",
        )
    assert state in ("resolved", "closed") and "dva puta" in details


def test_make_demo_role_mentor_starts_as_the_mentor(tmp_path):
    env = {**os.environ, "DATABASE_URL": _url(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "playground", "--role", "mentor"],
        input="/red\n", capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Mentorski režim" in result.stdout
    assert "Nema otvorenih pitanja" in _turns(result.stdout)["/red"]


def test_the_clerks_follow_up_tapped_in_mentor_mode_reaches_the_mentor(tmp_path):
    out = _chat(
        [
            "/mentor Kako se menja lozinka za eSanduce na portalu?",
            "1",  # Pošalji mentoru
            "/mentor_mod",
            "/odgovori 1 Probajte ponovo.",
            "2",  # the clerk's "Imam dodatno pitanje": from here on the clerk types
            "I dalje ne radi.",
        ],
        _url(tmp_path),
        tmp_path,
    )
    replies = [answer for _line, answer in _replies(out)]
    assert "Imam dodatno pitanje" in replies[3]
    assert "Ponovo ste službenik" in replies[4] and "dodatno pitanje o #1" in replies[4]
    assert "📨 (mentoru)" in replies[5] and "I dalje ne radi." in replies[5]


def test_playground_roadmap_done_confirmed_stuck_and_the_matrix(tmp_path):
    """Issue #18 in the playground: the admin adds Čačak, the mentor takes it; the clerk marks
    a step done, the mentor confirms from the delivered message, the clerk gets stuck on the next
    one (a mentor request with service and step); the mentor's matrix shows it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite3'}"
    out = _chat(
        [
            "/opstina", "Čačak", "1",
            "/mentor_mod", "/opstina_dodaj Čačak", "/opstina_mentor Čačak", "/sluzbenik",
            "/plan", "1", "3",  # eZUP, "Urađeno"
            "1",  # the mentor taps "Potvrdi" on the delivered message
            "/sluzbenik", "/plan", "1", "5", "1",  # eZUP, "Zapeli smo", the first blocker
            "/mentor_mod", "/opstine", "/red",
        ],
        url,
        tmp_path,
    )
    assert "čeka potvrdu mentora" in out
    assert "📨 (mentoru) ⏳ Čačak · eZUP" in out
    assert "Mentor je potvrdio korak „Određen lokalni administrator za eZUP“" in out
    assert "Šta vas koči na koraku „Kvalifikovani elektronski sertifikati" in out
    assert "Primljeno" in out
    assert re.search(r"Čačak\s+1/5!", out)
    assert "sertifikati nisu izdati" in out  # the request in the queue names the blocker
    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        rows = db.execute("SELECT service, roadmap_step FROM mentor_requests").fetchall()
        assert rows == [("ezup", "kes")]


# -- the curators' console runs in the demo too ------------------------------------------------


def test_konzola_in_mentor_mode_opens_the_console_in_a_browser(tmp_path):
    import socket
    import urllib.error
    import urllib.parse
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite3'}"
    env = {**os.environ, "DATABASE_URL": url, "HTTP_PORT": str(port), "HTTP_HOST": "127.0.0.1"}
    env.pop("CONSOLE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "playground"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=tmp_path,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("/konzola\n/mentor_mod\n/konzola\n")
        process.stdin.flush()
        seen = ""
        link = None
        while link is None:
            line = process.stdout.readline()
            assert line, seen + (process.stderr.read() if process.stderr else "")
            seen += line
            found = re.search(r"(http://127\.0\.0\.1:\d+/console/login\?t=\S+)", line)
            link = found.group(1) if found else None
        assert "samo kuratorima i administratorima" in seen  # the clerk gets no link
        assert link.startswith(f"http://127.0.0.1:{port}/console/login?t=")
        with urllib.request.urlopen(link, timeout=10) as page:
            assert "Prijavi me" in page.read().decode()
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["t"][0]
        body = urllib.parse.urlencode({"t": token}).encode()
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(f"http://127.0.0.1:{port}/console/login", data=body, timeout=10)
            raise AssertionError("no redirect after the sign-in")
        except urllib.error.HTTPError as signed_in:  # 303 to the console, with the cookie
            assert signed_in.code == 303
            assert "console_session=" in signed_in.headers["Set-Cookie"]
        try:  # the link is used up
            urllib.request.urlopen(f"http://127.0.0.1:{port}/console/login", data=body, timeout=10)
            raise AssertionError("a used link was accepted")
        except urllib.error.HTTPError as refused:
            assert refused.code == 403
    finally:
        if process.stdin is not None:
            process.stdin.close()
        assert process.wait(timeout=60) == 0
