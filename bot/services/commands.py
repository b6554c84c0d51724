"""The clerk's commands, once for every channel: the name Telegram's menu shows (ASCII), its
description there, and the other spellings a clerk may type (Viber accepts them all)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import N_


@dataclass(frozen=True)
class ClerkCommand:
    name: str
    description: str | None  # msgid for Telegram's command menu; None: not in the menu
    spellings: tuple[str, ...] = ()  # also accepted when typed (accented, English)


CLERK_COMMANDS: tuple[ClerkCommand, ...] = (
    ClerkCommand("start", N_("Početak: jezik i opština"), ("pocetak", "početak")),
    ClerkCommand("teme", N_("Pregled tema"), ("topics",)),
    ClerkCommand("pomoc", N_("Šta bot ume i kako se koristi"), ("pomoć", "help")),
    ClerkCommand("mentor", N_("Pitanje za mentora")),
    ClerkCommand("plan", N_("Plan uvođenja usluga u Vašoj opštini")),
    ClerkCommand("obuke", N_("Predstojeće obuke")),
    ClerkCommand("jezik", N_("Latinica, ćirilica ili engleski"), ("language",)),
    ClerkCommand("opstina", N_("Promena opštine"), ("opština",)),
    ClerkCommand("moji_podaci", N_("Podaci koje čuvamo o Vama"), ("mojipodaci", "my_data")),
    ClerkCommand(
        "obrisi_me", N_("Brisanje Vaših podataka"), ("obriši_me", "obrisime", "delete_me")
    ),
    ClerkCommand("usluge", None),
)

_BY_SPELLING = {
    spelling: command.name
    for command in CLERK_COMMANDS
    for spelling in (command.name, *command.spellings)
}


def command_named(typed: str) -> str | None:
    """The command's name for any of its spellings (lower case, without the slash)."""
    return _BY_SPELLING.get(typed)
