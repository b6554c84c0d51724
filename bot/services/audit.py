"""The audit trail: who did which privileged action, when, and on what.

Record an action in the SAME unit of work as the change itself, so the trail can never claim
something that was rolled back, nor miss something that was committed:

    from bot.services.audit import audit_record

    async with database.uow() as uow:
        ...change the role...
        await audit_record(uow, admin, "role.change", f"user:{target.id}",
                           {"old": "clerk", "new": "mentor"})
        await uow.commit()

`actor` is a UserProfile, a storage User row, a user id, or None for the system (a scheduled
job). `details` is a small JSON object of ids, states and counts: never message text or other
personal data. Admins read the newest entries with /audit (`AuditService.latest_reply`).
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from bot.i18n import tr
from bot.services.replies import Reply
from storage.clock import Clock
from storage.operations import AuditEntry, AuditRepository
from storage.uow import Database, UnitOfWork

log = logging.getLogger(__name__)

__all__ = [
    "ACTIONS",
    "AuditAccessDenied",
    "AuditItem",
    "AuditService",
    "audit_record",
    "record_in",
]

# The actions the product records (free-form names are accepted, these are the agreed ones).
ROLE_CHANGE: Final = "role.change"
BROADCAST_SEND: Final = "broadcast.send"
BROADCAST_CANCEL: Final = "broadcast.cancel"
TRAINING_CREATE: Final = "training.create"
TRAINING_UPDATE: Final = "training.update"
TRAINING_CANCEL: Final = "training.cancel"
TRAINING_ATTENDANCE: Final = "training.attendance"
TRAINING_MATERIALS: Final = "training.materials"
REQUEST_CLAIM: Final = "request.claim"
REQUEST_ANSWER: Final = "request.answer"
REQUEST_CLOSE: Final = "request.close"
REQUEST_FORWARD: Final = "request.forward"
KB_DRAFT: Final = "kb.draft"
PRIVACY_DELETE: Final = "privacy.delete"
RETENTION_RUN: Final = "retention.run"
INCIDENT_DECLARE: Final = "incident.declare"
INCIDENT_CLOSE: Final = "incident.close"
TEMPLATE_SAVE: Final = "template.save"
TEMPLATE_DELETE: Final = "template.delete"
CONSOLE_LINK: Final = "console.link"
CONSOLE_SIGN_IN: Final = "console.sign_in"
KB_REVISION: Final = "kb.revision"
KB_SUGGESTION: Final = "kb.suggestion"
ACTIONS: tuple[str, ...] = (
    ROLE_CHANGE,
    BROADCAST_SEND,
    BROADCAST_CANCEL,
    TRAINING_CREATE,
    TRAINING_UPDATE,
    TRAINING_CANCEL,
    TRAINING_ATTENDANCE,
    TRAINING_MATERIALS,
    REQUEST_CLAIM,
    REQUEST_ANSWER,
    REQUEST_CLOSE,
    REQUEST_FORWARD,
    KB_DRAFT,
    PRIVACY_DELETE,
    RETENTION_RUN,
    INCIDENT_DECLARE,
    INCIDENT_CLOSE,
    TEMPLATE_SAVE,
    TEMPLATE_DELETE,
    CONSOLE_LINK,
    CONSOLE_SIGN_IN,
    KB_REVISION,
    KB_SUGGESTION,
)

MAX_DETAIL_STRING = 200
MAX_DETAILS_JSON = 4000
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class AuditAccessDenied(Exception):
    """Only admins may read the audit trail. (Not a PermissionError: that is an OSError, which
    the storage layer would take for a database outage.)"""


@dataclass(frozen=True)
class AuditItem:
    """An audit entry detached from the database session."""

    id: int
    at: datetime
    actor_user_id: int | None
    actor_channel: str | None
    actor_external_id: str | None
    action: str
    target: str | None
    details: dict[str, Any]


def _item(row: AuditEntry) -> AuditItem:
    return AuditItem(
        id=row.id,
        at=row.at,
        actor_user_id=row.actor_user_id,
        actor_channel=row.actor_channel,
        actor_external_id=row.actor_external_id,
        action=row.action,
        target=row.target,
        details=dict(row.details or {}),
    )


def _actor_fields(actor: object) -> tuple[int | None, str | None, str | None]:
    """(user id, channel, channel id) of a UserProfile / User row / id / None."""
    if actor is None:
        return None, None, None
    if isinstance(actor, int) and not isinstance(actor, bool):
        return actor, None, None
    user_id = getattr(actor, "id", None)
    channel = getattr(actor, "channel", None)
    external = getattr(actor, "external_id", None)
    return (
        int(user_id) if isinstance(user_id, int) and user_id > 0 else None,
        str(channel) if channel else None,
        str(external) if external else None,
    )


def _clean(value: Any, depth: int = 0) -> Any:
    """JSON-ready, short: long strings cut, datetimes as ISO text, unknown objects as repr."""
    if depth > 4:
        return "…"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_DETAIL_STRING else value[: MAX_DETAIL_STRING - 1] + "…"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k)[:64]: _clean(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in list(value)[:50]]
    return _clean(repr(value), depth + 1)


def clean_details(details: dict[str, Any] | None) -> dict[str, Any]:
    cleaned = _clean(dict(details or {}))
    assert isinstance(cleaned, dict)
    if len(json.dumps(cleaned, ensure_ascii=False, default=str)) > MAX_DETAILS_JSON:
        return {"truncated": True, "keys": sorted(cleaned)[:50]}
    return cleaned


async def record_in(
    uow: UnitOfWork,
    actor: object,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> AuditItem:
    """Append an audit entry inside the caller's unit of work (committed with it)."""
    user_id, channel, external = _actor_fields(actor)
    row = await uow.repository(AuditRepository).add(
        action=action,
        actor_user_id=user_id,
        actor_channel=channel,
        actor_external_id=external,
        target=target,
        details=clean_details(details),
        at=at,  # None: now, by the unit of work's clock
    )
    log.info(
        "audit.recorded",
        extra={"action": action, "actor_user_id": user_id, "target": target, "audit_id": row.id},
    )
    return _item(row)


audit_record = record_in  # the name other features call


class AuditService:
    def __init__(
        self,
        database: Database,
        *,
        timezone: str = "Europe/Belgrade",
        clock: Clock | None = None,
    ) -> None:
        self._database = database
        self._zone = ZoneInfo(timezone)
        self._clock = clock or database.clock  # the program's one clock

    async def record(
        self,
        actor: object,
        action: str,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditItem:
        """Record in a unit of work of its own (when the action has no transaction to join)."""
        async with self._database.uow() as uow:
            item = await record_in(uow, actor, action, target, details, at=self._clock())
            await uow.commit()
            return item

    async def latest(self, requester: object, limit: int = DEFAULT_LIMIT) -> list[AuditItem]:
        """The newest entries, newest first. Raises AuditAccessDenied unless the requester is
        an admin right now (the role is read from the database, not from the caller)."""
        requester_id, _channel, _external = _actor_fields(requester)
        async with self._database.uow(read_only=True) as uow:
            row = await uow.users.get(requester_id) if requester_id is not None else None
            allowed = row is not None and row.role == "admin" and row.active
            role = getattr(row, "role", None)
            items: list[AuditItem] = []
            if allowed:
                rows = await uow.repository(AuditRepository).latest(max(1, min(limit, MAX_LIMIT)))
                items = [_item(r) for r in rows]
        if not allowed:
            log.warning("audit.read_refused", extra={"user_id": requester_id, "role": role})
            raise AuditAccessDenied("only admins may read the audit trail")
        log.info("audit.read", extra={"user_id": requester_id, "count": len(items)})
        return items

    async def latest_reply(self, requester: object, limit: int = DEFAULT_LIMIT) -> Reply:
        """/audit as a Reply in the requester's language; a polite refusal for non-admins."""
        language = str(getattr(requester, "language", "") or "sr-Latn")
        try:
            items = await self.latest(requester, limit)
        except AuditAccessDenied:
            return Reply(tr(language, "Ova komanda je dostupna samo administratorima."))
        if not items:
            return Reply(tr(language, "Dnevnik je prazan: još nema zabeleženih radnji."))
        lines = [tr(language, "<b>Poslednje radnje ({count})</b>", count=len(items))]
        for item in items:
            lines.append(self._line(item, language))
        return Reply("\n".join(lines))

    def _line(self, item: AuditItem, language: str) -> str:
        when = item.at.astimezone(self._zone).strftime("%d.%m.%Y %H:%M")
        if item.actor_user_id is None:
            who = tr(language, "sistem")
        else:
            who = f"#{item.actor_user_id}"
            if item.actor_channel and item.actor_external_id:
                who += f" ({item.actor_channel}:{item.actor_external_id})"
        parts = [when, who, f"<b>{html.escape(item.action)}</b>"]
        if item.target:
            parts.append(html.escape(item.target))
        if item.details:
            shown = ", ".join(
                f"{key}={_short(value)}" for key, value in list(item.details.items())[:6]
            )
            parts.append(html.escape(shown))
        return " · ".join(parts)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"
