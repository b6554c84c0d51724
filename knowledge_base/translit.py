"""Serbian Latin <-> Cyrillic transliteration.

Serbian has a one-to-one mapping between its two alphabets (lj, nj, dž are single Cyrillic
letters), so the KB is written once in Latin and shown in Cyrillic on demand. URLs, e-mail
addresses, HTML tags and entities are left untouched so links and markup keep working.
"""

from __future__ import annotations

import re

_CYR_TO_LAT = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "ђ": "đ",
    "е": "e",
    "ж": "ž",
    "з": "z",
    "и": "i",
    "ј": "j",
    "к": "k",
    "л": "l",
    "љ": "lj",
    "м": "m",
    "н": "n",
    "њ": "nj",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "ћ": "ć",
    "у": "u",
    "ф": "f",
    "х": "h",
    "ц": "c",
    "ч": "č",
    "џ": "dž",
    "ш": "š",
}
for _cyr, _lat in list(_CYR_TO_LAT.items()):
    _CYR_TO_LAT[_cyr.upper()] = _lat[0].upper() + _lat[1:]

_LAT_TO_CYR_DIGRAPHS = {"lj": "љ", "nj": "њ", "dž": "џ"}
_LAT_TO_CYR = {lat: cyr for cyr, lat in _CYR_TO_LAT.items() if cyr.islower() and len(lat) == 1}

# Words where "nj"/"lj"/"dž" are two letters, not one (rare; the common ones).
_DIGRAPH_EXCEPTIONS = ("konjunk", "injekc", "injunk", "nadživ", "podžanr", "odžal")

# Tokens that must stay Latin: markup, links, addresses, and well-known Latin-only brand names.
_PROTECTED = re.compile(
    r"<[^>]*>|&[a-zA-Z#0-9]+;|\{[^{}]*\}|%\([a-z_]+\)[sd]|(?<![\w/])/[a-z_]+"
    r"|https?://\S+|www\.\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    r"|\b(?:[A-Za-z0-9-]+\.)+(?:rs|srb|com|org|net|eu|info|io)\b(?:/[^\s;,)]*)?"
    r"|\b(?:ConsentID|QR|IPS QR|POS|PDF|XML|PIN|ID|LEI|NALED|UNDP|CERT|USB|SMS|IT|Viber|Telegram)\b"
)


def to_latin(text: str) -> str:
    """Cyrillic letters to Serbian Latin; everything else is kept."""
    return "".join(_CYR_TO_LAT.get(ch, ch) for ch in text)


def _is_digraph_exception(lower: str, index: int) -> bool:
    """True where "nj"/"lj"/"dž" at `index` are two letters (nadživeti, injekcija)."""
    window = lower[max(0, index - 3) : index + 6]
    return any(exception in window for exception in _DIGRAPH_EXCEPTIONS)


def _latin_word_to_cyrillic(text: str) -> str:
    out: list[str] = []
    lower = text.lower()
    i = 0
    while i < len(text):
        pair = lower[i : i + 2]
        if pair in _LAT_TO_CYR_DIGRAPHS and not _is_digraph_exception(lower, i):
            letter = _LAT_TO_CYR_DIGRAPHS[pair]
            out.append(letter.upper() if text[i].isupper() else letter)
            i += 2
            continue
        char = text[i]
        mapped = _LAT_TO_CYR.get(char.lower())
        if mapped is None:
            out.append(char)
        else:
            out.append(mapped.upper() if char.isupper() else mapped)
        i += 1
    return "".join(out)


def to_cyrillic(text: str) -> str:
    """Serbian Latin to Cyrillic, leaving links, addresses, markup and brand names intact."""
    out: list[str] = []
    pos = 0
    for match in _PROTECTED.finditer(text):
        out.append(_latin_word_to_cyrillic(text[pos : match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(_latin_word_to_cyrillic(text[pos:]))
    return "".join(out)
