"""The flood guard both channels use: a sliding window per person, one warning a window."""

from __future__ import annotations

from bot.services.flood import FloodWindow


def test_a_person_over_the_limit_is_warned_once_and_let_in_when_the_window_slides() -> None:
    now = [100.0]
    guard = FloodWindow(per_minute=2, window=60.0, clock=lambda: now[0])
    assert guard.check("ana") == (True, False)
    assert guard.check("ana") == (True, False)
    assert guard.check("ana") == (False, True)  # the first refusal is answered
    assert guard.check("ana") == (False, False)  # the next ones are dropped quietly
    assert guard.check("petar") == (True, False)  # others are not affected
    now[0] += 60.0
    assert guard.check("ana") == (True, False)


def test_no_limit_when_switched_off() -> None:
    guard = FloodWindow(per_minute=0)
    assert all(guard.check(7) == (True, False) for _ in range(100))
