"""Replies as Telegram messages: long answers split under 4,096 characters without breaking
HTML, buttons on the last part."""

from __future__ import annotations

import re

from bot.services.replies import Button, Reply
from bot.telegram.render import TELEGRAM_LIMIT, chunks, split_html

TAG = re.compile(r"</?([a-z]+)[^>]*>")


def balanced(html_text: str) -> bool:
    stack: list[str] = []
    for match in TAG.finditer(html_text):
        if match.group(0).startswith("</"):
            if not stack or stack.pop() != match.group(1):
                return False
        else:
            stack.append(match.group(1))
    return not stack


def test_short_text_is_one_message() -> None:
    assert split_html("<b>Kratko</b>") == ["<b>Kratko</b>"]


def test_long_answer_is_split_at_paragraphs_with_tags_closed_and_reopened() -> None:
    paragraph = (
        "<b>Korak:</b> "
        + "uradite ovo &amp; ono, " * 40
        + "<a href='https://euprava.gov.rs'>link</a>"
    )
    text = "\n\n".join(paragraph for _ in range(12))
    text = "<i>" + text + "</i>"
    parts = split_html(text)
    assert len(parts) > 1
    assert all(len(part) <= TELEGRAM_LIMIT for part in parts)
    assert all(balanced(part) for part in parts)
    assert all("&amp" not in part.split("&amp;")[-1] for part in parts)  # no cut entity
    joined = re.sub(r"</?i>", "", "".join(parts))
    assert joined.count("uradite ovo") == 12 * 40


def test_one_huge_word_is_still_split() -> None:
    parts = split_html("x" * 10_000)
    assert [len(part) for part in parts][:2] == [TELEGRAM_LIMIT - 64] * 2
    assert "".join(parts) == "x" * 10_000


def test_buttons_go_on_the_last_part_only() -> None:
    reply = Reply("a " * 5000, ((Button("👍", "fb:1:up"), Button("👎", "fb:1:down")),))
    parts = chunks(reply)
    assert len(parts) == 3
    assert [part.markup is not None for part in parts] == [False, False, True]


def test_buttons_with_oversized_tokens_are_left_out() -> None:
    reply = Reply("x", ((Button("ok", "e:ok"), Button("too long", "e:" + "x" * 80)),))
    (part,) = chunks(reply)
    assert part.markup is not None
    assert [b.text for b in part.markup.inline_keyboard[0]] == ["ok"]
