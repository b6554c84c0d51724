"""Delivers outbox messages (channel "viber") to Viber and reports what happened; the dispatcher
owns retries and pacing, as for Telegram.

Payloads are the channel-neutral ones (`reply_to_payload`). Viber cannot edit a message
(`edit_message_id` sends a new one) or quote one (`reply_to_message_id` is ignored); a
`document` cannot be uploaded: Viber fetches files from a public URL, so when the public URL is
known (VIBER_WEBHOOK_URL) the file is offered at `/viber/files/<outbox id>/<signature>/<name>`
(served by the channel's app from the outbox row, until the row's `expires_at` if it has one:
a privacy export's link works only for a few minutes) and sent as a "file" message before the
text; otherwise the text says where to get the file (`DOCUMENT_NOTE`). A text longer than one Viber
message goes as several; if a later part fails, the row is not retried (that would repeat the
first parts) and the loss is logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from typing import Any
from urllib.parse import quote

from bot.channels.viber_client import FILES_PATH, ViberClient, ViberSettings
from bot.channels.viber_render import Sender, default_rows, render
from bot.i18n import tr
from bot.outbox import Outgoing, SendOutcome
from bot.services.delivery import DeliveryService
from bot.services.messages import payload_to_reply
from bot.services.replies import Reply

log = logging.getLogger(__name__)

CHANNEL = "viber"


# A calendar file (.ics) and other documents cannot be attached on Viber.
def file_signature(auth_token: str, outbox_id: int, filename: str) -> str:
    """Guards the file links: only links we made open a file."""
    key = auth_token.encode("utf-8")
    return hmac.new(key, f"file:{outbox_id}:{filename}".encode(), hashlib.sha256).hexdigest()[:32]


DOCUMENT_NOTE = (
    "Datoteku ({filename}) Viber ne može da primi; ako Vam treba, zatražite je od mentora ili "
    "je preuzmite preko Telegram bota."
)


class ViberSender:
    """A `bot.outbox.Sender` for Viber users (`chat_id` is the Viber user id)."""

    def __init__(
        self,
        client: ViberClient,
        settings: ViberSettings,
        delivery: DeliveryService | None = None,
        *,
        mentor: bool = False,
        trainings: bool = False,
    ) -> None:
        self._client = client
        self._menu = {"mentor": mentor, "trainings": trainings}
        self._settings = settings
        self._sender = Sender(settings.bot_name, settings.bot_avatar)
        self._delivery = delivery

    def _file_message(self, message: Outgoing, document: dict[str, Any]) -> dict[str, Any] | None:
        """A "file" message pointing at our file link, or None when Viber could not fetch it."""
        origin = self._settings.public_origin
        filename = str(document.get("filename") or "")
        if origin is None or not filename or not self._settings.token:
            return None
        try:
            size = len(base64.b64decode(str(document.get("content_b64", "")), validate=True))
        except (binascii.Error, ValueError):
            return None
        signature = file_signature(self._settings.token, message.id, filename)
        return {
            "min_api_version": 1,
            "sender": self._sender.as_dict(),
            "type": "file",
            "media": f"{origin}{FILES_PATH}/{message.id}/{signature}/{quote(filename)}",
            "size": size,
            "file_name": filename,
        }

    async def _language(self, message: Outgoing) -> str:
        """The receiver's language (for the paging buttons and the document note)."""
        if self._delivery is None or message.user_id is None:
            return str(message.payload.get("language") or "sr-Latn")
        return await self._delivery.language_of(message.user_id)

    async def send(self, message: Outgoing) -> SendOutcome:
        payload = message.payload
        reply = payload_to_reply(payload)
        language = await self._language(message)
        document = payload.get("document")
        attachment = None
        if isinstance(document, dict) and document.get("filename"):
            attachment = self._file_message(message, document)
            if attachment is None:
                note = tr(language, DOCUMENT_NOTE, filename=str(document["filename"]))
                reply = Reply(f"{reply.text}\n\n{note}" if reply.text else note, reply.buttons)
        tracking = payload.get("viber_tracking_data")
        bodies = render(
            reply,
            self._sender,
            language=language,
            tracking_data=str(tracking) if tracking else None,
            default_rows=default_rows(language, **self._menu),
        )
        if attachment is not None:
            # The file first: the keyboard stays on the text, which comes last.
            bodies.insert(0, attachment)
        outcome = SendOutcome("sent")
        for index, body in enumerate(bodies):
            outcome = await self._client.send(message.chat_id, body)
            if outcome.status != "sent":
                if index > 0:
                    # The first parts arrived; a retry would repeat them, so give up on the rest
                    # rather than send a part twice.
                    log.warning(
                        "viber.partial_delivery outbox_id=%s parts=%s/%s",
                        message.id,
                        index,
                        len(bodies),
                    )
                    return SendOutcome("sent", external_id=None, error=outcome.error)
                return outcome
        return outcome
