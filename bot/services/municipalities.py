"""Serbia's cities and municipalities, and finding one from a few typed letters.

The list is bot/data/municipalities.csv (175 local self-government units, Latin and Cyrillic
names; see /work/shared/data/README.md for its sources). A clerk types part of a name in either
script, with or without diacritics ("cacak", "Чач", "novi b", "vozdovac"), and gets the best few
units back. What is stored on the user is `Municipality.key`: the Latin name, and for a city
municipality also its city ("Palilula (Beograd)"), so the two Palilulas stay apart.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rapidfuzz import fuzz, process

from knowledge_base.translit import to_cyrillic, to_latin

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "municipalities.csv"

OTHER_INSTITUTION = "other"  # stored when the clerk works for another institution

_FOLD = str.maketrans({"č": "c", "ć": "c", "š": "s", "ž": "z", "đ": "dj"})
_NOT_WORD = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Lower-case ASCII Latin words: 'Ниш' -> 'nis', 'Đakovica' -> 'djakovica'."""
    text = to_latin(unicodedata.normalize("NFKC", text)).lower().translate(_FOLD)
    text = "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )
    return _NOT_WORD.sub(" ", text).strip()


def _loose(text: str) -> str:
    """A second form for people who write đ as plain d ('Vladicin', 'Djurdjevo'/'Durdevo')."""
    return text.replace("dj", "d")


def _slug(text: str) -> str:
    return fold(text).replace(" ", "-")


@dataclass(frozen=True)
class Municipality:
    kind: str  # city | municipality | city_municipality
    name_latin: str
    name_cyrillic: str
    district_latin: str
    parent_city_latin: str

    @property
    def key(self) -> str:
        """Stable, readable, unique: what the user record keeps."""
        if self.kind == "city_municipality":
            return f"{self.name_latin} ({self.parent_city_latin})"
        return self.name_latin

    @property
    def slug(self) -> str:
        """ASCII form of the key, short enough for Telegram's 64-byte callback data."""
        return _slug(self.key)

    def label(self, language: str) -> str:
        """How a button shows it: 'Niš – grad', 'Palilula – Beograd', 'Ада'."""
        cyrillic = language == "sr-Cyrl"
        name = self.name_cyrillic if cyrillic else self.name_latin
        if self.kind == "city_municipality":
            parent = to_cyrillic(self.parent_city_latin) if cyrillic else self.parent_city_latin
            return f"{name} – {parent}"
        if self.kind == "city":
            word = {"sr-Cyrl": "град", "en": "city"}.get(language, "grad")
            return f"{name} – {word}"
        return name

    def name(self, language: str) -> str:
        """The name alone in the reader's script (with the city for a city municipality)."""
        if language == "sr-Cyrl":
            if self.kind == "city_municipality":
                return f"{self.name_cyrillic} ({to_cyrillic(self.parent_city_latin)})"
            return self.name_cyrillic
        return self.key


_KIND_ORDER = {"city": 0, "municipality": 1, "city_municipality": 2}


class MunicipalityDirectory:
    """All units, searchable by any part of their name in either script."""

    def __init__(self, units: Iterable[Municipality]):
        self.units: list[Municipality] = list(units)
        self._by_slug = {unit.slug: unit for unit in self.units}
        self._by_key = {unit.key: unit for unit in self.units}
        if len(self._by_slug) != len(self.units):
            raise ValueError("municipality keys are not unique")
        self._folded = [fold(unit.name_latin) for unit in self.units]

    @classmethod
    def from_csv(cls, path: Path = DATA_FILE) -> MunicipalityDirectory:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        return cls(
            Municipality(
                kind=row["kind"].strip(),
                name_latin=row["name_latin"].strip(),
                name_cyrillic=row["name_cyrillic"].strip(),
                district_latin=row["district_latin"].strip(),
                parent_city_latin=(row.get("parent_city_latin") or "").strip(),
            )
            for row in rows
        )

    def __len__(self) -> int:
        return len(self.units)

    def by_slug(self, slug: str) -> Municipality | None:
        return self._by_slug.get(slug)

    def by_key(self, key: str | None) -> Municipality | None:
        return self._by_key.get(key) if key else None

    def search(self, query: str, limit: int = 8) -> list[Municipality]:
        """Best matches first: whole name, name start, word start, anywhere, then typos."""
        wanted = fold(query)
        if not wanted:
            return []
        loose = _loose(wanted)
        scored: list[tuple[int, int, str, Municipality]] = []
        for unit, name in zip(self.units, self._folded, strict=True):
            rank = self._rank(wanted, name)
            if rank is None:
                rank = self._rank(loose, _loose(name))
            if rank is not None:
                scored.append((rank, _KIND_ORDER.get(unit.kind, 3), name, unit))
        if not scored and len(wanted) >= 4:
            # Typos: "kragujevc", "smederevoo". Names are short, so a plain ratio works well.
            hits = process.extract(
                wanted, self._folded, scorer=fuzz.WRatio, limit=limit, score_cutoff=80
            )
            return [self.units[index] for _name, _score, index in hits]
        scored.sort(key=lambda item: (item[0], item[1], item[2]))
        return [unit for *_ignored, unit in scored[:limit]]

    @staticmethod
    def _rank(wanted: str, name: str) -> int | None:
        if name == wanted:
            return 0
        if name.startswith(wanted):
            return 1
        if any(word.startswith(wanted) for word in name.split()):
            return 2
        if len(wanted) >= 3 and wanted in name:
            return 3
        return None


@cache
def directory() -> MunicipalityDirectory:
    """The directory from the bundled CSV, loaded once."""
    return MunicipalityDirectory.from_csv()
