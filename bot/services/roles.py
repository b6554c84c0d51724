"""Roles: clerk, mentor, curator (keeps the knowledge base in the web console), admin. Admins
grant and revoke; every change is audited and every
refusal is logged (with user ids, never message text). Checks live here, not in the handlers."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.digits import to_int
from bot.i18n import tr
from bot.services.audit import ROLE_CHANGE, audit_record
from bot.services.replies import Reply
from bot.services.users import UserProfile
from storage.mentor import MentorRepository
from storage.models import User
from storage.uow import Database

log = logging.getLogger(__name__)

GRANTABLE = ("mentor", "curator", "admin")


def _log_refusal(user: UserProfile, action: str) -> None:
    log.warning(
        "role.refused user_id=%s role=%s action=%s",
        user.id,
        user.role,
        action,
        extra={"user_id": user.id, "role": user.role, "action": action},
    )


def refusal(user: UserProfile, action: str) -> Reply:
    """The polite 'no' for a privileged action; the attempt is logged."""
    _log_refusal(user, action)
    return Reply(
        tr(
            user.language,
            "Ova radnja je dostupna samo mentorima i administratorima programa. Ako mislite da "
            "treba da imate pristup, obratite se administratoru.",
        )
    )


def admin_refusal(user: UserProfile, action: str) -> Reply:
    """The polite 'no' for an admin-only action; the attempt is logged."""
    _log_refusal(user, action)
    return Reply(
        tr(
            user.language,
            "Ova radnja je dostupna samo administratorima. Pokušaj je zabeležen.",
        )
    )


def unless_admin(user: UserProfile, action: str) -> Reply | None:
    """None for an admin, otherwise the logged refusal: every admin-only use case (trainings,
    broadcasts, roles) asks this one function, and channels ask it before a dialogue too."""
    return None if user.is_admin else admin_refusal(user, action)


@dataclass(frozen=True)
class RoleChangeResult:
    reply: Reply
    changed: bool


class RoleService:
    def __init__(self, database: Database, configured_admins: frozenset[str] = frozenset()):
        self._database = database
        self._configured_admins = configured_admins

    async def grant(
        self, actor: UserProfile, target_external_id: str, role: str, channel: str = "telegram"
    ) -> RoleChangeResult:
        """Give `role` (mentor or admin) to the user with this Telegram id (created if they
        have not written to the bot yet)."""
        if not actor.is_admin:
            return RoleChangeResult(admin_refusal(actor, f"grant:{role}"), False)
        if role not in GRANTABLE or to_int(target_external_id, 20) is None:
            return RoleChangeResult(self._usage(actor), False)
        async with self._database.uow() as uow:
            row, _created = await uow.users.get_or_create(channel, target_external_id)
            locked = await uow.users.lock_for_role_change((actor.id, row.id))
            if not self._still_admin(actor, locked):
                return RoleChangeResult(admin_refusal(actor, f"grant:{role}"), False)
            row = locked[row.id]
            old = row.role
            if old == role or (role in ("mentor", "curator") and old == "admin"):
                await uow.commit()
                return RoleChangeResult(
                    Reply(
                        tr(
                            actor.language,
                            "Korisnik {id} već ima ulogu: {role}.",
                            id=target_external_id,
                            role=old,
                        )
                    ),
                    False,
                )
            row.role = role
            await uow.repository(MentorRepository).record_role_change(actor.id, row.id, old, role)
            await audit_record(
                uow, actor, ROLE_CHANGE, f"user:{row.id}", {"old": old, "new": role}
            )
            await uow.commit()
        log.info("role.granted actor_id=%s target=%s role=%s", actor.id, row.id, role)
        return RoleChangeResult(
            Reply(
                tr(
                    actor.language,
                    "Korisniku {id} je dodeljena uloga: {role}.",
                    id=target_external_id,
                    role=role,
                )
            ),
            True,
        )

    async def revoke(
        self, actor: UserProfile, target_external_id: str, role: str, channel: str = "telegram"
    ) -> RoleChangeResult:
        """Take `role` away: an admin becomes a mentor, a mentor becomes a clerk."""
        if not actor.is_admin:
            return RoleChangeResult(admin_refusal(actor, f"revoke:{role}"), False)
        if role not in GRANTABLE or to_int(target_external_id, 20) is None:
            return RoleChangeResult(self._usage(actor), False)
        if channel == "telegram" and target_external_id in self._configured_admins:
            return RoleChangeResult(
                Reply(
                    tr(
                        actor.language,
                        "Korisnik {id} je administrator po podešavanju (ADMIN_IDS); ta uloga se "
                        "menja samo u podešavanjima.",
                        id=target_external_id,
                    )
                ),
                False,
            )
        if target_external_id == actor.external_id and channel == actor.channel:
            return RoleChangeResult(
                Reply(tr(actor.language, "Ne možete sami sebi ukloniti ulogu.")), False
            )
        new_role = "mentor" if role == "admin" else "clerk"
        async with self._database.uow() as uow:
            row = await uow.users.get_by_external(channel, target_external_id)
            # The actor's role and the admins as they are now, locked until the change commits:
            # two admins demoting each other at once are serialised, the second is refused.
            locked = await uow.users.lock_for_role_change(
                (actor.id,) if row is None else (actor.id, row.id)
            )
            if not self._still_admin(actor, locked):
                return RoleChangeResult(admin_refusal(actor, f"revoke:{role}"), False)
            row = None if row is None else locked.get(row.id)
            has_role = row is not None and (
                row.role == role or (role == "mentor" and row.role == "admin")
            )
            if row is None or not has_role:
                return RoleChangeResult(
                    Reply(
                        tr(
                            actor.language,
                            "Korisnik {id} nema ulogu: {role}.",
                            id=target_external_id,
                            role=role,
                        )
                    ),
                    False,
                )
            old = row.role
            admins_left = sum(1 for u in locked.values() if u.role == "admin" and u.id != row.id)
            if old == "admin" and admins_left == 0:
                return RoleChangeResult(
                    Reply(tr(actor.language, "Ne može se ukloniti poslednji administrator.")),
                    False,
                )
            row.role = new_role
            await uow.repository(MentorRepository).record_role_change(
                actor.id, row.id, old, new_role
            )
            await audit_record(
                uow, actor, ROLE_CHANGE, f"user:{row.id}", {"old": old, "new": new_role}
            )
            await uow.commit()
        log.info("role.revoked actor_id=%s target=%s role=%s", actor.id, row.id, role)
        return RoleChangeResult(
            Reply(
                tr(
                    actor.language,
                    "Korisniku {id} je uklonjena uloga: {role}.",
                    id=target_external_id,
                    role=role,
                )
            ),
            True,
        )

    def _still_admin(self, actor: UserProfile, locked: dict[int, User]) -> bool:
        """Is the actor an admin now (re-read in this transaction), not just when the update
        arrived? A configured admin (ADMIN_IDS) always is."""
        if actor.channel == "telegram" and actor.external_id in self._configured_admins:
            return True
        current = locked.get(actor.id)
        return current is not None and current.role == "admin"

    def _usage(self, actor: UserProfile) -> Reply:
        return Reply(
            tr(
                actor.language,
                "Upotreba: /dodaj_mentora, /ukloni_mentora, /dodaj_admina ili /ukloni_admina, "
                "pa Telegram ID korisnika (broj), npr. /dodaj_mentora 123456789.",
            )
        )
