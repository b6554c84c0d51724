"""Serbian Latin <-> Cyrillic transliteration.

Serbian has a one-to-one mapping between its two alphabets (lj, nj, dž are single Cyrillic
letters), so the KB is written once in Latin and shown in Cyrillic on demand. URLs, e-mail
addresses, HTML tags and entities are left untouched so links and markup keep working.
"""

from __future__ import annotations

import re

_CYR_TO_LAT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "ђ": "đ", "е": "e", "ж": "ž", "з": "z",
    "и": "i", "ј": "j", "к": "k", "л": "l", "љ": "lj", "м": "m", "н": "n", "њ": "nj", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "ћ": "ć", "у": "u", "ф": "f", "х": "h", "ц": "c",
    "ч": "č", "џ": "dž", "ш": "š",
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
    r"|\b(?:ConsentID|QR|IPS QR|POS|PDF|XML|PIN|ID|LEI|NALED|UNDP|CERT|USB|SMS|IT|Viber|Telegram)\b"
)


def to_latin(text: str) -> str:
    """Cyrillic letters to Serbian Latin; everything else is kept."""
    return "".join(_CYR_TO_LAT.get(ch, ch) for ch in text)


def _latin_word_to_cyrillic(text: str) -> str:
    out: list[str] = []
    i = 0
    lower = text.lower()
    while i < len(text):
        pair = lower[i : i + 2]
        if pair in _LAT_TO_CYR_DIGRAPHS and not any(
            lower.startswith(exc, max(0, i - 4)) or lower[max(0, i - 4) :].startswith(exc)
            for exc in _DIGRAPH_EXCEPTIONS
        ):
            cyr = _LAT_TO_CYR_DIGRAPHS[pair]
            out.append(cyr.upper() if text[i].isupper() else cyr)
            i += 2
            continue
        ch = text[i]
        cyr = _LAT_TO_CYR.get(ch.lower())
        if cyr is None:
            out.append(ch)
        else:
            out.append(cyr.upper() if ch.isupper() else cyr)
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
