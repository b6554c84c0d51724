"""A local chat in the terminal: a channel like Telegram and Viber, over the very same services.

No token is needed. Buttons are shown as numbered options; typing the number taps them.
Piped input (one line at a time) works too, so conversations can be scripted.

The channel only translates: a typed line becomes a service call, the `Reply` it returns is
printed. What the bot is waiting for (a municipality name, a mentor request being written, a
follow-up) is the channel's own dialogue state, as Telegram keeps it in its FSM and Viber in
`tracking_data`.

- Clerk: onboarding (script or language, municipality), questions, every command `/pomoc` lists
  (/teme, /mentor, /obuke, /jezik, /opstina, /moji_podaci, /obrisi_me) and /usluge. Files a
  reply carries (the .ics of a training sign-up, the /moji_podaci export) are written to the
  working directory and their path printed.
- Mentor mode (`/mentor_mod`, or `python -m bot playground --role mentor`): the same person
  plays the program's mentor and admin, a second playground user (`LOCAL_OPERATOR`): /red,
  /moji, /odgovori N text, the "Preuzmi" buttons, /obuka_nova in one line. `/mentor_mod`
  again (or /sluzbenik) goes back to the clerk.
- What the services queue for the playground's users (a mentor's answer, the calendar file,
  reminders that fall due) goes out through the outbox dispatcher with a sender registered for
  channel "playground", as Telegram's and Viber's are; it prints them after each line.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bot.app import AppServices
from bot.digits import to_int
from bot.i18n import tr
from bot.outbox import OutboxDispatcher, Outgoing, SendOutcome
from bot.ratelimit import LocalRateLimiter
from bot.services.actions import perform
from bot.services.buttons import (
    AskMentor,
    ChooseMunicipality,
    MentorResolved,
    SetLanguage,
    parse,
)
from bot.services.buttons_mentoring import (
    ComposeChoice,
    DeletionChoice,
    LeaveContact,
    OpenOwn,
    ToggleInterest,
)
from bot.services.buttons_trainings import TrainingComment
from bot.services.mentoring import MentoringService
from bot.services.messages import payload_to_reply
from bot.services.onboarding import OnboardingService, Step
from bot.services.replies import Button, Reply
from bot.services.roadmaps import ROADMAP_KINDS
from bot.services.trainings import (
    Invalid,
    TrainingDraft,
    parse_capacity,
    parse_duration,
    parse_place,
    parse_title,
)
from bot.services.users import LOCAL_OPERATOR, UserProfile

CHANNEL = "playground"
CLERK_ID = "local"
CLERK = "clerk"
MENTOR = "mentor"
EXIT = ("/izlaz", "/exit", "/quit")
MODE_COMMANDS = ("/mentor_mod", "/mentor_mode")
CLERK_COMMANDS = ("/sluzbenik", "/službenik", "/clerk")

_TAG = re.compile(r"<[^>]+>")
_SAFE_NAME = re.compile(r"[^\w.\-]+")


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


@dataclass
class Dialogue:
    """What the next typed text of one person means (None: a question)."""

    awaiting: str | None = None  # "mun" | "draft" | "followup" | "contact" | "comment"
    question_id: int | None = None
    question: str | None = None
    details: list[str] = field(default_factory=list)
    number: int | None = None  # the request a follow-up is about
    key: str = field(default_factory=lambda: uuid.uuid4().hex[:16])


class PlaygroundSender:
    """The outbox sender for channel "playground": prints what the services queued for the
    playground's users (a mentor's answer, a calendar file, a reminder) in the terminal."""

    def __init__(self, chat: Playground) -> None:
        self._chat = chat
        self._sent = 0

    async def send(self, message: Outgoing) -> SendOutcome:
        self._sent += 1
        self._chat.deliver(message)
        return SendOutcome("sent", external_id=str(self._sent))


class Playground:
    """One terminal, up to two people (the clerk, and the mentor in mentor mode)."""

    def __init__(
        self,
        services: AppServices,
        user: UserProfile,
        out: TextIO,
        color: bool,
        workdir: Path | None = None,
    ):
        self._services = services
        self._people: dict[str, UserProfile] = {CLERK: user}
        self._acting = CLERK
        self._out = out
        self._color = color
        self._workdir = workdir or Path.cwd()
        self._options: list[tuple[str, Button]] = []
        self._dialogues: dict[str, Dialogue] = {CLERK: Dialogue(), MENTOR: Dialogue()}
        self._gone: set[str] = set()  # people who deleted their data (/obrisi_me)
        self.onboarding = OnboardingService(services.users)
        self.senders = {CHANNEL: PlaygroundSender(self)}
        # One person at one terminal: no pacing between messages to one chat.
        limiter = LocalRateLimiter(per_chat_interval=0.0, per_group_interval=0.0)
        self.dispatcher = OutboxDispatcher(services.database, self.senders, limiter)
        self.console_runner: Any = None  # the web console's server, once /konzola started it

    # -- who is typing ------------------------------------------------------------------

    @property
    def user(self) -> UserProfile:
        return self._people[self._acting]

    @property
    def _mentoring(self) -> MentoringService:
        return self._services.mentoring

    def _set(self, who: str, user: UserProfile) -> None:
        self._people[who] = user

    async def become_mentor(self) -> None:
        operator = self._people.get(MENTOR)
        if operator is None:
            channel, external_id = LOCAL_OPERATOR
            operator = await self._services.users.get_or_register(
                channel, external_id, "Mentor (playground)"
            )
            self._set(MENTOR, operator)
        self._acting = MENTOR
        self.note(
            tr(
                operator.language,
                "Mentorski režim: sada ste mentor i administrator programa. /red – otvorena "
                "pitanja, /moji – Vaša, /odgovori broj tekst – odgovor službeniku, "
                "/obuka_nova naziv; usluga; 15.12.2026 10:00; 90; link ili adresa; broj mesta "
                "– nova obuka. /konzola – link za konzolu baze znanja u pregledaču. "
                "/mentor_mod ili /sluzbenik – nazad na službenika.",
            )
        )

    def become_clerk(self) -> None:
        self._acting = CLERK
        self.note(tr(self.user.language, "Ponovo ste službenik."))

    # -- output ---------------------------------------------------------------------------

    def show(self, reply: Reply, who: str | None = None) -> None:
        text, buttons = render(reply, color=self._color)
        self._options = [(who or self._acting, button) for button in buttons]
        self._out.write(f"\n🤖 {text}\n")
        self._out.flush()

    def note(self, text: str) -> None:
        self._out.write(f"\n({text})\n")
        self._out.flush()

    def deliver(self, message: Outgoing) -> None:
        """An outbox message for one of the playground's people, printed as it arrives."""
        who = CLERK if message.chat_id == self._people[CLERK].external_id else MENTOR
        reply = payload_to_reply(message.payload)
        text, buttons = render(reply, color=self._color)
        to = self._people.get(who, self.user)
        label = tr(to.language, "službeniku") if who == CLERK else tr(to.language, "mentoru")
        lines = [f"\n📨 ({label}) {text}"]
        document = message.payload.get("document")
        if isinstance(document, dict) and document.get("filename"):
            path = self._write_file(str(document["filename"]), document.get("content_b64"))
            if path is not None:
                lines.append(tr(to.language, "📎 Datoteka: {path}", path=str(path)))
        self._out.write("\n".join(lines) + "\n")
        self._out.flush()
        if buttons:
            self._options = [(who, button) for button in buttons]

    def _write_file(self, filename: str, content: object, raw: bytes | None = None) -> Path | None:
        if raw is None:
            try:
                raw = base64.b64decode(str(content or ""), validate=True)
            except (binascii.Error, ValueError):
                return None
        name = _SAFE_NAME.sub("_", Path(filename).name) or "datoteka"
        path = self._workdir / name
        path.write_bytes(raw)
        return path.resolve()

    async def flush_outbox(self) -> None:
        """Deliver what the services queued for the playground's people."""
        await self.dispatcher.drain()

    # -- the curators' console ------------------------------------------------------------

    async def start_console(self) -> None:
        """Serve the web console (/console) on HTTP_PORT while the playground runs, so the
        /konzola link opens in a browser (started on the first /konzola)."""
        if self.console_runner is not None:
            return
        from aiohttp import web

        from bot.console import setup_console

        app = web.Application()
        setup_console(app, self._services)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        settings = self._services.settings
        host = "127.0.0.1" if settings.http_host in ("", "0.0.0.0", "::") else settings.http_host
        try:
            await web.TCPSite(runner, host, settings.http_port).start()
        except OSError as exc:
            await runner.cleanup()
            self.note(f"console: {host}:{settings.http_port}: {exc.strerror or exc}")
            return
        self.console_runner = runner

    async def close(self) -> None:
        if self.console_runner is not None:
            await self.console_runner.cleanup()
            self.console_runner = None

    # -- input ----------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Handle one line; False means the user wants to leave."""
        line = line.strip()
        if not line:
            return True
        if line.split()[0].lower() in EXIT:
            return False
        await self._handle(line)
        await self.flush_outbox()
        return True

    async def _handle(self, line: str) -> None:
        if self._acting in self._gone:  # deleted with /obrisi_me: writing again registers anew
            self._gone.discard(self._acting)
            self._options = []
            if self._acting == CLERK:
                self._set(CLERK, await self._services.users.get_or_register(
                    CHANNEL, CLERK_ID, "Playground"
                ))
            else:
                del self._people[MENTOR]
                await self.become_mentor()
        number = to_int(line)
        if number is not None and self._options and 1 <= number <= len(self._options):
            who, button = self._options[number - 1]
            if who != self._acting:
                # An option shown to the other person (the clerk's buttons under a delivered
                # answer, tapped in mentor mode): whoever taps it now types as that person.
                if who == CLERK:
                    self.become_clerk()
                else:
                    await self.become_mentor()
            await self._tap(who, button.action)
        elif line.startswith("/"):
            await self._command(line)
        else:
            await self._text(line)

    async def _text(self, text: str) -> None:
        dialogue = self._dialogues[self._acting]
        if dialogue.awaiting == "mun":
            step = self.onboarding.search(self.user, text)
            if not step.is_question:
                self._step(self._acting, step)
                return
            dialogue.awaiting = None
        elif dialogue.awaiting == "draft":
            if not dialogue.question:
                dialogue.question = text
            else:
                dialogue.details.append(text)
            self.show(self._mentoring.noted(self.user, "text"))
            return
        elif dialogue.awaiting == "comment" and dialogue.number is not None:
            self._dialogues[self._acting] = Dialogue()
            self.show(await self._services.trainings.attendance.comment(
                self.user, dialogue.number, text))
            return
        elif dialogue.awaiting == "followup" and dialogue.number is not None:
            result = await self._mentoring.clerk_followup(self.user, dialogue.number, text, [])
            self._dialogues[self._acting] = Dialogue()
            self.show(result.reply)
            return
        elif dialogue.awaiting == "contact" and dialogue.number is not None:
            result = await self._mentoring.save_callback(self.user, dialogue.number, text)
            if result.ok:
                self._dialogues[self._acting] = Dialogue()
            self.show(result.reply)
            return
        self.show(await self._services.answers.ask(self.user, text))

    def _step(self, who: str, step: Step) -> None:
        self._set(who, step.user)
        self._dialogues[who].awaiting = "mun" if step.awaiting_municipality else None
        self.show(step.reply, who)

    # -- commands -------------------------------------------------------------------------

    async def _command(self, line: str) -> None:
        command, _, args = line.partition(" ")
        command, args = command.lower().split("@")[0], args.strip()
        if command in MODE_COMMANDS:
            if self._acting == MENTOR:
                self.become_clerk()
            else:
                await self.become_mentor()
            return
        if command in CLERK_COMMANDS:
            self.become_clerk()
            return
        self._dialogues[self._acting] = Dialogue()  # a command ends any dialogue
        user, services = self.user, self._services
        answers = services.answers
        name = command.lstrip("/")
        if name in ("start", "pocetak", "početak"):
            self.show(answers.welcome(user))
            self.show(self.onboarding.language_prompt(user))
        elif name in ("pomoc", "pomoć", "help"):
            self.show(answers.help(user))
            if self._acting == MENTOR:
                self.note(
                    tr(
                        user.language,
                        "Mentor: /red, /moji, /odgovori, /obuka_nova, /prisustvo, /opstine, "
                        "/opstina_dodaj, /opstina_mentor.",
                    )
                )
        elif name in ("teme", "topics"):
            self.show(answers.services_menu(user))
        elif name in ("jezik", "language"):
            self.show(self.onboarding.language_prompt(user))
        elif name in ("opstina", "opština"):
            self._dialogues[self._acting].awaiting = "mun"
            self.show(self.onboarding.municipality_prompt(user))
        elif name == "mentor":
            self._start_draft(None, args or None)
        elif name == "prisustvo":
            self.show(await services.trainings.attendance.recent(user))
        elif name == "obuke":
            self.show(await services.trainings.upcoming(user))
        elif name == "plan":
            self.show(await services.roadmaps.plan(user))
        elif name == "opstine":
            self.show(await services.roadmaps.matrix(user))
        elif name == "opstina_dodaj":
            self.show(await services.roadmaps.add_participant(user, args))
        elif name == "opstina_ukloni":
            self.show(await services.roadmaps.remove_participant(user, args))
        elif name == "opstina_mentor":
            self.show(await services.roadmaps.take_municipality(user, args))
        elif name == "usluge":
            self.show(await services.interests.menu(user.id, user.language))
        elif name in ("moji_podaci", "mojipodaci", "my_data"):
            exported = await services.privacy.export(user)
            path = self._write_file(exported.filename, None, exported.content)
            self.show(Reply(exported.caption))
            self.note(tr(user.language, "📎 Datoteka: {path}", path=str(path)))
        elif name in ("obrisi_me", "obriši_me", "obrisime", "delete_me"):
            self.show(services.privacy.deletion_prompt(user))
        elif name == "red":
            self.show(await self._mentoring.queue_list(user))
        elif name == "moji":
            self.show(await self._mentoring.queue_list(user, mine=True))
        elif name == "odgovori":
            number_text, _, text = args.partition(" ")
            number = to_int(number_text.lstrip("#"))
            if number is None:
                self.show(self._mentoring.answer_usage(user))
            else:
                self.show((await self._mentoring.answer(user, number, text)).reply)
        elif name == "obuka_nova":
            self.show(await self._new_training(args))
        elif name in ("konzola", "console"):
            await self.start_console()
            self.show(await services.console.request_link(user))
        else:
            self.show(answers.unknown_command(user))

    async def _new_training(self, args: str) -> Reply:
        """/obuka_nova in one line: naziv; usluga; kada; trajanje; link ili adresa; mesta.
        (Telegram asks the same things one by one; the service checks the role.)"""
        user, trainings = self.user, self._services.trainings
        refused = trainings.refusal(user, "training.create")
        if refused is not None:
            return refused
        parts = [part.strip() for part in args.split(";")]
        if len(parts) < 5:
            return Reply(
                tr(
                    user.language,
                    "Upotreba: /obuka_nova naziv; usluga; 15.12.2026 10:00; trajanje u minutima; "
                    "link ili adresa; broj mesta (ili „bez“). Usluge: {known}.",
                    known=", ".join(service.id for service in trainings.services),
                )
            )
        try:
            link, address = parse_place(parts[4])
            draft = TrainingDraft(
                title=parse_title(parts[0]),
                service=trainings.parse_service(parts[1]),
                starts_at=trainings.parse_when(parts[2]),
                duration_minutes=parse_duration(parts[3]),
                link=link,
                address=address,
                capacity=parse_capacity(parts[5] if len(parts) > 5 else ""),
            )
        except Invalid as problem:
            return Reply(problem.message(user.language))
        _training_id, reply = await trainings.create(user, draft)
        return reply

    # -- buttons --------------------------------------------------------------------------

    async def _tap(self, who: str, token: str) -> None:
        """A numbered option: the same tokens as Telegram's buttons and Viber's keyboards,
        acted on as the person the option was shown to."""
        user, services = self._people[who], self._services
        kind, _, rest = token.partition(":")
        stale = services.answers.stale_button(user)
        tapped = parse(token)
        if isinstance(tapped, SetLanguage):
            self._step(who, await self.onboarding.choose_language(user, tapped.code))
        elif isinstance(tapped, ChooseMunicipality):
            self._step(who, await self.onboarding.choose_municipality(user, tapped.token))
        elif isinstance(tapped, AskMentor):
            question_id = tapped.question_id
            question = await self._mentoring.question_text(user, question_id)
            if question is None:
                self.show(stale, who)
            else:
                self._start_draft(question_id, question, who)
        elif isinstance(tapped, ComposeChoice):
            await self._send_draft(who, tapped.action)
        elif isinstance(tapped, MentorResolved) and tapped.value == "more":
            number = tapped.number
            if not await self._mentoring.can_follow_up(user, number):
                self.show(self._mentoring.cancelled(user), who)
                return
            self._dialogues[who] = Dialogue(awaiting="followup", number=number)
            self.show(self._mentoring.followup_prompt(user, number), who)
        elif isinstance(tapped, OpenOwn):
            self.show((await self._mentoring.open_own(user, tapped.number)).reply, who)
        elif isinstance(tapped, LeaveContact):
            self._dialogues[who] = Dialogue(awaiting="contact", number=tapped.number)
            self.show(self._mentoring.callback_prompt(user, tapped.number), who)
        elif kind == "mq":
            await self._queue_button(who, rest)
        elif isinstance(tapped, TrainingComment):
            # a comment after a training's rating: the next text
            self._dialogues[who] = Dialogue(awaiting="comment", number=tapped.training_id)
            self.show(services.trainings.attendance.comment_prompt(user), who)
        elif kind == "tr":
            self.show(await services.trainings.perform(user, token) or stale, who)
        elif isinstance(tapped, ToggleInterest):
            self.show(
                await services.interests.toggle(user.id, user.language, tapped.service_id), who
            )
        elif kind == "pd":
            await self._deletion_choice(who, tapped if isinstance(tapped, DeletionChoice) else None)
        elif kind in ROADMAP_KINDS:
            self.show(await services.roadmaps.perform(user, token) or stale, who)
        else:
            user, reply = await perform(token, user, services.answers, services.users,
                                        self._mentoring)
            self._set(who, user)
            self.show(reply, who)

    def _start_draft(
        self, question_id: int | None, question: str | None, who: str | None = None
    ) -> None:
        who = who or self._acting
        self._dialogues[who] = Dialogue(
            awaiting="draft", question_id=question_id, question=question
        )
        self.show(self._mentoring.compose_prompt(self._people[who], question), who)

    async def _send_draft(self, who: str, choice: str) -> None:
        user, dialogue = self._people[who], self._dialogues[who]
        if choice != "send" or dialogue.awaiting != "draft":
            self._dialogues[who] = Dialogue()
            self.show(self._mentoring.cancelled(user), who)
            return
        created = await self._mentoring.create_request(
            user,
            question_id=dialogue.question_id,
            text=dialogue.question,
            details=dialogue.details,
            source_key=f"{CHANNEL}:{user.id}:{dialogue.key}",
        )
        if created.number is not None:
            self._dialogues[who] = Dialogue()
        self.show(created.reply, who)

    async def _queue_button(self, who: str, rest: str) -> None:
        """The buttons of /red: claim, release, close, draft for the KB."""
        user, mentoring = self._people[who], self._mentoring
        action, _, number_text = rest.partition(":")
        number = to_int(number_text, 11)
        handler = mentoring.queue_action(action)
        if handler is None or number is None:
            self.show(self._services.answers.stale_button(user), who)
            return
        self.show((await handler(user, number)).reply, who)

    async def _deletion_choice(self, who: str, choice: DeletionChoice | None) -> None:
        user, privacy = self._people[who], self._services.privacy
        if choice is not None and choice.choice == "yes":
            reply = await privacy.confirm_deletion(user, choice.stamp)
            self._dialogues[who] = Dialogue()
            self.show(reply, who)
            # Whoever writes next starts as a new user, as on Telegram.
            profile = await self._services.users.get(user.id)
            if profile is not None and profile.external_id != user.external_id:
                self._gone.add(who)
        elif choice is not None and choice.choice == "no":
            self.show(privacy.deletion_cancelled(user), who)
        else:
            self.show(self._services.answers.stale_button(user), who)



async def run_playground(
    services: AppServices,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    *,
    role: str = CLERK,
    workdir: Path | None = None,
) -> None:
    interactive = stdin.isatty()
    user = await services.users.get_or_register(CHANNEL, CLERK_ID, "Playground")
    chat = Playground(services, user, out, color=interactive and out.isatty(), workdir=workdir)
    chat.show(services.answers.welcome(user))
    if user.onboarded:
        chat.show(services.answers.services_menu(user))
    else:
        chat.show(chat.onboarding.language_prompt(user))
    if interactive:
        out.write(
            tr(
                user.language,
                "(Kucajte pitanje; broj bira ponuđenu opciju; /teme, /jezik, /pomoc, /izlaz.)",
            )
            + "\n"
            + "("
            + tr(
                user.language,
                "/mentor_mod – igrate mentora: vidite red, preuzmete pitanje i odgovorite na "
                "njega; odgovor stiže službeniku u ovaj razgovor.",
            )
            + ")\n"
        )
    if role == MENTOR:
        await chat.become_mentor()
    await chat.flush_outbox()
    try:
        while True:
            if interactive:
                out.write("\n👤 ")
                out.flush()
            # Read in a thread: the console's web server (after /konzola) keeps serving.
            line = await asyncio.to_thread(stdin.readline)
            if not line:
                break
            if not interactive:
                out.write(f"\n👤 {line.rstrip()}\n")
            if not await chat.handle(line):
                break
    finally:
        await chat.close()
