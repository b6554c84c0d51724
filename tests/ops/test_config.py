"""Configuration: defaults that work, and one clear line when a setting is wrong."""

import subprocess
import sys

import pytest

from bot.config import ConfigError, load_settings


def test_admin_ids_are_comma_separated(monkeypatch):
    monkeypatch.setenv("ADMIN_IDS", "11, 22")
    assert load_settings().admin_ids == [11, 22]


def test_defaults_need_no_token(monkeypatch):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = load_settings()
    assert settings.telegram_bot_token is None
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


def test_malformed_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("ADMIN_IDS", "not-a-number")
    with pytest.raises(ConfigError, match="ADMIN_IDS"):
        load_settings()


def test_bad_setting_stops_cli_with_one_line(tmp_path):
    env = {"ADMIN_IDS": "x", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "playground"],
        input="", capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
