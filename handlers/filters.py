"""The routers' filters, as coroutines.

aiogram 3 runs every synchronous filter - `F.…` magic filters included - in a worker thread
(`asyncio.to_thread`), so a question that passed the private-chat check of eight routers and the
handlers' text checks cost some twenty thread hops, more CPU than the answer itself. These do
the same checks on the event loop. Each one matches exactly what the magic filter it replaces
matched (tests/telegram/test_telegram_filters.py compares them); that test also fails
when a synchronous filter or handler is registered on the routers the bot builds.

The checked object is the handler's event, passed positionally (the parameter is called `event`,
a name aiogram never puts into handler data).
"""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

PRIVATE = "private"


async def private_chat(event: Any) -> bool:
    """`F.chat.type == "private"`: a message (or membership change) in a private chat."""
    chat = getattr(event, "chat", None)
    return chat is not None and chat.type == PRIVATE


async def private_button(event: CallbackQuery) -> bool:
    """`F.message.chat.type == "private"`: a button under a message in a private chat."""
    message = event.message
    return message is not None and message.chat.type == PRIVATE


async def has_text(event: Message) -> bool:
    """`F.text`"""
    return bool(event.text)


async def not_command(event: Message) -> bool:
    """`~F.text.startswith("/")`: true for media without text as well."""
    text = event.text
    return text is None or not text.startswith("/")


async def is_command(event: Message) -> bool:
    """`F.text.startswith("/")`"""
    text = event.text
    return text is not None and text.startswith("/")


async def has_caption(event: Message) -> bool:
    """`F.caption`"""
    return bool(event.caption)


async def caption_not_command(event: Message) -> bool:
    """`~F.caption.startswith("/")`"""
    caption = event.caption
    return caption is None or not caption.startswith("/")


async def is_reply(event: Message) -> bool:
    """`F.reply_to_message`"""
    return event.reply_to_message is not None


class ButtonData(Filter):
    """`F.data == value`, or `F.data.startswith(prefix)` with `prefix=True`."""

    def __init__(self, value: str, *, prefix: bool = False) -> None:
        self.value = value
        self.prefix = prefix

    async def __call__(self, event: CallbackQuery) -> bool:
        data = event.data
        if data is None:
            return False
        return data.startswith(self.value) if self.prefix else data == self.value

    def __str__(self) -> str:
        return f"ButtonData({self.value!r}, prefix={self.prefix})"


# A text message that is not a command: what the dialogues' steps wait for.
TEXT = (has_text, not_command)


async def may_want(event: Message, raw_state: str | None = None) -> bool:
    """The gate of a router whose every message handler wants a command, an open dialogue
    (a state) or a group chat: a clerk's plain question in a private chat passes a gated
    router in this one check instead of one per handler (aiogram's call of each filter costs
    more than the filter). tests/telegram/test_telegram_filters.py fails when a gated router
    gets a handler that could take such a message. A command is what aiogram's `Command`
    takes: a text, or else a caption, that begins with "/"."""
    text = event.text or event.caption
    if text is not None and text.startswith("/"):
        return True
    return raw_state is not None or event.chat.type != PRIVATE
