"""`python -m bot check-config`: effective settings with secrets masked, every problem named,
non-zero exit on errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.check_config import inspect_settings, mask_url
from tests.fakes.bot_api import BOT_TOKEN

ROOT = Path(__file__).resolve().parents[2]
TOKEN_SECRET = BOT_TOKEN.split(":", 1)[1]
SETTING_NAMES = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_BASE",
    "DATABASE_URL",
    "MENTOR_CHAT_ID",
    "ADMIN_IDS",
    "REDIS_URL",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "VIBER_AUTH_TOKEN",
    "RETENTION_MONTHS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "HTTP_PORT",
    "TIMEZONE",
)


def good_env(tmp_path: Path) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        "MENTOR_CHAT_ID": "-1001234567890",
        "ADMIN_IDS": "11,22",
    }


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A clean environment: only what each test sets."""
    for name in list(os.environ):
        if name.upper() in SETTING_NAMES or name.upper().startswith(("WEBHOOK", "VIBER")):
            monkeypatch.delenv(name, raising=False)
    for name in ("RETENTION_MONTHS", "WORKING_HOURS_START", "WORKING_HOURS_END"):
        monkeypatch.delenv(name, raising=False)
    values = good_env(tmp_path)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def run_cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    return subprocess.run(
        [sys.executable, "-m", "bot", "check-config", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
    )


def test_good_settings_pass_and_every_setting_is_printed(env: dict[str, str], tmp_path: Path):
    report = inspect_settings(env_file=None)
    assert not report.errors, report.render()
    for name in ("TELEGRAM_BOT_TOKEN", "DATABASE_URL", "ADMIN_IDS", "RETENTION_MONTHS"):
        assert name in report.settings
    assert report.settings["ADMIN_IDS"] == "11,22"
    assert report.settings["RETENTION_MONTHS"] == "12"


def test_secrets_are_masked(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.rs/telegram/webhook")
    monkeypatch.setenv("WEBHOOK_SECRET", "very-secret_value")
    monkeypatch.setenv("VIBER_AUTH_TOKEN", "viber-token-abc")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://bot:db-pass-123@127.0.0.1:1/bot")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-pass-9@127.0.0.1:1/0")
    monkeypatch.setenv("CONSOLE_SECRET", "console-key-0123456789")
    report = inspect_settings(env_file=None, check_connections=False)
    output = report.render() + report.as_json()
    for secret in (
        TOKEN_SECRET,
        "console-key-0123456789",
        "very-secret_value",
        "viber-token-abc",
        "db-pass-123",
        "redis-pass-9",
    ):
        assert secret not in output
    assert report.settings["TELEGRAM_BOT_TOKEN"] == BOT_TOKEN.split(":")[0] + ":***"
    assert report.settings["WEBHOOK_SECRET"] == "***"
    assert report.settings["CONSOLE_SECRET"] == "***"
    assert report.settings["DATABASE_URL"] == "postgresql+asyncpg://bot:***@127.0.0.1:1/bot"


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"TELEGRAM_BOT_TOKEN": ""}, "TELEGRAM_BOT_TOKEN"),
        ({"TELEGRAM_BOT_TOKEN": "not-a-token"}, "TELEGRAM_BOT_TOKEN"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql+asyncpg://u@h:99999999/db"}, "DATABASE_URL"),
        ({"WEBHOOK_URL": "https://bot.example.rs/hook"}, "WEBHOOK_SECRET"),
        ({"WEBHOOK_URL": "http://bot.example.rs/hook", "WEBHOOK_SECRET": "s"}, "WEBHOOK_URL"),
        ({"WEBHOOK_URL": "https://b.rs/h", "WEBHOOK_SECRET": "has space"}, "WEBHOOK_SECRET"),
        ({"ADMIN_IDS": "12,abc"}, "ADMIN_IDS"),
        ({"ADMIN_IDS": "-5"}, "ADMIN_IDS"),
        ({"RETENTION_MONTHS": "0"}, "RETENTION_MONTHS"),
        ({"TIMEZONE": "Mars/Olympus"}, "TIMEZONE"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
    ],
)
def test_bad_setting_is_an_error(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    changes: dict[str, str],
    setting: str,
) -> None:
    for key, value in changes.items():
        monkeypatch.setenv(key, value)
    report = inspect_settings(env_file=None, check_connections=False)
    assert setting in {p.setting for p in report.errors}, report.render()
    # One bad setting does not hide the others: every setting is still shown.
    assert "LOG_LEVEL" in report.settings


def test_warnings_do_not_fail(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MENTOR_CHAT_ID")
    monkeypatch.delenv("ADMIN_IDS")
    report = inspect_settings(env_file=None, check_connections=False)
    assert not report.errors
    assert {p.setting for p in report.warnings} >= {"MENTOR_CHAT_ID", "ADMIN_IDS"}


def test_unreachable_database_is_a_warning_or_with_strict_an_error(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:9/nowhere")
    relaxed = inspect_settings(env_file=None, timeout=3)
    assert not relaxed.errors
    assert any("cannot reach" in p.message for p in relaxed.warnings)
    strict = inspect_settings(env_file=None, strict=True, timeout=3)
    assert any(p.setting == "DATABASE_URL" and "cannot reach" in p.message for p in strict.errors)


@pytest.mark.postgres
def test_reachable_postgres_shows_the_schema_revision(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TEST_POSTGRES_URL is not set")
    monkeypatch.setenv("DATABASE_URL", url)
    report = inspect_settings(env_file=None, strict=True)
    assert not report.errors, report.render()
    assert "(database schema)" in report.settings


def test_cli_prints_masked_settings_and_exits_zero(env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli(env, "--offline", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TELEGRAM_BOT_TOKEN" in result.stdout
    assert TOKEN_SECRET not in result.stdout + result.stderr
    assert "OK: 0 error(s)" in result.stdout


def test_cli_fails_on_a_bad_setting_naming_each_problem(env: dict[str, str], tmp_path: Path):
    bad = {
        **env,
        "ADMIN_IDS": "x",
        "WEBHOOK_URL": "http://bot.example.rs/hook",
        "TELEGRAM_BOT_TOKEN": "",
    }
    result = run_cli(bad, "--offline", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for setting in ("ADMIN_IDS", "WEBHOOK_URL", "WEBHOOK_SECRET", "TELEGRAM_BOT_TOKEN"):
        assert f"ERROR   {setting}" in result.stdout, result.stdout
    assert "FAILED" in result.stdout


def test_cli_reads_dotenv_and_prints_json(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WEBHOOK_SECRET=from-dotenv-secret\nLOG_LEVEL=LOUD\n")
    result = run_cli(env, "--offline", "--json", cwd=tmp_path)
    data = json.loads(result.stdout)
    assert result.returncode == 1
    assert data["ok"] is False
    assert data["settings"]["WEBHOOK_SECRET"] == "***"
    assert "from-dotenv-secret" not in result.stdout
    assert [p["setting"] for p in data["problems"] if p["level"] == "error"] == ["LOG_LEVEL"]


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("postgresql://u:p%40ss@h:5/db") == "postgresql://u:***@h:5/db"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert mask_url(None) == "(not set)"


def test_console_settings_are_checked(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # several instances
    monkeypatch.setenv("CONSOLE_URL", "ftp://bot.example.rs/console")
    report = inspect_settings(env_file=None, check_connections=False)
    assert [p.setting for p in report.warnings].count("CONSOLE_SECRET") == 1
    assert [p.setting for p in report.errors] == ["CONSOLE_URL"]
    monkeypatch.setenv("CONSOLE_SECRET", "x" * 32)
    monkeypatch.setenv("CONSOLE_URL", "https://bot.example.rs/console")
    fixed = inspect_settings(env_file=None, check_connections=False)
    assert not [p for p in fixed.problems if p.setting.startswith("CONSOLE")]
