"""The audit trail: privileged actions are recorded with who, when and what, in the same
transaction as the action; only admins can read it."""

from __future__ import annotations

from datetime import UTC

import pytest

from bot.services.audit import (
    ROLE_CHANGE,
    AuditAccessDenied,
    AuditService,
    audit_record,
    clean_details,
)
from bot.services.users import UserProfile, UserService
from storage.operations import AuditRepository
from storage.uow import Database
from tests.fakes.clock import BELGRADE, ordinary_wednesday

AT = ordinary_wednesday(14, 5).astimezone(UTC)  # 14:05 in Belgrade, a day after the real today


async def _admin_and_clerk(database: Database) -> tuple[UserProfile, UserProfile]:
    users = UserService(database, admin_external_ids=frozenset({"900"}))
    admin = await users.get_or_register("telegram", "900", display_name="Admin")
    clerk = await users.get_or_register("telegram", "901", display_name="Službenica")
    assert admin.is_admin and not clerk.is_admin
    return admin, clerk


async def test_entry_is_written_with_the_action_it_records(database: Database) -> None:
    admin, clerk = await _admin_and_clerk(database)
    async with database.uow() as uow:
        row = await uow.users.get(clerk.id)
        assert row is not None
        row.role = "mentor"
        await audit_record(
            uow, admin, ROLE_CHANGE, f"user:{clerk.id}", {"old": "clerk", "new": "mentor"}, at=AT
        )
        await uow.commit()
    async with database.uow() as uow:
        entries = await uow.repository(AuditRepository).latest()
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.action, entry.target, entry.at) == (ROLE_CHANGE, f"user:{clerk.id}", AT)
    assert (entry.actor_user_id, entry.actor_channel, entry.actor_external_id) == (
        admin.id,
        "telegram",
        "900",
    )
    assert entry.details == {"old": "clerk", "new": "mentor"}


async def test_rolled_back_action_leaves_no_entry(database: Database) -> None:
    admin, clerk = await _admin_and_clerk(database)
    async with database.uow() as uow:
        await audit_record(uow, admin, ROLE_CHANGE, f"user:{clerk.id}")
        # no commit: the action failed
    async with database.uow() as uow:
        assert await uow.repository(AuditRepository).count() == 0


async def test_admin_reads_the_newest_entries_first(database: Database) -> None:
    admin, _clerk = await _admin_and_clerk(database)
    audit = AuditService(database)
    await audit.record(admin, "training.create", "training:1", {"title": "eZUP"})
    await audit.record(None, "retention.run", None, {"questions": 3})
    await audit.record(admin, "broadcast.send", "broadcast:7", {"total": 5000})

    items = await audit.latest(admin, limit=2)
    assert [i.action for i in items] == ["broadcast.send", "retention.run"]

    reply = await audit.latest_reply(admin)
    assert "training.create" in reply.text and "broadcast:7" in reply.text
    assert "sistem" in reply.text


async def test_time_is_shown_in_belgrade(database: Database) -> None:
    admin, _clerk = await _admin_and_clerk(database)
    audit = AuditService(database, clock=lambda: AT)
    await audit.record(admin, "kb.draft", "draft:3")
    day = AT.astimezone(BELGRADE).strftime("%d.%m.%Y")
    assert f"{day} 14:05" in (await audit.latest_reply(admin)).text


async def test_clerk_cannot_read_the_audit(database: Database) -> None:
    admin, clerk = await _admin_and_clerk(database)
    audit = AuditService(database)
    await audit.record(admin, "broadcast.send", "broadcast:1")
    with pytest.raises(AuditAccessDenied):
        await audit.latest(clerk)
    reply = await audit.latest_reply(clerk)
    assert "administrator" in reply.text
    assert "broadcast" not in reply.text


async def test_revoked_admin_cannot_read_with_a_stale_profile(database: Database) -> None:
    admin, _clerk = await _admin_and_clerk(database)
    async with database.uow() as uow:
        row = await uow.users.get(admin.id)
        assert row is not None
        row.role = "clerk"
        await uow.commit()
    with pytest.raises(AuditAccessDenied):
        await AuditService(database).latest(admin)  # the profile still says admin


async def test_empty_audit_says_so(database: Database) -> None:
    admin, _clerk = await _admin_and_clerk(database)
    assert "prazan" in (await AuditService(database).latest_reply(admin)).text


def test_details_are_kept_short_and_json_ready() -> None:
    cleaned = clean_details(
        {"when": AT, "long": "x" * 1000, "ids": {1, 2}, "nested": {"a": [1, {"b": object()}]}}
    )
    assert cleaned["when"] == AT.isoformat()
    assert len(cleaned["long"]) == 200
    assert sorted(cleaned["ids"]) == [1, 2]
    assert isinstance(cleaned["nested"]["a"][1]["b"], str)
    huge = clean_details({f"k{i}": "y" * 150 for i in range(40)})
    assert huge["truncated"] is True
