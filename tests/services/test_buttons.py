"""The clerk's button tokens: what a service packs, every channel parses back the same."""

from __future__ import annotations

import pytest

from bot.services.buttons import (
    AskMentor,
    ChooseMunicipality,
    Clarify,
    Feedback,
    MentorRating,
    MentorResolved,
    ServiceList,
    ServicesMenu,
    SetLanguage,
    ShowEntry,
    Token,
    pack,
    parse,
)

TOKENS: list[tuple[Token, str]] = [
    (ShowEntry("ezup-login"), "e:ezup-login"),
    (Clarify(12, "ezup-login"), "c:12:ezup-login"),
    (Feedback(12, "up"), "fb:12:up"),
    (AskMentor(7), "m:7"),
    (ServiceList("ezup"), "svc:ezup"),
    (ServicesMenu(), "menu"),
    (SetLanguage("sr-Cyrl"), "lang:sr-Cyrl"),
    (ChooseMunicipality("novi-sad"), "mun:novi-sad"),
    (MentorResolved(3, "more"), "mr:3:more"),
    (MentorRating(3, 5), "mrt:3:5"),
]


@pytest.mark.parametrize(("token", "packed"), TOKENS)
def test_a_token_packs_to_its_short_form_and_parses_back(token: Token, packed: str) -> None:
    assert pack(token) == packed
    assert len(packed.encode()) <= 64  # Telegram's callback_data
    assert parse(packed) == token


@pytest.mark.parametrize(
    "action",
    ["", "x:1", "e", "e:", "c:12", "c:x:ezup-login", "fb:12", "m:", "m:abc", "m:1:2",
     "mrt:3:five", "menu:extra", "tr:j:five", "m:123456789012"],
)
def test_what_is_not_a_well_formed_token_parses_to_none(action: str) -> None:
    assert parse(action) is None


def test_a_field_holding_the_separator_cannot_be_packed() -> None:
    with pytest.raises(ValueError):
        pack(ShowEntry("a:b"))
