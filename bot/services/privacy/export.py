"""Export (/moji_podaci): everything held about a clerk as one JSON file, sent directly or by a
short-lived link (Viber); expired export files are cleared."""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta

from sqlalchemy import select

from bot.i18n import tr
from bot.services.messages import reply_to_payload
from bot.services.privacy.base import PrivacyBase
from bot.services.privacy.common import (
    EXPORT_FORMAT,
    EXPORT_KIND,
    EXPORT_LINK_SECONDS,
    ExportFile,
)
from bot.services.replies import Reply
from bot.services.users import UserProfile
from storage.models import OutboxMessage
from storage.operations import PrivacyRepository
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)


class PrivacyExport(PrivacyBase):
    """The clerk's data export, and clearing expired export files."""

    async def export(self, user: UserProfile) -> ExportFile:
        """Everything held about the user as a JSON file (recorded, counts only)."""
        now = self._clock()
        async with self._database.uow() as uow:
            repository = uow.repository(PrivacyRepository)
            exported = await repository.export_user(user.id)
            counts = {name: len(rows) for name, rows in exported["data"].items()}
            await repository.record_request(user.id, "export", {"rows": counts}, at=now)
            await uow.commit()
        document = {
            "format": EXPORT_FORMAT,
            "version": 1,
            "generated_at": now.isoformat(),
            "explanation": tr(
                user.language,
                "Svi podaci koje bot čuva o Vama: Vaš nalog (user), zatim po tabelama redovi "
                "koji pripadaju Vama (data) i spisak zapisa u kojima se samo pominjete "
                "(references). Vreme je u UTC.",
            ),
            **exported,
        }
        content = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False).encode()
        log.info("privacy.exported", extra={"user_id": user.id, "bytes": len(content)})
        stamp = now.strftime("%Y-%m-%d")
        return ExportFile(
            filename=f"moji_podaci_{stamp}.json",
            content=content,
            caption=tr(
                user.language,
                "Ovo su svi podaci koje čuvamo o Vama. Za brisanje pošaljite /obrisi_me.",
            ),
            counts=counts,
        )

    async def queue_export(self, user: UserProfile) -> ExportFile:
        """/moji_podaci for a channel that sends files from the outbox by link (Viber fetches a
        file from a URL we give it; it cannot take an upload): the export as a document row
        addressed to the user, which the channel's sender delivers (file, then the caption).

        The file holds personal data, so the row must not keep it around:

        * the row expires EXPORT_LINK_SECONDS after it is queued: the dispatcher no longer
          sends it, and the channel no longer serves its file (a link copied into a log or
          fetched late opens nothing); the user can simply ask again;
        * its bytes are removed by the daily retention job (``clear_expired_exports``), so a
          copy lives at most about a day beside the data it copies;
        * a deletion (/obrisi_me) empties every outbox row addressed to the user at once,
          exports included.

        The file is not removed on the first download: Viber may fetch it again (a retried
        send), and a second fetch must not turn a delivered export into an error."""
        exported = await self.export(user)
        document = {
            "filename": exported.filename,
            "content_b64": base64.b64encode(exported.content).decode("ascii"),
        }
        async with self._database.uow() as uow:
            await uow.outbox.add(
                channel=user.channel,
                chat_id=user.external_id,
                user_id=user.id,
                kind=EXPORT_KIND,
                payload=reply_to_payload(Reply(exported.caption), document=document),
                priority=10,
                expires_at=self._clock() + timedelta(seconds=EXPORT_LINK_SECONDS),
            )
            await uow.commit()
        log.info("privacy.export_queued", extra={"user_id": user.id, "channel": user.channel})
        return exported

    async def clear_expired_exports(self) -> int:
        """Remove the bytes of export files whose rows have expired (see ``queue_export``);
        returns how many were cleared. The daily retention job does this too."""
        async with self._database.uow() as uow:
            cleared = await self._clear_expired_exports(uow)
            await uow.commit()
        return cleared

    async def _clear_expired_exports(self, uow: UnitOfWork) -> int:
        content = OutboxMessage.payload[("document", "content_b64")].as_string()
        rows = await uow.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.kind == EXPORT_KIND,
                OutboxMessage.expires_at < self._clock(),
                content.is_not(None),
            )
        )
        cleared = 0
        for row in rows:
            document = (row.payload or {}).get("document") or {}
            row.payload = {**row.payload, "document": {"filename": document.get("filename")}}
            cleared += 1
        await uow.flush()
        return cleared
