"""Update middlewares, outermost first:

1. `GuardMiddleware`   - times and counts updates, bounds how many are worked on at once, tracks
                         the ones in flight (for a clean shutdown), and turns "database
                         unavailable" into a polite "try again in a moment" in the clerk's
                         language; nothing crashes, the next update works.
2. `RateLimitMiddleware` - more than N messages a minute from one clerk: one polite note, the
                         rest are not processed until the minute has passed. In memory and before
                         any database work, so a flood costs the database nothing.
3. `DedupMiddleware`   - claims the update_id in the database; a redelivered update (webhook retry,
                         restart before getUpdates confirmed it) is skipped, across restarts.
4. `UserMiddleware`    - registers or loads the clerk and puts the profile into handler data.
5. i18n               - (bot.telegram.i18n) the clerk's stored language for `_()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramServerError,
)
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    EditMessageText,
    GetUpdates,
    SendDocument,
    SendMessage,
    TelegramMethod,
)
from aiogram.methods.base import Response, TelegramType
from aiogram.types import TelegramObject, Update, User

from bot.i18n import normalize_language
from bot.inbox import REPLAY, UpdateInbox
from bot.services.answering import AnswerService
from bot.services.delivery import DeliveryService
from bot.services.errors import StorageUnavailable
from bot.services.flood import FloodWindow
from bot.services.users import UserProfile, UserService
from bot.telegram.metrics import Metrics
from bot.telegram.render import chunks

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

CHANNEL = "telegram"

# aiogram parses every answer of the Bot API with `Response[<the method's result type>]`, and
# pydantic keeps such parametrised models only weakly: after each full garbage collection the
# next call builds the model again (about 12 ms for Message). Held here, they are built once.
RESPONSE_TYPES = {
    method.__returning__: Response[method.__returning__]  # type: ignore[name-defined]
    for method in (
        SendMessage, GetUpdates, AnswerCallbackQuery, EditMessageText, EditMessageReplyMarkup,
        SendDocument,
    )
}


def update_kind(update: Update) -> str:
    if update.message is not None:
        message = update.message
        if message.text is not None:
            return "command" if message.text.startswith("/") else "text"
        return "media"
    if update.callback_query is not None:
        return "callback"
    return update.event_type if _has_event(update) else "other"


def _has_event(update: Update) -> bool:
    try:
        update.event_type  # noqa: B018
    except Exception:
        return False
    return True


class LanguageMemory:
    """The last known language of recent clerks, so even with the database down a clerk is
    answered in their own language."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._languages: OrderedDict[int, str] = OrderedDict()

    def remember(self, telegram_id: int, language: str) -> None:
        self._languages[telegram_id] = language
        self._languages.move_to_end(telegram_id)
        while len(self._languages) > self._size:
            self._languages.popitem(last=False)

    def recall(self, user: User | None) -> str:
        if user is None:
            return normalize_language(None)
        known = self._languages.get(user.id)
        return known if known is not None else normalize_language(user.language_code)


def stand_in_profile(user: User | None, language: str) -> UserProfile:
    """A profile for replying when the real one cannot be loaded (database down)."""
    return UserProfile(
        id=0,
        channel=CHANNEL,
        external_id=str(user.id) if user else "",
        display_name=user.full_name if user else "",
        language=language,
        municipality=None,
        role="clerk",
        active=True,
        onboarded=False,
    )


class GuardMiddleware(BaseMiddleware):
    def __init__(
        self,
        delivery: DeliveryService,
        languages: LanguageMemory,
        metrics: Metrics,
        max_concurrent: int = 64,
    ):
        self.delivery = delivery
        self.languages = languages
        self.metrics = metrics
        # At most this many updates are worked on at once; a burst waits here (cheaply) rather
        # than in the database pool, where a long wait would end in "try again later".
        self._slots = asyncio.Semaphore(max_concurrent)
        self.in_flight = 0
        self.completed = 0  # updates fully handled since start (tests and the bench wait on it)
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        kind = update_kind(event)
        started = time.perf_counter()
        self.in_flight += 1
        self._idle.clear()
        outcome = "ok"
        try:
            async with self._slots:
                return await handler(event, data)
        except StorageUnavailable as exc:
            outcome = "storage_unavailable"
            self.metrics.storage_errors.inc()
            log.warning("update.storage_unavailable update_id=%s error=%s", event.update_id, exc)
            await self._apologise(event, data)
            return None
        except TelegramForbiddenError:
            outcome = "blocked"
            log.info("update.user_blocked_bot update_id=%s", event.update_id)
            return None
        except Exception:
            outcome = "error"
            raise
        finally:
            self.in_flight -= 1
            self.completed += 1
            if self.in_flight == 0:
                self._idle.set()
            self.metrics.updates.labels(kind=kind, outcome=outcome).inc()
            self.metrics.update_seconds.labels(kind=kind).observe(time.perf_counter() - started)

    async def _apologise(self, update: Update, data: dict[str, Any]) -> None:
        bot: Bot = data["bot"]
        from_user: User | None = data.get("event_from_user")
        profile = data.get("user")
        if not isinstance(profile, UserProfile):
            profile = stand_in_profile(from_user, self.languages.recall(from_user))
        if data.get(REPLAY):
            return  # the clerk was told when it first failed
        # DedupMiddleware leaves a failed message unfinished, to be answered later
        reply = self.delivery.storage_failed(
            profile.language, tap=update.callback_query is not None
        )
        if update.callback_query is not None:
            # It may have been answered by the handler before the database failed.
            with contextlib.suppress(TelegramAPIError):
                await update.callback_query.answer()
        try:
            chat = data.get("event_chat")
            chat_id = chat.id if chat is not None else (from_user.id if from_user else None)
            if chat_id is not None:
                for chunk in chunks(reply):
                    await bot.send_message(chat_id, chunk.text, reply_markup=chunk.markup)
        except TelegramAPIError as exc:
            log.warning("update.apology_failed update_id=%s error=%s", update.update_id, exc)


class BatchClaimMiddleware(BaseRequestMiddleware):
    """Long polling: a getUpdates answer is claimed and kept whole, in one transaction, before
    the polling loop hands its updates out. Telegram learns they arrived only from the next
    getUpdates (its offset), so a burst waiting in memory for its turn is never lost to a
    kill. When the database cannot take them the request fails: aiogram's loop backs off and
    asks again with the same offset, Telegram sends the same updates again, and they are
    answered once the database is back. Meanwhile each clerk hears, once, that the message
    is not lost."""

    TOLD_LIMIT = 10_000  # updates whose senders were told (memory bound)

    def __init__(self, inbox: UpdateInbox, languages: LanguageMemory, delivery: DeliveryService):
        self.inbox = inbox
        self.languages = languages
        self.delivery = delivery  # says what the waiting clerk hears
        self._told: set[int] = set()

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        # The type says Response; aiogram's session hands back the method's result itself.
        result: Any = await make_request(bot, method)
        if isinstance(method, GetUpdates) and result:
            try:
                await self.inbox.claim_batch(
                    [u.model_dump(mode="json", by_alias=True, exclude_none=True) for u in result]
                )
            except StorageUnavailable:
                await self._tell_waiting(bot, result)
                raise
        return cast(Response[TelegramType], result)

    async def _tell_waiting(self, bot: Bot, updates: list[Update]) -> None:
        if len(self._told) > self.TOLD_LIMIT:
            self._told.clear()
        for update in updates:
            message = update.message
            if (
                update.update_id in self._told
                or message is None
                or message.chat.type != "private"
                or message.from_user is None
            ):
                continue
            self._told.add(update.update_id)
            reply = self.delivery.kept_for_later(self.languages.recall(message.from_user))
            with contextlib.suppress(Exception):  # best effort: Telegram may be down too
                for chunk in chunks(reply):
                    await bot.send_message(message.chat.id, chunk.text, reply_markup=chunk.markup)


class DedupMiddleware(BaseMiddleware):
    """Each update_id is handled once. The claim is a row in processed_updates (a primary-key
    insert), so it holds across restarts and across several instances on one database. The
    row keeps the update until handling ends (bot.inbox): if the process dies first,
    the update is handled again after the restart instead of being lost."""

    def __init__(self, metrics: Metrics, inbox: UpdateInbox):
        self.metrics = metrics
        self.inbox = inbox

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        # A replay was claimed before the process died; a polled update with its batch.
        if not data.get(REPLAY) and not self.inbox.take_kept(event.update_id):
            kept = event.model_dump(mode="json", by_alias=True, exclude_none=True)
            if not await self.inbox.claim(event.update_id, kept):
                self.metrics.duplicates.inc()
                log.info("update.duplicate update_id=%s", event.update_id)
                return None
        self.inbox.started(event.update_id)
        try:
            result = await handler(event, data)
        except (asyncio.CancelledError, TelegramNetworkError, TelegramServerError):
            # Cut off by a shutdown, or Telegram unreachable even after the retries: left
            # unfinished, so it is handled again later (after a restart, or by the inbox scan).
            self.inbox.left_unfinished(event.update_id)
            raise
        except StorageUnavailable:
            # The database went away mid-way. A message is handled again once it is back (the
            # inbox scan); a button tap is not (GuardMiddleware asks the clerk to tap again).
            if event.callback_query is None:
                self.inbox.left_unfinished(event.update_id)
            else:
                self.inbox.finished(event.update_id)
            raise
        except BaseException:
            self.inbox.finished(event.update_id)  # failed for good (logged): not again
            raise
        self.inbox.finished(event.update_id)
        return result


class UserMiddleware(BaseMiddleware):
    def __init__(self, users: UserService, languages: LanguageMemory):
        self.users = users
        self.languages = languages

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        from_user: User | None = data.get("event_from_user")
        if from_user is None or from_user.is_bot:
            # No person behind it (a channel post, an anonymous admin, another bot): every
            # handler serves a person, so the update is logged and ignored.
            log.info("update.ignored reason=no human sender")
            return None
        data["language"] = self.languages.recall(from_user)
        profile = await self.users.get_or_register(
            CHANNEL,
            str(from_user.id),
            display_name=from_user.full_name,
            language_hint=from_user.language_code,
        )
        self.languages.remember(from_user.id, profile.language)
        data["user"] = profile
        return await handler(event, data)


class RateLimitMiddleware(BaseMiddleware):
    """A sliding one-minute window per clerk, for messages and, apart, for button taps (each
    tap is a database write; taps get TAPS_FACTOR times the message allowance).

    The first message over the limit gets a polite note; later ones in the same minute are
    dropped quietly so a runaway client cannot make the bot flood the chat either. A tap over
    the limit only gets the spinner stopped with a short note (no message, no write)."""

    TAPS_FACTOR = 3

    def __init__(
        self,
        answers: AnswerService,
        languages: LanguageMemory,
        metrics: Metrics,
        per_minute: int = 20,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.answers = answers
        self.languages = languages
        self.metrics = metrics
        self.per_minute = per_minute
        self._messages = FloodWindow(per_minute, window, clock)
        self._taps = FloodWindow(per_minute * self.TAPS_FACTOR, window, clock)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        from_user: User | None = data.get("event_from_user")
        if event.callback_query is not None and from_user is not None and self.per_minute > 0:
            if self._taps.check(from_user.id)[0]:
                return await handler(event, data)
            self.metrics.rate_limited.inc()
            log.info("callback.rate_limited telegram_id=%s", from_user.id)
            profile = stand_in_profile(from_user, self.languages.recall(from_user))
            await event.callback_query.answer(self.answers.taps_too_fast(profile).text)
            return None
        if event.message is None or from_user is None or self.per_minute <= 0:
            return await handler(event, data)
        allowed, should_warn = self._messages.check(from_user.id)
        if allowed:
            return await handler(event, data)
        self.metrics.rate_limited.inc()
        log.info("update.rate_limited telegram_id=%s", from_user.id)
        if should_warn:
            profile = stand_in_profile(from_user, self.languages.recall(from_user))
            bot: Bot = data["bot"]
            for chunk in chunks(self.answers.rate_limited(profile)):
                await bot.send_message(event.message.chat.id, chunk.text, reply_markup=chunk.markup)
        return None
