"""First contact: what the bot is, which script or language, which municipality.

Channel-neutral like every service: the steps return `Reply`s with action tokens
(bot/services/buttons.py: `SetLanguage`, `ChooseMunicipality` with a slug, "other" or
"skip") and say whether the next free text should be read as a municipality name.
Onboarding is never a gate: a clerk may skip it, or ignore it and ask a question straight away.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from bot.i18n import tr
from bot.services.buttons import ChooseMunicipality, ServicesMenu, SetLanguage, pack
from bot.services.municipalities import OTHER_INSTITUTION, MunicipalityDirectory, directory
from bot.services.replies import Button, Reply
from bot.services.users import UserProfile, UserService

LANGUAGE_BUTTONS = (("Latinica", "sr-Latn"), ("Ћирилица", "sr-Cyrl"), ("English", "en"))
SEARCH_LIMIT = 8


@dataclass(frozen=True)
class Step:
    reply: Reply
    user: UserProfile
    awaiting_municipality: bool = False  # read the clerk's next text as a municipality name
    is_question: bool = False  # the text was not a municipality but a question: answer it


class OnboardingService:
    def __init__(self, users: UserService, municipalities: MunicipalityDirectory | None = None):
        self._users = users
        self._municipalities = municipalities or directory()

    @property
    def municipalities(self) -> MunicipalityDirectory:
        return self._municipalities

    # -- language -------------------------------------------------------------------------

    def language_prompt(self, user: UserProfile) -> Reply:
        """Asked before the clerk has chosen, so it is written in all three at once."""
        text = "Izaberite pismo / Изаберите писмо / Choose your language:"
        row = tuple(Button(label, pack(SetLanguage(code))) for label, code in LANGUAGE_BUTTONS)
        return Reply(text, (row,))

    async def choose_language(self, user: UserProfile, language: str) -> Step:
        if language not in {code for _label, code in LANGUAGE_BUTTONS}:
            return Step(self.stale(user), user)
        first_time = not user.onboarded
        user = await self._users.set_language(user.id, language)
        if first_time:
            return Step(self.municipality_prompt(user), user, awaiting_municipality=True)
        return Step(
            Reply(tr(user.language, "Jezik je promenjen. Izvolite, postavite pitanje.")), user
        )

    # -- municipality ---------------------------------------------------------------------

    def municipality_prompt(self, user: UserProfile) -> Reply:
        text = tr(
            user.language,
            "U kojoj opštini ili gradu radite? Napišite deo naziva, na primer „Čač“ ili "
            "„Нови Сад“, pa izaberite sa spiska.",
        )
        current = self._municipalities.by_key(user.municipality)
        if current is not None:
            text += "\n" + tr(
                user.language,
                "Sada je upisano: <b>{name}</b>.",
                name=html.escape(current.name(user.language)),
            )
        return Reply(text, self._fallback_rows(user))

    def _fallback_rows(self, user: UserProfile) -> tuple[tuple[Button, ...], ...]:
        return (
            (
                Button(
                    tr(user.language, "Druga institucija"),
                    pack(ChooseMunicipality(OTHER_INSTITUTION)),
                ),
            ),
            (Button(tr(user.language, "Preskoči"), pack(ChooseMunicipality("skip"))),),
        )

    def search(self, user: UserProfile, text: str) -> Step:
        found = self._municipalities.search(text, limit=SEARCH_LIMIT)
        if found:
            rows = tuple(
                (Button(unit.label(user.language), pack(ChooseMunicipality(unit.slug))),)
                for unit in found
            )
            return Step(
                Reply(
                    tr(user.language, "Izaberite sa spiska:"),
                    rows + self._fallback_rows(user),
                ),
                user,
                awaiting_municipality=True,
            )
        if _looks_like_question(text):
            return Step(Reply(""), user, is_question=True)
        return Step(
            Reply(
                tr(
                    user.language,
                    "Nisam pronašao opštinu „{query}“. Pokušajte sa prvih nekoliko slova naziva "
                    "ili izaberite „Druga institucija“.",
                    query=html.escape(text.strip()[:60]),
                ),
                self._fallback_rows(user),
            ),
            user,
            awaiting_municipality=True,
        )

    async def choose_municipality(self, user: UserProfile, token: str) -> Step:
        if token == "skip":
            user = await self._users.mark_onboarded(user.id)
            return Step(
                Reply(
                    tr(
                        user.language,
                        "U redu. Opštinu možete upisati kasnije komandom /opstina. "
                        "Izvolite, postavite pitanje.",
                    )
                ),
                user,
            )
        if token == OTHER_INSTITUTION:
            user = await self._users.set_municipality(user.id, OTHER_INSTITUTION)
            name = tr(user.language, "druga institucija")
        else:
            unit = self._municipalities.by_slug(token)
            if unit is None:
                return Step(self.stale(user), user)
            user = await self._users.set_municipality(user.id, unit.key)
            name = unit.name(user.language)
        return Step(
            Reply(
                tr(
                    user.language,
                    "Zabeleženo: <b>{name}</b>. Izvolite, postavite pitanje – na primer "
                    "<i>kako da dobijem pristup eZUP-u</i>. Spisak tema otvara /teme.",
                    name=html.escape(name),
                ),
                ((Button(tr(user.language, "Pregled tema"), pack(ServicesMenu())),),),
            ),
            user,
        )

    def describe(self, user: UserProfile) -> str | None:
        """The clerk's municipality in their script, or None when not chosen."""
        if user.municipality == OTHER_INSTITUTION:
            return tr(user.language, "druga institucija")
        unit = self._municipalities.by_key(user.municipality)
        return unit.name(user.language) if unit is not None else None

    def stale(self, user: UserProfile) -> Reply:
        return Reply(
            tr(
                user.language,
                "Ova opcija više nije dostupna. Napišite pitanje ponovo ili otvorite /teme.",
            )
        )


def _looks_like_question(text: str) -> bool:
    """'Kako da se prijavim na eZUP?' is not a town: more than three words, or a '?'."""
    stripped = text.strip()
    return "?" in stripped or len(stripped.split()) > 3
