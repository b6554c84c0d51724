"""Structured logs: one JSON object per line, with user ids, never message text at INFO."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logging_setup import JsonFormatter, configure_logging


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging("DEBUG", fmt="json", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_template_style_becomes_an_event_with_fields(captured: io.StringIO) -> None:
    log = logging.getLogger("handlers.clerk")
    log.info("question.answered user_id=%s decision=%s", 42, "answer")
    log.info("telegram.start mode=%s bot=@%s id=%s", "webhook", "euprava_bot", 7)
    first, second = lines(captured)
    assert first["event"] == "question.answered"
    assert first["user_id"] == 42 and first["decision"] == "answer"
    assert first["level"] == "info" and first["logger"] == "handlers.clerk"
    assert str(first["ts"]).endswith("Z")
    assert second["bot"] == "@euprava_bot" and second["id"] == 7


def test_extra_fields_are_kept(captured: io.StringIO) -> None:
    logging.getLogger("bot.outbox").info(
        "outbox delivery", extra={"outbox_id": 5, "status": "sent", "user_id": 9}
    )
    (entry,) = lines(captured)
    assert entry["event"] == "outbox delivery"
    assert (entry["outbox_id"], entry["status"], entry["user_id"]) == (5, "sent", 9)


def test_message_text_never_appears_at_info(captured: io.StringIO) -> None:
    log = logging.getLogger("handlers.clerk")
    secret = "Moj JMBG je 0101990710123"
    log.info("question.received user_id=%s text=%s", 42, secret)
    log.warning("mentor.note", extra={"user_id": 42, "question": secret, "caption": secret})
    log.debug("question.debug user_id=%s text=%s", 42, secret)
    info, warning, debug = lines(captured)
    assert secret not in json.dumps(info) and secret not in json.dumps(warning)
    assert info["user_id"] == 42 and str(info["text"]).startswith("[redacted")
    assert debug["text"] == secret  # a developer's DEBUG run may see it


def test_every_line_is_one_json_object_even_with_a_traceback(captured: io.StringIO) -> None:
    log = logging.getLogger("bot.scheduler")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("scheduled job failed", extra={"job": "retention"})
    records = captured.getvalue().splitlines()
    assert len(records) == 1
    failed = json.loads(records[0])
    assert failed["job"] == "retention" and "RuntimeError" in str(failed["exc"])
    # A broken format string is still one line, not a logging error.
    broken = logging.LogRecord("x", logging.INFO, __file__, 1, "odd %s %s", ("args",), None)
    assert json.loads(JsonFormatter().format(broken))["event"].startswith("odd")


def test_text_format_for_a_terminal() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        configure_logging("INFO", fmt="text", stream=stream)
        logging.getLogger("x").info("user.blocked telegram_id=%s", 5)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert "INFO x user.blocked telegram_id=5" in stream.getvalue()


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        configure_logging("INFO", fmt="xml", stream=io.StringIO())
