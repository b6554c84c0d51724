"""Text normalisation for matching Serbian questions written any way clerks write them.

`normalize` makes "Kako da dobijem pristup eZUP-u?", "како да добијем приступ еЗУП-у" and
"kako da dobijem pristup e zup-u" the same string: NFKC, Cyrillic -> Latin, lower case,
diacritics folded (č ć -> c, š -> s, ž -> z, đ -> dj), punctuation to spaces, the `e-`/`e `
prefix of service names joined to the name and hyphenated case endings (eZUP-u) joined to the
word. `words` splits it, `stem` is the Serbian Snowball stemmer (cached), and `STOP_WORDS` are
Serbian function words in folded form.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import snowballstemmer

from knowledge_base.translit import to_latin

_FOLD = str.maketrans({"č": "c", "ć": "c", "š": "s", "ž": "z", "đ": "dj", "ß": "ss"})

# Word stems that follow a stand-alone "e" in service names: "e zup", "e sanduče", "e uprava".
_E_SERVICES = (
    "zup",
    "sanduc",
    "dostav",
    "placanj",
    "plat",
    "pisarnic",
    "pecat",
    "uprav",
    "gradjan",
    "vrtic",
    "zakaz",
    "potpis",
    "inbox",
    "servis",
    "faktur",
    "id\\b",
    "ident",
    "registr",
    "sednic",
    "porez",
    "beb",
    "upis",
    "zdravlj",
    "recept",
    "kart",
)
_E_PREFIX = re.compile(r"\be\s*[-–—]\s*(?=\w)|\be\s+(?=(?:" + "|".join(_E_SERVICES) + "))")
# "ezup-u", "kes-a", "lei-ja": a hyphenated case ending belongs to the word before it.
_CASE_ENDING = re.compile(
    r"(?<=\w)[-–—](?=(?:a|e|i|u|om|em|ov|ovi|ove|ova|ja|ju|je|ji|jem|ima|ama|ovima|ovoj|ovog|ovom)\b)"
)
_NOT_WORD = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """Folded, lower-case Latin words separated by single spaces (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    text = to_latin(text).lower().translate(_FOLD)
    if not text.isascii():
        # Other accents (é, ü, ...): decompose and drop the combining marks.
        text = "".join(
            ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
        )
        # An accented Cyrillic letter (Ѐ, Ѝ) is a plain one now: transliterate it too, or a
        # second normalisation would change the text again.
        text = to_latin(text).translate(_FOLD)
    text = _CASE_ENDING.sub("", text)
    text = _E_PREFIX.sub("e", text)
    return _NOT_WORD.sub(" ", text).strip()


def words(text: str) -> list[str]:
    """The words of `text` after normalisation."""
    return normalize(text).split()


_STEMMER = snowballstemmer.stemmer("serbian")


@lru_cache(maxsize=100_000)
def stem(word: str) -> str:
    """Serbian Snowball stem of a normalised word; abbreviations (3 letters or fewer) and
    numbers are kept as they are."""
    if len(word) <= 3 or not word.isalpha():
        return word
    result: str = _STEMMER.stemWord(word)
    return result or word


# Serbian function words (folded), and English ones for clerks who write in English (the bot
# has an English interface). Serbian question words (kako, sta, koliko, gde, ...) and negation
# are kept on purpose: they tell "what is X" from "how much X" and "X does not work".
_STOP_WORDS_TEXT = """
    a i u o s k ka sa na za od do iz po pri uz pa te ni niti ali ili li da se je su sam si smo ste
    jesam jesi jeste jesu bi bih bismo biste bio bila bilo bili bile biti budem bude budu ce cu
    ces cemo cete kod prema kroz preko radi zbog oko bez nad pod pred medju izmedju osim putem
    to ta taj tu ti tim tom toga tome ovo ova ovaj ovi ove ovu ovog ovom ovim ovoga ono ona oni
    one on onaj onu ja mi vi me mene meni mnom nas nama nam vas vama vam ga mu ih im joj je njega
    njemu njoj njih njima njen njena njeno njegov njegova njegovo njihov njihova njihovo
    sebe sebi svoj svoja svoje svog svoga svom svoju svojim svojih svojoj
    nasa nase naseg nasem nasu nasim nasi nasih nasoj nasima nasa
    vasa vase vaseg vasem vasu vasim vasi vasih vasoj vasima njenog njenom njenim njenih
    njegovog njegovom njegovim njegovih njihovog njihovom njihovim njihovih
    sto jer kao vec jos samo tako onda sada sad tada evo eto bas jel jelte znaci
    molim pozdravljam postovani postovana postovanje
    the a an of to in on at by for from with and or is are be was can could do does did how what
    why when where which who i you we it my our your me us this that there please
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
