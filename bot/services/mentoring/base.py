"""The state every part of the mentor queue shares (database, clock, config, KB), and the
small wordings they all use: refusals, "unknown", "already asked", when to expect an answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.i18n import N_, tr
from bot.services.desk import DeskService
from bot.services.mentoring.common import (
    PARTIES,
    WEEKDAYS,
    MentorConfig,
    Result,
)
from bot.services.replies import Reply
from bot.services.roles import refusal
from bot.services.users import UserProfile
from knowledge_base.model import KnowledgeBase
from storage.clock import Clock
from storage.mentor import (
    MentorRepository,
    MentorRequest,
)
from storage.models import User
from storage.uow import Database, UnitOfWork


class MentorBase:
    """Shared state and wording; the layers above add the use cases."""

    def __init__(
        self,
        database: Database,
        config: MentorConfig | None = None,
        *,
        knowledge_base: KnowledgeBase | None = None,
        clock: Clock | None = None,
        desk: DeskService | None = None,
        similarity: Callable[[str, str], float] | None = None,
    ) -> None:
        self._database = database
        self._desk = desk
        # The knowledge-base matcher's measure of how alike two questions are (followers).
        self._similarity = similarity
        self.config = config or MentorConfig()
        self._kb = knowledge_base
        self.clock = clock or database.clock  # the program's one clock
        # (service, step id) -> step title, for the cards of "Zapeli smo" requests
        self._step_titles: dict[tuple[str, str], str] = {}

    def know_roadmap_steps(self, titles: dict[tuple[str, str], str]) -> None:
        self._step_titles = dict(titles)

    def use_knowledge_base(self, knowledge_base: KnowledgeBase) -> None:
        """A newer KB revision (CurationService.refresh): cards and signals use it."""
        self._kb = knowledge_base

    def _group_chat(self) -> str | None:
        chat = self.config.mentor_chat_id
        return None if chat is None else str(chat)

    def _service_of(self, entry_id: str | None) -> str | None:
        if not entry_id or self._kb is None:
            return None
        entry = self._kb.get(entry_id)
        return entry.service if entry is not None else None

    def describe_opening(self, language: str, moment: datetime, now: datetime) -> str:
        """When mentors start work again: "sutra od 08:00", "u ponedeljak, 08.12. od 08:00"."""
        return self._describe(
            language,
            moment,
            now,
            (N_("danas od {time}"), N_("sutra od {time}"), N_("u {weekday}, {date} od {time}")),
        )

    def describe_time(self, language: str, moment: datetime, now: datetime) -> str:
        """By when an answer is expected: "danas do 14:00", "u ponedeljak, 08.12., do 10:00"."""
        return self._describe(
            language,
            moment,
            now,
            (N_("danas do {time}"), N_("sutra do {time}"), N_("u {weekday}, {date}, do {time}")),
        )

    def _describe(
        self, language: str, moment: datetime, now: datetime, wordings: tuple[str, str, str]
    ) -> str:
        """`moment` in words relative to `now`: today, tomorrow, or the weekday and date."""
        today_text, tomorrow_text, later_text = wordings
        local = self.config.hours.local(moment)
        today = self.config.hours.local(now).date()
        clock = local.strftime("%H:%M")
        if local.date() == today:
            return tr(language, today_text, time=clock)
        if local.date() == today + timedelta(days=1):
            return tr(language, tomorrow_text, time=clock)
        return tr(
            language,
            later_text,
            weekday=tr(language, WEEKDAYS[local.weekday()]),
            date=local.strftime("%d.%m."),
            time=clock,
        )

    def _already(self, user: UserProfile, request: MentorRequest) -> Reply:
        return Reply(
            tr(
                user.language,
                "Ovo pitanje je već kod mentora pod brojem <b>#{number}</b>. Odgovor će stići "
                "ovde.",
                number=request.id,
            )
        )

    def _stale(self, user: UserProfile) -> Reply:
        return Reply(
            tr(
                user.language,
                "Ova opcija više nije dostupna. Napišite pitanje ponovo ili otvorite /teme.",
            )
        )

    def _unknown(self, actor: UserProfile, number: int) -> Reply:
        return self._plain(actor, "Pitanje #{number} ne postoji.", number)

    def _plain(self, actor: UserProfile, message: str, number: int) -> Reply:
        return Reply(tr(actor.language, message, number=number))

    def answer_usage(self, actor: UserProfile) -> Reply:
        return Reply(
            tr(
                actor.language,
                "Upotreba: /odgovori broj tekst odgovora, npr. /odgovori 12 Pristup se traži "
                "preko portala.",
            )
        )

    def party_name(self, language: str, party: str) -> str:
        return tr(language, PARTIES[party]) if party in PARTIES else party

    def _handover_line(self, language: str, request: MentorRequest) -> str:
        """What the clerk hears about a handed-over request: who handles it, and when."""
        now = self.clock()
        when = self.describe_time(language, request.handover_due or now, now)
        if request.handed_to in PARTIES:
            return tr(
                language,
                "Pitanje je prosleđeno: {party}. Odgovor očekujte {when}; mentor ga prati i "
                "javiće Vam ovde.",
                party=self.party_name(language, request.handed_to or ""),
                when=when,
            )
        return tr(
            language,
            "Pitanje je preuzeo/la drugi mentor. Odgovor očekujte {when}.",
            when=when,
        )

    async def _actor(self, uow: UnitOfWork, actor: UserProfile) -> User | None:
        """The actor's row if they are (still) a mentor or admin, as the database says."""
        row = await uow.users.get(actor.id)
        if row is None or row.role not in ("mentor", "admin"):
            return None
        return row

    async def _locked_request(
        self, uow: UnitOfWork, actor: UserProfile, number: int, action: str
    ) -> tuple[User, MentorRequest] | Result:
        """The mentor's row and the request locked for change, or the refusal to give:
        the role is checked against the database on every privileged action."""
        mentor = await self._actor(uow, actor)
        if mentor is None:
            return Result(refusal(actor, action), False)
        request = await uow.repository(MentorRepository).get(number, for_update=True)
        if request is None:
            return Result(self._unknown(actor, number), False)
        return mentor, request
