"""The admin's side: create and announce a training, change it (participants hear what
changed, reminders follow the new time) and cancel it."""

from __future__ import annotations

import html
import logging
from datetime import datetime

from bot.i18n import tr
from bot.services.audience import (
    audience_members,
)
from bot.services.audit import TRAINING_CANCEL, TRAINING_CREATE, TRAINING_UPDATE, audit_record
from bot.services.buttons import pack
from bot.services.buttons_trainings import (
    AttendanceList,
    TrainingCancel,
    TrainingChangePlace,
    TrainingChangeTime,
    TrainingJoin,
    TrainingManage,
    TrainingMaterials,
)
from bot.services.messages import reply_to_payload
from bot.services.replies import Button, Reply
from bot.services.trainings.common import (
    ANNOUNCE_CHUNK,
    TrainingDraft,
    TrainingView,
    format_when,
    view_of,
)
from bot.services.trainings.signup import TrainingSignUp
from bot.services.users import UserProfile
from storage.trainings import Training, TrainingRepository

log = logging.getLogger(__name__)


class TrainingAdmin(TrainingSignUp):
    """Creating, announcing, changing and cancelling trainings (admins only)."""

    async def create(self, actor: UserProfile, draft: TrainingDraft) -> tuple[int | None, Reply]:
        """Save the training and queue its announcement (with "Prijavi se") to the audience."""
        refused = self.refusal(actor, "training.create")
        if refused is not None:
            return None, refused
        if draft.starts_at <= self._clock():
            return None, Reply(tr(actor.language, "Taj datum je prošao. Unesite datum i vreme "
                                                  "u budućnosti."))
        kind, values = draft.audience.to_row()
        async with self._database.uow() as uow:
            row = await uow.repository(TrainingRepository).add(Training(
                title=draft.title, service=draft.service, starts_at=draft.starts_at,
                duration_minutes=draft.duration_minutes, link=draft.link, address=draft.address,
                capacity=draft.capacity, audience_kind=kind, audience_values=values,
                status="active", revision=0, created_by=actor.id,
            ))
            training_id = row.id
            await audit_record(uow, actor, TRAINING_CREATE, f"training:{training_id}", {
                "title": draft.title, "service": draft.service, "starts_at": draft.starts_at,
                "audience": kind,
            })
            await uow.commit()
        count = await self._announce(training_id)
        log.info("training created", extra={"user_id": actor.id, "training_id": training_id,
                                            "audience": count})
        text = tr(actor.language, "Obuka je objavljena. Obaveštenje ide {count} korisnika.",
                  count=count)
        return training_id, Reply(text, ((Button(tr(actor.language, "Upravljaj obukom"),
                                                 pack(TrainingManage(training_id))),),))

    async def _announce(self, training_id: int) -> int:
        async with self._database.uow(read_only=True) as uow:
            row = await uow.repository(TrainingRepository).get(training_id)
            assert row is not None
            view = view_of(row)
        async for members, _last in audience_members(
            self._database, view.audience, channels=self._channels, page_size=ANNOUNCE_CHUNK
        ):
            rows = [
                {
                    "channel": user.channel, "chat_id": user.external_id, "user_id": user.id,
                    "kind": "training_announce", "batch": f"training:{training_id}",
                    "dedupe_key": f"training-announce:{training_id}:{user.id}",
                    "expires_at": view.starts_at, "priority": 120,
                    "payload": reply_to_payload(self._announcement(view, user.language)),
                }
                for user in members
            ]
            if rows:
                async with self._database.uow() as uow:
                    await uow.outbox.add_many(rows)
                    await uow.commit()
        # Counted from the rows themselves: an INSERT's rowcount is not reliable for
        # executemany on every driver (aiosqlite reports 0).
        async with self._database.uow(read_only=True) as uow:
            counts = await uow.outbox.counts_by_status(f"training:{training_id}")
        return sum(counts.values())

    def _announcement(self, view: TrainingView, language: str) -> Reply:
        text = "📢 " + tr(language, "Nova obuka") + "\n" + self.describe(
            view, language, show_link=False)
        return Reply(text, ((Button(tr(language, "Prijavi se"), pack(TrainingJoin(view.id))),),))

    async def manage(self, actor: UserProfile, training_id: int) -> Reply:
        """The admin's view of one training: counts and change / cancel buttons."""
        refused = self.refusal(actor, "training.manage")
        if refused is not None:
            return refused
        lang = actor.language
        view = await self.get(training_id)
        if view is None:
            return Reply(tr(lang, "Ta obuka ne postoji."))
        text = self.describe(view, lang) + "\n" + tr(
            lang, "Prijavljeno: {registered}, na listi čekanja: {waitlisted}.",
            registered=view.registered, waitlisted=view.waitlisted)
        if view.status == "cancelled":
            return Reply(text + "\n" + tr(lang, "Ta obuka je otkazana."))
        return Reply(text, (
            (Button(tr(lang, "Promeni vreme"), pack(TrainingChangeTime(training_id))),
             Button(tr(lang, "Promeni mesto/link"), pack(TrainingChangePlace(training_id)))),
            (Button(tr(lang, "Prisustvo"), pack(AttendanceList(training_id))),
             Button(tr(lang, "Materijali"), pack(TrainingMaterials(training_id)))),
            (Button(tr(lang, "Otkaži obuku"), pack(TrainingCancel(training_id))),),
        ))

    async def change(
        self,
        actor: UserProfile,
        training_id: int,
        *,
        starts_at: datetime | None = None,
        duration_minutes: int | None = None,
        link: str | None = None,
        address: str | None = None,
        title: str | None = None,
        capacity: int | None = None,
    ) -> Reply:
        """Change a training; registrants are told (with a new .ics) and their reminders move."""
        refused = self.refusal(actor, "training.change")
        if refused is not None:
            return refused
        lang = actor.language
        now = self._clock()
        if starts_at is not None and starts_at <= now:
            return Reply(tr(lang, "Taj datum je prošao. Unesite datum i vreme u budućnosti."))
        async with self._database.uow() as uow:
            repo = uow.repository(TrainingRepository)
            row = await self._open_training(repo, training_id, lang, now)
            if isinstance(row, Reply):
                return row
            before = view_of(row)
            if starts_at is not None:
                row.starts_at = starts_at
            if duration_minutes is not None:
                row.duration_minutes = duration_minutes
            if link is not None or address is not None:
                row.link, row.address = link, address
            if title is not None:
                row.title = title
            if capacity is not None:
                row.capacity = capacity or None
            row.revision += 1
            row.updated_at = now
            await uow.flush()
            if capacity is not None:
                await self._promote(uow, repo, row, now)
            after = view_of(row, await repo.count(training_id, "registered"))
            await repo.cancel_reminders(training_id)
            participants = await repo.participants(training_id)
            for reg, member in participants:
                if not member.active:
                    continue
                changes = self._changes(before, after, member.language)
                text = "✏️ " + tr(member.language, "Obuka je promenjena: {changes}.",
                                  changes=changes) + "\n" + self.describe(
                    after, member.language, show_link=reg.status == "registered")
                if reg.status == "registered":
                    await self._arm_reminders(uow, after, member, now)
                    await self._queue_calendar(uow, after, member, text, kind="training_change")
                else:
                    await uow.outbox.add(
                        channel=member.channel, chat_id=member.external_id, user_id=member.id,
                        kind="training_change", payload=reply_to_payload(Reply(text)),
                        priority=40,
                    )
            changed = {
                name: value for name, value in (
                    ("starts_at", starts_at), ("duration_minutes", duration_minutes),
                    ("link", link), ("address", address), ("title", title),
                    ("capacity", capacity),
                ) if value is not None
            }
            await audit_record(uow, actor, TRAINING_UPDATE, f"training:{training_id}",
                               {"changed": changed, "notified": len(participants)})
            await uow.commit()
        log.info("training changed", extra={"user_id": actor.id, "training_id": training_id,
                                            "notified": len(participants)})
        return Reply(tr(lang, "Obuka je izmenjena. Obavešteno: {count}.",
                        count=len(participants)) + "\n" + self.describe(after, lang))

    def _changes(self, before: TrainingView, after: TrainingView, lang: str) -> str:
        parts = []
        if before.starts_at != after.starts_at or before.duration_minutes != after.duration_minutes:
            parts.append(tr(lang, "novo vreme {when}",
                            when=format_when(after.starts_at, lang, self._tz)))
        if (before.link, before.address) != (after.link, after.address):
            parts.append(tr(lang, "novo mesto"))
        if before.title != after.title:
            parts.append(tr(lang, "novi naziv"))
        if before.capacity != after.capacity:
            parts.append(tr(lang, "broj mesta"))
        return ", ".join(parts) or tr(lang, "detalji")

    async def cancel(self, actor: UserProfile, training_id: int) -> Reply:
        """Cancel a training: reminders are cancelled, registrants and the waiting list told."""
        refused = self.refusal(actor, "training.cancel")
        if refused is not None:
            return refused
        lang = actor.language
        now = self._clock()
        async with self._database.uow() as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id, for_update=True)
            if row is None:
                return Reply(tr(lang, "Ta obuka ne postoji."))
            if row.status == "cancelled":
                return Reply(tr(lang, "Ta obuka je otkazana."))
            row.status = "cancelled"
            row.revision += 1
            row.updated_at = now
            await uow.flush()
            view = view_of(row)
            cancelled = await repo.cancel_reminders(training_id)
            await uow.outbox.cancel_batch(f"training:{training_id}")  # unsent announcements
            await self.attendance.cancel_for(uow, training_id, None)
            participants = await repo.participants(training_id)
            for reg, member in participants:
                if not member.active:
                    continue
                text = "❌ " + tr(member.language, "Obuka „{title}“ ({when}) je otkazana. "
                                                  "Izvinjavamo se.",
                                 title=html.escape(view.title),
                                 when=format_when(view.starts_at, member.language, self._tz))
                if reg.status == "registered":
                    await self._queue_calendar(uow, view, member, text, kind="training_cancel",
                                               cancelled=True)
                else:
                    await uow.outbox.add(
                        channel=member.channel, chat_id=member.external_id, user_id=member.id,
                        kind="training_cancel", payload=reply_to_payload(Reply(text)),
                        priority=40,
                    )
            await audit_record(uow, actor, TRAINING_CANCEL, f"training:{training_id}",
                               {"reminders_cancelled": cancelled, "notified": len(participants)})
            await uow.commit()
        log.info("training cancelled", extra={"user_id": actor.id, "training_id": training_id,
                                              "reminders": cancelled})
        return Reply(tr(lang, "Obuka je otkazana. Obavešteno: {count}.",
                        count=len(participants)))
