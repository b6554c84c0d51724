"""Privacy: a clerk gets everything we hold about them, can have it deleted, and old texts are
anonymised after the retention period. Checked in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.services.audit import PRIVACY_DELETE, RETENTION_RUN
from bot.services.privacy import (
    REDACTED,
    PrivacyService,
)
from bot.services.users import UserProfile, UserService
from storage.mentor import MentorMessage, MentorRequest
from storage.models import Feedback, OutboxMessage, Question, User
from storage.operations import AuditEntry, PrivacyRequest, months_before, user_links
from storage.trainings import Registration, Training
from storage.uow import Database
from tests.fakes.clock import Clock, ordinary_wednesday

NOW = ordinary_wednesday(10, 30).astimezone(UTC)  # a working morning after the real today


@pytest.fixture
def clock() -> Clock:
    """The clock of `database` (tests/conftest.py) and of the services: NOW until moved."""
    return Clock(NOW)


@dataclass
class World:
    clerk: UserProfile
    other: UserProfile
    mentor: UserProfile
    question_ids: list[int]
    other_question_id: int
    open_request_id: int
    closed_request_id: int
    registration_id: int


async def _profile(users: UserService, telegram_id: int, name: str) -> UserProfile:
    return await users.get_or_register("telegram", str(telegram_id), display_name=name)


async def build_world(database: Database) -> World:
    """A clerk with questions, feedback, messages queued and sent, an open mentor request
    (claimed, card in the group), a closed one, and a training registration; another clerk and
    a mentor."""
    users = UserService(database)
    clerk = await _profile(users, 501, "Milica Petrović")
    clerk = await users.set_municipality(clerk.id, "Čačak")
    other = await _profile(users, 502, "Jovan Jovanović")
    mentor = await _profile(users, 503, "Mentor Marko")
    async with database.uow() as uow:
        row = await uow.users.get(mentor.id)
        assert row is not None
        row.role = "mentor"
        q1 = await uow.questions.add(
            user_id=clerk.id,
            text="Moj JMBG je 0101990710123, kako do eZUP-a?",
            decision="answer",
            entry_id="ezup-access-request",
            score=0.9,
            created_at=NOW - timedelta(days=3),
        )
        q2 = await uow.questions.add(
            user_id=clerk.id,
            text="Ko je nadležan za pečat?",
            decision="escalate",
            created_at=NOW - timedelta(days=2),
        )
        q3 = await uow.questions.add(
            user_id=other.id,
            text="Pitanje drugog službenika",
            decision="answer",
            entry_id="ezup-login",
            created_at=NOW - timedelta(days=1),
        )
        await uow.feedback.record(q1.id, clerk.id, "up")
        await uow.outbox.add(
            channel="telegram",
            chat_id=501,
            user_id=clerk.id,
            kind="reminder",
            payload={"text": "Podsetnik za Milicu"},
            dedupe_key="r:1",
        )
        sent = await uow.outbox.add(
            channel="telegram",
            chat_id=501,
            user_id=clerk.id,
            kind="answer",
            payload={
                "text": "Odgovor Milici",
                "document": {"filename": "obuka.ics", "content_b64": "QUJDRA=="},
            },
            dedupe_key="a:1",
        )
        assert sent is not None
        sent.status = "sent"
        await uow.outbox.add(
            channel="telegram",
            chat_id=502,
            user_id=other.id,
            kind="reminder",
            payload={"text": "Podsetnik za Jovana"},
            dedupe_key="r:2",
        )
        request = MentorRequest(
            user_id=clerk.id,
            question_id=q2.id,
            state="claimed",
            municipality="Čačak",
            service="epecat",
            question="Ko je nadležan za pečat?",
            details="Zovem se Milica",
            attachments=[{"type": "photo", "file_id": "AgAD", "name": None}],
            claimed_by=mentor.id,
            card_chat_id="-100500",
            card_message_id=77,
            created_at=NOW - timedelta(days=2),
            claimed_at=NOW - timedelta(days=1),
        )
        uow.session.add(request)
        closed = MentorRequest(
            user_id=clerk.id,
            state="closed",
            question="Staro pitanje",
            attachments=[],
            created_at=NOW - timedelta(days=40),
            closed_at=NOW - timedelta(days=30),
            closed_reason="resolved",
        )
        uow.session.add(closed)
        await uow.flush()
        uow.session.add_all(
            [
                MentorMessage(
                    request_id=request.id,
                    author="clerk",
                    user_id=clerk.id,
                    text="Dodatak: telefon 064 123 4567",
                    attachments=[],
                ),
                MentorMessage(
                    request_id=request.id,
                    author="mentor",
                    user_id=mentor.id,
                    text="Poštovana Milice, pečat izdaje...",
                    attachments=[],
                ),
            ]
        )
        training = Training(
            title="eZUP obuka",
            service="ezup",
            starts_at=NOW + timedelta(days=5),
            duration_minutes=60,
            link="https://meet.example.rs/x",
            audience_values=[],
        )
        uow.session.add(training)
        await uow.flush()
        registration = Registration(
            training_id=training.id, user_id=clerk.id, status="registered", position=1
        )
        uow.session.add(registration)
        await uow.flush()
        world = World(
            clerk, other, mentor, [q1.id, q2.id], q3.id, request.id, closed.id, registration.id
        )
        await uow.commit()
    return world


def service(database: Database, clock: Clock | None = None, months: int = 12) -> PrivacyService:
    return PrivacyService(database, retention_months=months, clock=clock or database.clock)


# --------------------------------------------------------------------------- export


async def test_export_holds_everything_about_the_clerk_and_nothing_about_others(
    database: Database,
) -> None:
    world = await build_world(database)
    exported = await service(database).export(world.clerk)

    assert exported.filename.endswith(".json")
    document = json.loads(exported.content)
    assert document["user"]["display_name"] == "Milica Petrović"
    assert document["user"]["municipality"] == "Čačak"
    data = document["data"]
    assert {q["id"] for q in data["questions"]} == set(world.question_ids)
    assert any("JMBG" in q["text"] for q in data["questions"])
    assert [f["value"] for f in data["feedback"]] == ["up"]
    assert {r["id"] for r in data["mentor_requests"]} == {
        world.open_request_id,
        world.closed_request_id,
    }
    # The whole thread of their request, the mentor's answer included.
    assert {m["author"] for m in data["mentor_messages"]} == {"clerk", "mentor"}
    assert [r["id"] for r in data["training_registrations"]] == [world.registration_id]
    texts = sorted(row["payload"]["text"] for row in data["outbox"])
    assert texts == ["Odgovor Milici", "Podsetnik za Milicu"]
    document_payload = next(r["payload"] for r in data["outbox"] if "document" in r["payload"])
    assert "content_b64" not in document_payload["document"]  # no file bytes in the export
    assert "Jovan" not in exported.content.decode()
    assert "Pitanje drugog službenika" not in exported.content.decode()
    assert str(world.other_question_id) not in {str(q["id"]) for q in data["questions"]}

    async with database.uow() as uow:
        records = list(await uow.session.scalars(select(PrivacyRequest)))
    assert [(r.user_id, r.kind) for r in records] == [(world.clerk.id, "export")]
    assert records[0].summary["rows"]["questions"] == 2


async def test_mentor_export_names_the_requests_they_handled_without_the_clerks_data(
    database: Database,
) -> None:
    world = await build_world(database)
    document = json.loads((await service(database).export(world.mentor)).content)

    assert document["references"]["mentor_requests"] == [
        {"id": world.open_request_id, "as": "claimed_by"}
    ]
    assert "mentor_requests" not in document["data"]
    assert [m["author"] for m in document["data"]["mentor_messages"]] == ["mentor"]
    assert "Milica" not in json.dumps(document["references"], ensure_ascii=False)


def test_every_table_pointing_at_users_is_discovered() -> None:
    linked = {(link.table, link.column): link.subject for link in user_links()}
    assert linked[("questions", "user_id")] is True
    assert linked[("mentor_requests", "user_id")] is True
    assert linked[("mentor_requests", "claimed_by")] is False
    assert linked[("training_registrations", "user_id")] is True
    assert linked[("outbox", "user_id")] is True
    assert linked[("audit_log", "actor_user_id")] is True


# --------------------------------------------------------------------------- deletion


async def test_deletion_removes_personal_data_and_keeps_anonymous_statistics(
    database: Database,
) -> None:
    world = await build_world(database)
    privacy = service(database)

    prompt = privacy.deletion_prompt(world.clerk)
    yes = prompt.buttons[0][0].action
    stamp = int(yes.rsplit(":", 1)[1])
    reply = await privacy.confirm_deletion(world.clerk, stamp)
    assert "obrisani" in reply.text

    async with database.uow() as uow:
        user = await uow.users.get(world.clerk.id)
        assert user is not None
        assert user.display_name is None
        assert user.external_id.startswith("deleted-") and "501" not in user.external_id
        assert user.municipality is None
        assert user.active is False
        questions = {
            q.id: q for q in await uow.session.scalars(select(Question).order_by(Question.id))
        }
        for question_id in world.question_ids:
            assert questions[question_id].text == REDACTED
        assert questions[world.question_ids[0]].decision == "answer"
        assert questions[world.question_ids[0]].entry_id == "ezup-access-request"
        assert questions[world.question_ids[0]].created_at == NOW - timedelta(days=3)
        assert questions[world.other_question_id].text == "Pitanje drugog službenika"
        feedback = list(await uow.session.scalars(select(Feedback)))
        assert [f.value for f in feedback] == ["up"]  # statistics stay

        outbox = {r.dedupe_key: r for r in await uow.session.scalars(select(OutboxMessage))}
        assert outbox["r:1"].status == "cancelled"
        assert outbox["r:1"].payload == {"text": REDACTED}
        assert outbox["a:1"].status == "sent" and outbox["a:1"].payload == {"text": REDACTED}
        assert outbox["r:2"].status == "pending"  # the other clerk's reminder stays
        assert outbox["r:2"].payload["text"] == "Podsetnik za Jovana"
        # The mentor is told, and the group card no longer shows the question.
        note = outbox[f"privacy_note:{world.open_request_id}:{world.mentor.id}"]
        assert note.chat_id == "503" and f"#{world.open_request_id}" in note.payload["text"]
        card = outbox[f"privacy_card:{world.open_request_id}"]
        assert card.chat_id == "-100500" and card.payload["edit_message_id"] == 77
        assert "pečat" not in card.payload["text"]

        request = await uow.session.get(MentorRequest, world.open_request_id)
        assert request is not None
        assert request.state == "closed" and request.closed_reason == "deleted"
        assert request.question == REDACTED and request.details == REDACTED
        assert request.attachments == [] and request.municipality is None
        assert request.service == "epecat"  # statistics stay
        thread = list(
            await uow.session.scalars(
                select(MentorMessage).where(MentorMessage.request_id == world.open_request_id)
            )
        )
        assert {m.text for m in thread} == {REDACTED}
        registration = await uow.session.get(Registration, world.registration_id)
        assert registration is not None and registration.status == "cancelled"

        audit = list(await uow.session.scalars(select(AuditEntry)))
        assert [(a.action, a.actor_user_id, a.target) for a in audit] == [
            (PRIVACY_DELETE, world.clerk.id, f"user:{world.clerk.id}")
        ]
        assert "501" not in json.dumps(audit[0].details)
        records = list(await uow.session.scalars(select(PrivacyRequest)))
        assert [r.kind for r in records] == ["deletion"]

    # Nothing personal is left anywhere in an export of the tombstone.
    leftover = (await privacy.export(await _stored_profile(database, world.clerk.id))).content
    for personal in ("Milica", "Čačak", "JMBG", "064 123", '501"'):
        assert personal not in leftover.decode(), personal


async def _stored_profile(database: Database, user_id: int) -> UserProfile:
    profile = await UserService(database).get(user_id)
    assert profile is not None
    return profile


async def test_writing_again_after_deletion_starts_as_a_new_user(database: Database) -> None:
    world = await build_world(database)
    await service(database).delete_user(world.clerk.id, actor=world.clerk)
    again = await _profile(UserService(database), 501, "Milica")
    assert again.id != world.clerk.id
    assert again.municipality is None and not again.onboarded


async def test_second_deletion_finds_nothing_to_do(database: Database) -> None:
    world = await build_world(database)
    privacy = service(database)
    assert (await privacy.delete_user(world.clerk.id)).done
    assert not (await privacy.delete_user(world.clerk.id)).done


async def test_stale_confirmation_deletes_nothing(database: Database, clock: Clock) -> None:
    world = await build_world(database)
    privacy = service(database, clock)
    stamp = int(privacy.deletion_prompt(world.clerk).buttons[0][0].action.rsplit(":", 1)[1])
    clock.now = NOW + timedelta(hours=2)
    reply = await privacy.confirm_deletion(world.clerk, stamp)
    assert "istekla" in reply.text
    async with database.uow() as uow:
        user = await uow.users.get(world.clerk.id)
        assert user is not None and user.display_name == "Milica Petrović"


async def test_unsent_group_card_is_cancelled_instead_of_edited(database: Database) -> None:
    world = await build_world(database)
    async with database.uow() as uow:
        request = await uow.session.get(MentorRequest, world.open_request_id)
        assert request is not None
        request.state, request.claimed_by = "new", None
        request.card_chat_id, request.card_message_id = None, None
        await uow.outbox.add(
            channel="telegram",
            chat_id=-100500,
            kind="mentor_card",
            payload={"text": "Ko je nadležan za pečat?", "meta": {"request_id": request.id}},
            dedupe_key=f"mentor_card:{request.id}",
        )
        await uow.commit()
    await service(database).delete_user(world.clerk.id)
    async with database.uow() as uow:
        rows = {r.dedupe_key: r for r in await uow.session.scalars(select(OutboxMessage))}
    assert rows[f"mentor_card:{world.open_request_id}"].status == "cancelled"
    assert f"privacy_card:{world.open_request_id}" not in rows


# --------------------------------------------------------------------------- retention


async def test_retention_anonymises_only_what_is_older_than_the_period(database: Database) -> None:
    users = UserService(database)
    clerk = await _profile(users, 601, "Ana")
    old, recent = NOW - timedelta(days=400), NOW - timedelta(days=200)
    async with database.uow() as uow:
        old_q = await uow.questions.add(
            user_id=clerk.id,
            text="staro pitanje",
            decision="answer",
            entry_id="ezup-login",
            created_at=old,
        )
        new_q = await uow.questions.add(
            user_id=clerk.id, text="novo pitanje", decision="escalate", created_at=recent
        )
        old_closed = MentorRequest(
            user_id=clerk.id,
            state="closed",
            question="stari zahtev",
            details="detalji",
            attachments=[{"type": "photo", "file_id": "x", "name": None}],
            municipality="Niš",
            created_at=old,
            closed_at=old + timedelta(days=2),
            closed_reason="resolved",
        )
        old_open = MentorRequest(
            user_id=clerk.id,
            state="answered",
            question="otvoren",
            attachments=[],
            created_at=old,
        )
        uow.session.add_all([old_closed, old_open])
        await uow.flush()
        uow.session.add(
            MentorMessage(
                request_id=old_closed.id,
                author="mentor",
                text="odgovor",
                attachments=[],
                created_at=old,
            )
        )
        card = OutboxMessage(
            channel="telegram",
            chat_id="-100",
            kind="mentor_card",
            status="sent",
            payload={"text": "kartica", "meta": {"request_id": old_closed.id}},
            created_at=old,
            not_before=old,
        )
        pending = OutboxMessage(
            channel="telegram",
            chat_id="601",
            kind="reminder",
            status="pending",
            payload={"text": "još nije poslato"},
            created_at=old,
            not_before=old,
        )
        fresh = OutboxMessage(
            channel="telegram",
            chat_id="601",
            kind="answer",
            status="sent",
            payload={"text": "skorašnje"},
            created_at=recent,
            not_before=recent,
        )
        uow.session.add_all([card, pending, fresh])
        await uow.commit()

    privacy = service(database, months=12)
    counts = await privacy.apply_retention()
    assert counts["questions"] == 1
    assert counts["mentor_requests"] == 2  # the closed one and the one never closed
    assert counts["mentor_messages"] == 1
    assert counts["outbox"] == 1

    async with database.uow() as uow:
        assert (await uow.session.get(Question, old_q.id)).text == REDACTED  # type: ignore[union-attr]
        kept = await uow.session.get(Question, old_q.id)
        assert kept is not None and kept.entry_id == "ezup-login" and kept.created_at == old
        assert (await uow.session.get(Question, new_q.id)).text == "novo pitanje"  # type: ignore[union-attr]
        closed = await uow.session.get(MentorRequest, old_closed.id)
        assert closed is not None
        assert closed.question == REDACTED and closed.details == REDACTED
        assert closed.attachments == [] and closed.municipality == "Niš"
        never_closed = await uow.session.get(MentorRequest, old_open.id)
        assert never_closed is not None and never_closed.state == "answered"
        assert never_closed.question == REDACTED
        messages = list(await uow.session.scalars(select(MentorMessage)))
        assert [m.text for m in messages] == [REDACTED]
        rows = {r.id: r for r in await uow.session.scalars(select(OutboxMessage))}
        assert rows[card.id].payload == {"text": REDACTED, "meta": {"request_id": old_closed.id}}
        assert rows[pending.id].payload == {"text": "još nije poslato"}
        assert rows[fresh.id].payload == {"text": "skorašnje"}
        audit = list(await uow.session.scalars(select(AuditEntry)))
        assert [a.action for a in audit] == [RETENTION_RUN]
        assert audit[0].actor_user_id is None

    # Idempotent: a second run (another instance, the next day) changes nothing.
    assert not any((await privacy.apply_retention()).values())


async def test_retention_anonymises_requests_that_never_closed(
    database: Database, clock: Clock
) -> None:
    """A thread left `new` or `claimed` for 800 days loses its texts like a closed one (the
    row stays for statistics); a thread with recent activity keeps them. Age by the clock."""
    clerk = await _profile(UserService(database), 603, "Ana")
    ancient = NOW - timedelta(days=800)
    async with database.uow() as uow:
        never_claimed = MentorRequest(
            user_id=clerk.id, state="new", question="zaboravljen zahtev", details="JMBG 123",
            attachments=[{"type": "photo", "file_id": "x", "name": None}], municipality="Niš",
            created_at=ancient,
        )
        claimed = MentorRequest(
            user_id=clerk.id, state="claimed", question="preuzet pa ostavljen", attachments=[],
            created_at=ancient, claimed_at=ancient + timedelta(hours=1),
        )
        lively = MentorRequest(
            user_id=clerk.id, state="answered", question="još se dopisujemo", attachments=[],
            created_at=ancient, last_answer_at=NOW - timedelta(days=3),
        )
        uow.session.add_all([never_claimed, claimed, lively])
        await uow.flush()
        uow.session.add_all([
            MentorMessage(request_id=claimed.id, author="clerk", text="moje ime je Ana",
                          attachments=[], created_at=ancient),
            MentorMessage(request_id=lively.id, author="mentor", text="juče", attachments=[],
                          created_at=NOW - timedelta(days=3)),
        ])
        await uow.commit()
    ids = (never_claimed.id, claimed.id, lively.id)

    clock.now = NOW
    counts = await service(database, clock, months=12).apply_retention()
    assert counts["mentor_requests"] == 2 and counts["mentor_messages"] == 1
    async with database.uow() as uow:
        rows = {i: await uow.session.get(MentorRequest, i) for i in ids}
        gone, half, kept = (rows[i] for i in ids)
        assert gone is not None and gone.state == "new" and gone.created_at == ancient
        assert gone.question == REDACTED and gone.details == REDACTED
        assert gone.attachments == [] and gone.municipality == "Niš"
        assert half is not None and half.state == "claimed" and half.question == REDACTED
        assert kept is not None and kept.question == "još se dopisujemo"
        texts = {m.request_id: m.text for m in await uow.session.scalars(select(MentorMessage))}
        assert texts == {claimed.id: REDACTED, lively.id: "juče"}

    # The lively thread goes quiet: a year after its last word, it goes too.
    clock.now = NOW + timedelta(days=370)
    counts = await service(database, clock, months=12).apply_retention()
    assert counts["mentor_requests"] == 1 and counts["mentor_messages"] == 1


async def test_retention_period_follows_the_clock(database: Database, clock: Clock) -> None:
    clerk = await _profile(UserService(database), 602, "Ana")
    async with database.uow() as uow:
        question = await uow.questions.add(
            user_id=clerk.id, text="pitanje", decision="answer", created_at=NOW
        )
        await uow.commit()
    clock.now = NOW + timedelta(days=300)
    privacy = service(database, clock, months=12)
    assert (await privacy.apply_retention())["questions"] == 0
    clock.now = NOW + timedelta(days=370)
    assert (await privacy.apply_retention())["questions"] == 1
    async with database.uow() as uow:
        row = await uow.session.get(Question, question.id)
        assert row is not None and row.text == REDACTED


def test_retention_months_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import Settings

    monkeypatch.setenv("RETENTION_MONTHS", "6")
    assert Settings(_env_file=None).retention_months == 6  # type: ignore[call-arg]


def test_months_before_clamps_to_the_shorter_month() -> None:
    assert months_before(datetime(2027, 3, 31, 12, tzinfo=UTC), 1) == datetime(
        2027, 2, 28, 12, tzinfo=UTC
    )
    assert months_before(datetime(2027, 1, 15, tzinfo=UTC), 12) == datetime(2026, 1, 15, tzinfo=UTC)
    assert months_before(datetime(2027, 1, 15, tzinfo=UTC), 13) == datetime(
        2025, 12, 15, tzinfo=UTC
    )


async def test_privacy_notice_names_the_commands_and_the_period(database: Database) -> None:
    clerk = await _profile(UserService(database), 603, "Ana")
    text = service(database, months=12).notice(clerk).text
    assert "/moji_podaci" in text and "/obrisi_me" in text and "12" in text


async def test_users_table_is_not_modified_for_other_users(database: Database) -> None:
    world = await build_world(database)
    await service(database).delete_user(world.clerk.id)
    async with database.uow() as uow:
        others = list(await uow.session.scalars(select(User).where(User.id != world.clerk.id)))
    assert {u.display_name for u in others} == {"Jovan Jovanović", "Mentor Marko"}
    assert all(u.active for u in others)


async def test_two_instances_running_retention_at_once_do_the_work_once(
    database: Database,
) -> None:
    clerk = await _profile(UserService(database), 604, "Ana")
    async with database.uow() as uow:
        for n in range(30):
            await uow.questions.add(
                user_id=clerk.id,
                text=f"staro {n}",
                decision="answer",
                created_at=NOW - timedelta(days=500),
            )
        await uow.commit()
    first, second = service(database), service(database)
    results = await asyncio.gather(first.apply_retention(), second.apply_retention())
    assert sum(r.get("questions", 0) for r in results) == 30
    async with database.uow() as uow:
        audit = list(await uow.session.scalars(select(AuditEntry)))
    assert [a.action for a in audit] == [RETENTION_RUN]


async def test_deleted_clerks_seat_goes_to_the_waiting_list(database: Database) -> None:
    from bot.services.audience import Audience
    from bot.services.trainings import TrainingDraft, TrainingService

    users = UserService(database, admin_external_ids=frozenset({"700"}))
    admin = await _profile(users, 700, "Admin")
    clerk = await _profile(users, 701, "Ana")
    waiting = await _profile(users, 702, "Vesna")
    trainings = TrainingService(database)
    training_id, _ = await trainings.create(
        admin,
        TrainingDraft(
            title="ePlaćanje",
            service="eplacanje",
            starts_at=NOW + timedelta(days=3),
            duration_minutes=60,
            link="https://meet.example.rs/p",
            capacity=1,
            audience=Audience(),
        ),
    )
    assert training_id is not None
    await trainings.sign_up(clerk, training_id)
    await trainings.sign_up(waiting, training_id, waitlist=True)

    privacy = PrivacyService(database, trainings=trainings)
    result = await privacy.delete_user(clerk.id, actor=clerk)
    assert result.done

    async with database.uow() as uow:
        statuses = {
            r.user_id: r.status
            for r in await uow.session.scalars(
                select(Registration).where(Registration.training_id == training_id)
            )
        }
        promoted = list(
            await uow.session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.user_id == waiting.id,
                    OutboxMessage.kind == "training_promoted",
                )
            )
        )
    assert statuses == {clerk.id: "cancelled", waiting.id: "registered"}
    assert len(promoted) == 1
