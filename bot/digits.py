"""Numbers typed by users or carried by button tokens: ASCII digits only.

``str.isdigit()`` is True for "²", "①" or "٣", and ``int()`` then raises (or reads a digit
of another script), so every such check goes through :func:`is_digits` / :func:`to_int`.
"""

from __future__ import annotations

import re

_ASCII_DIGITS = re.compile(r"[0-9]+")


def is_digits(text: str) -> bool:
    """Only the ASCII digits 0-9, at least one."""
    return _ASCII_DIGITS.fullmatch(text) is not None


def to_int(text: str, max_length: int = 12) -> int | None:
    """``text`` as an int if it is 1..``max_length`` ASCII digits, else None."""
    if len(text) > max_length or not is_digits(text):
        return None
    return int(text)
