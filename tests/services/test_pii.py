"""Personal data is removed from what becomes a KB draft: Serbian examples, both scripts."""

from __future__ import annotations

import pytest

from bot.services.pii import scrub


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        ("Poštovana Jeleno, rešenje je poslato.", "Jelen", "rešenje je poslato"),
        ("Hvala, Jeleni sam već poslala uputstvo.", "Jelen", "uputstvo"),
        ("Dragi Petre, probajte ponovo.", "Petr", "probajte ponovo"),
        ("Uplata na RS35 2600 0560 1001 6113 79 je stigla.", "2600", "je stigla"),
        ("Račun 160-0000000012345-67 je za takse.", "12345", "za takse"),
        ("Stranka živi u ul. Kralja Petra br. 12 u Čačku.", "Kralja Petra", "u Čačku"),
        ("Adresa: Bulevar oslobođenja 45/3, Novi Sad", "oslobođenja 45", "Novi Sad"),
        ("Странка живи у улици Његошева 5.", "Његошева", "Странка живи"),
        ("Zove se Marija Ilić i ima JMBG 0101990710012.", "Ilić", "ima JMBG"),
    ],
)
def test_personal_data_is_replaced(text: str, gone: str, kept: str) -> None:
    result = scrub(text, names=["Jelena Marković", "Petar Perić"])
    assert gone not in result
    assert kept in result


def test_ordinary_words_and_fee_amounts_stay() -> None:
    text = "Taksa je 320 dinara, rok je 15 dana po članu 103 ZUP-a; Marketing nije tema."
    assert scrub(text, names=["Marko Jović"]) == text
