"""Reply -> Viber messages: plain text with Viber's *bold* / _italic_, buttons as a keyboard.

Viber has no HTML: `<b>x</b>` becomes `*x*`, `<i>x</i>` `_x_`, a link `label (https://...)`, other
tags are dropped and entities unescaped. A text longer than Viber takes (7,000 characters, and
about 30 KB for the whole request) is split at paragraph, line or word boundaries; the keyboard
goes on the last part. A keyboard holds at most 24 buttons: longer lists are paged, with
"previous / next" buttons that repeat the action that produced the list.

Every button's ActionBody is `act:<token>` (the services' action tokens), so a tap is never
mistaken for typed text. Taps are "silent": the token does not show in the chat.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.channels.viber_client import SENDER_NAME_MAX, encode
from bot.i18n import tr
from bot.services.buttons import ServicesMenu, pack
from bot.services.replies import Button, Reply

ACTION_PREFIX = "act:"
PAGE_KIND = "pg"  # act:pg:<page>:<token that produced the list>
MAX_TEXT = 7000
MAX_REQUEST_BYTES = 30_000
MAX_BUTTONS = 24
MAX_LABEL = 120
_ENVELOPE_BYTES = 400  # receiver, sender, type, tracking data and JSON punctuation

_LINK = re.compile(r'<a\s+[^>]*href\s*=\s*"([^"]*)"[^>]*>(.*?)</a\s*>', re.I | re.S)
_BOLD = re.compile(r"<(b|strong)\b[^>]*>(.*?)</\1\s*>", re.I | re.S)
_ITALIC = re.compile(r"<(i|em)\b[^>]*>(.*?)</\1\s*>", re.I | re.S)
_BREAK = re.compile(r"<br\s*/?>", re.I)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def _wrap(mark: str, inner: str) -> str:
    """`*x*` keeping surrounding spaces outside the marks (Viber needs `*x*`, not `* x *`)."""
    stripped = inner.strip()
    if not stripped:
        return inner
    lead = inner[: len(inner) - len(inner.lstrip())]
    trail = inner[len(inner.rstrip()) :]
    return f"{lead}{mark}{stripped}{mark}{trail}"


def _link(match: re.Match[str]) -> str:
    url = html.unescape(match.group(1)).strip()
    label = _TAG.sub("", match.group(2)).strip()
    if not label or html.unescape(label) == url or not url:
        return label or url
    return f"{label} ({url})"


def html_to_text(text: str) -> str:
    """Telegram-style HTML (the services' <b>, <i>, <a href>) as Viber text."""
    text = _LINK.sub(_link, text)
    text = _BREAK.sub("\n", text)
    text = _BOLD.sub(lambda m: _wrap("*", m.group(2)), text)
    text = _ITALIC.sub(lambda m: _wrap("_", m.group(2)), text)
    text = _TAG.sub("", text)
    return html.unescape(text)


# -- splitting ------------------------------------------------------------------------------


def _fits(text: str, max_chars: int, max_bytes: int) -> bool:
    return len(text) <= max_chars and len(text.encode("utf-8")) <= max_bytes


def _longest_prefix(text: str, max_chars: int, max_bytes: int) -> int:
    """Length of the longest prefix of `text` within both limits."""
    high = min(len(text), max_chars)
    if len(text[:high].encode("utf-8")) <= max_bytes:
        return high
    low = 0
    while low < high:  # binary search on the byte length
        middle = (low + high + 1) // 2
        if len(text[:middle].encode("utf-8")) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return max(low, 1)


def split_text(
    text: str, max_chars: int = MAX_TEXT, max_bytes: int = MAX_REQUEST_BYTES
) -> list[str]:
    """Pieces within `max_chars` characters and `max_bytes` UTF-8 bytes each, cut at a paragraph,
    line or word boundary where there is one in the last two thirds of the piece."""
    pieces: list[str] = []
    rest = text.strip()
    while rest:
        if _fits(rest, max_chars, max_bytes):
            pieces.append(rest)
            break
        budget = _longest_prefix(rest, max_chars, max_bytes)
        window = rest[:budget]
        cut = budget
        for separator in ("\n\n", "\n", " "):
            position = window.rfind(separator)
            if position > budget // 3:
                cut = position
                break
        head, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if head:
            pieces.append(head)
    return pieces or [""]


# -- keyboards ------------------------------------------------------------------------------

_COLUMNS_BY_COUNT = {1: 6, 2: 3, 3: 2, 4: 3, 5: 2, 6: 1}


def _label(text: str) -> str:
    """Button text: Viber renders a little HTML in it, so escape; keep it short."""
    text = text.strip() or "·"
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1].rstrip() + "…"
    return html.escape(text, quote=False)


def viber_button(button: Button, columns: int = 6) -> dict[str, Any]:
    return {
        "Columns": columns,
        "Rows": 1,
        "ActionType": "reply",
        "ActionBody": ACTION_PREFIX + button.action,
        "Text": _label(button.label),
        "TextSize": "regular",
        "TextVAlign": "middle",
        "TextHAlign": "center",
        "BgColor": "#eef3fb",
        "Silent": True,
    }


def _flatten(rows: Sequence[Sequence[Button]]) -> list[dict[str, Any]]:
    buttons: list[dict[str, Any]] = []
    for row in rows:
        items = [b for b in row if b.action]
        if not items:
            continue
        columns = _COLUMNS_BY_COUNT.get(len(items), 2)
        buttons.extend(viber_button(b, columns) for b in items)
    return buttons


def _count(rows: Sequence[Sequence[Button]]) -> int:
    return sum(1 for row in rows for b in row if b.action)


def page_rows(
    rows: Sequence[Sequence[Button]], language: str, *, source: str | None, page: int = 0
) -> tuple[tuple[Button, ...], ...]:
    """At most MAX_BUTTONS buttons. A longer list shows page `page` of its body rows, keeps the
    last row (usually "back") and adds "previous / next" buttons that repeat `source`; without a
    source the list is cut short."""
    all_rows: tuple[tuple[Button, ...], ...] = tuple(tuple(row) for row in rows if row)
    if _count(all_rows) <= MAX_BUTTONS:
        return all_rows
    body, tail = (all_rows[:-1], all_rows[-1:]) if len(all_rows) > 1 else (all_rows, ())
    room = MAX_BUTTONS - _count(tail) - (2 if source else 0)
    pages: list[list[tuple[Button, ...]]] = [[]]
    used = 0
    for row in body:
        size = len(row)
        if used + size > room and pages[-1]:
            pages.append([])
            used = 0
        pages[-1].append(row[:room])
        used += min(size, room)
    if source is None:
        return (*pages[0], *tail)
    page = min(max(page, 0), len(pages) - 1)
    navigation: list[Button] = []
    if page > 0:
        navigation.append(Button(tr(language, "« Prethodna"), f"{PAGE_KIND}:{page - 1}:{source}"))
    if page < len(pages) - 1:
        navigation.append(Button(tr(language, "Sledeća »"), f"{PAGE_KIND}:{page + 1}:{source}"))
    return (*pages[page], tuple(navigation), *tail) if navigation else (*pages[page], *tail)


def keyboard(rows: Sequence[Sequence[Button]]) -> dict[str, Any] | None:
    buttons = _flatten(rows)[:MAX_BUTTONS]
    if not buttons:
        return None
    return {"Type": "keyboard", "DefaultHeight": False, "Buttons": buttons}


def default_rows(
    language: str, *, mentor: bool = False, trainings: bool = False
) -> tuple[tuple[Button, ...], ...]:
    """The keyboard under messages that have no buttons of their own: Viber has no command
    menu, and a message without a keyboard hides the previous one."""
    first = [Button(tr(language, "Pregled tema"), pack(ServicesMenu()))]
    if trainings:
        first.append(Button(tr(language, "Obuke"), "cmd:obuke"))
    rows: list[tuple[Button, ...]] = [tuple(first)]
    if mentor:
        rows.append((Button(tr(language, "Pitaj mentora"), "cmd:mentor"),))
    rows.append(
        (
            Button(tr(language, "Pomoć"), "cmd:pomoc"),
            Button(tr(language, "Jezik"), "cmd:jezik"),
            Button(tr(language, "Opština"), "cmd:opstina"),
        )
    )
    return tuple(rows)


# -- whole messages ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sender:
    name: str
    avatar: str | None = None

    def as_dict(self) -> dict[str, Any]:
        sender: dict[str, Any] = {"name": self.name[:SENDER_NAME_MAX]}
        if self.avatar:
            sender["avatar"] = self.avatar
        return sender


def render(
    reply: Reply,
    sender: Sender,
    *,
    language: str = "sr-Latn",
    tracking_data: str | None = None,
    source: str | None = None,
    page: int = 0,
    default_rows: Sequence[Sequence[Button]] = (),
) -> list[dict[str, Any]]:
    """The reply as send_message bodies (without `receiver`), in order; the keyboard (the
    reply's buttons, or `default_rows` when it has none) goes on the last one."""
    rows = page_rows(
        reply.buttons or tuple(tuple(r) for r in default_rows), language, source=source, page=page
    )
    board = keyboard(rows)
    envelope: dict[str, Any] = {"min_api_version": 1, "sender": sender.as_dict(), "type": "text"}
    if tracking_data:
        envelope["tracking_data"] = tracking_data
    reserved = _ENVELOPE_BYTES + len(encode(envelope)) + (len(encode(board)) if board else 0)
    pieces = split_text(html_to_text(reply.text), MAX_TEXT, MAX_REQUEST_BYTES - reserved)
    messages = []
    for index, piece in enumerate(pieces):
        message = {**envelope, "text": piece or "…"}
        if board is not None and index == len(pieces) - 1:
            message["keyboard"] = board
        messages.append(message)
    return messages


def welcome_body(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer to `conversation_started` (one message, sent in the HTTP response)."""
    return messages[0] if len(messages) == 1 else {**messages[-1], "text": messages[0]["text"]}
