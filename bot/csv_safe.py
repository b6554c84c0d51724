"""CSV that spreadsheets cannot execute: every writer in the program goes through here.

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a TAB or a CR is read by Excel,
LibreOffice and Google Sheets as a formula (``=HYPERLINK(...)``, ``=cmd|...``). User text
(questions, names, municipalities) ends up in exports, so such a cell gets a leading apostrophe,
as OWASP recommends ("CSV Injection"). Numbers we compute ourselves are written as they are.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value`` made harmless for a spreadsheet; non-text values (int, float, None) unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose every cell passes through :func:`safe_cell`."""

    def __init__(self, stream: Any, **kwargs: Any) -> None:
        self._writer = csv.writer(stream, **kwargs)

    def writerow(self, row: Iterable[object]) -> Any:
        return self._writer.writerow([safe_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(stream: Any, **kwargs: Any) -> SafeWriter:
    """Drop-in for ``csv.writer`` that neutralises formula cells."""
    return SafeWriter(stream, **kwargs)
