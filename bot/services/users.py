"""Who is talking to us: registration, language, municipality, roles, reachability."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.i18n import normalize_language
from bot.services.cache_base import InvalidatedCache
from storage.models import User
from storage.uow import Database

# The person at the terminal of `python -m bot playground` in mentor mode: whoever runs the
# playground owns its database, so this local user is an admin (and so a mentor) from the start.
# No remote update can carry the "playground" channel.
LOCAL_OPERATOR = ("playground", "operator")


@dataclass(frozen=True)
class UserProfile:
    """A user as the services see them, detached from the database session."""

    id: int
    channel: str
    external_id: str
    display_name: str
    language: str
    municipality: str | None
    role: str
    active: bool
    onboarded: bool
    # the clerk chose the language (onboarding, /jezik); otherwise it is the client's hint
    language_chosen: bool = False

    @property
    def is_mentor(self) -> bool:
        return self.role in ("mentor", "admin")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def profile_of(row: User) -> UserProfile:
    """The user's row as the services see it."""
    return UserProfile(
        id=row.id,
        channel=row.channel,
        external_id=row.external_id,
        display_name=row.display_name or "",
        language=row.language,
        municipality=row.municipality,
        role=row.role,
        active=row.active,
        onboarded=row.onboarded,
        language_chosen=row.language_chosen,
    )


def _up_to_date(row: User, display_name: str, configured_admin: bool) -> bool:
    """Nothing to write for this returning user."""
    return (
        row.active
        and (not display_name or row.display_name == display_name)
        and (row.role == "admin" or not configured_admin)
    )


def _up_to_date_profile(profile: UserProfile, display_name: str, configured_admin: bool) -> bool:
    """`_up_to_date` for a cached profile."""
    return (
        profile.active
        and (not display_name or profile.display_name == display_name)
        and (profile.role == "admin" or not configured_admin)
    )


class UserCache(InvalidatedCache):
    """Returning users' profiles, so an update does not read its sender's row every time.

    The invalidation rule: an entry is dropped the moment a unit of work of this process
    commits a change to that user's row, whatever service made it (roles, language,
    municipality, deletion, blocked marks: storage.uow reports every committed change of a
    users row), and an entry is never older than `ttl` seconds, which bounds what a change
    made by another process (a second instance, a CLI) takes to be seen. A profile read before
    an invalidation is not cached after it (the generation check), so a read racing with a
    role change cannot bring the old role back.

    With several instances, another process's changes arrive through `invalidate` too
    (bot.cache_sync relays every commit over Redis). While that relay is not known to work
    the cache is `suspend`ed: emptied, and neither read nor filled until `resume`.
    """

    def __init__(
        self, ttl: float, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(ttl, clock)
        self._size = size
        self._entries: OrderedDict[tuple[str, str], tuple[UserProfile, float]] = OrderedDict()
        self._keys: dict[int, tuple[str, str]] = {}

    def get(self, channel: str, external_id: str) -> UserProfile | None:
        if not self._live:
            return None
        key = (channel, external_id)
        found = self._entries.get(key)
        if found is None:
            return None
        profile, expires = found
        if self._clock() >= expires:
            self._drop(key)
            return None
        return profile

    def put(self, profile: UserProfile, generation: int) -> None:
        """Cache `profile`, read when `generation()` was `generation`."""
        if not self.keeps(generation):
            return
        key = (profile.channel, profile.external_id)
        self._entries[key] = (profile, self._clock() + self.ttl)
        self._entries.move_to_end(key)
        self._keys[profile.id] = key
        while len(self._entries) > self._size:
            _key, (old, _) = self._entries.popitem(last=False)
            self._keys.pop(old.id, None)

    def invalidate(self, user_ids: Iterable[int]) -> None:
        self._generation += 1
        for user_id in user_ids:
            key = self._keys.pop(user_id, None)
            if key is not None:
                self._entries.pop(key, None)

    def _forget_all(self) -> None:
        self._entries.clear()
        self._keys.clear()

    def _drop(self, key: tuple[str, str]) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._keys.pop(found[0].id, None)

    def __len__(self) -> int:
        return len(self._entries)


class UserService:
    """Keeps user records; every channel registers people through here."""

    def __init__(
        self,
        database: Database,
        admin_external_ids: frozenset[str] = frozenset(),
        cache_seconds: float = 0.0,
    ):
        self._database = database
        self._admin_ids = admin_external_ids
        self.cache = UserCache(cache_seconds)
        if self.cache.enabled:
            database.on_users_changed(self.cache.invalidate)

    async def get_or_register(
        self,
        channel: str,
        external_id: str,
        display_name: str = "",
        language_hint: str | None = None,
    ) -> UserProfile:
        """The user's profile, creating it on first contact (admins from ADMIN_IDS included).

        A returning user who had been marked inactive (blocked the bot, unsubscribed) is
        active again: writing to us proves they can be reached.

        Most calls find a known user with nothing to change: that is a read, which on SQLite
        does not queue behind writers; only a change opens a writing transaction."""
        name = display_name[:200]
        admin = self._is_configured_admin(channel, external_id)
        cached = self.cache.get(channel, external_id)
        if cached is not None and _up_to_date_profile(cached, name, admin):
            return cached
        generation = self.cache.generation()
        async with self._database.uow(read_only=True) as uow:
            known = await uow.users.get_by_external(channel, external_id)
            if known is not None and _up_to_date(known, name, admin):
                profile = profile_of(known)
                self.cache.put(profile, generation)
                return profile
        generation = self.cache.generation()  # again: our own change invalidates
        async with self._database.uow() as uow:
            row, created = await uow.users.get_or_create(
                channel,
                external_id,
                display_name=name,
                language=normalize_language(language_hint),
                role="admin" if admin else "clerk",
            )
            if not created:
                if not row.active:
                    row.active = True
                if name and row.display_name != name:
                    row.display_name = name
                if admin and row.role != "admin":
                    row.role = "admin"
            profile = profile_of(row)
            await uow.commit()
        # A new user is cached at once; a changed one (the commit invalidated it) from the
        # next read on.
        self.cache.put(profile, generation)
        return profile

    def _is_configured_admin(self, channel: str, external_id: str) -> bool:
        if (channel, external_id) == LOCAL_OPERATOR:
            return True
        return channel == "telegram" and external_id in self._admin_ids

    async def get(self, user_id: int) -> UserProfile | None:
        async with self._database.uow() as uow:
            row = await uow.users.get(user_id)
            return None if row is None else profile_of(row)

    async def set_language(self, user_id: int, language: str) -> UserProfile:
        return await self._update(
            user_id, language=normalize_language(language), language_chosen=True
        )

    async def set_municipality(self, user_id: int, municipality: str | None) -> UserProfile:
        return await self._update(user_id, municipality=municipality, onboarded=True)

    async def mark_onboarded(self, user_id: int) -> UserProfile:
        return await self._update(user_id, onboarded=True)

    async def mark_inactive(self, channel: str, external_id: str) -> None:
        """The user blocked the bot or unsubscribed: stop sending them anything."""
        async with self._database.uow() as uow:
            row = await uow.users.get_by_external(channel, external_id)
            if row is not None and row.active:
                row.active = False
                await uow.commit()

    async def _update(self, user_id: int, **changes: object) -> UserProfile:
        async with self._database.uow() as uow:
            row = await uow.users.get(user_id)
            if row is None:
                raise LookupError(f"user {user_id} does not exist")
            for name, value in changes.items():
                setattr(row, name, value)
            profile = profile_of(row)
            await uow.commit()
            return profile
