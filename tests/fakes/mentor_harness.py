"""The mentor group on top of tests/fakes/harness.py: mentors tap buttons on cards in the group,
reply to cards, and talk to the bot in private; the outbox is drained on demand.

    async with FakeBotAPI() as api, MentorBot(api, url, clock=clock) as bot:
        ana = bot.clerk(1001)
        marko = bot.mentor(2001, "Marko")
        ...
        await bot.deliver_outbox()           # what the dispatcher would send now
        card = bot.card(number)              # the card as the group sees it
        await marko.tap_in_group("Preuzmi", card)
        await marko.reply_in_group(card, "Evo odgovora")
"""

from __future__ import annotations

import time
from typing import Any

from bot.channels.telegram_sender import TelegramSender
from bot.outbox import OutboxDispatcher
from bot.ratelimit import LocalRateLimiter
from storage.clock import Clock, utcnow
from tests.fakes.bot_api import BOT_ID, FakeBotAPI, SentMessage, user_dict
from tests.fakes.harness import BotUnderTest, Clerk

GROUP_ID = -1001234567890
ADMIN_ID = 9000


class MentorBot(BotUnderTest):
    def __init__(
        self,
        api: FakeBotAPI,
        database_url: str,
        *,
        group_id: int = GROUP_ID,
        admin_id: int = ADMIN_ID,
        clock: Clock = utcnow,
        **settings: Any,
    ) -> None:
        super().__init__(
            api, database_url, mentor_chat_id=group_id, admin_ids=[admin_id], clock=clock,
            **settings,
        )
        self.group_id = group_id
        self.admin_id = admin_id
        self.outbox: OutboxDispatcher | None = None

    async def start(self) -> MentorBot:
        await super().start()
        assert self.services is not None and self.runtime is not None
        services = self.services
        # The runner hands these to handlers once it is wired; harmless when it already does.
        for name in ("mentoring", "roles", "reports"):
            self.runtime.telegram.dispatcher.workflow_data.setdefault(name, getattr(services, name))
        limiter = LocalRateLimiter(per_second=1000, per_chat_interval=0, per_group_interval=0)
        self.outbox = OutboxDispatcher(
            services.database, {"telegram": TelegramSender(self.runtime.telegram.bot)}, limiter
        )
        self.outbox.on_delivered.append(services.mentoring.on_delivered)
        return self

    async def deliver_outbox(self) -> int:
        """Send everything due, as the running dispatcher would."""
        assert self.outbox is not None
        return await self.outbox.drain()

    def mentor(self, user_id: int, name: str = "Marko") -> Mentor:
        return Mentor(self, user_id, name)

    @property
    def group(self) -> list[SentMessage]:
        return self.api.seen_by(self.group_id)

    def card(self, number: int) -> SentMessage:
        for message in self.group:
            if message.text.startswith(f"<b>#{number}</b>") or message.text.startswith(
                f"#{number} "
            ):
                return message
        raise LookupError(f"no card #{number} in the group: {[m.text[:30] for m in self.group]}")


class Mentor(Clerk):
    """A mentor: a private chat with the bot (inherited) and the mentor group."""

    def __init__(self, bot: MentorBot, user_id: int, name: str) -> None:
        super().__init__(bot, user_id, None)
        self.mbot = bot
        self.name = name

    def _from(self) -> dict[str, Any]:
        return user_dict(self.user_id, first_name=self.name, language_code=None)

    def _group_chat(self) -> dict[str, Any]:
        return {"id": self.mbot.group_id, "type": "supergroup", "title": "Mentori"}

    async def say_in_group(self, text: str, reply_to: SentMessage | None = None) -> None:
        message: dict[str, Any] = {
            "message_id": self.bot.next_update_id(),
            "date": int(time.time()),
            "chat": self._group_chat(),
            "from": self._from(),
            "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
            ]
        if reply_to is not None:
            message["reply_to_message"] = {
                "message_id": reply_to.message_id,
                "date": int(time.time()),
                "chat": self._group_chat(),
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "eUprava pomoć"},
                "text": reply_to.text,
            }
        await self.bot.deliver({"update_id": self.bot.next_update_id(), "message": message})

    async def reply_in_group(self, card: SentMessage, text: str) -> None:
        await self.say_in_group(text, reply_to=card)

    async def tap_in_group(self, label_part: str, card: SentMessage) -> None:
        update_id = self.bot.next_update_id()
        update = {
            "update_id": update_id,
            "callback_query": {
                "id": f"cb{update_id}",
                "from": self._from(),
                "chat_instance": "group",
                "data": card.callback_data(label_part),
                "message": {
                    "message_id": card.message_id,
                    "date": int(time.time()),
                    "chat": self._group_chat(),
                    "from": {"id": BOT_ID, "is_bot": True, "first_name": "eUprava pomoć"},
                    "text": card.text,
                    "reply_markup": {"inline_keyboard": card.keyboard},
                },
            },
        }
        await self.bot.deliver(update)

    def toasts(self) -> list[str]:
        """Texts of answerCallbackQuery calls made for this mentor's taps."""
        return [
            str(call.params.get("text", ""))
            for call in self.bot.api.calls_of("answerCallbackQuery")
            if call.params.get("text")
        ]
