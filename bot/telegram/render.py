"""Reply -> Telegram messages: HTML text split to Telegram's limit, buttons as inline keyboards."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.services.replies import Reply

TELEGRAM_LIMIT = 4096
CALLBACK_LIMIT = 64  # bytes of callback_data

_TAG = re.compile(r"<(/?)([a-zA-Z]+)([^>]*)>")


@dataclass(frozen=True)
class Chunk:
    text: str
    markup: InlineKeyboardMarkup | None


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    rows: list[list[InlineKeyboardButton]] = []
    for row in reply.buttons:
        buttons = [
            InlineKeyboardButton(text=button.label[:64] or "·", callback_data=button.action)
            for button in row
            if 0 < len(button.action.encode()) <= CALLBACK_LIMIT
        ]
        if buttons:
            rows.append(buttons)
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def chunks(reply: Reply, limit: int = TELEGRAM_LIMIT) -> list[Chunk]:
    """The reply as one or more messages; the buttons go on the last one."""
    parts = split_html(reply.text, limit)
    markup = keyboard(reply)
    return [Chunk(part, markup if i == len(parts) - 1 else None) for i, part in enumerate(parts)]


def _visible_length(text: str) -> int:
    """Telegram counts the text after entities are parsed: tags do not count, entities do as 1."""
    without_tags = _TAG.sub("", text)
    return len(re.sub(r"&[a-zA-Z#0-9]+;", "x", without_tags))


def split_html(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split Telegram HTML into pieces of at most `limit` characters, at paragraph, line or word
    boundaries, never inside a tag or an entity; tags open at a cut are closed and reopened."""
    if _visible_length(text) <= limit and len(text) <= limit:
        return [text]
    budget = limit - 64  # room for closing and reopening tags
    pieces: list[str] = []
    open_tags: list[tuple[str, str]] = []  # (name, full opening tag)
    rest = text
    while rest:
        prefix = "".join(tag for _name, tag in open_tags)
        if len(prefix) + len(rest) <= limit:
            pieces.append(prefix + rest)
            break
        cut = _cut_point(rest, budget - len(prefix))
        head, rest = rest[:cut], rest[cut:].lstrip("\n ")
        body = prefix + head
        open_tags = _open_after(body)
        closing = "".join(f"</{name}>" for name, _tag in reversed(open_tags))
        pieces.append(body.rstrip() + closing)
    return [piece for piece in pieces if piece.strip()]


def _cut_point(text: str, budget: int) -> int:
    window = text[:budget]
    for separator in ("\n\n", "\n", " "):
        position = window.rfind(separator)
        if position > budget // 3:
            return _outside_markup(text, position)
    return _outside_markup(text, budget)


def _outside_markup(text: str, position: int) -> int:
    """Move a cut back so it does not fall inside <...> or &...;."""
    lt, gt = text.rfind("<", 0, position), text.rfind(">", 0, position)
    if lt > gt:
        position = lt
    amp, semi = text.rfind("&", 0, position), text.rfind(";", 0, position)
    if amp > semi and position - amp < 10:
        position = amp
    return max(position, 1)


def _open_after(html_text: str) -> list[tuple[str, str]]:
    stack: list[tuple[str, str]] = []
    for match in _TAG.finditer(html_text):
        closing, name = match.group(1), match.group(2).lower()
        if closing:
            for index in range(len(stack) - 1, -1, -1):
                if stack[index][0] == name:
                    del stack[index:]
                    break
        elif not match.group(3).rstrip().endswith("/"):
            stack.append((name, match.group(0)))
    return stack
