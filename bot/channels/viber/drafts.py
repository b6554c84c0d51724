"""The mentor request being written on Viber (`Draft`, carried in tracking_data) and the texts
that answer a mentor: details and files for the draft, a follow-up, a call-back contact."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bot.channels.viber.common import LOGGER, _number
from bot.channels.viber.sending import ViberReplies
from bot.services.mentoring import Attachment
from bot.services.replies import Reply
from bot.services.users import UserProfile

log = logging.getLogger(LOGGER)

FOLLOW_UP = "fu:"  # tracking_data: the next text is a follow-up to mentor request <n>
CALL_BACK = "cb:"  # tracking_data: the next text is a call-back contact for request <n>
TRACKING_MAX = 4000  # Viber keeps up to 4,096 characters of tracking_data


def _offers(reply: Reply, action: str) -> bool:
    return any(button.action == action for row in reply.buttons for button in row)


def viber_attachment(kind: str, message: dict[str, Any]) -> dict[str, Any] | None:
    """A picture, file or video the clerk sent, as a mentor attachment: Viber gives a download
    URL (`media`), which goes where Telegram's file_id would."""
    media = message.get("media")
    if not media or kind not in ("picture", "file", "video"):
        return None
    kinds = {"picture": "photo", "file": "document", "video": "video"}
    name = message.get("file_name")
    return {"type": kinds[kind], "file_id": str(media), "name": str(name) if name else None}


def _attachment_of(data: dict[str, Any]) -> Attachment:
    return Attachment.from_dict(data)


@dataclass
class Draft:
    """A mentor request being written: the question it is about, the details typed and the
    files sent so far. Carried in the messages' tracking_data (Viber returns it with the user's
    next message), so no instance has to remember it."""

    question_id: int | None
    details: list[str] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    # Names this draft: sending it twice (a double tap) finds the request the first send made.
    key: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    PREFIX: ClassVar[str] = "ms:"

    def source_key(self, user: UserProfile) -> str:
        return f"viber:{user.id}:{self.key}"

    def encode(self) -> str:
        data = {"k": self.key, "q": self.question_id, "d": self.details, "a": self.attachments}
        return self.PREFIX + json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def decode(cls, tracking: str) -> Draft | None:
        if not tracking.startswith(cls.PREFIX):
            return None
        try:
            data = json.loads(tracking[len(cls.PREFIX) :])
            question = data.get("q")
            key = str(data.get("k") or "")[:32]
            return cls(
                question if isinstance(question, int) else None,
                [str(d) for d in data.get("d") or []],
                [dict(a) for a in data.get("a") or [] if isinstance(a, dict) and a.get("file_id")],
                key or uuid.uuid4().hex[:16],
            )
        except (ValueError, AttributeError, TypeError):
            return None

    def _room(self) -> int:
        return TRACKING_MAX - len(self.encode())

    def add_detail(self, text: str) -> None:
        room = self._room() - 8
        if room > 20:
            self.details.append(text[:room])

    def add_attachment(self, attachment: dict[str, Any]) -> None:
        if len(json.dumps(attachment, ensure_ascii=False)) + 8 < self._room():
            self.attachments.append(attachment)


class MentorDrafts(ViberReplies):
    """Starting a draft and adding to it; a follow-up or call-back typed after a mentor's
    answer."""

    async def _start_draft(
        self, user: UserProfile, question_id: int | None, question: str | None = None
    ) -> None:
        """ "Ask a mentor": the clerk may add details and files, then taps "Pošalji mentoru".
        What they add travels in tracking_data until then."""
        mentoring = self._mentoring
        if mentoring is None:
            await self.send(user, self._coming_soon(user))
            return
        reply = mentoring.compose_prompt(user, question)
        await self.send(user, reply, tracking=Draft(question_id).encode())

    async def _add_to_draft(
        self,
        user: UserProfile,
        tracking: str,
        *,
        text: str = "",
        attachment: dict[str, Any] | None = None,
    ) -> None:
        draft = Draft.decode(tracking)
        mentoring = self._mentoring
        if draft is None or mentoring is None:
            await self._ask(user, text)
            return
        if attachment is not None:
            draft.add_attachment(attachment)
        if text.strip():
            draft.add_detail(text.strip())
        reply = mentoring.noted(user, "attachment" if attachment is not None else "text")
        await self.send(user, reply, tracking=draft.encode())

    async def _follow_up(
        self,
        user: UserProfile,
        tracking: str,
        *,
        text: str = "",
        attachment: dict[str, Any] | None = None,
    ) -> None:
        number = _number(tracking[len(FOLLOW_UP) :])
        mentoring = self._mentoring
        if number is None or mentoring is None:
            await self._ask(user, text)
            return
        files = [_attachment_of(attachment)] if attachment is not None else []
        result = await mentoring.clerk_followup(user, number, text, files)
        log.info("viber.mentor_followup user_id=%s number=%s", user.id, number)
        await self.send(user, result.reply)

    async def _call_back(self, user: UserProfile, tracking: str, text: str) -> None:
        """The clerk's phone number or e-mail for a call back (out of hours)."""
        number = _number(tracking[len(CALL_BACK) :])
        mentoring = self._mentoring
        if number is None or mentoring is None:
            await self._ask(user, text)
            return
        result = await mentoring.save_callback(user, number, text)
        await self.send(user, result.reply, tracking=None if result.ok else tracking)
