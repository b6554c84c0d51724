"""A thin client for the Viber REST bot API (the `viberbot` package is unmaintained).

Calls are POSTs of JSON to `{VIBER_API_BASE}/{method}` with the `X-Viber-Auth-Token` header. Viber
answers HTTP 200 with a `status` in the body (0 = ok); errors are mapped onto the outbox's
`SendOutcome`: "receiver not subscribed" -> blocked, "too many requests" -> retry, HTTP 5xx and
network errors -> retry, bad data -> failed. Bodies are sent as UTF-8 JSON without \\u escapes,
so a Cyrillic text costs 2 bytes a character, not 6 (Viber allows about 30 KB a request).

The channel's settings (`ViberSettings`) live here too; they read the same `VIBER_*` variables
as `bot.config.Settings` plus the Viber-only ones.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config import Settings
from bot.outbox import SendOutcome

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://chatapi.viber.com/pa"
DEFAULT_WEBHOOK_PATH = "/viber/webhook"
FILES_PATH = "/viber/files"  # + /{outbox id}/{signature}/{file name}
SENDER_NAME_MAX = 28
# Events Viber should call us with (message, subscribed, unsubscribed and conversation_started
# are always sent; the list names the optional ones we want too).
EVENT_TYPES = (
    "delivered",
    "seen",
    "failed",
    "subscribed",
    "unsubscribed",
    "conversation_started",
)

# Viber's status codes (https://developers.viber.com/docs/api/rest-bot-api/#error-codes).
STATUS_OK = 0
STATUS_INVALID_URL = 1
STATUS_INVALID_AUTH_TOKEN = 2
STATUS_BAD_DATA = 3
STATUS_MISSING_DATA = 4
STATUS_RECEIVER_NOT_REGISTERED = 5
STATUS_RECEIVER_NOT_SUBSCRIBED = 6
STATUS_WEBHOOK_NOT_SET = 10
STATUS_NO_SUITABLE_DEVICE = 11
STATUS_TOO_MANY_REQUESTS = 12
STATUS_FREE_MESSAGES_EXCEEDED = 23
STATUS_NO_BALANCE = 24

_GONE = frozenset({STATUS_RECEIVER_NOT_REGISTERED, STATUS_RECEIVER_NOT_SUBSCRIBED})
_LATER = frozenset(
    {
        STATUS_WEBHOOK_NOT_SET,
        STATUS_TOO_MANY_REQUESTS,
        STATUS_FREE_MESSAGES_EXCEEDED,
        STATUS_NO_BALANCE,
    }
)
TOO_MANY_REQUESTS_WAIT = 5.0  # Viber gives no retry_after; wait a few seconds


class ViberSettings(BaseSettings):
    """The Viber channel's settings, from `VIBER_*` environment variables (and `.env`).

    VIBER_AUTH_TOKEN, VIBER_API_BASE  - as in bot.config.Settings
    VIBER_BOT_NAME                    - sender name on every message (max 28 characters)
    VIBER_BOT_AVATAR                  - optional URL of the sender's avatar
    VIBER_WEBHOOK_URL                 - public HTTPS URL of this instance's Viber webhook; when
                                        unset, derived from WEBHOOK_URL's origin + /viber/webhook
    VIBER_BROADCASTS                  - include Viber users in broadcasts (Viber bills messages
                                        the bot starts on commercial accounts); default false
    """

    model_config = SettingsConfigDict(env_prefix="VIBER_", env_file=".env", extra="ignore")

    auth_token: SecretStr | None = None
    api_base: str = DEFAULT_API_BASE
    bot_name: str = "eUprava za sve"
    bot_avatar: str | None = None
    webhook_url: str | None = None
    broadcasts: bool = False

    @field_validator("api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("bot_name")
    @classmethod
    def _short_name(cls, value: str) -> str:
        return value.strip()[:SENDER_NAME_MAX] or "eUprava za sve"

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ViberSettings:
        """Viber settings completed from the app's Settings (token, API base, public URL)."""
        values: dict[str, Any] = {}
        if settings.viber_auth_token is not None:
            values["auth_token"] = settings.viber_auth_token
        if settings.viber_api_base:
            values["api_base"] = settings.viber_api_base
        values.update(overrides)
        viber = cls(**values)
        if viber.webhook_url is None and settings.webhook_url:
            parts = urlsplit(settings.webhook_url)
            if parts.scheme and parts.netloc:
                viber.webhook_url = f"{parts.scheme}://{parts.netloc}{DEFAULT_WEBHOOK_PATH}"
        return viber

    @property
    def token(self) -> str:
        return self.auth_token.get_secret_value().strip() if self.auth_token else ""

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    @property
    def webhook_path(self) -> str:
        path = urlsplit(self.webhook_url or "").path
        return path if path and path != "/" else DEFAULT_WEBHOOK_PATH

    @property
    def public_origin(self) -> str | None:
        """`https://host[:port]` of the public webhook URL: where Viber can fetch files we
        send (calendar files), or None when the URL is unknown."""
        parts = urlsplit(self.webhook_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return None
        return f"{parts.scheme}://{parts.netloc}"


def viber_included_in_broadcasts(settings: ViberSettings | None = None) -> bool:
    """Do broadcasts go to Viber users too? (VIBER_BROADCASTS, default false)."""
    settings = settings if settings is not None else ViberSettings()
    return settings.enabled and settings.broadcasts


def broadcast_channels(settings: ViberSettings | None = None) -> tuple[str, ...]:
    """The channels a broadcast goes to: `audience_members(..., channels=broadcast_channels())`."""
    return ("telegram", "viber") if viber_included_in_broadcasts(settings) else ("telegram",)


@dataclass(frozen=True)
class ViberResponse:
    """What Viber answered: `status` 0 is success; `data` is the whole JSON body."""

    status: int
    status_message: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


class ViberTransportError(Exception):
    """No usable answer: network error, timeout, HTTP 5xx or a body that is not Viber's JSON."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def outcome_of(response: ViberResponse) -> SendOutcome:
    """Viber's answer to send_message as the outbox understands it."""
    if response.ok:
        token = response.data.get("message_token")
        return SendOutcome("sent", external_id=str(token) if token is not None else None)
    error = f"viber {response.status}: {response.status_message}"[:200]
    if response.status in _GONE:
        return SendOutcome("blocked", error=error)
    if response.status == STATUS_TOO_MANY_REQUESTS:
        return SendOutcome("retry", retry_after=TOO_MANY_REQUESTS_WAIT, error=error)
    if response.status in _LATER:
        return SendOutcome("retry", error=error)
    return SendOutcome("failed", error=error)


def encode(body: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (what Viber counts against its ~30 KB limit)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class ViberClient:
    """`send_message`, `set_webhook`, `get_account_info` over one aiohttp session."""

    def __init__(
        self,
        auth_token: str,
        api_base: str = DEFAULT_API_BASE,
        *,
        timeout: float = 15.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._token = auth_token
        self._base = api_base.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._own_session = session is None

    @classmethod
    def from_settings(cls, settings: ViberSettings) -> ViberClient:
        return cls(settings.token, settings.api_base)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._own_session and not self._session.closed:
            await self._session.close()
        self._session = None

    async def call(self, method: str, body: dict[str, Any]) -> ViberResponse:
        """POST one API call; raises ViberTransportError when there is no Viber answer."""
        headers = {
            "X-Viber-Auth-Token": self._token,
            "Content-Type": "application/json; charset=utf-8",
        }
        try:
            async with self._http().post(
                f"{self._base}/{method}", data=encode(body), headers=headers
            ) as response:
                raw = await response.read()
                if response.status >= 500 or response.status == 429:
                    raise ViberTransportError(f"HTTP {response.status} from Viber")
                if response.status != 200:
                    raise ViberTransportError(f"HTTP {response.status} from Viber", retryable=False)
        except (TimeoutError, aiohttp.ClientError) as error:
            raise ViberTransportError(f"{type(error).__name__}: {error}"[:200]) from error
        try:
            data = json.loads(raw)
        except ValueError:
            raise ViberTransportError("Viber answered with a body that is not JSON") from None
        if not isinstance(data, dict):
            raise ViberTransportError("Viber answered with an unexpected body")
        status = data.get("status")
        return ViberResponse(
            status=int(status) if isinstance(status, int) else -1,
            status_message=str(data.get("status_message", "")),
            data=data,
        )

    async def send(self, receiver: str, message: dict[str, Any]) -> SendOutcome:
        """Send one prepared message (see bot.channels.viber_render) to `receiver`."""
        try:
            response = await self.call("send_message", {"receiver": receiver, **message})
        except ViberTransportError as error:
            return SendOutcome("retry" if error.retryable else "failed", error=str(error))
        outcome = outcome_of(response)
        if outcome.status != "sent":
            log.info(
                "viber.send_failed status=%s message=%s", response.status, response.status_message
            )
        return outcome

    async def send_message(
        self,
        receiver: str,
        text: str,
        *,
        sender_name: str,
        sender_avatar: str | None = None,
        keyboard: dict[str, Any] | None = None,
        tracking_data: str | None = None,
    ) -> SendOutcome:
        """A text message (with an optional keyboard) from `sender_name`."""
        sender: dict[str, Any] = {"name": sender_name[:SENDER_NAME_MAX]}
        if sender_avatar:
            sender["avatar"] = sender_avatar
        message: dict[str, Any] = {
            "min_api_version": 1,
            "sender": sender,
            "type": "text",
            "text": text,
        }
        if keyboard:
            message["keyboard"] = keyboard
        if tracking_data:
            message["tracking_data"] = tracking_data
        return await self.send(receiver, message)

    async def set_webhook(
        self, url: str, event_types: tuple[str, ...] = EVENT_TYPES, *, send_name: bool = True
    ) -> ViberResponse:
        """Point Viber at our webhook. Viber calls the URL at once (event "webhook"), so the
        HTTP server must already be listening."""
        return await self.call(
            "set_webhook",
            {
                "url": url,
                "event_types": list(event_types),
                "send_name": send_name,
                "send_photo": False,
            },
        )

    async def remove_webhook(self) -> ViberResponse:
        return await self.call("set_webhook", {"url": ""})

    async def get_account_info(self) -> ViberResponse:
        return await self.call("get_account_info", {})
