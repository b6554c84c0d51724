"""Broadcasts: an admin's announcement to everyone or to a segment, at Telegram's full speed.

draft (text validated, preview, audience counted) -> running (deliveries queued as outbox rows
in chunks, batch ``broadcast:<id>``, one dedupe key per user) -> done | cancelled.
The outbox dispatcher sends the rows paced by the rate limiter; `tick()` (every 2 s from the
scheduler) finishes queuing after a crash, edits the admin's progress message when the counts
changed, and when nothing is left sends the final report (sent / blocked / failed).

Crash safety: a delivery row is 'sent' once Telegram accepted it; a row claimed by a process
that died comes back when its lease ends; queuing resumes from `queued_up_to` and dedupe keys
make it idempotent. The one window for a repeat is a message accepted by Telegram whose row
could not be marked before the crash (at most the messages in flight at that moment).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.i18n import N_, tr
from bot.services.audience import (
    DEFAULT_SERVICES,
    Audience,
    AudienceError,
    ServiceInfo,
    audience_members,
    parse_audience,
)
from bot.services.audit import BROADCAST_CANCEL, BROADCAST_SEND, audit_record
from bot.services.buttons import pack, parse
from bot.services.buttons_mentoring import BroadcastAction
from bot.services.messages import reply_to_payload
from bot.services.municipalities import MunicipalityDirectory
from bot.services.replies import Button, Reply
from bot.services.roles import unless_admin
from bot.services.trainings import Invalid
from bot.services.users import UserProfile
from storage.clock import Clock
from storage.trainings import Broadcast, BroadcastRepository
from storage.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

__all__ = ["BroadcastCounts", "BroadcastService", "validate_html"]

ALLOWED_TAGS = ("b", "i", "u", "a", "code")
MAX_TEXT = 4096
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)((?:\s+[^<>]*)?)\s*(/?)>")
_HREF = re.compile(r'^\s+href\s*=\s*"([^"<>]*)"\s*$')
_BARE_BRACKET = N_("Znak &lt; ili &gt; nije dozvoljen van oznaka; napišite &amp;lt; ili &amp;gt;.")
_ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")


def validate_html(text: str) -> str:
    """Check an admin's text against Telegram's safe subset (<b> <i> <u> <a href> <code>).

    Bare `&` are escaped; anything else that is not allowed raises Invalid with a clear
    message. Returns the text ready to send."""
    value = text.strip()
    if not value:
        raise Invalid("Tekst je prazan.")
    out: list[str] = []
    stack: list[str] = []
    visible = 0
    pos = 0
    for match in _TAG.finditer(value):
        chunk = value[pos:match.start()]
        if "<" in chunk or ">" in chunk:
            raise Invalid(_BARE_BRACKET)
        out.append(_escape_amp(chunk))
        visible += len(html.unescape(chunk))
        closing, tag, attrs, selfclose = match.group(1), match.group(2).lower(), match.group(3), \
            match.group(4)
        if tag not in ALLOWED_TAGS or selfclose:
            raise Invalid(
                "Oznaka &lt;{tag}&gt; nije dozvoljena. Dozvoljene su: b, i, u, a href, code.",
                tag=html.escape(tag),
            )
        if closing:
            if attrs.strip() or not stack or stack[-1] != tag:
                raise Invalid("Oznaka &lt;/{tag}&gt; ne zatvara otvorenu oznaku.", tag=tag)
            stack.pop()
            out.append(f"</{tag}>")
        elif tag == "a":
            href = _HREF.match(attrs or "")
            url = html.unescape(href.group(1)) if href else ""
            parts = urlsplit(url)
            if not href or parts.scheme not in ("http", "https", "tg") or not (
                parts.netloc or parts.scheme == "tg"
            ):
                raise Invalid("Link mora izgledati ovako: &lt;a href=\"https://primer.rs\"&gt;tekst&lt;/a&gt;.")
            stack.append(tag)
            out.append(f'<a href="{html.escape(url, quote=True)}">')
        else:
            if attrs.strip():
                raise Invalid("Oznaka &lt;{tag}&gt; ne sme imati atribute.", tag=tag)
            stack.append(tag)
            out.append(f"<{tag}>")
        pos = match.end()
    tail = value[pos:]
    if "<" in tail or ">" in tail:
        raise Invalid(_BARE_BRACKET)
    out.append(_escape_amp(tail))
    visible += len(html.unescape(tail))
    if stack:
        raise Invalid("Oznaka &lt;{tag}&gt; nije zatvorena.", tag=stack[-1])
    if visible > MAX_TEXT:
        raise Invalid("Tekst je predugačak ({n} znakova; najviše {max}).", n=visible, max=MAX_TEXT)
    return "".join(out)


def _escape_amp(chunk: str) -> str:
    result: list[str] = []
    pos = 0
    for match in _ENTITY.finditer(chunk):
        result.append(chunk[pos:match.start()].replace("&", "&amp;"))
        result.append(match.group(0))
        pos = match.end()
    result.append(chunk[pos:].replace("&", "&amp;"))
    return "".join(result)


@dataclass(frozen=True)
class BroadcastCounts:
    total: int = 0
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    cancelled: int = 0
    expired: int = 0
    waiting: int = 0

    @property
    def done(self) -> int:
        return self.sent + self.blocked + self.failed + self.cancelled + self.expired

    @classmethod
    def from_statuses(cls, statuses: dict[str, int]) -> BroadcastCounts:
        return cls(
            total=sum(statuses.values()),
            sent=statuses.get("sent", 0),
            blocked=statuses.get("blocked", 0),
            failed=statuses.get("failed", 0),
            cancelled=statuses.get("cancelled", 0),
            expired=statuses.get("expired", 0),
            waiting=statuses.get("pending", 0) + statuses.get("sending", 0),
        )


class BroadcastService:
    def __init__(
        self,
        database: Database,
        *,
        directory: MunicipalityDirectory | None = None,
        services: Sequence[ServiceInfo] = DEFAULT_SERVICES,
        clock: Clock | None = None,
        channels: Sequence[str] = ("telegram",),
        chunk_size: int = 500,
    ) -> None:
        self._database = database
        self._directory = directory or MunicipalityDirectory.from_csv()
        self._services = tuple(services)
        self._clock = clock or database.clock  # the program's one clock
        self._channels = tuple(channels)
        self._chunk = chunk_size
        self._shown: dict[int, BroadcastCounts] = {}

    def refusal(self, actor: UserProfile, action: str) -> Reply | None:
        """None for an admin; otherwise the polite refusal (logged). Channels call it
        before starting a dialogue; every privileged use case checks again itself."""
        return unless_admin(actor, action)

    @property
    def services(self) -> tuple[ServiceInfo, ...]:
        return self._services

    @staticmethod
    def batch(broadcast_id: int) -> str:
        return f"broadcast:{broadcast_id}"

    def parse_audience(self, text: str) -> Audience:
        try:
            return parse_audience(text, self._directory, services=self._services,
                                  allow_roles=True)
        except AudienceError as error:
            raise Invalid(error.msgid, **error.values) from None

    async def count_audience(self, audience: Audience) -> int:
        total = 0
        async for members, _last in audience_members(
            self._database, audience, channels=self._channels, page_size=2000
        ):
            total += len(members)
        return total

    # ---- draft, preview, start -------------------------------------------------------------
    async def draft(
        self, actor: UserProfile, text: str, audience: Audience
    ) -> tuple[int | None, Reply]:
        """Save a draft and return the preview with "Pošalji" / "Odustani"."""
        refused = self.refusal(actor, "broadcast.draft")
        if refused is not None:
            return None, refused
        lang = actor.language
        try:
            clean = validate_html(text)
        except Invalid as error:
            return None, Reply(error.message(lang))
        count = await self.count_audience(audience)
        kind, values = audience.to_row()
        async with self._database.uow() as uow:
            row = await uow.repository(BroadcastRepository).add(Broadcast(
                text=clean, audience_kind=kind, audience_values=values, state="draft",
                created_by=actor.id, queued_up_to=0, queued_all=False, total=count, sent=0,
                blocked=0, failed=0, cancelled=0,
            ))
            broadcast_id = row.id
            await uow.commit()
        preview = (
            tr(lang, "Pregled obaveštenja (primaoci: {audience}, ukupno {count}):",
               audience=html.escape(audience.describe(lang, self._services)), count=count)
            + "\n\n" + clean
        )
        return broadcast_id, Reply(preview, ((
            Button(tr(lang, "Pošalji"), pack(BroadcastAction("go", broadcast_id))),
            Button(tr(lang, "Odustani"), pack(BroadcastAction("no", broadcast_id))),
        ),))

    async def start(
        self, actor: UserProfile, broadcast_id: int, *, admin_channel: str, admin_chat_id: str
    ) -> Reply:
        """Confirmed: queue the progress message and the deliveries; the dispatcher sends."""
        refused = self.refusal(actor, "broadcast.start")
        if refused is not None:
            return refused
        lang = actor.language
        async with self._database.uow() as uow:
            repo = uow.repository(BroadcastRepository)
            if not await repo.transition(broadcast_id, ("draft",), "running"):
                row = await repo.get(broadcast_id)
                state = row.state if row else "missing"
                return Reply(tr(lang, "Ovo obaveštenje je već poslato ili otkazano ({state}).",
                                state=state))
            row = await repo.get(broadcast_id)
            assert row is not None
            row.admin_channel = admin_channel
            row.admin_chat_id = admin_chat_id
            await uow.outbox.add(
                channel=admin_channel, chat_id=admin_chat_id, user_id=actor.id,
                kind="broadcast_progress", dedupe_key=f"broadcast-progress:{broadcast_id}",
                priority=0, payload=reply_to_payload(
                    self._progress_reply(broadcast_id, lang, BroadcastCounts(total=row.total),
                                         running=True)),
            )
            await audit_record(uow, actor, BROADCAST_SEND, f"broadcast:{broadcast_id}", {
                "audience": row.audience_kind, "values": list(row.audience_values or [])[:20],
                "total": row.total,
            })
            await uow.commit()
        log.info("broadcast started", extra={"user_id": actor.id, "broadcast_id": broadcast_id})
        queued = await self._enqueue(broadcast_id)
        return Reply(tr(lang, "Slanje je počelo: {count} primalaca.", count=queued))

    async def _enqueue(self, broadcast_id: int) -> int:
        """Queue deliveries from where queuing stopped (chunks, one transaction each)."""
        async with self._database.uow(read_only=True) as uow:
            row = await uow.repository(BroadcastRepository).get(broadcast_id)
            if row is None or row.state != "running" or row.queued_all:
                return row.total if row else 0
            audience = Audience.from_row(row.audience_kind, row.audience_values)
            text, after = row.text, row.queued_up_to
        batch = self.batch(broadcast_id)
        async for members, last in audience_members(
            self._database, audience, channels=self._channels, after_id=after,
            page_size=self._chunk,
        ):
            rows = [
                {
                    "channel": u.channel, "chat_id": u.external_id, "user_id": u.id,
                    "kind": "broadcast", "batch": batch, "priority": 200,
                    "dedupe_key": f"{batch}:{u.id}",
                    "payload": reply_to_payload(Reply(text)),
                }
                for u in members
            ]
            async with self._database.uow() as uow:
                repo = uow.repository(BroadcastRepository)
                row = await repo.get(broadcast_id)
                if row is None or row.state != "running":
                    return 0  # cancelled meanwhile: queue nothing more
                if rows:
                    await uow.outbox.add_many(rows)
                row.queued_up_to = last
                await uow.commit()
        async with self._database.uow() as uow:
            repo = uow.repository(BroadcastRepository)
            row = await repo.get(broadcast_id)
            if row is None:
                return 0
            counts = BroadcastCounts.from_statuses(await uow.outbox.counts_by_status(batch))
            if row.state == "running":
                row.queued_all = True
            row.total = counts.total
            await uow.commit()
            return counts.total

    # ---- progress, report, cancel -------------------------------------------------------
    def _progress_reply(
        self, broadcast_id: int, lang: str, counts: BroadcastCounts, *, running: bool
    ) -> Reply:
        if running:
            text = tr(lang, "📤 Obaveštenje #{id}: poslato {sent} od {total} "
                            "(blokirali bota: {blocked}, neuspešno: {failed}).",
                      id=broadcast_id, sent=counts.sent, total=counts.total,
                      blocked=counts.blocked, failed=counts.failed)
            stop = Button(tr(lang, "Zaustavi slanje"), pack(BroadcastAction("stop", broadcast_id)))
            return Reply(text, ((stop,),))
        return Reply(self._report_text(broadcast_id, lang, counts))

    def _report_text(self, broadcast_id: int, lang: str, counts: BroadcastCounts) -> str:
        return tr(lang, "Obaveštenje #{id} je završeno: poslato {sent}, blokirali bota "
                        "{blocked}, neuspešno {failed}, otkazano {cancelled}.",
                  id=broadcast_id, sent=counts.sent, blocked=counts.blocked,
                  failed=counts.failed, cancelled=counts.cancelled + counts.expired)

    async def counts(self, broadcast_id: int) -> BroadcastCounts:
        async with self._database.uow(read_only=True) as uow:
            return BroadcastCounts.from_statuses(
                await uow.outbox.counts_by_status(self.batch(broadcast_id)))

    async def state(self, broadcast_id: int) -> str | None:
        async with self._database.uow(read_only=True) as uow:
            row = await uow.repository(BroadcastRepository).get(broadcast_id)
            return None if row is None else row.state

    async def cancel(self, actor: UserProfile, broadcast_id: int) -> Reply:
        """Stop a draft or a running broadcast: unsent deliveries are cancelled."""
        refused = self.refusal(actor, "broadcast.cancel")
        if refused is not None:
            return refused
        lang = actor.language
        async with self._database.uow() as uow:
            repo = uow.repository(BroadcastRepository)
            row = await repo.get(broadcast_id)
            was = row.state if row else None
            if row is None or not await repo.transition(
                broadcast_id, ("draft", "running"), "cancelled"
            ):
                return Reply(tr(lang, "Ovo obaveštenje je već poslato ili otkazano ({state}).",
                                state=was or "-"))
            stopped = await uow.outbox.cancel_batch(self.batch(broadcast_id))
            await audit_record(uow, actor, BROADCAST_CANCEL, f"broadcast:{broadcast_id}",
                               {"was": was, "stopped": stopped})
            await uow.commit()
        log.info("broadcast cancelled", extra={"user_id": actor.id,
                                               "broadcast_id": broadcast_id, "stopped": stopped})
        if was == "draft":
            return Reply(tr(lang, "Odustali ste; obaveštenje nije poslato."))
        await self._finish(broadcast_id)
        return Reply(tr(lang, "Slanje je zaustavljeno; {count} poruka nije poslato.",
                        count=stopped))

    async def tick(self) -> None:
        """Every couple of seconds: finish queuing, update progress, close finished ones."""
        async with self._database.uow(read_only=True) as uow:
            running = [b.id for b in
                       await uow.repository(BroadcastRepository).in_state("running")]
        for broadcast_id in running:
            await self._enqueue(broadcast_id)
            await self._progress(broadcast_id)

    async def _progress(self, broadcast_id: int) -> None:
        batch = self.batch(broadcast_id)
        async with self._database.uow() as uow:
            repo = uow.repository(BroadcastRepository)
            row = await repo.get(broadcast_id)
            if row is None or row.state != "running":
                return
            counts = BroadcastCounts.from_statuses(await uow.outbox.counts_by_status(batch))
            finished = row.queued_all and counts.waiting == 0
            message_id = await repo.progress_message_id(broadcast_id)
            if (
                not finished
                and message_id
                and self._shown.get(broadcast_id) != counts
                and not await self._progress_edit_waiting(uow, broadcast_id)
            ):
                lang = await self._admin_language(uow, row)
                await uow.outbox.add(
                    channel=row.admin_channel or "telegram", chat_id=row.admin_chat_id or "",
                    kind="broadcast_progress", priority=0, user_id=row.created_by,
                    batch=self._progress_batch(broadcast_id),
                    payload=reply_to_payload(
                        self._progress_reply(broadcast_id, lang, counts, running=True),
                        edit_message_id=int(message_id)),
                )
                self._shown[broadcast_id] = counts
            row.sent, row.blocked, row.failed = counts.sent, counts.blocked, counts.failed
            await uow.commit()
        if finished:
            async with self._database.uow() as uow:
                won = await uow.repository(BroadcastRepository).transition(
                    broadcast_id, ("running",), "done")
                await uow.commit()
            if won:
                await self._finish(broadcast_id)

    @classmethod
    def _progress_batch(cls, broadcast_id: int) -> str:
        return f"{cls.batch(broadcast_id)}:progress"

    async def _progress_edit_waiting(self, uow: UnitOfWork, broadcast_id: int) -> bool:
        """One progress edit at a time: the admin's chat takes one message a second, so edits
        queued faster would pile up there (and, waiting past their lease, be claimed twice)."""
        counts = await uow.outbox.counts_by_status(self._progress_batch(broadcast_id))
        return bool(counts.get("pending") or counts.get("sending"))

    async def _admin_language(self, uow: UnitOfWork, row: Broadcast) -> str:
        admin = await uow.users.get(row.created_by) if row.created_by else None
        return admin.language if admin else "sr-Latn"

    async def _finish(self, broadcast_id: int) -> None:
        """Final counts on the progress message and a report message to the admin."""
        batch = self.batch(broadcast_id)
        async with self._database.uow() as uow:
            repo = uow.repository(BroadcastRepository)
            row = await repo.get(broadcast_id)
            if row is None or row.admin_chat_id is None:
                return
            counts = BroadcastCounts.from_statuses(await uow.outbox.counts_by_status(batch))
            row.total, row.sent, row.blocked = counts.total, counts.sent, counts.blocked
            row.failed, row.cancelled = counts.failed, counts.cancelled + counts.expired
            lang = await self._admin_language(uow, row)
            report = self._report_text(broadcast_id, lang, counts)
            channel = row.admin_channel or "telegram"
            message_id = await repo.progress_message_id(broadcast_id)
            if message_id:
                await uow.outbox.add(
                    channel=channel, chat_id=row.admin_chat_id, kind="broadcast_progress",
                    priority=0, user_id=row.created_by,
                    payload=reply_to_payload(Reply(report), edit_message_id=int(message_id)),
                )
            await uow.outbox.add(
                channel=channel, chat_id=row.admin_chat_id, kind="broadcast_report",
                priority=0, user_id=row.created_by, dedupe_key=f"broadcast-report:{broadcast_id}",
                payload=reply_to_payload(Reply("✅ " + report)),
            )
            await uow.commit()
        self._shown.pop(broadcast_id, None)
        log.info("broadcast finished", extra={
            "broadcast_id": broadcast_id, "sent": counts.sent, "blocked": counts.blocked,
            "failed": counts.failed, "cancelled": counts.cancelled})

    # ---- button tokens ---------------------------------------------------------------------
    @staticmethod
    def spends_buttons(user: UserProfile, action: str) -> bool:
        """Is the tapped message's keyboard used up? The preview's "Pošalji"/"Odustani" are,
        for an admin, either way; the progress message's "Zaustavi slanje" is this service's
        to replace (its next edit or the report does)."""
        return user.is_admin and not action.startswith("bc:stop")

    async def perform(
        self, user: UserProfile, action: str, *, chat_channel: str, chat_id: str
    ) -> Reply | None:
        token = parse(action)
        if not isinstance(token, BroadcastAction):  # forged, or an old format
            spent = Reply(tr(user.language, "Ovo dugme više ne važi."))
            return spent if action.startswith("bc:") else None
        verb, broadcast_id = token.action, token.broadcast_id
        if verb == "go":
            return await self.start(user, broadcast_id, admin_channel=chat_channel,
                                    admin_chat_id=chat_id)
        if verb in ("no", "stop"):
            return await self.cancel(user, broadcast_id)
        return Reply(tr(user.language, "Ovo dugme više ne važi."))
