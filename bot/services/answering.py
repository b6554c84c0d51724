"""Answering clerks' questions from the knowledge base, and saying honestly when we can't.

Every question is stored with the matcher's decision before the reply is built, so reports
can show what clerks ask and what the bot could not answer. Replies are channel-neutral.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.i18n import tr
from bot.services import signals
from bot.services.buttons import (
    AskMentor,
    Clarify,
    Feedback,
    ServiceList,
    ServicesMenu,
    ShowEntry,
    pack,
)
from bot.services.buttons_trainings import TrainingList
from bot.services.desk import DeskService
from bot.services.privacy import privacy_notice
from bot.services.replies import Button, Reply
from bot.services.script import in_script, reader_for
from bot.services.users import UserProfile
from knowledge_base.matcher import Matcher, MatchResult
from knowledge_base.model import Entry, KnowledgeBase, ReferralGroup
from knowledge_base.referrals import ReferralFinder
from storage.desk import Incident
from storage.uow import Database, UnitOfWork

# Telegram allows 4,096 characters; we keep the whole text but match on a bounded prefix.
MAX_STORED_QUESTION = 4096
LONG_QUESTION = 1200
BUTTON_LABEL_MAX = 60
REASK_WINDOW = timedelta(minutes=signals.REASK_MINUTES)
# Entries that are conversation, not answers: no heading and no 👍/👎 under them.
CHIT_CHAT_PREFIX = "chitchat-"
# Placeholders an entry's answer may use, filled from the settings when the answer is shown.
DEFAULT_PLACEHOLDERS = {
    "working_hours": "radnim danima od 08:00 do 16:00",
    "training_reminders": "24 sata i 1 sat",
}


# Matches of recently asked texts: the same words asked again (clerks of one programme ask the
# same things) are not scored again. A match depends only on the text and the matcher, and the
# cache is dropped with the matcher (`use`).
MATCH_CACHE_SIZE = 2048

StepOf = Callable[[UnitOfWork, str | None, str | None], Awaitable[str | None]]


def _short(label: str, limit: int = BUTTON_LABEL_MAX) -> str:
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


class AnswerService:
    """Turns a question into an answer, a short list of choices, or an offer of a mentor."""

    def __init__(
        self,
        knowledge_base: KnowledgeBase,
        matcher: Matcher,
        database: Database,
        retention_months: int = 12,
        placeholders: dict[str, str] | None = None,
        desk: DeskService | None = None,
        match_cache_size: int = MATCH_CACHE_SIZE,
    ):
        self._desk = desk
        self._matches: OrderedDict[str, MatchResult] = OrderedDict()
        self._match_cache_size = match_cache_size
        self._kb = knowledge_base
        self._matcher = matcher
        self._database = database
        self._retention_months = retention_months
        self._referrals = ReferralFinder(knowledge_base.referrals)
        self._placeholders = {**DEFAULT_PLACEHOLDERS, **(placeholders or {})}
        # Set by the wiring when roadmaps are on: (uow, municipality, service) -> "service/step".
        self.step_of: StepOf | None = None
        # Clerks who gave a 👎 here in the last minutes (a hint only: the signal "asked again"
        # costs a query on the next question of these clerks, not on everyone's).
        self._recent_down: dict[int, datetime] = {}

    # -- the knowledge base in use -----------------------------------------------------------

    @property
    def knowledge_base(self) -> KnowledgeBase:
        return self._kb

    @property
    def matcher(self) -> Matcher:
        return self._matcher

    def use(self, knowledge_base: KnowledgeBase, matcher: Matcher) -> None:
        """Answer from now on with this KB and matcher (a newer KB revision, built off the
        event loop). Both change together, between two awaits: a question being matched keeps
        the matcher it started with."""
        self._kb, self._matcher = knowledge_base, matcher
        self._referrals = ReferralFinder(knowledge_base.referrals)
        self._matches = OrderedDict()  # matched by the previous matcher

    # -- asking ---------------------------------------------------------------------------

    async def ask(self, user: UserProfile, text: str) -> Reply:
        # NUL cannot be stored in PostgreSQL text and never carries meaning in a question.
        question = text.replace("\x00", "").strip()
        if not question:
            return Reply(tr(user.language, "Napišite pitanje rečima, na primer: kako do eZUP-a?"))
        result = await self._match(question)
        # The services the question concerns: an open incident on one of them is said first.
        services: set[str] = set()
        if self._desk is not None:
            best = [result.entry_id, *(c.entry_id for c in result.candidates)]
            services = self._desk.services_of_question(question, best)
        question_id, incidents = await self._record(
            user, question[:MAX_STORED_QUESTION], result, services
        )
        user = reader_for(user, question, result)
        reply = self._reply(user, question, result, question_id)
        notice = self._desk.notice(user.language, incidents) if self._desk is not None else None
        if notice is not None:
            reply = dataclasses.replace(reply, text=notice.text + "\n\n" + reply.text)
        return reply

    def _reply(
        self, user: UserProfile, question: str, result: MatchResult, question_id: int
    ) -> Reply:
        """The reply to a question, carrying which way it went (`Reply.decision`): a pointer
        elsewhere or a question too long to match offers the mentor, so both count as
        "escalate"."""
        if len(question) > LONG_QUESTION:
            return dataclasses.replace(self._too_long(user, question_id), decision="escalate")
        if result.decision == "answer" and result.entry_id is not None:
            reply = self._answer(user, self._kb.get(result.entry_id), question_id)
            return dataclasses.replace(reply, decision="answer")
        # No confident answer: a subject outside the programme gets a pointer to where to go,
        # small talk a friendly word; both before a list of guesses or the mentor.
        referral = self._referrals.find(question)
        if referral is not None:
            reply = self._referral(user, referral, question_id)
            return dataclasses.replace(reply, decision="escalate")
        if result.decision == "clarify":
            return dataclasses.replace(self._clarify(user, result, question_id), decision="clarify")
        failure = result.reason == "failure"
        return dataclasses.replace(self._escalate(user, question_id, failure), decision="escalate")

    async def _match(self, question: str) -> MatchResult:
        """Lexical matching on the loop (a few ms); the semantic second opinion, which costs
        tens of ms of CPU in native code, only for unsure questions and in a worker thread."""
        matcher, matches = self._matcher, self._matches
        known = matches.get(question)
        if known is not None:
            matches.move_to_end(question)
            return known
        assessment = matcher.assess(question)
        result = matcher.decide(assessment)
        wanted = matcher.wants_second_opinion(result, assessment)
        if wanted:
            result = await asyncio.to_thread(matcher.second_opinion, assessment, result)
        semantic = matcher.semantic
        # Kept unless the semantic second opinion is still loading or was skipped because the
        # model was busy with another question (its answer could differ: the text asked again
        # gets it), or the matcher changed meanwhile (`use` emptied the cache).
        if (
            self._match_cache_size > 0
            and len(question) <= LONG_QUESTION
            and matches is self._matches
            and (semantic is None or semantic.available)
            and (not wanted or matcher.second_opinion_heard(assessment))
        ):
            matches[question] = result
            if len(matches) > self._match_cache_size:
                matches.popitem(last=False)
        return result

    async def _record(
        self, user: UserProfile, text: str, result: MatchResult, services: set[str]
    ) -> tuple[int, list[Incident]]:
        """The question and its decision, in one transaction with what else it touches: the
        clerk recorded on open incidents of its services (returned, for the notice)."""
        best = result.entry_id or (result.candidates[0].entry_id if result.candidates else None)
        entry = self._kb.get(best) if best else None
        down_at = self._recent_down.pop(user.id, None)
        asked_again = down_at is not None and self._database.clock() - down_at <= REASK_WINDOW
        # Usually the question is the only write (no "asked again" signal, no open incident to
        # record the clerk on): one statement, committing by itself on PostgreSQL.
        alone = not asked_again and (self._desk is None or self._desk.surely_none_open(services))
        async with self._database.uow(one_write=alone) as uow:
            # The step the clerk's municipality is on for the question's service (roadmaps).
            step = (
                await self.step_of(uow, user.municipality, entry.service)
                if self.step_of is not None and entry is not None
                else None
            )
            question_id = await uow.questions.insert(
                roadmap_step=step,
                user_id=user.id,
                text=text,
                decision=result.decision,
                entry_id=result.entry_id,
                score=float(result.score),
                candidates=[c.entry_id for c in result.candidates],
            )
            if asked_again:
                await signals.asked_again(uow, user.id, question_id)
            incidents: list[Incident] = []
            if self._desk is not None and services:
                incidents = await self._desk.attach_to_open(uow, user.id, services)
            await uow.commit()
            return question_id, incidents

    # -- replies --------------------------------------------------------------------------

    def fill(self, text: str) -> str:
        """Replace {working_hours}-style placeholders with values from the settings; any other
        brace is left as it is."""
        for key, value in self._placeholders.items():
            text = text.replace("{" + key + "}", value)
        return text

    def _entry_text(self, user: UserProfile, entry: Entry) -> str:
        answer = self.fill(entry.answer.strip())
        if entry.id.startswith(CHIT_CHAT_PREFIX):  # a greeting or thanks: no heading
            body = in_script(user.language, answer)
        else:
            body = in_script(user.language, f"<b>{html.escape(entry.question)}</b>\n\n{answer}")
        # an English greeting, too, learns in English that the answers are in Serbian
        if user.language == "en":
            body = tr("en", "Odgovori baze znanja su na srpskom jeziku.") + "\n\n" + body
        return body

    def _related_rows(self, user: UserProfile, entry: Entry) -> list[tuple[Button, ...]]:
        rows: list[tuple[Button, ...]] = []
        for related_id in entry.related[:3]:
            related = self._kb.get(related_id)
            if related is not None:
                label = "↪ " + _short(in_script(user.language, related.question))
                rows.append((Button(label, pack(ShowEntry(related.id))),))
        return rows

    def _answer(self, user: UserProfile, entry: Entry | None, question_id: int | None) -> Reply:
        if entry is None:
            return self.stale_button(user)
        if entry.id.startswith(CHIT_CHAT_PREFIX):
            return Reply(self._entry_text(user, entry))
        rows: list[tuple[Button, ...]] = []
        if question_id is not None:
            rows.append(
                (
                    Button("👍", pack(Feedback(question_id, "up"))),
                    Button("👎", pack(Feedback(question_id, "down"))),
                )
            )
        rows.extend(self._action_rows(user, entry, question_id))
        rows.extend(self._related_rows(user, entry))
        rows.append((Button(tr(user.language, "« Teme"), pack(ServiceList(entry.service))),))
        return Reply(self._entry_text(user, entry), tuple(rows))

    def _action_rows(
        self, user: UserProfile, entry: Entry, question_id: int | None
    ) -> list[tuple[Button, ...]]:
        """Entries about the bot's own features offer the feature as a button."""
        if entry.id == "bot-trainings":
            return [(Button(tr(user.language, "Predstojeće obuke"), pack(TrainingList())),)]
        if entry.id == "bot-contact-mentor" and question_id is not None:
            return [(Button(tr(user.language, "Pitaj mentora"), pack(AskMentor(question_id))),)]
        return []

    def _referral(self, user: UserProfile, group: ReferralGroup, question_id: int) -> Reply:
        text = group.text_en if user.language == "en" else in_script(user.language, group.text)
        if group.kind == "small_talk":
            return Reply(text)
        return Reply(
            text,
            (
                (Button(tr(user.language, "Pitaj mentora"), pack(AskMentor(question_id))),),
                (Button(tr(user.language, "Pregled tema"), pack(ServicesMenu())),),
            ),
        )

    def _clarify(self, user: UserProfile, result: MatchResult, question_id: int) -> Reply:
        rows: list[tuple[Button, ...]] = []
        for candidate in result.candidates[:3]:
            entry = self._kb.get(candidate.entry_id)
            if entry is not None:
                label = _short(in_script(user.language, entry.question))
                rows.append((Button(label, pack(Clarify(question_id, entry.id))),))
        none_of_these = tr(user.language, "Ništa od ovoga – pitaj mentora")
        rows.append((Button(none_of_these, pack(AskMentor(question_id))),))
        text = tr(user.language, "Nisam siguran na šta tačno mislite. Izaberite pitanje:")
        return Reply(text, tuple(rows))

    def _escalate(self, user: UserProfile, question_id: int, failure: bool = False) -> Reply:
        """To a mentor; a report that something is broken now is told so, and what helps."""
        if failure:
            text = tr(
                user.language,
                "Izgleda da nešto trenutno ne radi kako treba. Takve smetnje rešava mentor Tima za "
                "digitalnu transformaciju: pošaljite mu poruku dugmetom ispod, po mogućstvu sa "
                "tačnim tekstom greške ili snimkom ekrana.",
            )
        else:
            text = tr(
                user.language,
                "Na ovo pitanje još nemam pouzdan odgovor i ne bih želeo da Vas navedem na "
                "pogrešan put. Mentor Tima za digitalnu transformaciju može da Vam pomogne.",
            )
        return Reply(
            text,
            (
                (Button(tr(user.language, "Pitaj mentora"), pack(AskMentor(question_id))),),
                (Button(tr(user.language, "Pregled tema"), pack(ServicesMenu())),),
            ),
        )

    def _too_long(self, user: UserProfile, question_id: int) -> Reply:
        text = tr(
            user.language,
            "Poruka je duga, pa je sačuvana u celini. Za brz odgovor napišite pitanje u jednoj ili "
            "dve rečenice, ili je prosledite mentoru.",
        )
        ask = Button(tr(user.language, "Pitaj mentora"), pack(AskMentor(question_id)))
        return Reply(text, ((ask,),))

    # -- follow-ups from buttons ----------------------------------------------------------

    async def show_entry(
        self, user: UserProfile, entry_id: str, question_id: int | None = None
    ) -> Reply:
        """An entry chosen from a clarify list, a related link or the topic browser."""
        entry = self._kb.get(entry_id)
        if entry is None:
            return self.stale_button(user)
        if question_id is not None:
            await self._note_choice(user, question_id, entry_id)
        return self._answer(user, entry, question_id)

    async def _note_choice(self, user: UserProfile, question_id: int, entry_id: str) -> None:
        """Remember which entry the clerk picked after a clarify, for curators' reports."""
        async with self._database.uow() as uow:
            row = await uow.questions.get(question_id)
            if row is not None and row.user_id == user.id and row.chosen_entry_id is None:
                row.chosen_entry_id = entry_id
                await signals.clarify_pick(uow, question_id, entry_id)
                await uow.commit()

    async def feedback(self, user: UserProfile, question_id: int, value: str) -> Reply:
        if value not in ("up", "down"):
            return self.stale_button(user)
        async with self._database.uow() as uow:
            question = await uow.questions.get(question_id)
            if question is None or question.user_id != user.id:
                return self.stale_button(user)
            await uow.feedback.record(question_id=question_id, user_id=user.id, value=value)
            await uow.commit()
        if value == "down":
            if len(self._recent_down) > 10_000:
                self._recent_down.clear()
            self._recent_down[user.id] = self._database.clock()
        if value == "up":
            return Reply(tr(user.language, "Hvala na oceni! Drago nam je da je odgovor pomogao."))
        return Reply(
            tr(
                user.language,
                "Hvala što ste nam javili. Žao nam je što odgovor nije pomogao – "
                "mentor može da pogleda Vaš slučaj.",
            ),
            ((Button(tr(user.language, "Pitaj mentora"), pack(AskMentor(question_id))),),),
        )

    # -- browsing -------------------------------------------------------------------------

    def services_menu(self, user: UserProfile) -> Reply:
        rows = tuple(
            (Button(self.service_title(user, service.id), pack(ServiceList(service.id))),)
            for service in self._kb.services
            if self._kb.by_service(service.id)
        )
        return Reply(tr(user.language, "Izaberite uslugu o kojoj Vas zanima:"), rows)

    def service_title(self, user: UserProfile, service_id: str) -> str:
        for service in self._kb.services:
            if service.id == service_id:
                if user.language == "en":
                    return service.title_en
                return in_script(user.language, service.title_sr)
        return service_id

    def service_entries(self, user: UserProfile, service_id: str) -> Reply:
        entries = self._kb.by_service(service_id)
        if not entries:
            return self.stale_button(user)
        rows = [
            (Button(_short(in_script(user.language, e.question)), pack(ShowEntry(e.id))),)
            for e in entries
        ]
        rows.append((Button(tr(user.language, "« Sve usluge"), pack(ServicesMenu())),))
        title = html.escape(self.service_title(user, service_id))
        return Reply(f"<b>{title}</b>\n" + tr(user.language, "Izaberite pitanje:"), tuple(rows))

    # -- fixed messages -------------------------------------------------------------------

    def welcome(self, user: UserProfile) -> Reply:
        return Reply(
            tr(
                user.language,
                "Dobar dan! Ja sam asistent programa <b>eUprava za sve</b>. Odgovaram na pitanja o "
                "eZUP-u, eSandučetu, ePlaćanju, eDostavi i drugim e-uslugama, a kada ne znam "
                "odgovor, prosleđujem pitanje mentoru. Pitanje možete napisati latinicom ili "
                "ćirilicom.",
            )
            # The short privacy notice is part of the welcome on every channel.
            + "\n\n"
            + privacy_notice(user.language, self._retention_months)
        )

    def help(self, user: UserProfile) -> Reply:
        return Reply(
            tr(
                user.language,
                "<b>Kako da me koristite</b>\n"
                "• Napišite pitanje svojim rečima, npr. <i>kako da dobijem pristup eZUP-u</i>.\n"
                "• /teme – pregled pitanja po uslugama\n"
                "• /mentor – pitanje za mentora Tima za digitalnu transformaciju\n"
                "• /plan – plan uvođenja usluga u Vašoj opštini\n"
                "• /obuke – predstojeće obuke\n"
                "• /jezik – latinica, ćirilica ili engleski\n"
                "• /opstina – promena opštine\n"
                "• /moji_podaci – podaci koje čuvamo o Vama; /obrisi_me – njihovo brisanje\n"
                "Posle odgovora ocenite ga sa 👍 ili 👎 – tako učimo šta treba popraviti.",
            ),
            ((Button(tr(user.language, "Pregled tema"), pack(ServicesMenu())),),),
        )

    def unsupported_input(self, user: UserProfile) -> Reply:
        return Reply(
            tr(
                user.language,
                "Za sada razumem samo tekstualne poruke. Molim Vas, napišite pitanje rečima. "
                "Snimke ekrana i datoteke možete poslati mentoru uz pitanje.",
            )
        )

    def caption_note(self, user: UserProfile) -> Reply:
        """Said before answering the text written with a picture or a file."""
        return Reply(
            tr(
                user.language,
                "Sliku ili datoteku ne mogu da pregledam, pa odgovaram na tekst koji ste uz nju "
                "napisali. Ako Vam treba pomoć oko onoga što je na njoj, pošaljite je mentoru "
                "(/mentor).",
            )
        )

    def unknown_command(self, user: UserProfile) -> Reply:
        return Reply(
            tr(user.language, "Ne poznajem tu komandu. Spisak komandi dobijate sa /pomoc."),
        )

    def stale_button(self, user: UserProfile) -> Reply:
        return Reply(
            tr(
                user.language,
                "Ova opcija više nije dostupna. Napišite pitanje ponovo ili otvorite /teme.",
            )
        )

    def rate_limited(self, user: UserProfile) -> Reply:
        return Reply(
            tr(
                user.language,
                "Stiglo je mnogo poruka u kratkom roku. Molim Vas, sačekajte minut pa nastavite – "
                "sve poruke do sada su primljene.",
            )
        )

    def taps_too_fast(self, user: UserProfile) -> Reply:
        """The toast for a clerk tapping buttons faster than the flood guard allows."""
        return Reply(tr(user.language, "Polako, molim – pokušajte za minut."))

    def mentor_requested(self, user: UserProfile, question_id: int) -> Reply:
        """Where no mentor queue is wired (the local playground), say so honestly."""
        return Reply(
            tr(
                user.language,
                "Vaše pitanje je sačuvano pod brojem {number}. U ovom probnom razgovoru pitanje se "
                "ne prosleđuje mentoru; u Telegramu i Viberu ovo dugme otvara zahtev mentoru.",
                number=question_id,
            )
        )
