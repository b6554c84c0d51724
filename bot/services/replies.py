"""Channel-neutral replies: what a service wants shown, not how a channel shows it."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Button:
    """A choice the user can tap. `action` is an opaque token the channel sends back verbatim
    (kept under 64 bytes so Telegram's callback_data can carry it)."""

    label: str
    action: str


@dataclass(frozen=True)
class Reply:
    """Text is Telegram-style HTML (only <b>, <i>, <a href>), with all user text already escaped.
    Buttons are rows of choices. `decision` says which way a question went ("answer",
    "clarify", "escalate"), for the channels' metrics and logs; None for other replies."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = field(default_factory=tuple)
    decision: str | None = None


def shorten(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis (cards, lists, previews)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def toast(reply: Reply) -> str:
    """A reply's text as a short plain notice (tags removed), for a button's toast."""
    return html.unescape(re.sub(r"<[^>]+>", "", reply.text))[:190]
