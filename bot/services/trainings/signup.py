"""The clerk's side: upcoming trainings, signing up (or the waiting list), cancelling, and the
first on the waiting list taking a freed place."""

from __future__ import annotations

import html
import logging
from datetime import datetime

from bot.i18n import tr
from bot.services.audience import (
    Audience,
)
from bot.services.buttons import pack
from bot.services.buttons_trainings import (
    TrainingJoin,
    TrainingLeave,
    TrainingManage,
    TrainingWaitlist,
)
from bot.services.replies import Button, Reply
from bot.services.trainings.common import (
    TrainingView,
    duration_text,
    format_when,
    view_of,
)
from bot.services.trainings.reminders import TrainingReminders
from bot.services.users import UserProfile
from storage.models import User
from storage.trainings import Registration, Training, TrainingRepository
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)


class TrainingSignUp(TrainingReminders):
    """Places on a training: sign-up, waiting list, cancellation, promotion."""

    async def upcoming(self, user: UserProfile) -> Reply:
        """`/obuke`: upcoming trainings meant for this clerk, with their state and a button."""
        lang = user.language
        now = self._clock()
        async with self._database.uow(read_only=True) as uow:
            repo = uow.repository(TrainingRepository)
            member = await uow.users.get(user.id)
            mine = await repo.registrations_of_user(user.id)
            items = []
            for row in await repo.upcoming(now):
                audience = Audience.from_row(row.audience_kind, row.audience_values)
                state = mine[row.id].status if row.id in mine else "none"
                if not (user.is_admin or state != "none" or audience.matches(member)):
                    continue
                items.append((view_of(row, await repo.count(row.id, "registered")), state))
        if not items:
            return Reply(tr(lang, "Trenutno nema najavljenih obuka."))
        labels = {
            "registered": "✅ " + tr(lang, "prijavljeni ste"),
            "waitlisted": "⏳ " + tr(lang, "na listi čekanja"),
            "cancelled": tr(lang, "niste prijavljeni"),
            "none": tr(lang, "niste prijavljeni"),
        }
        lines = ["<b>" + tr(lang, "Predstojeće obuke") + "</b>"]
        buttons: list[tuple[Button, ...]] = []
        for index, (view, state) in enumerate(items[:10], start=1):
            full = " " + tr(lang, "(popunjeno)") if view.full and state == "none" else ""
            described = self.describe(view, lang,
                                      show_link=user.is_admin or state == "registered")
            lines.append(f"\n{index}. " + described + f"\n{labels[state]}{full}")
            short = view.title if len(view.title) <= 30 else view.title[:29] + "…"
            if state == "registered":
                button = Button(tr(lang, "Odjavi se: {title}", title=short),
                                pack(TrainingLeave(view.id)))
            elif state == "waitlisted":
                button = Button(tr(lang, "Napusti listu čekanja: {title}", title=short),
                                pack(TrainingLeave(view.id)))
            else:
                button = Button(tr(lang, "Prijavi se: {title}", title=short),
                                pack(TrainingJoin(view.id)))
            row_buttons: tuple[Button, ...] = (button,)
            if user.is_admin:
                row_buttons += (Button("⚙️", pack(TrainingManage(view.id))),)
            buttons.append(row_buttons)
        return Reply("\n".join(lines), tuple(buttons))

    async def sign_up(
        self, user: UserProfile, training_id: int, *, waitlist: bool = False
    ) -> Reply:
        lang = user.language
        now = self._clock()
        async with self._database.uow() as uow:
            repo = uow.repository(TrainingRepository)
            row = await self._open_training(repo, training_id, lang, now)
            if isinstance(row, Reply):
                return row
            current = await repo.registration(training_id, user.id)
            member = await uow.users.get(user.id)
            if member is None or not self._may_join(row, member, current):
                # A forged or foreign `tr:j`/`tr:w` token: the same answer as a stale button,
                # so it reveals nothing about the training.
                log.info("training sign-up refused: not in the audience",
                         extra={"user_id": user.id, "training_id": training_id})
                return Reply(tr(lang, "Ovo dugme više ne važi."))
            if current is not None and current.status == "registered":
                return Reply(tr(lang, "Već ste prijavljeni na ovu obuku."),
                             self._my_buttons(lang, training_id, "registered"))
            if current is not None and current.status == "waitlisted":
                place = await self._waitlist_place(repo, current)
                return Reply(tr(lang, "Već ste na listi čekanja, {n}. po redu.", n=place),
                             self._my_buttons(lang, training_id, "waitlisted"))
            registered = await repo.count(training_id, "registered")
            full = row.capacity is not None and registered >= row.capacity
            if full and not waitlist:
                return Reply(
                    tr(lang, "Sva mesta su popunjena. Želite li na listu čekanja? Javićemo vam "
                             "čim se mesto oslobodi."),
                    ((Button(tr(lang, "Upiši me na listu čekanja"),
                              pack(TrainingWaitlist(training_id))),),),
                )
            position = await repo.next_position(training_id)
            if full:
                reg = await repo.set_registration(training_id, user.id, "waitlisted", position)
                place = await self._waitlist_place(repo, reg)
                await uow.commit()
                log.info("training waitlisted", extra={"user_id": user.id,
                                                       "training_id": training_id})
                return Reply(tr(lang, "Upisani ste na listu čekanja, {n}. po redu. Javićemo vam "
                                      "ako se mesto oslobodi.", n=place),
                             self._my_buttons(lang, training_id, "waitlisted"))
            await repo.set_registration(training_id, user.id, "registered", position)
            view = view_of(row, registered + 1)
            await self._arm_reminders(uow, view, member, now)
            await self._queue_calendar(uow, view, member, tr(
                member.language, "Dodajte obuku u kalendar: „{title}“, {when}.",
                title=html.escape(view.title), when=format_when(view.starts_at, lang, self._tz)))
            await uow.commit()
        log.info("training registered", extra={"user_id": user.id, "training_id": training_id})
        text = "✅ " + tr(lang, "Prijavljeni ste na obuku.") + "\n" + self.describe(view, lang)
        text += "\n" + self._reminder_note(lang, view, now)
        return Reply(text, self._my_buttons(lang, training_id, "registered"))

    @staticmethod
    def _may_join(row: Training, member: User, current: Registration | None) -> bool:
        """The rule of `/obuke`: admins, anyone already on the training's lists, and members
        of the audience the announcement targeted (services / municipalities / roles)."""
        if member.role == "admin" or current is not None:
            return True
        return Audience.from_row(row.audience_kind, row.audience_values).matches(member)

    def _reminder_note(self, lang: str, view: TrainingView, now: datetime) -> str:
        upcoming = [o for o in self._offsets if view.starts_at - o > now]
        if not upcoming:
            return tr(lang, "Obuka uskoro počinje; podsetnik ne stiže.")
        return tr(lang, "Podsetićemo vas {when} pre početka.", when=", ".join(
            duration_text(lang, o) for o in upcoming))

    async def _open_training(
        self, repo: TrainingRepository, training_id: int, lang: str, now: datetime
    ) -> Training | Reply:
        """The training locked for change while it is open, or the reply saying why not."""
        row = await repo.get(training_id, for_update=True)
        problem = self._not_open(row, lang, now)
        if problem is not None or row is None:
            return problem or Reply(tr(lang, "Ta obuka ne postoji."))
        return row

    def _not_open(self, row: Training | None, lang: str, now: datetime) -> Reply | None:
        if row is None:
            return Reply(tr(lang, "Ta obuka ne postoji."))
        if row.status == "cancelled":
            return Reply(tr(lang, "Ta obuka je otkazana."))
        if row.starts_at <= now:
            return Reply(tr(lang, "Ta obuka je već počela ili je završena."))
        return None

    async def _waitlist_place(self, repo: TrainingRepository, reg: Registration) -> int:
        ahead = [
            r for r, _u in await repo.participants(reg.training_id, ("waitlisted",))
            if (r.position, r.id) < (reg.position, reg.id)
        ]
        return len(ahead) + 1

    def _my_buttons(
        self, lang: str, training_id: int, state: str
    ) -> tuple[tuple[Button, ...], ...]:
        if state == "registered":
            return ((Button(tr(lang, "Odjavi se"), pack(TrainingLeave(training_id))),),)
        if state == "waitlisted":
            leave = pack(TrainingLeave(training_id))
            return ((Button(tr(lang, "Napusti listu čekanja"), leave),),)
        return ((Button(tr(lang, "Prijavi se"), pack(TrainingJoin(training_id))),),)

    async def cancel_registration(self, user: UserProfile, training_id: int) -> Reply:
        lang = user.language
        now = self._clock()
        async with self._database.uow() as uow:
            repo = uow.repository(TrainingRepository)
            row = await repo.get(training_id, for_update=True)
            current = await repo.registration(training_id, user.id)
            if row is None or current is None or current.status == "cancelled":
                return Reply(tr(lang, "Niste prijavljeni na ovu obuku."))
            was = current.status
            current.status = "cancelled"
            current.updated_at = now
            await repo.cancel_reminders(training_id, user.id)
            await self.attendance.cancel_for(uow, training_id, user.id)
            promoted = 0
            if was == "registered" and row.status == "active" and row.starts_at > now:
                promoted = await self._promote(uow, repo, row, now)
            await uow.commit()
        log.info("training registration cancelled",
                 extra={"user_id": user.id, "training_id": training_id, "promoted": promoted})
        if was == "waitlisted":
            return Reply(tr(lang, "Uklonjeni ste sa liste čekanja."))
        return Reply(tr(lang, "Odjavljeni ste sa obuke „{title}“.", title=html.escape(row.title)),
                     self._my_buttons(lang, training_id, "none"))

    async def _promote(
        self, uow: UnitOfWork, repo: TrainingRepository, row: Training, now: datetime
    ) -> int:
        """Free seats go to the waiting list in order; each promoted clerk is told (outbox)."""
        promoted = 0
        while True:
            registered = await repo.count(row.id, "registered")
            if row.capacity is not None and registered >= row.capacity:
                return promoted
            nxt = await repo.first_waitlisted(row.id)
            if nxt is None:
                return promoted
            nxt.status = "registered"
            nxt.updated_at = now
            await uow.flush()
            member = await uow.users.get(nxt.user_id)
            if member is None:
                continue
            view = view_of(row, registered + 1)
            await self._arm_reminders(uow, view, member, now)
            text = "🎉 " + tr(member.language, "Oslobodilo se mesto: prijavljeni ste na obuku "
                                              "sa liste čekanja.") + "\n"
            text += self.describe(view, member.language)
            await self._queue_calendar(uow, view, member, text, kind="training_promoted",
                                       buttons=self._my_buttons(member.language, row.id,
                                                                "registered"))
            promoted += 1
            log.info("training waitlist promoted",
                     extra={"user_id": member.id, "training_id": row.id})
