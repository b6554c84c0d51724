"""Structured logs: one JSON object per line on stderr, with user ids but never message text at
INFO and above.

    from bot.logging_setup import configure_logging
    configure_logging(settings.log_level)          # LOG_FORMAT=json (default) or text

Both ways of logging used in the code base become fields:

    log.info("question.answered user_id=%s decision=%s", 42, "answer")
    log.info("audit.recorded", extra={"action": "role.change", "actor_user_id": 7})

    {"ts": "2027-01-10T13:05:00.123Z", "level": "info", "logger": "handlers.clerk",
     "event": "question.answered", "user_id": 42, "decision": "answer"}

Fields that may carry what people wrote (``text``, ``question``, ``caption``, ``payload``...) are
replaced by their length unless the record is DEBUG, so a clerk's words never reach the logs of a
production deployment.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

__all__ = [
    "SENSITIVE_FIELDS",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "structured_fields",
]

SENSITIVE_FIELDS = frozenset(
    {
        "text",
        "message_text",
        "question",
        "caption",
        "answer",
        "body",
        "payload",
        "query",
        "details_text",
        "reply",
        "first_name",
        "last_name",
        "full_name",
        "display_name",
        "username",
        "phone",
    }
)
# `event key=%s key2=%d` templates (the style used across the code base).
_TEMPLATE = re.compile(
    r"^(?P<event>[A-Za-z_][\w.\-]*)(?P<pairs>(?: [A-Za-z_]\w*=[^\s%=]*%[-#0-9.]*[sdrfi])*)$"
)
_PAIR = re.compile(r" ([A-Za-z_]\w*)=([^\s%=]*)%[-#0-9.]*([sdrfi])")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# aiogram.event: a line per update ("Update id=... is handled. Duration ..."), a formatted log
# record on every clerk's message that says less than our own `question.answered` and the
# update-duration metric (bot_update_seconds); its warnings and errors still show.
_NOISY = {
    "apscheduler": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    "aiogram.event": logging.WARNING,
}


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(v) for v in value]
    return str(value)


def _redacted(value: Any) -> str:
    size = len(value) if isinstance(value, str | bytes | list | dict | tuple) else 0
    return f"[redacted {size}]"


def structured_fields(record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
    """(event, fields) of a record: the template's key=value pairs and `extra` values."""
    fields: dict[str, Any] = {}
    message = record.msg if isinstance(record.msg, str) else str(record.msg)
    match = _TEMPLATE.match(message)
    args = record.args if isinstance(record.args, tuple) else ()
    pairs = _PAIR.findall(match.group("pairs")) if match else []
    if match and len(pairs) == len(args):
        event = match.group("event")
        for (key, prefix, conversion), value in zip(pairs, args, strict=True):
            if conversion == "r":
                fields[key] = prefix + repr(value)
            else:
                fields[key] = prefix + str(value) if prefix else _json_value(value)
    else:
        try:
            event = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            event = f"{message} {args!r}"
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = _json_value(value)
    if record.levelno > logging.DEBUG:
        for key in list(fields):
            if key.lower() in SENSITIVE_FIELDS:
                fields[key] = _redacted(fields[key])
    return event, fields


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event, fields = structured_fields(record)
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": event,
        }
        for key, value in fields.items():
            out[key if key not in out else f"field_{key}"] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """For a person at a terminal: `time level logger event key=value ...` (same redaction)."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = structured_fields(record)
        extras = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in fields.items())
        line = f"{_timestamp(record)} {record.levelname} {record.name} {event}"
        if extras:
            line += " " + extras
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(
    level: str | int = "INFO", *, fmt: str | None = None, stream: IO[str] | None = None
) -> logging.Handler:
    """Route every logger to one handler on stderr (or `stream`). `fmt` is "json" or "text";
    default LOG_FORMAT from the environment, else json. Returns the handler installed."""
    chosen = (fmt or os.environ.get("LOG_FORMAT") or "json").strip().lower()
    if chosen not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT must be json or text, not {chosen!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name, noisy_level in _NOISY.items():
        logging.getLogger(name).setLevel(max(noisy_level, root.level))
    logging.captureWarnings(True)
    return handler
