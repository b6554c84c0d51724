"""Deletion (/obrisi_me, confirmed with a button): the clerk's personal data removed in one
audited unit of work, their trainings places and pending messages cancelled."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.i18n import tr
from bot.services.audit import PRIVACY_DELETE, record_in
from bot.services.buttons import pack
from bot.services.buttons_mentoring import DeletionChoice
from bot.services.privacy.common import (
    ACTION_CANCEL,
    CONFIRM_SECONDS,
    TOMBSTONE_PREFIX,
    DeletionResult,
    is_tombstone,
)
from bot.services.privacy.mentor_requests import PrivacyMentorRequests
from bot.services.replies import Button, Reply
from bot.services.users import UserProfile, profile_of
from storage.operations import PrivacyRepository
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)


class PrivacyDeletion(PrivacyMentorRequests):
    """Asking for, confirming and carrying out a clerk's deletion."""

    def deletion_prompt(self, user: UserProfile) -> Reply:
        """Ask for confirmation; the yes-button carries the moment it was offered."""
        stamp = int(self._clock().timestamp())
        confirm = pack(DeletionChoice("yes", stamp))
        text = tr(
            user.language,
            "Da li zaista želite da obrišete svoje podatke? Brišemo Vaše ime, opštinu i tekst "
            "Vaših pitanja; otvoreni zahtevi mentorima se zatvaraju, a zakazana obaveštenja "
            "otkazuju. Ostaje samo anonimna statistika. Ovo se ne može poništiti.",
        )
        buttons = (
            (Button(tr(user.language, "Da, obriši moje podatke"), confirm),),
            (Button(tr(user.language, "Ne, odustani"), ACTION_CANCEL),),
        )
        return Reply(text, buttons)

    def confirmation_is_fresh(self, stamp: int) -> bool:
        age = self._clock().timestamp() - stamp
        return -60 <= age <= CONFIRM_SECONDS

    async def confirm_deletion(self, user: UserProfile, stamp: int) -> Reply:
        """The yes-button: delete when the confirmation is fresh, else ask again."""
        if not self.confirmation_is_fresh(stamp):
            return Reply(tr(user.language, "Potvrda je istekla. Pošaljite /obrisi_me ponovo."))
        result = await self.delete_user(user.id, actor=user)
        if not result.done:
            return Reply(tr(user.language, "Nema podataka za brisanje."))
        return Reply(
            tr(
                user.language,
                "Vaši podaci su obrisani. Ako ponovo pišete botu, počinjete kao novi korisnik.",
            )
        )

    def deletion_cancelled(self, user: UserProfile) -> Reply:
        return Reply(tr(user.language, "U redu, ništa nije obrisano."))

    async def delete_user(self, user_id: int, *, actor: object = None) -> DeletionResult:
        """Remove the user's personal data in one unit of work (see the module docstring)."""
        now = self._clock()
        tombstone = f"{TOMBSTONE_PREFIX}{uuid.uuid4().hex}"
        # Through the trainings service first, so a freed seat goes to the waiting list (each
        # cancellation is its own transaction); anything left is cancelled below.
        await self._cancel_through_trainings(user_id, now)
        async with self._database.uow() as uow:
            user = await uow.users.get(user_id)
            if user is None or is_tombstone(user.external_id):
                return DeletionResult(user_id, done=False)
            closed = await self._close_open_requests(uow, user, now)
            counts_about = await self._withdraw_from_mentors(uow, user, now)
            cancelled_registrations = await self._cancel_registrations(uow, user_id, now)
            counts = await uow.repository(PrivacyRepository).anonymise_user(user_id, tombstone)
            counts.update(counts_about)
            counts["mentor_requests_closed"] = len(closed)
            counts["registrations_cancelled"] = cancelled_registrations
            await uow.repository(PrivacyRepository).record_request(
                user_id, "deletion", {"rows": counts, "closed_requests": closed}, at=now
            )
            # The actor is usually the user (who no longer has an external id to record).
            actor_id = getattr(actor, "id", actor)
            await record_in(
                uow,
                user_id if actor_id == user_id else actor,
                PRIVACY_DELETE,
                f"user:{user_id}",
                {"rows": counts, "closed_requests": closed},
                at=now,
            )
            await uow.commit()
        log.info(
            "privacy.deleted",
            extra={"user_id": user_id, "closed_requests": len(closed), "rows": counts},
        )
        return DeletionResult(user_id, True, counts, tuple(closed))

    async def _upcoming_registrations(
        self, uow: UnitOfWork, user_id: int, now: datetime
    ) -> list[Any]:
        try:
            from storage.trainings import Registration, Training
        except ImportError:  # pragma: no cover - the trainings feature is not installed
            return []
        stmt = (
            select(Registration)
            .join(Training, Training.id == Registration.training_id)
            .where(
                Registration.user_id == user_id,
                Registration.status.in_(("registered", "waitlisted")),
                Training.starts_at > now,
            )
        )
        return list(await uow.session.scalars(stmt))

    async def _cancel_through_trainings(self, user_id: int, now: datetime) -> None:
        if self.trainings is None:
            return
        async with self._database.uow(read_only=True) as uow:
            user = await uow.users.get(user_id)
            if user is None or is_tombstone(user.external_id):
                return
            profile = profile_of(user)
            training_ids = [
                r.training_id for r in await self._upcoming_registrations(uow, user_id, now)
            ]
        for training_id in training_ids:
            await self.trainings.cancel_registration(profile, training_id)

    async def _cancel_registrations(self, uow: UnitOfWork, user_id: int, now: datetime) -> int:
        """Registrations for trainings that have not started yet are cancelled."""
        rows = await self._upcoming_registrations(uow, user_id, now)
        for row in rows:
            row.status = "cancelled"
            row.updated_at = now
        await uow.flush()
        return len(rows)
