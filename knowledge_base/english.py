"""English questions: recognise them and carry their subject words over into Serbian.

The entries are written in Serbian; a clerk or partner who writes "how do I activate
ConsentID?" should still find `eid-consentid`. A curated glossary (`english.yaml`, reviewed like
the KB) maps English phrases and words to the Serbian terms the entries use; longer phrases win.
Words the glossary does not know are kept as they are: service names (eZUP, ConsentID) match
as written, and a question about something no entry knows ("weather in Belgrade") stays unknown,
which is what keeps it from being answered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

GLOSSARY_FILE = Path(__file__).with_name("english.yaml")

# Words that only English uses, and words only Serbian uses; "a", "i", "to", "on", "do" are both.
_ENGLISH = frozenset(
    """the is are was were how what whats where when which who whom why does did can could should
    would my our your we you they it its this that these those there with for of about get
    have has had be been an and or please do i a to on in at by from if any some need
    want their them his her into than then also just here all every each via will shall am
    im ive weve dont doesnt cant isnt our us be being between""".split()  # noqa: SIM905
)
_SERBIAN = frozenset(
    """i a to on do je su se li da na u za od iz sa kako sta sto gde kada kad koji koja koje ko
    zasto koliko moze mozemo mogu treba nas nasa nase vas ili ali pa kao jer bi biti sam smo
    ste nije nisu ne nema ima""".split()  # noqa: SIM905
)
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")  # letters of any script: eSanduče, eGrađanin
# A message that opens with English courtesy has no function word to tell it by: "Good morning!"
_COURTESY = re.compile(
    r"^\W*(?:good (?:morning|afternoon|evening|day)|thank you|thanks|hello|hi there|dear)\b", re.I
)


@dataclass(frozen=True)
class Glossary:
    phrases: Mapping[str, str]
    words: Mapping[str, str]

    def __post_init__(self) -> None:
        ordered = sorted(self.phrases, key=lambda p: -len(p))
        alternatives = "|".join(re.escape(p) for p in ordered) or r"(?!x)x"
        object.__setattr__(
            self, "_phrase_re", re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")
        )


def load_glossary(path: Path = GLOSSARY_FILE) -> Glossary:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    phrases = {str(k).lower(): str(v) for k, v in (data.get("phrases") or {}).items()}
    words = {str(k).lower(): str(v) for k, v in (data.get("words") or {}).items()}
    return Glossary(phrases, words)


def is_english(text: str, glossary: Glossary | None = None) -> bool:
    """More English words than Serbian ones, at least two, and no Cyrillic. English words are
    the function words, and (with a glossary) the words it translates: "Who issues qualified
    electronic certificates?" has only one function word. A message opening with English
    courtesy and no Serbian word is English too ("Good morning!", "Thanks a lot")."""
    if any("\u0400" <= ch <= "\u04ff" for ch in text):
        return False
    tokens = _WORD.findall(text.lower().replace("’", "'"))
    function = sum(1 for t in tokens if t in _ENGLISH or t.endswith("n't"))
    serbian = sum(1 for t in tokens if t in _SERBIAN)
    english = function
    if glossary is not None and function:
        english += sum(
            1
            for t in tokens
            if t not in _ENGLISH and t not in _SERBIAN and glossary.words.get(t, t) != t
        )
    if serbian == 0 and _COURTESY.match(text):
        return True
    return english >= 2 and english > serbian


def to_serbian(text: str, glossary: Glossary) -> str:
    """The question's subject words in Serbian (phrases first, then single words)."""
    lowered = text.lower().replace("’", "'")
    pattern: re.Pattern[str] = glossary._phrase_re  # type: ignore[attr-defined]
    out: list[str] = []
    position = 0
    for found in pattern.finditer(lowered):
        out.extend(_words(lowered[position : found.start()], glossary))
        out.append(glossary.phrases[found.group(0)])
        position = found.end()
    out.extend(_words(lowered[position:], glossary))
    return " ".join(out)


def _words(chunk: str, glossary: Glossary) -> list[str]:
    result: list[str] = []
    for token in _WORD.findall(chunk):
        translated = glossary.words.get(token)
        if translated is None and token.endswith("s"):
            translated = glossary.words.get(token[:-1])
        if translated is not None:
            if translated:  # an empty translation drops a filler word ("exactly")
                result.append(translated)
        elif token not in _ENGLISH:
            result.append(token)
    return result
