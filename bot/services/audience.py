"""Who receives an announcement: everyone, clerks of chosen municipalities, clerks working on a
service, or a role. Also the clerk's own choice of services (`/usluge`).

A clerk who never said which services they work on (`services_of_interest` is None) gets
everything: the default is to miss nothing.
"""

from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.i18n import tr
from bot.services.buttons import pack
from bot.services.buttons_mentoring import ToggleInterest
from bot.services.municipalities import MunicipalityDirectory, fold
from bot.services.replies import Button, Reply
from knowledge_base.translit import to_cyrillic
from storage.models import ROLES, User
from storage.uow import Database

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SERVICES",
    "Audience",
    "AudienceError",
    "InterestService",
    "ServiceInfo",
    "audience_members",
    "parse_audience",
]



@dataclass(frozen=True)
class ServiceInfo:
    id: str
    title_sr: str
    title_en: str

    def title(self, language: str) -> str:
        if language == "en":
            return self.title_en
        return to_cyrillic(self.title_sr) if language == "sr-Cyrl" else self.title_sr


# The services clerks work on (the KB's service list minus the project, "other" and the bot).
DEFAULT_SERVICES: tuple[ServiceInfo, ...] = (
    ServiceInfo("ezup", "eZUP", "eZUP (data exchange)"),
    ServiceInfo("esanduce", "eSanduče", "eInbox (eSanduče)"),
    ServiceInfo("edostava", "eDostava", "eDelivery (eDostava)"),
    ServiceInfo("eplacanje", "ePlaćanje", "ePayments (ePlaćanje)"),
    ServiceInfo("episarnica", "ePisarnica", "eRegistry office (ePisarnica)"),
    ServiceInfo("eid", "eID i elektronski potpis", "eID and e-signature"),
    ServiceInfo("epecat", "ePečat", "e-Seal (ePečat)"),
    ServiceInfo("lei", "Lokalni indeks eUprave (LEI)", "Local eGovernment Index (LEI)"),
)


@dataclass(frozen=True)
class Audience:
    """`kind` is all | municipalities | service | role; `values` the chosen keys."""

    kind: str = "all"
    values: tuple[str, ...] = field(default_factory=tuple)

    def matches(self, user: Any, interests: Sequence[str] | None = None) -> bool:
        """Does this user belong? `interests` defaults to `user.services_of_interest`."""
        if self.kind == "all":
            return True
        if self.kind == "municipalities":
            return getattr(user, "municipality", None) in self.values
        if self.kind == "role":
            return getattr(user, "role", None) in self.values
        if self.kind == "service":
            chosen = interests if interests is not None else getattr(
                user, "services_of_interest", None
            )
            return chosen is None or any(service in chosen for service in self.values)
        return False

    def describe(self, language: str, services: Sequence[ServiceInfo] = DEFAULT_SERVICES) -> str:
        if self.kind == "all":
            return tr(language, "svi korisnici")
        if self.kind == "municipalities":
            return tr(language, "opštine: {names}", names=", ".join(self.values))
        if self.kind == "service":
            titles = {s.id: s.title(language) for s in services}
            names = ", ".join(titles.get(v, v) for v in self.values)
            return tr(language, "zainteresovani za: {names}", names=names)
        roles = {"clerk": tr(language, "službenici"), "mentor": tr(language, "mentori"),
                 "admin": tr(language, "administratori")}
        names = ", ".join(roles.get(v, v) for v in self.values)
        return tr(language, "uloga: {names}", names=names)

    def to_row(self) -> tuple[str, list[str]]:
        return self.kind, list(self.values)

    @classmethod
    def from_row(cls, kind: str, values: Sequence[str] | None) -> Audience:
        return cls(kind, tuple(values or ()))


class AudienceError(ValueError):
    """An answer that names no valid audience; `message(language)` says what is wrong (HTML).
    The values echo what the admin typed, so they are HTML-escaped here, once."""

    def __init__(self, msgid: str, **values: object) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.values = {
            name: html.escape(value) if isinstance(value, str) else value
            for name, value in values.items()
        }

    def message(self, language: str) -> str:
        return tr(language, self.msgid, **self.values)


_ALL_WORDS = {"svi", "sve", "all", "everyone", "*", "svima"}
_ROLE_WORDS = {
    "sluzbenici": "clerk", "clerks": "clerk", "clerk": "clerk",
    "mentori": "mentor", "mentors": "mentor", "mentor": "mentor",
    "administratori": "admin", "admini": "admin", "admins": "admin", "admin": "admin",
}


def _service_id(word: str, services: Sequence[ServiceInfo]) -> str | None:
    folded = fold(word).replace(" ", "").replace("-", "")
    for service in services:
        if folded in (service.id, fold(service.title_sr).replace(" ", "")):
            return service.id
    return None


def parse_audience(
    text: str,
    directory: MunicipalityDirectory,
    *,
    services: Sequence[ServiceInfo] = DEFAULT_SERVICES,
    allow_roles: bool = False,
) -> Audience:
    """`svi` | `usluga: ezup, eplacanje` (or just service names) | `uloga: mentori` |
    municipality names separated by commas. Raises AudienceError with a clear message."""
    raw = text.strip()
    if not raw:
        raise AudienceError("Napišite „svi“, nazive usluga ili nazive opština, odvojene zarezom.")
    if fold(raw) in _ALL_WORDS:
        return Audience("all")
    head, sep, rest = raw.partition(":")
    prefix = fold(head) if sep else ""
    body = rest if sep else raw
    parts = [p.strip() for p in body.replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise AudienceError("Napišite „svi“, nazive usluga ili nazive opština, odvojene zarezom.")
    if prefix in ("uloga", "role", "uloge"):
        if not allow_roles:
            raise AudienceError("Ovde se ne može birati po ulozi.")
        roles = [_ROLE_WORDS.get(fold(p)) or (fold(p) if fold(p) in ROLES else None) for p in parts]
        unknown = [p for p, r in zip(parts, roles, strict=True) if r is None]
        if unknown:
            raise AudienceError(
                "Nepoznata uloga: {names}. Uloge: službenici, mentori, administratori.",
                names=", ".join(unknown),
            )
        return Audience("role", tuple(dict.fromkeys(r for r in roles if r)))
    service_ids = [_service_id(p, services) for p in parts]
    if prefix in ("usluga", "usluge", "service", "services") or all(service_ids):
        unknown = [p for p, s in zip(parts, service_ids, strict=True) if s is None]
        if unknown:
            raise AudienceError(
                "Nepoznata usluga: {names}. Usluge: {known}.",
                names=", ".join(unknown), known=", ".join(s.id for s in services),
            )
        return Audience("service", tuple(dict.fromkeys(s for s in service_ids if s)))
    keys: list[str] = []
    for part in parts:
        found = directory.search(part, limit=3)
        exact = [u for u in found if fold(part) in (fold(u.name_latin), fold(u.key))]
        cities = {u.parent_city_latin or u.name_latin for u in exact}
        if len(cities) > 1:  # Palilula (Beograd) or Palilula (Niš)?
            raise AudienceError(
                "Opština „{name}“ nije jednoznačna; mislite li na: {options}?",
                name=part, options=", ".join(u.key for u in exact),
            )
        if exact:  # a city includes its city municipality of the same name
            keys.extend(u.key for u in exact)
        elif len(found) == 1:
            keys.append(found[0].key)
        elif found:
            raise AudienceError(
                "Opština „{name}“ nije jednoznačna; mislite li na: {options}?",
                name=part, options=", ".join(u.key for u in found),
            )
        else:
            raise AudienceError("Ne poznajem opštinu „{name}“. Proverite naziv.", name=part)
    return Audience("municipalities", tuple(dict.fromkeys(keys)))


async def audience_members(
    database: Database,
    audience: Audience,
    *,
    channels: Sequence[str] = ("telegram",),
    after_id: int = 0,
    page_size: int = 1000,
) -> AsyncIterator[tuple[list[User], int]]:
    """Pages of active users in the audience, in id order: yields (members, last id scanned),
    so a caller can record how far it got and resume there."""
    last = after_id
    while True:
        async with database.uow(read_only=True) as uow:
            page = await uow.users.list_active(after_id=last, limit=page_size)
        if not page:
            return
        last = page[-1].id
        members = [u for u in page if u.channel in channels and audience.matches(u)]
        yield members, last
        if len(page) < page_size:
            return


class InterestService:
    """The clerk says which services they work on: announcements by service reach them."""

    def __init__(
        self,
        database: Database,
        services: Sequence[ServiceInfo] = DEFAULT_SERVICES,
    ) -> None:
        self._database = database
        self._services = tuple(services)

    async def current(self, user_id: int) -> list[str] | None:
        async with self._database.uow(read_only=True) as uow:
            row = await uow.users.get(user_id)
            return None if row is None else row.services_of_interest

    def _menu(self, language: str, chosen: Sequence[str] | None) -> Reply:
        rows = []
        for service in self._services:
            mark = "✅ " if chosen is not None and service.id in chosen else ""
            rows.append((Button(mark + service.title(language), pack(ToggleInterest(service.id))),))
        everything = ("✅ " if chosen is None else "") + tr(language, "Sve usluge")
        rows.append((Button(everything, pack(ToggleInterest("*"))),))
        if chosen is None:
            state = tr(language, "Sada dobijate obaveštenja o svim uslugama.")
        elif not chosen:
            state = tr(language, "Niste izabrali nijednu uslugu: dobijate samo opšta obaveštenja.")
        else:
            titles = {s.id: s.title(language) for s in self._services}
            state = tr(language, "Radite na: {names}.",
                       names=", ".join(titles.get(c, c) for c in chosen))
        text = tr(
            language,
            "Na kojim uslugama radite? Obaveštenja i obuke za te usluge stižu vama.",
        )
        return Reply(f"{text}\n{state}", tuple(rows))

    async def menu(self, user_id: int, language: str) -> Reply:
        return self._menu(language, await self.current(user_id))

    async def toggle(self, user_id: int, language: str, service_id: str) -> Reply:
        """Tap on a service: add or remove it; `*` goes back to "everything"."""
        async with self._database.uow() as uow:
            row = await uow.users.get(user_id)
            if row is None:
                raise LookupError(f"user {user_id} does not exist")
            if service_id == "*":
                chosen: list[str] | None = None
            elif service_id in {s.id for s in self._services}:
                chosen = list(row.services_of_interest or [])
                if service_id in chosen:
                    chosen.remove(service_id)
                else:
                    chosen.append(service_id)
            else:
                chosen = row.services_of_interest
            row.services_of_interest = chosen
            await uow.commit()
        log.info("services of interest changed", extra={"user_id": user_id})
        return self._menu(language, chosen)
