"""`python -m bot check-config`: the effective settings with secrets masked, and every problem.

    python -m bot check-config              # settings, then problems; exit 1 on any error
    python -m bot check-config --offline    # skip the database and Redis connection checks
    python -m bot check-config --strict     # an unreachable database or Redis is an error
    python -m bot check-config --json       # the same as one JSON object

Errors stop `python -m bot run` (missing or malformed token, malformed DATABASE_URL, WEBHOOK_URL
without WEBHOOK_SECRET or not https, malformed ADMIN_IDS ...); warnings are worth a look (no
MENTOR_CHAT_ID, webhook mode on SQLite or without Redis, an unreachable database ...).
Exit status: 0 without errors, 1 with errors, 2 for bad command-line arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr, ValidationError

from bot.config import Settings
from bot.digits import is_digits

__all__ = ["Problem", "Report", "inspect_settings", "main", "mask_url"]

Level = Literal["error", "warning"]
_SECRET_RE = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")


@dataclass(frozen=True)
class Problem:
    level: Level
    setting: str
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper():<7} {self.setting}: {self.message}"


@dataclass
class Report:
    settings: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]

    def error(self, setting: str, message: str) -> None:
        self.problems.append(Problem("error", setting, message))

    def warning(self, setting: str, message: str) -> None:
        self.problems.append(Problem("warning", setting, message))

    def render(self) -> str:
        width = max((len(k) for k in self.settings), default=0)
        lines = ["Effective settings:"]
        lines += [f"  {key:<{width}} = {value}" for key, value in self.settings.items()]
        lines.append("")
        if self.problems:
            lines.append("Problems:")
            ordered = self.errors + self.warnings
            lines += [f"  {problem}" for problem in ordered]
        else:
            lines.append("No problems found.")
        lines.append("")
        verdict = "FAILED" if self.errors else "OK"
        lines.append(f"{verdict}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)

    def as_json(self) -> str:
        return json.dumps(
            {
                "settings": self.settings,
                "problems": [asdict(p) for p in self.problems],
                "ok": not self.errors,
            },
            ensure_ascii=False,
            indent=2,
        )


# --------------------------------------------------------------------------- masking


def mask_url(url: str | None) -> str:
    """A URL with its password replaced by ***."""
    if not url:
        return "(not set)"
    return _SECRET_RE.sub(r"\1***@", url)


def _mask_token(token: str) -> str:
    bot_id, sep, _secret = token.partition(":")
    if sep and is_digits(bot_id):
        return f"{bot_id}:***"  # the bot id is public (it is in every update)
    return "***"


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if not secret:
            return "(empty)"
        return _mask_token(secret) if name == "telegram_bot_token" else "***"
    if name in ("database_url", "redis_url"):
        return mask_url(str(value))
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "(empty)"
    return str(value)


# --------------------------------------------------------------------------- loading


def _load(report: Report, env_file: str | None) -> Settings | None:
    """Settings, reporting each invalid field and using its default to go on."""
    overrides: dict[str, Any] = {}
    for _ in range(len(Settings.model_fields) + 1):
        try:
            return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
        except ValidationError as exc:
            progressed = False
            for err in exc.errors():
                loc = err.get("loc") or ()
                name = str(loc[0]) if loc else ""
                if name in Settings.model_fields and name not in overrides:
                    report.error(name.upper(), f"{err['msg']} (got {_input_of(name, err)})")
                    info = Settings.model_fields[name]
                    overrides[name] = info.get_default(call_default_factory=True)
                    progressed = True
            if not progressed:
                report.error("settings", str(exc).splitlines()[0])
                return None
    return None


def _input_of(name: str, err: Any) -> str:
    if name in ("telegram_bot_token", "webhook_secret", "viber_auth_token", "console_secret"):
        return "***"
    value = err.get("input")
    text = mask_url(str(value)) if isinstance(value, str) else repr(value)
    return repr(text[:80]) if isinstance(value, str) else text[:80]


# --------------------------------------------------------------------------- checks


def token_is_valid(token: str) -> bool:
    """aiogram's rule (<digits>:<secret>, no spaces), without importing aiogram (slow)."""
    left, sep, right = token.partition(":")
    return bool(sep and is_digits(left) and right) and not any(c.isspace() for c in token)


def _check_token(report: Report, settings: Settings) -> None:
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    if not token.strip():
        report.error(
            "TELEGRAM_BOT_TOKEN",
            "not set; `python -m bot run` needs the token from @BotFather "
            "(only the playground works without it)",
        )
        return
    if not token_is_valid(token.strip()):
        report.error("TELEGRAM_BOT_TOKEN", "malformed: expected <digits>:<secret> from @BotFather")


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _check_urls(report: Report, settings: Settings) -> None:
    if not _is_http_url(settings.telegram_api_base):
        report.error("TELEGRAM_API_BASE", f"{settings.telegram_api_base!r} is not an http(s) URL")
    elif urlsplit(settings.telegram_api_base).scheme != "https":
        report.warning("TELEGRAM_API_BASE", "plain http: only for a Bot API server on localhost")
    if not _is_http_url(settings.viber_api_base):
        report.error("VIBER_API_BASE", f"{settings.viber_api_base!r} is not an http(s) URL")

    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    if settings.webhook_url:
        parts = urlsplit(settings.webhook_url)
        if parts.scheme != "https" or not parts.netloc:
            report.error(
                "WEBHOOK_URL",
                f"{settings.webhook_url!r} must be a public https:// URL (Telegram only calls "
                "https webhooks)",
            )
        if not secret:
            report.error(
                "WEBHOOK_SECRET",
                "required with WEBHOOK_URL: every update is checked against it "
                "(1-256 characters A-Z a-z 0-9 _ -)",
            )
    elif secret:
        report.warning("WEBHOOK_SECRET", "set but WEBHOOK_URL is not: the bot uses long polling")
    if secret and not _WEBHOOK_SECRET_RE.match(secret):
        report.error("WEBHOOK_SECRET", "may only use A-Z a-z 0-9 _ - (1-256 characters)")


def _check_database(report: Report, settings: Settings) -> str | None:
    """The normalised URL when valid."""
    from storage.db import validate_database_url
    from storage.errors import InvalidDatabaseURL

    try:
        url = validate_database_url(settings.database_url)
    except InvalidDatabaseURL as exc:
        report.error("DATABASE_URL", str(exc))
        return None
    if url.get_backend_name() == "sqlite":
        if settings.webhook_url:
            report.warning(
                "DATABASE_URL",
                "SQLite in webhook mode: fine for one instance; several instances need PostgreSQL",
            )
        if url.database and url.database != ":memory:":
            parent = Path(url.database).expanduser().resolve().parent
            existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
            if existing is not None and not os.access(existing, os.W_OK):
                report.error("DATABASE_URL", f"cannot write the SQLite file's folder {parent}")
    return url.render_as_string(hide_password=False)


def _check_people(report: Report, settings: Settings) -> None:
    if not settings.admin_ids:
        report.warning("ADMIN_IDS", "empty: nobody can use admin commands until a role is given")
    bad = [i for i in settings.admin_ids if i <= 0]
    if bad:
        report.error("ADMIN_IDS", f"Telegram user ids are positive numbers, not {bad}")
    if settings.mentor_chat_id is None:
        report.warning(
            "MENTOR_CHAT_ID", "not set: questions for a mentor cannot be posted to a group"
        )
    elif settings.mentor_chat_id > 0:
        report.warning(
            "MENTOR_CHAT_ID",
            f"{settings.mentor_chat_id} is positive: Telegram group ids are negative "
            "(e.g. -1001234567890)",
        )


def _check_console(report: Report, settings: Settings) -> None:
    secret = settings.console_secret.get_secret_value() if settings.console_secret else ""
    several = bool(settings.redis_url) or bool(settings.webhook_url)
    if not secret and several:
        report.warning(
            "CONSOLE_SECRET",
            "not set: each instance signs console links with its own random key, so a /konzola "
            "link works only on the instance that sent it; set the same value everywhere",
        )
    elif secret and len(secret) < 16:
        report.warning("CONSOLE_SECRET", "shorter than 16 characters: use a long random value")
    if settings.console_url:
        url = urlsplit(settings.console_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            report.error("CONSOLE_URL", f"{settings.console_url!r} is not an http(s) address")
        elif url.scheme == "http" and url.hostname not in ("127.0.0.1", "localhost"):
            report.warning("CONSOLE_URL", "plain http: sign-in links and cookies travel in clear")


def _check_misc(report: Report, settings: Settings) -> None:
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        report.error("TIMEZONE", f"unknown time zone {settings.timezone!r}")
    if settings.working_hours_start >= settings.working_hours_end:
        report.error("WORKING_HOURS_START", "must be before WORKING_HOURS_END")
    if settings.log_level.upper() not in _LOG_LEVELS:
        report.error("LOG_LEVEL", f"{settings.log_level!r} is not one of {', '.join(_LOG_LEVELS)}")
    log_format = os.environ.get("LOG_FORMAT", "json").strip().lower() or "json"
    if log_format not in ("json", "text"):
        report.error("LOG_FORMAT", f"{log_format!r}: use json or text")
    if not 0 <= settings.http_port < 65536:
        report.error("HTTP_PORT", f"{settings.http_port} is not a port number")
    if settings.user_messages_per_minute <= 0:
        report.warning("USER_MESSAGES_PER_MINUTE", "0 or less: no limit per clerk")
    if settings.webhook_url and not settings.redis_url:
        report.warning(
            "REDIS_URL",
            "not set in webhook mode: fine for one instance; several instances need Redis "
            "(shared dialogue state and send rate)",
        )
    if settings.redis_url:
        parts = urlsplit(settings.redis_url)
        if parts.scheme not in ("redis", "rediss", "unix") or (
            parts.scheme != "unix" and not parts.hostname
        ):
            report.error("REDIS_URL", f"{mask_url(settings.redis_url)!r} is not a redis:// URL")


async def _probe_database(url: str, timeout: float) -> tuple[str | None, str | None]:
    """(revision, error) of the database at `url`."""
    from sqlalchemy.pool import NullPool

    from storage.db import create_engine, current_revision
    from storage.errors import StorageError

    engine = create_engine(url, poolclass=NullPool)
    try:
        revision = await asyncio.wait_for(current_revision(engine), timeout)
        return revision, None
    except (StorageError, TimeoutError, OSError) as exc:
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        await engine.dispose()


async def _probe_redis(url: str, timeout: float) -> str | None:
    from redis.asyncio import from_url

    client = from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        await asyncio.wait_for(client.ping(), timeout)
        return None
    except Exception as exc:  # any failure means "unreachable" here
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.aclose()


def _check_connections(
    report: Report, settings: Settings, database_url: str | None, strict: bool, timeout: float
) -> None:
    from storage.db import head_revision

    add = report.error if strict else report.warning
    if database_url is not None:
        is_sqlite = database_url.startswith("sqlite")
        sqlite_missing = False
        if is_sqlite:
            from sqlalchemy.engine import make_url

            database = make_url(database_url).database
            sqlite_missing = bool(database) and not Path(str(database)).exists()
        if sqlite_missing:
            report.warning("DATABASE_URL", "the SQLite file does not exist yet; `run` creates it")
        else:
            revision, error = asyncio.run(_probe_database(database_url, timeout))
            if error is not None:
                add("DATABASE_URL", f"cannot reach the database: {error}")
            else:
                head = head_revision()
                report.settings["(database schema)"] = f"{revision or 'empty'} (code: {head})"
                if revision != head:
                    report.warning(
                        "DATABASE_URL",
                        f"schema at {revision or 'empty'}, code at {head}: `python -m bot run` "
                        "migrates at start-up (or run `python -m storage upgrade`)",
                    )
    if settings.redis_url and not any(p.setting == "REDIS_URL" for p in report.errors):
        error = asyncio.run(_probe_redis(settings.redis_url, timeout))
        if error is not None:
            add("REDIS_URL", f"cannot reach Redis: {error}")


def inspect_settings(
    *,
    env_file: str | None = ".env",
    check_connections: bool = True,
    strict: bool = False,
    timeout: float = 5.0,
) -> Report:
    """Load and check every setting; never raises for a configuration problem."""
    report = Report()
    settings = _load(report, env_file)
    if settings is None:
        return report
    for name in Settings.model_fields:
        report.settings[name.upper()] = _shown(name, getattr(settings, name))
    # RETENTION_MONTHS is one of Settings' fields: validated (1-120) when the settings load.
    report.settings["RETENTION_MONTHS"] = str(settings.retention_months)
    report.settings["LOG_FORMAT"] = os.environ.get("LOG_FORMAT", "") or "json"
    _check_token(report, settings)
    _check_urls(report, settings)
    database_url = _check_database(report, settings)
    _check_people(report, settings)
    _check_console(report, settings)
    _check_misc(report, settings)
    if check_connections:
        _check_connections(report, settings, database_url, strict, timeout)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot check-config",
        description="Print the effective settings (secrets masked) and every problem found.",
    )
    parser.add_argument("--offline", action="store_true", help="skip database and Redis checks")
    parser.add_argument(
        "--strict", action="store_true", help="an unreachable database or Redis is an error"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--env-file", default=".env", help="dotenv file to read (default .env)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per connection check")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # driver chatter would mix with the report
    try:
        report = inspect_settings(
            env_file=args.env_file or None,
            check_connections=not args.offline,
            strict=args.strict,
            timeout=args.timeout,
        )
    finally:
        logging.disable(logging.NOTSET)
    print(report.as_json() if args.json else report.render())
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
