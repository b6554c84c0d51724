"""A local chat in the terminal on the very same services the Telegram bot uses.

No token is needed. Buttons are shown as numbered options; typing the number taps them.
Piped input (one question per line) works too, so conversations can be scripted.
"""

from __future__ import annotations

import html
import re
import sys
from typing import TextIO

from bot.app import AppServices
from bot.digits import to_int
from bot.i18n import tr
from bot.services.actions import language_menu, perform
from bot.services.replies import Button, Reply
from bot.services.users import UserProfile

_TAG = re.compile(r"<[^>]+>")


def render(reply: Reply, *, color: bool) -> tuple[str, list[Button]]:
    """Telegram HTML to terminal text, with buttons as numbered options."""
    text = reply.text
    if color:
        text = text.replace("<b>", "\033[1m").replace("</b>", "\033[0m")
    text = html.unescape(_TAG.sub("", text))
    buttons = [button for row in reply.buttons for button in row]
    lines = [text]
    for number, button in enumerate(buttons, start=1):
        lines.append(f"  [{number}] {button.label}")
    return "\n".join(lines), buttons


class Playground:
    """One conversation: reads lines, prints replies, remembers the last options shown."""

    def __init__(self, services: AppServices, user: UserProfile, out: TextIO, color: bool):
        self._services = services
        self._user = user
        self._out = out
        self._color = color
        self._options: list[Button] = []

    def show(self, reply: Reply) -> None:
        text, self._options = render(reply, color=self._color)
        self._out.write(f"\n🤖 {text}\n")
        self._out.flush()

    async def handle(self, line: str) -> bool:
        """Handle one line; False means the user wants to leave."""
        line = line.strip()
        answers, users = self._services.answers, self._services.users
        if not line:
            return True
        if line in ("/izlaz", "/exit", "/quit"):
            return False
        if to_int(line) is not None and self._options and 1 <= int(line) <= len(self._options):
            action = self._options[int(line) - 1].action
            self._user, reply = await perform(action, self._user, answers, users)
        elif line.startswith("/"):
            reply = self._command(line.split()[0].lower())
        else:
            reply = await answers.ask(self._user, line)
        self.show(reply)
        return True

    def _command(self, command: str) -> Reply:
        answers = self._services.answers
        if command in ("/start", "/pomoc", "/help"):
            return answers.help(self._user)
        if command == "/teme":
            return answers.services_menu(self._user)
        if command == "/jezik":
            return language_menu(self._user)
        return answers.unknown_command(self._user)


async def run_playground(
    services: AppServices, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout
) -> None:
    interactive = stdin.isatty()
    user = await services.users.get_or_register("playground", "local", "Playground")
    chat = Playground(services, user, out, color=interactive and out.isatty())
    chat.show(services.answers.welcome(user))
    chat.show(services.answers.services_menu(user))
    if interactive:
        out.write(
            tr(
                user.language,
                "(Kucajte pitanje; broj bira ponuđenu opciju; /teme, /jezik, /pomoc, /izlaz.)",
            )
            + "\n"
        )
    while True:
        if interactive:
            out.write("\n👤 ")
            out.flush()
        line = stdin.readline()
        if not line:
            break
        if not interactive:
            out.write(f"\n👤 {line.rstrip()}\n")
        if not await chat.handle(line):
            break
