"""What the desk's parts share: the KB's services by name (which service a word or a question
names), local time, and the actor's role as the database has it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.i18n import tr
from bot.services.cache_base import InvalidatedCache
from bot.services.municipalities import fold
from bot.services.replies import Reply
from bot.services.users import UserProfile
from knowledge_base.model import KnowledgeBase
from storage.clock import Clock
from storage.models import User
from storage.uow import Database, UnitOfWork


class OpenServices(InvalidatedCache):
    """The services with an open incident, kept in memory so that a clerk's question does not
    ask the database each time (the usual answer: none).

    The rules of bot.services.users.UserCache: dropped the moment a unit of work of this
    process commits a change of an incident (storage.uow reports it), or one of another
    instance does (bot.cache_sync relays it over Redis); never older than `ttl` seconds; a set
    read before an invalidation is not kept after it (the generation check); `suspend`ed,
    that is not used, while the relay is not known to work."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl, clock)
        self._known: frozenset[str] | None = None
        self._expires = 0.0

    def get(self) -> frozenset[str] | None:
        if not self._live or self._known is None or self._clock() >= self._expires:
            return None
        return self._known

    def put(self, services: frozenset[str], generation: int) -> None:
        """Keep `services`, read when `generation()` was `generation`."""
        if self.keeps(generation):
            self._known, self._expires = services, self._clock() + self.ttl

    def invalidate(self) -> None:
        self.clear()

    def _forget_all(self) -> None:
        self._known = None


class DeskBase:
    """Shared state and service names; incidents and canned replies build on it."""

    def __init__(
        self,
        database: Database,
        knowledge_base: KnowledgeBase | None = None,
        *,
        timezone: str = "Europe/Belgrade",
        clock: Clock | None = None,
        cache_seconds: float = 0.0,
    ) -> None:
        self._database = database
        # Which services have an open incident, for every clerk's question (0 s: off).
        self.open_services = OpenServices(cache_seconds)
        if self.open_services.enabled:
            database.on_table_changed("incidents", self.open_services.invalidate)
        self._kb = knowledge_base
        self._zone = ZoneInfo(timezone)
        self.clock = clock or database.clock  # the program's one clock
        # The services' folded names, per KB revision (folding them costs more than the
        # question's whole match; every question asks for them).
        self._keys: tuple[KnowledgeBase | None, list[tuple[str, set[str]]]] | None = None

    def use_knowledge_base(self, knowledge_base: KnowledgeBase) -> None:
        """A newer KB revision (CurationService.refresh): entries map to services by it."""
        self._kb = knowledge_base

    def _service_keys(self) -> list[tuple[str, set[str]]]:
        kb = self._kb
        if self._keys is not None and self._keys[0] is kb:
            return self._keys[1]
        keys = []
        for service in kb.services if kb is not None else ():
            names = {fold(service.id).replace(" ", ""), fold(service.title_sr).replace(" ", "")}
            keys.append((service.id, {n for n in names if n}))
        self._keys = (kb, keys)
        return keys

    def service_named(self, word: str) -> str | None:
        """The KB service a word names ('eZUP', 'ezup', 'ePlaćanje', 'eZUP-a'), like /usluge."""
        folded = fold(word).replace(" ", "")
        if not folded:
            return None
        for service_id, names in self._service_keys():
            if folded in names:
                return service_id
        for service_id, names in self._service_keys():  # a declined form: eZUP-a, eZUP-u
            if any(len(n) >= 3 and folded.startswith(n) and len(folded) - len(n) <= 2
                   for n in names):
                return service_id
        return None

    def services_in(self, text: str) -> set[str]:
        """Services named anywhere in a text."""
        found: set[str] = set()
        words = fold(text).split()
        for index, word in enumerate(words):
            service = self.service_named(word)
            if service is None and index + 1 < len(words):  # 'e zup', 'e placanje'
                service = self.service_named(word + words[index + 1]) if len(word) == 1 else None
            if service is not None:
                found.add(service)
        return found

    def service_of_entry(self, entry_id: str | None) -> str | None:
        if not entry_id or self._kb is None:
            return None
        entry = self._kb.get(entry_id)
        return entry.service if entry is not None else None

    def service_title(self, service_id: str) -> str:
        service = self._kb.service(service_id) if self._kb is not None else None
        return service.title_sr if service is not None else service_id

    def local_time(self, moment: datetime) -> str:
        return moment.astimezone(self._zone).strftime("%d.%m.%Y. %H:%M")

    async def _actor(self, uow: UnitOfWork, actor: UserProfile) -> User | None:
        """The actor's row if the database says they are a mentor or admin."""
        row = await uow.users.get(actor.id)
        if row is None or row.role not in ("mentor", "admin"):
            return None
        return row

    def _unknown_request(self, actor: UserProfile, number: int) -> Reply:
        return Reply(tr(actor.language, "Pitanje #{number} ne postoji.", number=number))

    def private_needed(self, actor: UserProfile) -> Reply:
        return Reply(
            tr(
                actor.language,
                "Šablone šaljem u privatni razgovor: prvo mi pošaljite /start u privatnoj poruci.",
            )
        )

    def sent_privately(self, actor: UserProfile) -> Reply:
        return Reply(tr(actor.language, "Šabloni su Vam poslati u privatni razgovor."))
