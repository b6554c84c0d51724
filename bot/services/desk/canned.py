"""Canned replies: mentors keep short reusable answers, filled in with the clerk's name,
municipality and service when chosen on a request card."""

from __future__ import annotations

import html

from bot.i18n import tr
from bot.services.audit import (
    TEMPLATE_DELETE,
    TEMPLATE_SAVE,
    audit_record,
)
from bot.services.buttons import pack
from bot.services.buttons_mentoring import CannedChoice
from bot.services.desk.base import DeskBase
from bot.services.desk.common import (
    MAX_CANNED_NAME,
    MAX_CANNED_TEXT,
    VARIABLES,
    DeskResult,
)
from bot.services.municipalities import fold
from bot.services.replies import Button, Reply, shorten
from bot.services.roles import refusal
from bot.services.users import UserProfile
from storage.desk import CannedReply, DeskRepository
from storage.mentor import MentorRepository


class DeskCanned(DeskBase):
    """Saving, listing, deleting and filling in canned replies."""

    @staticmethod
    def _key(name: str) -> str:
        return fold(name)[:MAX_CANNED_NAME]

    def canned_usage(self, actor: UserProfile) -> Reply:
        return Reply(
            tr(
                actor.language,
                "Upotreba: /sablon_novi naziv | tekst. U tekstu možete koristiti {ime}, "
                "{opstina} i {usluga}; popunjavaju se iz pitanja. /sabloni ih prikazuje, "
                "/sablon_obrisi naziv briše.",
                ime="{ime}",
                opstina="{opstina}",
                usluga="{usluga}",
            )
        )

    async def save_canned(self, actor: UserProfile, args: str) -> DeskResult:
        """`/sablon_novi naziv | tekst`: a new canned reply, or a new text for an existing one."""
        name, sep, text = (args or "").partition("|")
        name = " ".join(name.split())[:MAX_CANNED_NAME]
        text = text.strip()[:MAX_CANNED_TEXT]
        async with self._database.uow() as uow:
            mentor = await self._actor(uow, actor)
            if mentor is None:
                return DeskResult(refusal(actor, "template.save"), False)
            if not sep or not self._key(name) or not text:
                return DeskResult(self.canned_usage(actor), False)
            row, created = await uow.repository(DeskRepository).save_canned_reply(
                self._key(name), name, text, mentor.id
            )
            await audit_record(
                uow, actor, TEMPLATE_SAVE, f"template:{row.id}", {"created": created}
            )
            await uow.commit()
        shown = html.escape(name)
        if created:
            text = tr(actor.language, "Šablon „{name}“ je sačuvan.", name=shown)
        else:
            text = tr(actor.language, "Šablon „{name}“ je izmenjen.", name=shown)
        return DeskResult(Reply(text), True)

    async def list_canned(self, actor: UserProfile) -> Reply:
        """`/sabloni`: every canned reply with the start of its text."""
        async with self._database.uow(read_only=True) as uow:
            if await self._actor(uow, actor) is None:
                return refusal(actor, "template.list")
            rows = await uow.repository(DeskRepository).canned_replies()
        if not rows:
            return Reply(
                tr(actor.language, "Još nema šablona.") + "\n" + self.canned_usage(actor).text
            )
        lines = [tr(actor.language, "<b>Šabloni odgovora</b>")]
        for row in rows:
            lines.append(f"• <b>{html.escape(row.name)}</b>: {html.escape(shorten(row.text, 120))}")
        return Reply("\n".join(lines))

    async def delete_canned(self, actor: UserProfile, name: str) -> DeskResult:
        async with self._database.uow() as uow:
            if await self._actor(uow, actor) is None:
                return DeskResult(refusal(actor, "template.delete"), False)
            key = self._key(name)
            row = await uow.repository(DeskRepository).delete_canned_reply(key) if key else None
            if row is None:
                return DeskResult(
                    Reply(
                        tr(
                            actor.language,
                            "Nema šablona „{name}“. Pogledajte /sabloni.",
                            name=html.escape(name.strip()),
                        )
                    ),
                    False,
                )
            await audit_record(uow, actor, TEMPLATE_DELETE, f"template:{row.id}")
            await uow.commit()
        return DeskResult(
            Reply(tr(actor.language, "Šablon „{name}“ je obrisan.", name=html.escape(row.name))),
            True,
        )

    async def canned_choices(self, actor: UserProfile, number: int) -> DeskResult:
        """The canned replies for request #number, one button each."""
        async with self._database.uow(read_only=True) as uow:
            if await self._actor(uow, actor) is None:
                return DeskResult(refusal(actor, "template.choose"), False)
            if await uow.repository(MentorRepository).get(number) is None:
                return DeskResult(self._unknown_request(actor, number), False)
            rows = await uow.repository(DeskRepository).canned_replies()
        if not rows:
            return DeskResult(
                Reply(
                    tr(actor.language, "Još nema šablona.")
                    + "\n"
                    + self.canned_usage(actor).text
                ),
                False,
            )
        buttons = tuple(
            (Button(shorten(row.name, 40), pack(CannedChoice(number, row.id, 0))),) for row in rows
        )
        return DeskResult(
            Reply(
                tr(actor.language, "Izaberite šablon za odgovor na #{number}:", number=number),
                buttons[:30],
            ),
            True,
        )

    async def filled(self, actor: UserProfile, number: int, reply_id: int) -> str | DeskResult:
        """The canned reply's text filled in for request #number, or the refusal to give."""
        async with self._database.uow(read_only=True) as uow:
            if await self._actor(uow, actor) is None:
                return DeskResult(refusal(actor, "template.choose"), False)
            request = await uow.repository(MentorRepository).get(number)
            if request is None:
                return DeskResult(self._unknown_request(actor, number), False)
            row: CannedReply | None = await uow.repository(DeskRepository).canned_reply(reply_id)
            if row is None:
                return DeskResult(
                    Reply(tr(actor.language, "Taj šablon više ne postoji. Pogledajte /sabloni.")),
                    False,
                )
            clerk = await uow.users.get(request.user_id)
            named = sorted(self.services_in(request.question))
            service = request.service or (named[0] if named else None)
            values = {
                "ime": (clerk.display_name if clerk is not None else "") or "",
                "opstina": request.municipality or "",
                "usluga": self.service_title(service) if service else "",
            }
        text = row.text
        for name in VARIABLES:
            text = text.replace("{" + name + "}", values[name])
        return text

    def draft(self, actor: UserProfile, number: int, reply_id: int, text: str) -> Reply:
        """The filled-in text as a draft the mentor sends as it is or edits."""
        send_as_is = pack(CannedChoice(number, reply_id, 1))
        return Reply(
            tr(
                actor.language,
                "Nacrt odgovora na #{number}:\n\n{text}\n\nPošaljite ga ovako ili napišite "
                "konačan tekst kao odgovor na ovu poruku.",
                number=number,
                text=html.escape(text),
            ),
            ((Button(tr(actor.language, "Pošalji ovako"), send_as_is),),),
        )
