"""Privacy (Serbia's personal data protection law follows the GDPR): a notice at onboarding, an
export of everything held about a clerk, deletion after confirmation, and retention.

* Export (/moji_podaci): the user's row, every row that belongs to them (questions, feedback,
  mentor requests and their threads, training registrations, messages queued for them...) found
  from the schema, as one JSON file. Recorded in ``privacy_requests`` (counts only).
* Deletion (/obrisi_me, confirmed with a button): name, channel id (replaced by a tombstone),
  municipality and interests removed, the user inactive; question texts replaced by
  ``[obrisano]`` while decision, entry and time stay for statistics; open mentor requests closed
  with a note to the mentor (and the group card no longer shows the question); messages not yet
  sent to them cancelled. One unit of work, audited (``privacy.delete``).
* Retention: a daily job anonymises question texts, request threads (whatever their state,
  once quiet for the period) and sent messages older than RETENTION_MONTHS (default 12), by
  the injected clock, and clears the bytes of expired export files.
* Export by link (Viber, which fetches files from a URL instead of taking an upload): see
  ``PrivacyService.queue_export``.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import select

from bot.digits import is_digits
from bot.i18n import tr
from bot.services.audit import PRIVACY_DELETE, RETENTION_RUN, record_in
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply
from bot.services.users import UserProfile, profile_of
from storage.clock import Clock
from storage.models import OutboxMessage, User
from storage.operations import REDACTED, PrivacyRepository, months_before
from storage.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

__all__ = [
    "CONFIRM_SECONDS",
    "EXPORT_KIND",
    "EXPORT_LINK_SECONDS",
    "REDACTED",
    "DeletionResult",
    "ExportFile",
    "PrivacyService",
    "RetentionSettings",
    "privacy_notice",
    "retention_months_from",
]

EXPORT_FORMAT = "euprava-bot/licni-podaci"
CONFIRM_SECONDS = 15 * 60  # a deletion button older than this asks again
TOMBSTONE_PREFIX = "deleted-"
DELETED_CLOSE_REASON = "deleted"
OPEN_REQUEST_STATES = ("new", "claimed", "answered")
EXPORT_KIND = "privacy_export"  # the outbox row that carries an export file (see queue_export)
EXPORT_LINK_SECONDS = 15 * 60  # how long such a row may be sent and its file fetched

# Action tokens on the confirmation buttons (channel-neutral; the handler parses them).
ACTION_CONFIRM = "pd:yes"
ACTION_CANCEL = "pd:no:0"


class RetentionSettings(BaseSettings):
    """RETENTION_MONTHS: months after which question texts and request threads are anonymised.
    (Read here until bot.config.Settings carries it.)"""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    retention_months: int = Field(default=12, ge=1, le=120)


def retention_months_from(settings: object | None = None) -> int:
    """The app Settings' ``retention_months`` if it has one, else RETENTION_MONTHS / 12."""
    value = getattr(settings, "retention_months", None)
    if isinstance(value, int) and value >= 1:
        return value
    return RetentionSettings().retention_months


def privacy_notice(language: str, months: int = 12) -> str:
    """The short notice shown at onboarding (/start)."""
    return tr(
        language,
        "🔒 Privatnost: čuvamo Vaše ime iz aplikacije, opštinu i pitanja koja postavite, samo da "
        "bismo Vam odgovorili i poboljšali odgovore. Tekst pitanja se posle {months} meseci "
        "briše, a ostaje samo anonimna statistika. Komanda /moji_podaci šalje Vam sve što o Vama "
        "čuvamo, a /obrisi_me briše Vaše podatke.",
        months=months,
    )


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content: bytes
    caption: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DeletionResult:
    user_id: int
    done: bool  # False when there was nothing (left) to delete
    counts: dict[str, int] = field(default_factory=dict)
    closed_requests: tuple[int, ...] = ()


class RegistrationCanceller(Protocol):
    """The trainings service: cancelling a registration moves the waiting list up."""

    def cancel_registration(self, user: UserProfile, training_id: int) -> Awaitable[object]: ...


def is_tombstone(external_id: str | None) -> bool:
    return bool(external_id) and str(external_id).startswith(TOMBSTONE_PREFIX)


class PrivacyService:
    def __init__(
        self,
        database: Database,
        *,
        retention_months: int = 12,
        clock: Clock | None = None,
        trainings: RegistrationCanceller | None = None,
    ) -> None:
        self._database = database
        self.retention_months = retention_months
        self._clock = clock or database.clock  # the program's one clock
        self.trainings = trainings

    # -- notice ---------------------------------------------------------------------------

    def notice(self, user: UserProfile) -> Reply:
        return Reply(privacy_notice(user.language, self.retention_months))

    # -- export ---------------------------------------------------------------------------

    async def export(self, user: UserProfile) -> ExportFile:
        """Everything held about the user as a JSON file (recorded, counts only)."""
        now = self._clock()
        async with self._database.uow() as uow:
            repository = uow.repository(PrivacyRepository)
            exported = await repository.export_user(user.id)
            counts = {name: len(rows) for name, rows in exported["data"].items()}
            await repository.record_request(user.id, "export", {"rows": counts}, at=now)
            await uow.commit()
        document = {
            "format": EXPORT_FORMAT,
            "version": 1,
            "generated_at": now.isoformat(),
            "explanation": tr(
                user.language,
                "Svi podaci koje bot čuva o Vama: Vaš nalog (user), zatim po tabelama redovi "
                "koji pripadaju Vama (data) i spisak zapisa u kojima se samo pominjete "
                "(references). Vreme je u UTC.",
            ),
            **exported,
        }
        content = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False).encode()
        log.info("privacy.exported", extra={"user_id": user.id, "bytes": len(content)})
        stamp = now.strftime("%Y-%m-%d")
        return ExportFile(
            filename=f"moji_podaci_{stamp}.json",
            content=content,
            caption=tr(
                user.language,
                "Ovo su svi podaci koje čuvamo o Vama. Za brisanje pošaljite /obrisi_me.",
            ),
            counts=counts,
        )

    async def queue_export(self, user: UserProfile) -> ExportFile:
        """/moji_podaci for a channel that sends files from the outbox by link (Viber fetches a
        file from a URL we give it; it cannot take an upload): the export as a document row
        addressed to the user, which the channel's sender delivers (file, then the caption).

        The file holds personal data, so the row must not keep it around:

        * the row expires EXPORT_LINK_SECONDS after it is queued: the dispatcher no longer
          sends it, and the channel no longer serves its file (a link copied into a log or
          fetched late opens nothing); the user can simply ask again;
        * its bytes are removed by the daily retention job (``clear_expired_exports``), so a
          copy lives at most about a day beside the data it copies;
        * a deletion (/obrisi_me) empties every outbox row addressed to the user at once,
          exports included.

        The file is not removed on the first download: Viber may fetch it again (a retried
        send), and a second fetch must not turn a delivered export into an error."""
        exported = await self.export(user)
        document = {
            "filename": exported.filename,
            "content_b64": base64.b64encode(exported.content).decode("ascii"),
        }
        async with self._database.uow() as uow:
            await uow.outbox.add(
                channel=user.channel,
                chat_id=user.external_id,
                user_id=user.id,
                kind=EXPORT_KIND,
                payload=reply_to_payload(Reply(exported.caption), document=document),
                priority=10,
                expires_at=self._clock() + timedelta(seconds=EXPORT_LINK_SECONDS),
            )
            await uow.commit()
        log.info("privacy.export_queued", extra={"user_id": user.id, "channel": user.channel})
        return exported

    async def clear_expired_exports(self) -> int:
        """Remove the bytes of export files whose rows have expired (see ``queue_export``);
        returns how many were cleared. The daily retention job does this too."""
        async with self._database.uow() as uow:
            cleared = await self._clear_expired_exports(uow)
            await uow.commit()
        return cleared

    async def _clear_expired_exports(self, uow: UnitOfWork) -> int:
        content = OutboxMessage.payload[("document", "content_b64")].as_string()
        rows = await uow.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.kind == EXPORT_KIND,
                OutboxMessage.expires_at < self._clock(),
                content.is_not(None),
            )
        )
        cleared = 0
        for row in rows:
            document = (row.payload or {}).get("document") or {}
            row.payload = {**row.payload, "document": {"filename": document.get("filename")}}
            cleared += 1
        await uow.flush()
        return cleared

    # -- deletion -------------------------------------------------------------------------

    def deletion_prompt(self, user: UserProfile) -> Reply:
        """Ask for confirmation; the yes-button carries the moment it was offered."""
        stamp = int(self._clock().timestamp())
        text = tr(
            user.language,
            "Da li zaista želite da obrišete svoje podatke? Brišemo Vaše ime, opštinu i tekst "
            "Vaših pitanja; otvoreni zahtevi mentorima se zatvaraju, a zakazana obaveštenja "
            "otkazuju. Ostaje samo anonimna statistika. Ovo se ne može poništiti.",
        )
        buttons = (
            (Button(tr(user.language, "Da, obriši moje podatke"), f"{ACTION_CONFIRM}:{stamp}"),),
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

    async def _close_open_requests(self, uow: UnitOfWork, user: User, now: datetime) -> list[int]:
        """Close the user's open mentor requests; tell the mentor who has it, and take the
        question off the mentor group's card."""
        try:
            from storage.mentor import MentorRequest
        except ImportError:  # pragma: no cover - the mentor feature is not installed
            return []
        stmt = select(MentorRequest).where(
            MentorRequest.user_id == user.id, MentorRequest.state.in_(OPEN_REQUEST_STATES)
        )
        requests = list(await uow.session.scalars(stmt.order_by(MentorRequest.id)))
        closed: list[int] = []
        for request in requests:
            number = request.id
            mentor_ids = {i for i in (request.claimed_by, request.answered_by) if i is not None}
            for mentor_id in sorted(mentor_ids):
                mentor = await uow.users.get(mentor_id)
                if mentor is None or not mentor.active or is_tombstone(mentor.external_id):
                    continue
                note = tr(
                    mentor.language,
                    "Zahtev #{number} je zatvoren: službenik je obrisao svoje podatke iz bota, "
                    "pa odgovor više nije potreban.",
                    number=number,
                )
                await uow.outbox.add(
                    channel=mentor.channel,
                    chat_id=mentor.external_id,
                    user_id=mentor.id,
                    kind="privacy_note",
                    payload=reply_to_payload(Reply(note)),
                    dedupe_key=f"privacy_note:{number}:{mentor.id}",
                    priority=50,
                )
            await self._tell_followers(uow, number)
            request.state = "closed"
            request.closed_at = now
            request.closed_reason = DELETED_CLOSE_REASON
            closed.append(number)
        await uow.flush()
        return closed

    async def _tell_followers(self, uow: UnitOfWork, number: int) -> None:
        """Clerks following the closed request (the same question) will get no answer from it:
        each is told once, with the button that sends their own question as a new request."""
        from storage.mentor import MentorRepository

        for follower in await uow.repository(MentorRepository).followers_of(number):
            clerk = await uow.users.get(follower.user_id)
            if clerk is None or not clerk.active or is_tombstone(clerk.external_id):
                continue
            note = Reply(
                tr(
                    clerk.language,
                    "Pitanje #{number}, kojem ste bili pridruženi, je zatvoreno bez odgovora. "
                    "Pošaljite svoje pitanje mentoru kao novo.",
                    number=number,
                ),
                ((Button(tr(clerk.language, "Pošalji kao novo pitanje"), f"mo:{number}"),),),
            )
            await uow.outbox.add(
                channel=clerk.channel,
                chat_id=clerk.external_id,
                user_id=clerk.id,
                kind="mentor_notice",
                payload=reply_to_payload(note),
                dedupe_key=f"privacy_note:{number}:f{follower.id}",
                priority=50,
            )

    async def _withdraw_from_mentors(
        self, uow: UnitOfWork, user: User, now: datetime
    ) -> dict[str, int]:
        """Nothing of the clerk stays with the mentors: messages about any of their requests
        (open or closed) not sent yet are cancelled (a queued card edit would put the question
        back on the card, a follow-up would still reach the mentor), every such outbox row
        loses its text, the cards and posts already sent are edited into a one-line note, and
        KB drafts lose the clerk's question. The notes wait until any message a dispatcher may
        still be sending (claimed before the deletion) has gone, so none overwrites them."""
        try:
            from storage.mentor import MentorRepository
        except ImportError:  # pragma: no cover - the mentor feature is not installed
            return {}
        mentor = uow.repository(MentorRepository)
        requests = await mentor.requests_of(user.id)
        if not requests:
            return {}
        request_ids = [request.id for request in requests]
        followups = [f"mentor:followup:{message_id}:m"
                     for message_id in await mentor.message_ids_of(request_ids)]
        withdrawn = await uow.repository(PrivacyRepository).withdraw_messages_about(
            request_ids, followups
        )
        not_before = now
        if withdrawn.in_flight_until is not None and withdrawn.in_flight_until > now:
            not_before = withdrawn.in_flight_until + timedelta(seconds=1)
        edited: set[tuple[str, int]] = set()
        for request in requests:
            target = await self._retire_card(uow, request, request.id, not_before)
            if target is not None:
                edited.add(target)
        note = tr("sr-Latn", "Poruka je obrisana: službenik je obrisao svoje podatke.")
        for channel, chat_id, message_id in withdrawn.sent_posts:
            if channel != "telegram" or (chat_id, message_id) in edited:
                continue
            edited.add((chat_id, message_id))
            await uow.outbox.add(
                channel="telegram",
                chat_id=chat_id,
                kind="privacy_card",
                payload=reply_to_payload(Reply(note), edit_message_id=message_id),
                dedupe_key=f"privacy_post:{chat_id}:{message_id}",
                priority=50,
                not_before=not_before,
            )
        drafts = await mentor.forget_draft_questions(request_ids, REDACTED)
        return {"outbox_about_requests": withdrawn.redacted,
                "outbox_about_requests_cancelled": withdrawn.cancelled,
                "messages_retracted": len(edited), "drafts": drafts}

    async def _retire_card(
        self, uow: UnitOfWork, request: Any, number: int, not_before: datetime | None = None
    ) -> tuple[str, int] | None:
        """The group card must no longer show the question: cancel it if not sent yet, else
        edit it into a one-line note. Returns the (chat, message) edited."""
        card = await uow.session.scalar(
            select(OutboxMessage).where(OutboxMessage.dedupe_key == f"mentor_card:{number}")
        )
        if card is not None and card.status == "pending":
            card.status = "cancelled"
            card.last_error = "user data deleted"
            return None
        chat_id = request.card_chat_id or (card.chat_id if card is not None else None)
        message_id = request.card_message_id or (
            int(card.external_message_id)
            if card is not None
            and card.status == "sent"
            and card.external_message_id
            and is_digits(str(card.external_message_id))
            else None
        )
        if not chat_id or not message_id:
            return None
        text = tr(
            "sr-Latn",
            "Zahtev #{number} – zatvoren: službenik je obrisao svoje podatke.",
            number=number,
        )
        await uow.outbox.add(
            channel="telegram",
            chat_id=chat_id,
            kind="privacy_card",
            payload=reply_to_payload(Reply(text), edit_message_id=int(message_id)),
            dedupe_key=f"privacy_card:{number}",
            priority=50,
            not_before=not_before,
        )
        return str(chat_id), int(message_id)

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

    # -- retention ------------------------------------------------------------------------

    def retention_cutoff(self) -> datetime:
        return months_before(self._clock(), self.retention_months)

    async def apply_retention(self) -> dict[str, int]:
        """Anonymise what is older than the retention period (the daily job)."""
        cutoff = self.retention_cutoff()
        async with self._database.uow() as uow:
            repository = uow.repository(PrivacyRepository)
            if not await repository.try_job_lock():
                log.info("privacy.retention_skipped", extra={"reason": "another instance runs it"})
                return {}
            counts = await repository.anonymise_older_than(cutoff)
            counts["export_files"] = await self._clear_expired_exports(uow)
            if any(counts.values()):
                await record_in(
                    uow,
                    None,
                    RETENTION_RUN,
                    None,
                    {"cutoff": cutoff.isoformat(), "months": self.retention_months, **counts},
                    at=self._clock(),
                )
            await uow.commit()
        log.info("privacy.retention", extra={"cutoff": cutoff.isoformat(), "counts": counts})
        return counts
