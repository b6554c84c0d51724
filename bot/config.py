"""Settings from the environment (and an optional .env), validated once at start-up."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Language = Literal["sr-Latn", "sr-Cyrl", "en"]
LANGUAGES: tuple[Language, ...] = ("sr-Latn", "sr-Cyrl", "en")
DEFAULT_LANGUAGE: Language = "sr-Latn"


def default_database_url() -> str:
    """The embedded default: an SQLite file under ./data/."""
    return f"sqlite+aiosqlite:///{Path('data') / 'bot.sqlite3'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    telegram_bot_token: SecretStr | None = None
    telegram_api_base: str = "https://api.telegram.org"
    database_url: str = Field(default_factory=default_database_url)
    mentor_chat_id: int | None = None
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    redis_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    viber_auth_token: SecretStr | None = None
    viber_api_base: str = "https://chatapi.viber.com/pa"
    # Viber bills messages the bot starts: broadcasts and announcements include Viber users only
    # when this is true (reminders and answers always follow the user's channel).
    viber_broadcasts: bool = False
    default_language: Language = DEFAULT_LANGUAGE
    user_messages_per_minute: int = 20
    timezone: str = "Europe/Belgrade"
    working_hours_start: time = time(8, 0)
    working_hours_end: time = time(16, 0)
    log_level: str = "INFO"
    # Mentor queue: unclaimed reminders and escalation (minutes of working time), auto-close.
    mentor_remind_after_minutes: int = 30
    mentor_escalate_after_minutes: int = 240
    mentor_auto_close_days: int = 3
    mentor_expected_answer_hours: int = 4
    mentor_public_holidays: bool = True
    # Mentor desk: an escalation like an open, unanswered request on the same service made
    # within this many hours follows it instead of opening a duplicate.
    mentor_follow_window_hours: float = Field(default=24.0, ge=0)
    # Working days ITE / the Ministry are expected to take on a handed-over request.
    mentor_handover_days: int = Field(default=5, ge=1, le=60)
    # Trainings: reminders before the start, e.g. "24h,1h".
    training_reminders: str = "24h,1h"
    # Privacy: question texts and request threads older than this are anonymised.
    retention_months: int = Field(default=12, ge=1, le=120)
    # An update whose handling started this long ago and never ended (its process died) is
    # handled again; longer than any live handling takes, so another instance's is left alone.
    inbox_replay_after_seconds: float = Field(default=60.0, gt=0)
    # Returning users' profiles are kept in memory this long (bot.services.users.UserCache);
    # changes made in this process are seen at once, other processes' within this time. Unset:
    # 30 s on a single instance, off with REDIS_URL (several instances share the database).
    user_cache_seconds: float | None = Field(default=None, ge=0)
    # Matches of this many recently asked texts are remembered (the same words asked again are
    # not scored again; bot.services.answering). 0: off.
    match_cache_size: int = Field(default=2048, ge=0)
    # Roadmaps: a municipality with no step changed for this many weeks is listed to its mentor
    # (weekly); with ROADMAP_REMIND_CLERKS its clerks also get a reminder of the next steps.
    roadmap_nudge_weeks: int = Field(default=2, ge=1, le=52)
    roadmap_remind_clerks: bool = False
    # Curators' web console (/console): the key that signs sign-in links and session cookies
    # (unset: a random one per process, fine for one instance and the demo) and the address
    # the links point at (unset: http://HTTP_HOST:HTTP_PORT/console).
    console_secret: SecretStr | None = None
    console_url: str | None = None

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """ADMIN_IDS is a comma-separated list in the environment."""
        if isinstance(value, str):
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("telegram_api_base", "viber_api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line for the operator."""


def load_settings() -> Settings:
    """Read settings, turning pydantic's report into one readable line per problem."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"Invalid configuration: {problems}") from None
