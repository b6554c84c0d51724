"""Removing personal data from text that goes into the knowledge base.

Removed: JMBG (13 digits), phone numbers (Serbian mobile and landline, +381 / 00381 / 0...),
e-mail addresses, the clerk's own name, and capitalised names typed after words such as
"gospodin", "gospođa", "stranka", "ime", "prezime", "kolega" (Latin or Cyrillic). What remains is
the question and answer in general terms, for a curator to review.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from knowledge_base.translit import to_cyrillic, to_latin

JMBG = "[JMBG]"
PHONE = "[telefon]"
EMAIL = "[e-pošta]"
NAME = "[ime]"

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_JMBG = re.compile(r"(?<!\d)\d{13}(?!\d)")
# +381 64 123 4567, 00381641234567, 064/123-45-67, 011 123 4567, (011) 3234-567
_PHONE = re.compile(
    r"(?<![\w+])(?:(?:\+|00)381[\s./-]*\(?0?\d{1,3}\)?|\(?0\d{1,3}\)?)"
    r"(?:[\s./-]*\d){5,8}(?!\d)"
)
_UPPER = "A-ZČĆŠŽĐА-ЯЂЈЉЊЋЏ"
_LOWER = "a-zčćšžđа-яђјљњћџ"
_NAME_WORD = rf"[{_UPPER}][{_LOWER}]+(?:-[{_UPPER}][{_LOWER}]+)?"
_TRIGGERS_LATIN = (
    "gospodin",
    "gospodina",
    "gospodinu",
    "gospođa",
    "gospođe",
    "gospođi",
    "gospodja",
    "gospodje",
    "gđa",
    "gđe",
    "g-din",
    "g-đa",
    "stranka",
    "stranke",
    "stranci",
    "strankom",
    "ime",
    "imenom",
    "prezime",
    "prezimenom",
    "kolega",
    "koleginica",
    "koleginice",
    "kolege",
    "podnosilac",
    "podnosioca",
    "korisnik",
    "korisnika",
    "zove se",
    "zovem se",
    "građanin",
    "građanka",
    "građanina",
    "sugrađanin",
)
_TRIGGERS = tuple(dict.fromkeys(t for word in _TRIGGERS_LATIN for t in (word, to_cyrillic(word))))
_AFTER_TRIGGER = re.compile(
    r"(?i:\b(?:" + "|".join(re.escape(t) for t in _TRIGGERS) + r"))\b[\s:,.]*"
    rf"(?P<name>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})"
)


def _name_variants(name: str) -> list[str]:
    parts = [p for p in re.split(r"\s+", name.strip()) if len(p) >= 2]
    variants: set[str] = set()
    for part in [*parts, name.strip()]:
        if part:
            variants.update({part, to_latin(part), to_cyrillic(part)})
    return sorted(variants, key=len, reverse=True)


def scrub(text: str, names: Iterable[str] = ()) -> str:
    """`text` with personal data replaced by placeholders; `names` are known names (the clerk's
    display name, the mentor's) removed wherever they appear, in either script."""
    result = _EMAIL.sub(EMAIL, text)
    result = _JMBG.sub(JMBG, result)
    result = _PHONE.sub(PHONE, result)
    for name in names:
        for variant in _name_variants(name):
            result = re.sub(
                rf"(?<![\w]){re.escape(variant)}\w{{0,3}}(?![\w])", NAME, result, flags=re.I
            )
    result = _AFTER_TRIGGER.sub(lambda m: m.group(0)[: m.start("name") - m.start(0)] + NAME, result)
    return result
