"""A fake Telegram Bot API server: real HTTP on 127.0.0.1, random port.

It speaks the same URL layout as the real one (`{base}/bot{token}/{method}`), so the bot under
test is pointed at it with TELEGRAM_API_BASE and runs its real aiogram code. It

- records every call (method, decoded parameters, the HTTP status it answered with);
- answers getMe, sendMessage, editMessageText, answerCallbackQuery, setMyCommands, sendDocument
  and the rest with plausible results, and keeps what each chat "sees" (messages after edits);
- serves queued updates to getUpdates with real long-polling and offset semantics: an update
  stays until a getUpdates call with a higher offset confirms it, so a bot that stops before
  confirming gets it again after a restart, exactly as with Telegram;
- can be told to fail the next N calls with 429 (retry_after), 403, 5xx, or a dropped connection.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 7000000001
BOT_TOKEN = f"{BOT_ID}:AAFakeFakeFakeFakeFakeFakeFakeFakeFa"
BOT_USERNAME = "euprava_test_bot"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str
    status: int = 200
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        if value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))

    @property
    def buttons(self) -> list[list[dict[str, Any]]]:
        markup = self.params.get("reply_markup") or {}
        return list(markup.get("inline_keyboard", []))


@dataclass
class SentMessage:
    """A message as the user sees it now (after any edits)."""

    chat_id: int
    message_id: int
    text: str
    keyboard: list[list[dict[str, Any]]]
    parse_mode: str | None
    method: str = "sendMessage"

    @property
    def button_labels(self) -> list[str]:
        return [button.get("text", "") for row in self.keyboard for button in row]

    def callback_data(self, label_part: str) -> str:
        """The callback data of the first button whose label contains `label_part`."""
        for row in self.keyboard:
            for button in row:
                if label_part in button.get("text", "") and "callback_data" in button:
                    return str(button["callback_data"])
        raise LookupError(f"no button with {label_part!r} in {self.button_labels}")


@dataclass
class _Failure:
    status: int
    remaining: int
    method: str | None
    retry_after: int | None
    description: str
    drop_connection: bool = False
    after: int = 0  # let this many matching calls through first


# Telegram's HTML parse mode: these tags only, balanced; entities &lt; &gt; &amp; &quot; &#N;
_HTML_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
    "tg-spoiler", "span", "blockquote", "tg-emoji",
}  # fmt: skip
_HTML_TOKEN = re.compile(r"<(/?)([a-zA-Z][\w-]*)([^<>]*)>|<|&([a-zA-Z]+);|&#(x?[0-9a-fA-F]+);")


def html_problem(text: str) -> str | None:
    """Why Telegram would refuse `text` with parse_mode=HTML, or None if it would accept it."""
    stack: list[str] = []
    for match in _HTML_TOKEN.finditer(text):
        token = match.group(0)
        if token == "<":
            return f"Unexpected '<' at byte offset {match.start()}"
        if match.group(4) is not None:
            if match.group(4) not in ("lt", "gt", "amp", "quot"):
                return f"Unsupported HTML entity '&{match.group(4)};'"
            continue
        if match.group(5) is not None:
            continue
        closing, name = match.group(1), match.group(2).lower()
        if name not in _HTML_TAGS:
            return f'Unsupported start tag "{name}" at byte offset {match.start()}'
        if closing:
            if not stack or stack.pop() != name:
                return f'Can\'t find end tag corresponding to start tag "{name}"'
        else:
            stack.append(name)
    if stack:
        return f'Can\'t find end tag corresponding to start tag "{stack[-1]}"'
    return None


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class FakeBotAPI:
    def __init__(self, token: str = BOT_TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.chats: dict[int, list[SentMessage]] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(100_000)
        self._message_ids = itertools.count(1)
        self._failures: list[_Failure] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.webhook: dict[str, Any] | None = None
        self.listeners: list[Callable[[Call], None]] = []
        self._closing = False
        self._held: set[str] = set()
        self._released = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeBotAPI:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        # Release pending long polls at once, so shutting down does not wait for their timeout.
        async with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- arranging -------------------------------------------------------------------------
    def next_update_id(self) -> int:
        return next(self._update_ids)

    async def queue_update(self, update: dict[str, Any]) -> int:
        """Make an update available to getUpdates; returns its update_id."""
        if "update_id" not in update:
            update = {"update_id": self.next_update_id(), **update}
        async with self._changed:
            self._updates.append(update)
            self._changed.notify_all()
        return int(update["update_id"])

    def fail_next(
        self,
        times: int = 1,
        *,
        status: int = 500,
        method: str | None = None,
        retry_after: int | None = None,
        description: str | None = None,
        drop_connection: bool = False,
        after: int = 0,
    ) -> None:
        """Answer the next `times` calls (of `method`, or of any method but getUpdates) with an
        error: 429 (give retry_after), 403, 5xx; or drop the connection (a network error).
        `after`: let that many matching calls succeed first (a later part of a message fails)."""
        default = {
            429: f"Too Many Requests: retry after {retry_after}",
            403: "Forbidden: bot was blocked by the user",
            500: "Internal Server Error",
            502: "Bad Gateway",
        }.get(status, "Error")
        self._failures.append(
            _Failure(
                status, times, method, retry_after, description or default, drop_connection, after
            )
        )

    def hold(self, method: str) -> None:
        """Calls of `method` get no answer until `release()` (Telegram very slow). A caller that
        hangs up meanwhile (a killed bot) is never counted as served."""
        self._held.add(method)
        self._released.clear()

    def release(self) -> None:
        self._held.clear()
        self._released.set()

    def clear_failures(self) -> None:
        """Telegram is well again: no more injected errors."""
        self._failures.clear()

    # ---- observing -------------------------------------------------------------------------
    def calls_of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def sent_to(self, chat_id: int) -> list[Call]:
        """Successful sendMessage calls to a chat, oldest first."""
        return [
            call
            for call in self.calls
            if call.method == "sendMessage" and call.ok and call.chat_id == chat_id
        ]

    def seen_by(self, chat_id: int) -> list[SentMessage]:
        """The chat as the user sees it: messages in order, with edits applied."""
        return list(self.chats.get(chat_id, []))

    def last_seen(self, chat_id: int) -> SentMessage:
        messages = self.seen_by(chat_id)
        if not messages:
            raise LookupError(f"chat {chat_id} has no messages")
        return messages[-1]

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            recent = [(c.method, c.status, c.params.get("text", "")[:60]) for c in self.calls[-8:]]
            raise AssertionError(f"timed out waiting for {what}; last calls: {recent}") from None

    async def wait_for_calls(
        self, method: str, count: int, *, chat_id: int | None = None, timeout: float = 5.0
    ) -> list[Call]:
        def matching() -> list[Call]:
            return [
                c
                for c in self.calls
                if c.method == method and c.ok and (chat_id is None or c.chat_id == chat_id)
            ]

        await self.wait_until(
            lambda: len(matching()) >= count, timeout, f"{count} x {method} to {chat_id}"
        )
        return matching()

    async def wait_for_messages(self, chat_id: int, count: int, timeout: float = 5.0) -> list[Call]:
        """Wait until `count` messages were sent to the chat in total; returns all of them."""
        return await self.wait_for_calls("sendMessage", count, chat_id=chat_id, timeout=timeout)

    # ---- serving ---------------------------------------------------------------------------
    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        params[key] = {"filename": value.filename, "size": len(value.file.read())}
                    else:
                        params[key] = _decode(value)
        return params

    def _take_failure(self, method: str) -> _Failure | None:
        for failure in self._failures:
            applies = (
                failure.method == method
                if failure.method is not None
                else method not in ("getUpdates", "getMe")
            )
            if applies and failure.after > 0:
                failure.after -= 1
                continue
            if applies and failure.remaining > 0:
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._failures.remove(failure)
                return failure
        return None

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            for listener in self.listeners:
                listener(call)
            self._changed.notify_all()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        method = request.match_info["method"]
        params = await self._read_params(request)
        if token != self.token:
            await self._record(Call(method, params, token, 401))
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        failure = self._take_failure(method)
        if failure is not None:
            await self._record(Call(method, params, token, failure.status))
            if failure.drop_connection:
                transport = request.transport
                if transport is not None:
                    transport.abort()
                raise ConnectionResetError("fake network error")
            body: dict[str, Any] = {
                "ok": False,
                "error_code": failure.status,
                "description": failure.description,
            }
            if failure.retry_after is not None:
                body["parameters"] = {"retry_after": failure.retry_after}
            return web.json_response(body, status=failure.status)

        if method in self._held:
            await self._released.wait()
            if request.transport is None or request.transport.is_closing():
                raise ConnectionResetError("the caller hung up while held")

        if method == "getUpdates":
            # Recorded on arrival: a test waiting for "the bot is polling" need not wait for
            # the long poll to time out.
            await self._record(Call(method, params, token))
            result: Any = await self._get_updates(params)
            return web.json_response({"ok": True, "result": result})

        problem = self._refusal(method, params)
        if problem is not None:
            await self._record(Call(method, params, token, 400))
            return web.json_response(
                {"ok": False, "error_code": 400, "description": f"Bad Request: {problem}"},
                status=400,
            )
        result = self._result_for(method, params)
        await self._record(Call(method, params, token))
        return web.json_response({"ok": True, "result": result})

    def _refusal(self, method: str, params: dict[str, Any]) -> str | None:
        """What the real Bot API would reject with 400 (the checks a bot can get wrong)."""
        text = params.get("text", params.get("caption"))
        if isinstance(text, str):
            if not text.strip() and method in ("sendMessage", "editMessageText"):
                return "message text is empty"
            if len(_visible(text, params.get("parse_mode"))) > 4096:
                return "message is too long"
            if params.get("parse_mode") == "HTML":
                problem = html_problem(text)
                if problem is not None:
                    return f"can't parse entities: {problem}"
        for row in self._keyboard(params):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    return "BUTTON_DATA_INVALID"
        return None

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params["offset"]) if params.get("offset") not in (None, "") else None
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        if offset is not None:
            async with self._changed:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]

        def available() -> bool:
            return bool(self._updates) or self._closing

        if timeout > 0 and not available():
            try:
                async with self._changed:
                    await asyncio.wait_for(self._changed.wait_for(available), timeout)
            except TimeoutError:
                return []
        return list(self._updates[:limit])

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "eUprava pomoć",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _message(self, chat_id: Any, **extra: Any) -> dict[str, Any]:
        try:
            chat: dict[str, Any] = {"id": int(chat_id), "type": "private"}
        except (TypeError, ValueError):
            chat = {"id": -1, "type": "channel", "username": str(chat_id).lstrip("@")}
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": self._bot_user(),
            **extra,
        }

    def _keyboard(self, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        markup = params.get("reply_markup") or {}
        if not isinstance(markup, dict):
            return []
        return list(markup.get("inline_keyboard", []))

    def _result_for(self, method: str, params: dict[str, Any]) -> Any:
        name = method.lower()
        if name == "getme":
            return self._bot_user()
        if name == "sendmessage":
            message = self._message(params.get("chat_id"), text=params.get("text", ""))
            chat_id = message["chat"]["id"]
            self.chats.setdefault(chat_id, []).append(
                SentMessage(
                    chat_id,
                    message["message_id"],
                    str(params.get("text", "")),
                    self._keyboard(params),
                    params.get("parse_mode"),
                )
            )
            return message
        if name in ("editmessagetext", "editmessagereplymarkup"):
            chat_id = int(params.get("chat_id", 0))
            message_id = int(params.get("message_id", 0))
            for seen in self.chats.get(chat_id, []):
                if seen.message_id == message_id:
                    if name == "editmessagetext":
                        seen.text = str(params.get("text", ""))
                        seen.parse_mode = params.get("parse_mode")
                    seen.keyboard = self._keyboard(params)
            return {**self._message(chat_id, text=params.get("text", "")), "message_id": message_id}
        if name.startswith("send"):
            message = self._message(params.get("chat_id"))
            chat_id = message["chat"]["id"]
            self.chats.setdefault(chat_id, []).append(
                SentMessage(
                    chat_id,
                    message["message_id"],
                    str(params.get("caption", "")),
                    self._keyboard(params),
                    params.get("parse_mode"),
                    method=method,
                )
            )
            if name == "senddocument":
                message["document"] = {"file_id": "doc1", "file_unique_id": "doc1u"}
            return message
        if name == "getwebhookinfo":
            return {
                "url": (self.webhook or {}).get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }
        if name == "setwebhook":
            self.webhook = dict(params)
            return True
        if name == "deletewebhook":
            self.webhook = None
            return True
        if name == "getmycommands":
            return []
        return True


def _visible(text: str, parse_mode: Any) -> str:
    if parse_mode != "HTML":
        return text
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]+>", "", text))


# ---- update builders -------------------------------------------------------------------------


def user_dict(user_id: int, first_name: str = "Milica", language_code: str | None = "sr") -> dict:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if language_code:
        user["language_code"] = language_code
    return user


def message_update(
    update_id: int,
    user_id: int,
    text: str | None = None,
    *,
    language_code: str | None = "sr",
    message_id: int | None = None,
    **content: Any,
) -> dict[str, Any]:
    """A private-chat message from a clerk; `content` adds e.g. sticker=..., photo=[...]."""
    message: dict[str, Any] = {
        "message_id": message_id or update_id,
        "date": int(time.time()),
        "chat": {"id": user_id, "type": "private", "first_name": "Milica"},
        "from": user_dict(user_id, language_code=language_code),
        **content,
    }
    if text is not None:
        message["text"] = text
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return {"update_id": update_id, "message": message}


def callback_update(
    update_id: int,
    user_id: int,
    data: str,
    *,
    message_id: int,
    message_text: str = "…",
    language_code: str | None = "sr",
) -> dict[str, Any]:
    """A tap on an inline button of a message the bot sent earlier."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cb{update_id}",
            "from": user_dict(user_id, language_code=language_code),
            "chat_instance": f"ci{user_id}",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": user_id, "type": "private", "first_name": "Milica"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "eUprava pomoć"},
                "text": message_text,
            },
        },
    }


STICKER = {
    "sticker": {
        "file_id": "stk1",
        "file_unique_id": "stk1u",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
}
PHOTO = {"photo": [{"file_id": "ph1", "file_unique_id": "ph1u", "width": 90, "height": 90}]}
VOICE = {"voice": {"file_id": "vc1", "file_unique_id": "vc1u", "duration": 3}}
DOCUMENT = {"document": {"file_id": "dc1", "file_unique_id": "dc1u", "file_name": "zahtev.pdf"}}
