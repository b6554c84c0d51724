"""Every privileged action of the other features leaves an audit entry (who, what, on what) in
the same transaction; a refused attempt leaves none. Real services, real database."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from sqlalchemy import select

from bot.services.audience import Audience
from bot.services.broadcasts import BroadcastService
from bot.services.mentoring import MentorConfig, MentoringService
from bot.services.privacy import PrivacyService
from bot.services.roles import RoleService
from bot.services.trainings import TrainingDraft, TrainingService
from bot.services.users import UserProfile, UserService
from storage.operations import AuditEntry
from storage.uow import Database
from tests.fakes.clock import Clock, ordinary_wednesday

NOW = ordinary_wednesday(10).astimezone(UTC)  # a working morning after the real today


@pytest.fixture
def clock() -> Clock:
    """The clock of `database` (tests/conftest.py), which the services read: NOW."""
    return Clock(NOW)


async def _people(database: Database) -> tuple[UserProfile, UserProfile, UserProfile]:
    users = UserService(database, admin_external_ids=frozenset({"100"}))
    admin = await users.get_or_register("telegram", "100", display_name="Admin")
    mentor = await users.get_or_register("telegram", "200", display_name="Mentor")
    clerk = await users.get_or_register("telegram", "300", display_name="Službenica")
    await RoleService(database, frozenset({"100"})).grant(admin, "200", "mentor")
    mentor = await users.get_or_register("telegram", "200", display_name="Mentor")
    assert admin.is_admin and mentor.is_mentor
    return admin, mentor, clerk


async def _entries(database: Database) -> list[AuditEntry]:
    async with database.uow() as uow:
        return list(await uow.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


async def test_role_changes_are_audited(database: Database) -> None:
    admin, mentor, clerk = await _people(database)
    roles = RoleService(database, frozenset({"100"}))
    await roles.revoke(admin, "200", "mentor")
    refused = await roles.grant(clerk, "300", "admin")  # a clerk cannot
    assert not refused.changed

    entries = await _entries(database)
    assert [(e.action, e.actor_user_id, e.target, e.details) for e in entries] == [
        ("role.change", admin.id, f"user:{mentor.id}", {"old": "clerk", "new": "mentor"}),
        ("role.change", admin.id, f"user:{mentor.id}", {"old": "mentor", "new": "clerk"}),
    ]
    assert entries[0].actor_external_id == "100" and entries[0].actor_channel == "telegram"


async def test_training_created_changed_and_cancelled_are_audited(database: Database) -> None:
    admin, _mentor, clerk = await _people(database)
    trainings = TrainingService(database)
    draft = TrainingDraft(
        title="eZUP za matičare",
        service="ezup",
        starts_at=NOW + timedelta(days=7),
        duration_minutes=90,
        link="https://meet.example.rs/ezup",
        audience=Audience(),
    )
    training_id, _reply = await trainings.create(admin, draft)
    assert training_id is not None
    assert (await trainings.create(clerk, draft))[0] is None  # refused: no entry
    await trainings.change(admin, training_id, starts_at=NOW + timedelta(days=8))
    await trainings.cancel(admin, training_id)

    entries = [e for e in await _entries(database) if e.action.startswith("training.")]
    assert [(e.action, e.actor_user_id, e.target) for e in entries] == [
        ("training.create", admin.id, f"training:{training_id}"),
        ("training.update", admin.id, f"training:{training_id}"),
        ("training.cancel", admin.id, f"training:{training_id}"),
    ]
    assert entries[0].details["service"] == "ezup"
    assert list(entries[1].details["changed"]) == ["starts_at"]


async def test_broadcast_sent_and_cancelled_are_audited(database: Database) -> None:
    admin, _mentor, clerk = await _people(database)
    broadcasts = BroadcastService(database)
    first, _ = await broadcasts.draft(admin, "Sutra <b>nema</b> obuke.", Audience())
    second, _ = await broadcasts.draft(admin, "Drugo obaveštenje", Audience())
    assert first is not None and second is not None
    await broadcasts.start(admin, first, admin_channel="telegram", admin_chat_id="100")
    await broadcasts.cancel(clerk, second)  # refused: no entry
    await broadcasts.cancel(admin, second)

    entries = [e for e in await _entries(database) if e.action.startswith("broadcast.")]
    assert [(e.action, e.actor_user_id, e.target) for e in entries] == [
        ("broadcast.send", admin.id, f"broadcast:{first}"),
        ("broadcast.cancel", admin.id, f"broadcast:{second}"),
    ]
    assert entries[0].details["audience"] == "all"
    assert "nema" not in str(entries[0].details)  # never the message text


async def test_mentor_claim_answer_draft_and_close_are_audited(database: Database) -> None:
    _admin, mentor, clerk = await _people(database)
    mentoring = MentoringService(database, MentorConfig(mentor_chat_id=-1001))
    created = await mentoring.create_request(clerk, text="Kako se menja šifra za eZUP?")
    number = created.number
    assert number is not None
    assert not (await mentoring.claim(clerk, number)).ok  # a clerk cannot
    await mentoring.claim(mentor, number)
    await mentoring.answer(mentor, number, "Šifra se menja u podešavanjima naloga.")
    await mentoring.add_to_knowledge_base(mentor, number)
    await mentoring.close(mentor, number)

    entries = [e for e in await _entries(database) if not e.action.startswith("role.")]
    assert [(e.action, e.actor_user_id, e.target) for e in entries] == [
        ("request.claim", mentor.id, f"request:{number}"),
        ("request.answer", mentor.id, f"request:{number}"),
        ("kb.draft", mentor.id, f"request:{number}"),
        ("request.close", mentor.id, f"request:{number}"),
    ]
    assert "Šifra" not in str([e.details for e in entries])


async def test_data_deletion_is_audited(database: Database) -> None:
    _admin, _mentor, clerk = await _people(database)
    await PrivacyService(database).delete_user(clerk.id, actor=clerk)
    entries = [e for e in await _entries(database) if e.action == "privacy.delete"]
    assert [(e.actor_user_id, e.target, e.at) for e in entries] == [
        (clerk.id, f"user:{clerk.id}", NOW)
    ]
