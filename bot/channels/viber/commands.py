"""Commands typed by hand (`/teme`, `/pomoc`, ...) or tapped (`cmd:<command>`), as on Telegram:
the names and spellings are bot.services.commands' (Telegram's menu comes from the same list)."""

from __future__ import annotations

import logging

from bot.channels.viber.common import AWAIT_MUNICIPALITY, LOGGER
from bot.channels.viber.drafts import MentorDrafts
from bot.services.commands import command_named
from bot.services.users import UserProfile

log = logging.getLogger(LOGGER)


class ViberCommands(MentorDrafts):
    """A command (any of its spellings) -> its reply."""

    async def _on_command(self, user: UserProfile, text: str) -> None:
        command = text.split()[0].lstrip("/").lower()
        await self._run_command(user, command)

    async def _run_command(self, user: UserProfile, typed: str) -> None:
        command = command_named(typed)  # one of CLERK_COMMANDS' names, whatever the spelling
        answers = self.services.answers
        if command == "start":
            await self.send(user, answers.welcome(user))
            await self.send(user, self.onboarding.language_prompt(user))
        elif command == "pomoc":
            await self.send(user, answers.help(user))
        elif command == "teme":
            await self.send(user, answers.services_menu(user), source="menu")
        elif command == "jezik":
            await self.send(user, self.onboarding.language_prompt(user))
        elif command == "opstina":
            await self.send(
                user, self.onboarding.municipality_prompt(user), tracking=AWAIT_MUNICIPALITY
            )
        elif command == "mentor" and self._mentoring is not None:
            await self._start_draft(user, None)
        elif command == "obuke" and self._trainings is not None:
            await self.send(user, await self._trainings.upcoming(user))
        elif command == "plan":
            await self.send(user, await self.services.roadmaps.plan(user))
        elif command == "usluge" and self._interests is not None:
            await self.send(user, await self._interests.menu(user.id, user.language))
        elif command in ("mentor", "obuke"):
            await self.send(user, self._coming_soon(user))
        elif command == "moji_podaci":
            await self.services.privacy.queue_export(user)  # the dispatcher sends it by link
            log.info("viber.export_queued user_id=%s", user.id)
        elif command == "obrisi_me":
            await self.send(user, self.services.privacy.deletion_prompt(user))
        else:
            await self.send(user, answers.unknown_command(user))
