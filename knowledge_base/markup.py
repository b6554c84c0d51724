"""Checks that an answer is safe Telegram HTML: only <b>, <i> and <a href="https://...">."""

from __future__ import annotations

import html
import re

TELEGRAM_LIMIT = 4096
LONG_ANSWER = 1500

_TAG = re.compile(r"<[^<>]*>")
_OPEN_LINK = re.compile(r'<a href="(https://[^"\s<>]+)">')
_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_AMPERSAND = re.compile(r"&")


def _bad_ampersands(text: str) -> int:
    return sum(1 for m in _AMPERSAND.finditer(text) if not _ENTITY.match(text, m.start()))


def markup_problems(text: str) -> list[str]:
    """Human-readable problems with the markup of `text`; empty when it is safe to send."""
    problems: list[str] = []
    stack: list[str] = []
    outside: list[str] = []
    pos = 0
    for match in _TAG.finditer(text):
        outside.append(text[pos : match.start()])
        pos = match.end()
        tag = match.group(0)
        if tag in ("<b>", "<i>"):
            if tag[1] in stack:
                problems.append(f"{tag} nested inside itself")
            stack.append(tag[1])
        elif tag.startswith("<a ") or tag == "<a>":
            link = _OPEN_LINK.fullmatch(tag)
            if link is None:
                problems.append(f'bad link tag {tag!r}: write <a href="https://...">')
            elif _bad_ampersands(link.group(1)):
                problems.append(f"unescaped & in link {link.group(1)!r}: write &amp;")
            if "a" in stack:
                problems.append("link inside a link")
            stack.append("a")
        elif tag in ("</b>", "</i>", "</a>"):
            name = tag[2]
            if not stack or stack[-1] != name:
                problems.append(f"{tag} does not close the last opened tag")
                if name in stack:
                    stack.remove(name)
            else:
                stack.pop()
        else:
            problems.append(f'tag {tag!r} is not allowed (only <b>, <i>, <a href="https://...">)')
    outside.append(text[pos:])
    plain = "".join(outside)
    for name in stack:
        problems.append(f"<{name}> is never closed")
    if "<" in plain:
        problems.append("unescaped < (write &lt;)")
    if ">" in plain:
        problems.append("unescaped > (write &gt;)")
    bad = _bad_ampersands(plain)
    if bad:
        problems.append(f"{bad} unescaped & (write &amp;)")
    return problems


def visible_length(text: str) -> int:
    """Characters Telegram counts: tags removed, entities decoded, UTF-16 code units."""
    plain = html.unescape(_TAG.sub("", text))
    return len(plain.encode("utf-16-le")) // 2
