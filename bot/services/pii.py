"""Removing personal data from text that goes into the knowledge base.

Removed: JMBG (13 digits), phone numbers (Serbian mobile and landline, +381 / 00381 / 0...),
e-mail addresses, IBANs and Serbian bank account numbers, street addresses ("ul. Kralja Petra
12", "Bulevar oslobođenja 45/3"), the clerk's own name in any case ending (Jelena, Jeleno,
Jeleni), and capitalised names typed after words such as "gospodin", "gospođa", "stranka", "ime",
"kolega" or a form of address ("Poštovana Jeleno", "Dragi Petre"), Latin or Cyrillic. What
remains is the question and answer in general terms, for a curator to review.

Why hand-written patterns: the maintained detectors (Presidio and the like) need language
models downloaded at run time and know no Serbian; these patterns are tested on Serbian text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from knowledge_base.translit import to_cyrillic, to_latin

JMBG = "[JMBG]"
PHONE = "[telefon]"
EMAIL = "[e-pošta]"
NAME = "[ime]"
ACCOUNT = "[račun]"
ADDRESS = "[adresa]"

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_JMBG = re.compile(r"(?<!\d)\d{13}(?!\d)")
# +381 64 123 4567, 00381641234567, 064/123-45-67, 011 123 4567, (011) 3234-567
_PHONE = re.compile(
    r"(?<![\w+])(?:(?:\+|00)381[\s./-]*\(?0?\d{1,3}\)?|\(?0\d{1,3}\)?)"
    r"(?:[\s./-]*\d){5,8}(?!\d)"
)
# RS35 2600 0560 1001 6113 79, and the domestic 160-0000000012345-67 / 160000000001234567
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[\s-]?[0-9A-Z]){11,30}\b")
_ACCOUNT = re.compile(r"(?<![\d/-])\d{3}-\d{5,13}-\d{2}(?![\d-])|(?<!\d)\d{18}(?!\d)")
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
    "poštovana",
    "poštovani",
    "draga",
    "dragi",
    "zdravo",
    "pozdrav",
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


_ADDRESS_WORD = rf"[{_UPPER}{_LOWER}0-9.]+"
_ADDRESS = re.compile(
    rf"(?i:\b(?:ul\.|ulica|ulici|ulice|bul\.|bulevar|bulevaru|trg|trgu|adresa|adresi|adresu"
    rf"|ул\.|улица|улици|булевар|трг|адреса|адреси))[\s:,]*"
    rf"(?:{_ADDRESS_WORD}\s+){{0,4}}?(?:br\.?\s*|бр\.?\s*)?\d+[a-zA-Zа-я]?(?:/\d+)?"
)


def _name_variants(name: str) -> list[str]:
    """The name, its parts and their stems (so declined forms match: Jelena -> Jelen-o, -i,
    -u; Petar -> Petr-e), in both scripts, longest first."""
    parts = [p for p in re.split(r"\s+", name.strip()) if len(p) >= 2]
    variants: set[str] = set()
    for part in [*parts, name.strip()]:
        if not part:
            continue
        forms = {part}
        if len(part) >= 4 and " " not in part:
            forms.add(part[:-1])  # Jelena -> Jelen, Marko -> Mark
            if part[-2] in "aeAE" and part[-1] not in "aeiouAEIOU":
                forms.add(part[:-2] + part[-1])  # Petar -> Petr (Petre, Petru)
        for form in forms:
            variants.update({form, to_latin(form), to_cyrillic(form)})
    return sorted(variants, key=len, reverse=True)


def scrub(text: str, names: Iterable[str] = ()) -> str:
    """`text` with personal data replaced by placeholders; `names` are known names (the clerk's
    display name, the mentor's) removed wherever they appear, in either script."""
    result = _EMAIL.sub(EMAIL, text)
    result = _IBAN.sub(ACCOUNT, result)
    result = _ACCOUNT.sub(ACCOUNT, result)
    result = _JMBG.sub(JMBG, result)
    result = _PHONE.sub(PHONE, result)
    for name in names:
        for variant in _name_variants(name):
            result = re.sub(
                rf"(?<![\w]){re.escape(variant)}\w{{0,3}}(?![\w])", NAME, result, flags=re.I
            )
    result = _ADDRESS.sub(ADDRESS, result)
    result = _AFTER_TRIGGER.sub(lambda m: m.group(0)[: m.start("name") - m.start(0)] + NAME, result)
    return result
