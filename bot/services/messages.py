"""Outgoing messages as plain data, so they can wait in the outbox table between processes."""

from __future__ import annotations

from typing import Any

from bot.services.replies import Button, Reply


def reply_to_payload(reply: Reply, **extra: Any) -> dict[str, Any]:
    """A Reply as JSON-ready data for an outbox row (`extra` carries e.g. a document)."""
    return {
        "text": reply.text,
        "buttons": [[{"label": b.label, "action": b.action} for b in row] for row in reply.buttons],
        **extra,
    }


def payload_to_reply(payload: dict[str, Any]) -> Reply:
    rows = tuple(
        tuple(Button(str(b["label"]), str(b["action"])) for b in row)
        for row in payload.get("buttons") or ()
    )
    return Reply(str(payload.get("text", "")), rows)
