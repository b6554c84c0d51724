"""What a mentor looks up: the open queue (/red, /moji), a request's files, the request a group
message belongs to."""

from __future__ import annotations

import html
from datetime import timedelta

from bot.i18n import tr
from bot.services.mentoring.base import MentorBase
from bot.services.mentoring.common import (
    STATE_LABELS,
    Attachment,
    Result,
)
from bot.services.replies import Button, Reply, shorten
from bot.services.roles import refusal
from bot.services.users import UserProfile
from storage.mentor import (
    MentorRepository,
)


class MentorLists(MentorBase):
    """Read-only views of the queue for mentors."""

    async def attachments(self, actor: UserProfile, number: int) -> list[Attachment] | Result:
        """The files of a request (to show to a mentor on demand)."""
        async with self._database.uow(read_only=True) as uow:
            if await self._actor(uow, actor) is None:
                return Result(refusal(actor, "mentor.attachments"), False)
            repo = uow.repository(MentorRepository)
            request = await repo.get(number)
            if request is None:
                return Result(self._unknown(actor, number), False)
            files = list(request.attachments or [])
            for message in await repo.thread(number):
                files.extend(message.attachments or [])
        seen: set[str] = set()
        found: list[Attachment] = []
        for item in files:
            if item.get("file_id") and item["file_id"] not in seen:
                seen.add(item["file_id"])
                found.append(Attachment.from_dict(item))
        return found

    async def number_for_card(self, chat_id: int | str, message_id: int) -> int | None:
        """The request a group message (its card, or a bot post about it) belongs to."""
        async with self._database.uow(read_only=True) as uow:
            request = await uow.repository(MentorRepository).by_card(chat_id, message_id)
            return request.id if request is not None else None

    async def queue_list(self, actor: UserProfile, *, mine: bool = False) -> Reply:
        """/red: open requests, oldest first; /moji: the mentor's own."""
        now = self.clock()
        async with self._database.uow(read_only=True) as uow:
            mentor = await self._actor(uow, actor)
            if mentor is None:
                return refusal(actor, "mentor.moji" if mine else "mentor.red")
            repo = uow.repository(MentorRepository)
            rows = await repo.open_requests(claimed_by=mentor.id if mine else None, limit=30)
            holders = {r.claimed_by for r in rows if r.claimed_by}
            names = {}
            for holder_id in holders:
                holder = await uow.users.get(holder_id)
                if holder is not None:
                    names[holder_id] = holder.display_name or str(holder.external_id)
        if not rows:
            return Reply(
                tr(actor.language, "Nemate otvorenih pitanja.")
                if mine
                else tr(actor.language, "Nema otvorenih pitanja. 🎉")
            )
        title = (
            tr(actor.language, "<b>Moja otvorena pitanja</b>")
            if mine
            else tr(actor.language, "<b>Otvorena pitanja</b> (najstarija prva)")
        )
        lines = [title]
        buttons: list[tuple[Button, ...]] = []
        for request in rows:
            waited = self._age(now - request.created_at)
            holder_name = names.get(request.claimed_by or 0)
            parts = [
                f"<b>#{request.id}</b>",
                STATE_LABELS[request.state],
                waited,
                html.escape(request.municipality or "—"),
            ]
            if request.service:
                parts.append(html.escape(request.service))
            if holder_name and request.state != "new":
                parts.append("👤 " + html.escape(holder_name))
            lines.append(" · ".join(parts) + "\n   " + html.escape(shorten(request.question, 90)))
            if request.state == "new" and len(buttons) < 8:
                buttons.append(
                    (
                        Button(
                            tr(actor.language, "Preuzmi #{n}", n=request.id), f"mq:c:{request.id}"
                        ),
                    )
                )
        return Reply("\n".join(lines), tuple(buttons))

    @staticmethod
    def _age(delta: timedelta) -> str:
        minutes = int(delta.total_seconds() // 60)
        if minutes < 60:
            return f"{max(minutes, 0)} min"
        hours = minutes // 60
        if hours < 48:
            return f"{hours} h"
        return f"{hours // 24} d"
