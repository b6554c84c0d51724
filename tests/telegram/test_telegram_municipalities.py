"""Finding a municipality from a few typed letters, in either script, with or without diacritics."""

from __future__ import annotations

import pytest

from bot.services.municipalities import MunicipalityDirectory, directory, fold


def keys(query: str) -> list[str]:
    return [unit.key for unit in directory().search(query)]


def test_the_list_has_every_unit_of_the_csv() -> None:
    units = directory().units
    assert len(units) == 175
    assert sum(unit.kind == "city" for unit in units) == 28
    assert sum(unit.kind == "municipality" for unit in units) == 117
    assert sum(unit.kind == "city_municipality" for unit in units) == 30


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Čačak", "Čačak"),
        ("cacak", "Čačak"),
        ("Чач", "Čačak"),
        ("чачак", "Čačak"),
        ("vozdovac", "Voždovac (Beograd)"),
        ("Вождовац", "Voždovac (Beograd)"),
        ("vladicin", "Vladičin Han"),
        ("kragujevc", "Kragujevac"),  # a typo
        ("sokobanja", "Sokobanja"),
    ],
)
def test_clerk_finds_municipality_however_it_is_written(query: str, expected: str) -> None:
    assert keys(query)[0] == expected


def test_same_names_stay_apart() -> None:
    assert keys("palilula") == ["Palilula (Beograd)", "Palilula (Niš)"]
    assert keys("novi sad")[:2] == ["Novi Sad", "Novi Sad (Novi Sad)"]


def test_part_of_a_later_word_is_found() -> None:
    assert "Novi Beograd (Beograd)" in keys("beograd")
    assert "Niška Banja (Niš)" in keys("banja")


def test_nothing_for_nonsense_or_empty() -> None:
    assert keys("qqq") == []
    assert keys("   ") == []


def test_every_unit_has_a_short_unique_button_token() -> None:
    units = directory().units
    slugs = [unit.slug for unit in units]
    assert len(set(slugs)) == len(slugs)
    assert all(slug.isascii() and len(("mun:" + slug).encode()) <= 64 for slug in slugs)
    assert all(directory().by_slug(unit.slug) is unit for unit in units)


def test_labels_follow_the_clerks_script() -> None:
    palilula = directory().by_key("Palilula (Niš)")
    assert palilula is not None
    assert palilula.label("sr-Latn") == "Palilula – Niš"
    assert palilula.label("sr-Cyrl") == "Палилула – Ниш"
    nis = directory().by_key("Niš")
    assert nis is not None and nis.label("en") == "Niš – city"


def test_fold() -> None:
    assert fold("Đurđevo") == "djurdjevo"
    assert fold("  Ниш! ") == "nis"


def test_keys_must_be_unique() -> None:
    unit = directory().units[0]
    with pytest.raises(ValueError):
        MunicipalityDirectory([unit, unit])
