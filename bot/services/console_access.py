"""Who may use the curators' console, and how they get in.

- `/konzola` (any channel): an admin or curator gets a one-time sign-in link. The link is signed
  with CONSOLE_SECRET, bound to that user, expires after 10 minutes and is stored, so the sign-in
  consumes it: a second use, an expired link or a forged one is refused.
- A sign-in gives a session token (signed: user id, expiry, nonce) that the web channel keeps
  in a cookie; every page asks `member()` for the user as the database has them now, so a
  revoked curator is out on their next click.
- `csrf_token(session)` is what every form of the console must send back.

Channel-neutral: no HTTP here; the console (bot/console/) only translates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from bot.i18n import tr
from bot.services.audit import CONSOLE_LINK, CONSOLE_SIGN_IN, audit_record
from bot.services.replies import Reply
from bot.services.users import UserProfile, profile_of
from storage.curation import CurationRepository
from storage.uow import Database

log = logging.getLogger(__name__)

CONSOLE_ROLES: tuple[str, ...] = ("curator", "admin")
# Mentors sign in too, for the pages of their own work (the roadmaps' matrix); every page still
# names the roles it serves, so a mentor opens no knowledge-base page.
SIGN_IN_ROLES: tuple[str, ...] = ("mentor", *CONSOLE_ROLES)
LINK_MINUTES = 10
SESSION_HOURS = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SignIn:
    """A successful sign-in: who, and the session token the channel keeps for them."""

    user: UserProfile
    session: str


class ConsoleAccessService:
    def __init__(
        self,
        database: Database,
        secret: str,
        base_url: str,
        *,
        link_minutes: int = LINK_MINUTES,
        session_hours: int = SESSION_HOURS,
    ) -> None:
        self._database = database
        self._key = hashlib.sha256(("euprava-console:" + secret).encode("utf-8")).digest()
        self.base_url = base_url.rstrip("/")
        self._link_ttl = timedelta(minutes=link_minutes)
        self._session_ttl = timedelta(hours=session_hours)

    # -- signing --------------------------------------------------------------------------

    def _sign(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return _b64(digest)

    def _signed(self, purpose: str, value: str) -> str:
        return f"{value}.{self._sign(purpose, value)}"

    def _unsigned(self, purpose: str, token: str, parts: int) -> list[str] | None:
        value, _, signature = (token or "").rpartition(".")
        fields = value.split(".")
        if len(fields) != parts or not hmac.compare_digest(
            signature.encode(), self._sign(purpose, value).encode()
        ):
            return None
        return fields

    def _now_epoch(self) -> int:
        return int(self._database.clock().timestamp())

    # -- the link -------------------------------------------------------------------------

    async def request_link(self, user: UserProfile) -> Reply:
        """`/konzola`: a one-time link for an admin or curator (checked against the database),
        a polite refusal for anyone else."""
        nonce = secrets.token_urlsafe(24)
        async with self._database.uow() as uow:
            row = await uow.users.get(user.id)
            if row is None or not row.active or row.role not in SIGN_IN_ROLES:
                log.warning(
                    "console.link_refused user_id=%s role=%s",
                    user.id,
                    row.role if row else None,
                    extra={"user_id": user.id},
                )
                return Reply(
                    tr(
                        user.language,
                        "Konzola za uređivanje baze znanja dostupna je samo kuratorima i "
                        "administratorima. Ako Vam je potreban pristup, obratite se "
                        "administratoru.",
                    )
                )
            expires = self._database.clock() + self._link_ttl
            await uow.repository(CurationRepository).add_link(nonce, user.id, expires)
            await audit_record(uow, user, CONSOLE_LINK, f"user:{user.id}")
            await uow.commit()
        token = self._signed("link", f"{user.id}.{nonce}.{int(expires.timestamp())}")
        url = f"{self.base_url}/login?t={token}"
        return Reply(
            tr(
                user.language,
                "Link za prijavu u konzolu za uređivanje baze znanja važi {minutes} minuta i može "
                "se iskoristiti samo jednom. Ne prosleđujte ga nikome.",
                minutes=int(self._link_ttl.total_seconds() // 60),
            )
            + f'\n\n<a href="{html.escape(url)}">{html.escape(url)}</a>'
        )

    async def sign_in(self, token: str) -> SignIn | None:
        """Consume a sign-in link: None when it is forged, expired, already used, or its user
        is no longer an admin or curator."""
        fields = self._unsigned("link", token, 3)
        if fields is None or not fields[0].isdigit() or not fields[2].isdigit():
            log.warning("console.sign_in_refused reason=signature")
            return None
        user_id, nonce, expires = int(fields[0]), fields[1], int(fields[2])
        if expires <= self._now_epoch():
            log.warning("console.sign_in_refused reason=expired user_id=%s", user_id)
            return None
        async with self._database.uow() as uow:
            if not await uow.repository(CurationRepository).consume_link(nonce, user_id):
                log.warning("console.sign_in_refused reason=used user_id=%s", user_id)
                return None
            row = await uow.users.get(user_id)
            if row is None or not row.active or row.role not in SIGN_IN_ROLES:
                await uow.commit()  # the link is spent either way
                log.warning("console.sign_in_refused reason=role user_id=%s", user_id)
                return None
            profile = profile_of(row)
            await audit_record(uow, profile, CONSOLE_SIGN_IN, f"user:{user_id}")
            await uow.commit()
        expires_at = self._now_epoch() + int(self._session_ttl.total_seconds())
        session = self._signed(
            "session", f"{user_id}.{expires_at}.{secrets.token_urlsafe(12)}"
        )
        return SignIn(profile, session)

    # -- the session ----------------------------------------------------------------------

    async def member(self, session: str | None, roles: tuple[str, ...] = CONSOLE_ROLES) -> (
        UserProfile | None
    ):
        """The signed-in user as the database has them now, if the session is valid and their
        role is one of `roles`; None otherwise."""
        user_id = self.session_user_id(session)
        if user_id is None:
            return None
        async with self._database.uow(read_only=True) as uow:
            row = await uow.users.get(user_id)
            if row is None or not row.active or row.role not in roles:
                return None
            return profile_of(row)

    def session_user_id(self, session: str | None) -> int | None:
        fields = self._unsigned("session", session or "", 3)
        if fields is None or not fields[0].isdigit() or not fields[1].isdigit():
            return None
        if int(fields[1]) <= self._now_epoch():
            return None
        return int(fields[0])

    def csrf_token(self, session: str) -> str:
        """The token every console form carries: bound to the session, useless without it."""
        return self._sign("csrf", session)[:32]

    def csrf_ok(self, session: str | None, token: str | None) -> bool:
        if not session or not token:
            return False
        return hmac.compare_digest(self.csrf_token(session).encode(), token.encode())


def console_base_url(console_url: str | None, http_host: str, http_port: int) -> str:
    """CONSOLE_URL, or the bot's own HTTP server (a wildcard host becomes 127.0.0.1)."""
    if console_url:
        return console_url.rstrip("/")
    host = "127.0.0.1" if http_host in ("", "0.0.0.0", "::") else http_host
    return f"http://{host}:{http_port}/console"
