"""A month of programme activity for tests and the demo (issue #16): four municipalities,
clerks, questions, escalations with mentor answers, incidents, two trainings with check-ins and
feedback, 👍/👎 on answers.

    expected = await seed_programme_month(database, date(2026, 11, 1))

Rows are stamped inside the month (10:00 Belgrade on fixed days), whatever the clock says, so a
report of that month is the same on any date. Running it again for the same month adds nothing
(the seed's users are found by their ids). `SEED_EXPECTED` is what the report of the month must
show, worked out by hand from the tables below (the test compares the two).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from storage.desk import Incident, IncidentClerk
from storage.mentor import MentorRequest
from storage.models import Feedback, Question, User
from storage.trainings import Registration, Training
from storage.uow import Database

__all__ = ["SEED_EXPECTED", "SEED_MUNICIPALITIES", "seed_programme_month"]

BELGRADE = ZoneInfo("Europe/Belgrade")

# municipality: clerks, answered, clarified-and-chosen, clarified-not-chosen, minutes to the
# mentors' first answer of each escalation (None: still open)
SEED_MUNICIPALITIES: dict[str, tuple[int, int, int, int, tuple[int | None, ...]]] = {
    "Novi Sad": (3, 8, 1, 0, (20, 45, 90)),
    "Čačak": (2, 4, 0, 0, (30, None)),
    "Niš": (2, 3, 1, 0, (120,)),
    "Kragujevac": (1, 1, 0, 1, ()),
}

# What the report of the seeded month shows, per municipality (and in total).
SEED_EXPECTED: dict[str, dict[str, float | int | None]] = {
    "Novi Sad": {"clerks_active": 3, "questions": 12, "bot_share": 75.0, "escalations": 3,
                 "first_answer_median_minutes": 45.0, "signed_up": 4, "attended": 2,
                 "feedback_count": 2, "feedback_average": 4.5, "incidents": 1},
    "Čačak": {"clerks_active": 2, "questions": 6, "bot_share": 66.7, "escalations": 2,
              "first_answer_median_minutes": 30.0, "signed_up": 1, "attended": 1,
              "feedback_count": 1, "feedback_average": 3.0, "incidents": 1},
    "Niš": {"clerks_active": 2, "questions": 5, "bot_share": 80.0, "escalations": 1,
            "first_answer_median_minutes": 120.0, "signed_up": 2, "attended": 1,
            "feedback_count": 1, "feedback_average": 4.0, "incidents": 1},
    "Kragujevac": {"clerks_active": 1, "questions": 2, "bot_share": 50.0, "escalations": 0,
                   "first_answer_median_minutes": None, "signed_up": 1, "attended": 1,
                   "feedback_count": 0, "feedback_average": None, "incidents": 0},
    "Ukupno": {"clerks_active": 8, "questions": 25, "bot_share": 72.0, "escalations": 6,
               "first_answer_median_minutes": 45.0, "signed_up": 8, "attended": 5,
               "feedback_count": 4, "feedback_average": 4.0, "incidents": 2},
}

QUESTIONS = (
    "kako da dobijem pristup eZUP-u",
    "gde se prijavljuje eSanduče",
    "koliko traje rok za odgovor u eZUP-u",
    "kako se plaća taksa preko IPS QR koda",
    "ne mogu da se prijavim na eZUP",
    "šta je ePisarnica",
)
ENTRIES = ("ezup-access-request", "esanduce-what-is", "ezup-deadline", "eplacanje-ips-qr")


def _at(month: date, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(month.replace(day=day), time(hour, minute), BELGRADE)


Expected = dict[str, dict[str, float | int | None]]


async def seed_programme_month(database: Database, month: date) -> Expected:
    """Write the month (idempotent); returns `SEED_EXPECTED`."""
    month = month.replace(day=1)
    tag = month.strftime("%Y%m")
    async with database.uow() as uow:
        session = uow.session
        found = await session.scalar(
            select(User.id).where(User.channel == "telegram",
                                  User.external_id == f"seed-{tag}-admin"))
        if found is not None:
            return SEED_EXPECTED
        admin = User(channel="telegram", external_id=f"seed-{tag}-admin", role="admin",
                     display_name="Trener Demo", municipality="Beograd", onboarded=True,
                     created_at=_at(month, 1))
        session.add(admin)
        clerks: dict[str, list[User]] = {}
        number = 0
        for town, (count, *_rest) in SEED_MUNICIPALITIES.items():
            for _index in range(count):
                number += 1
                clerk = User(channel="telegram", external_id=f"seed-{tag}-{number}",
                             display_name=f"Službenik {number} ({town})", municipality=town,
                             onboarded=True, created_at=_at(month, 1))
                session.add(clerk)
                clerks.setdefault(town, []).append(clerk)
        await session.flush()

        day = 2
        for town, (_count, answered, chosen, unchosen, minutes) in SEED_MUNICIPALITIES.items():
            people = clerks[town]
            kinds = (["answer"] * answered + ["chosen"] * chosen + ["clarify"] * unchosen
                     + ["escalate"] * len(minutes))
            for index, kind in enumerate(kinds):
                clerk = people[index % len(people)]
                when = _at(month, 2 + (day + index) % 24, 9 + index % 6, 5)
                entry = ENTRIES[index % len(ENTRIES)]
                question = Question(
                    user_id=clerk.id, text=QUESTIONS[index % len(QUESTIONS)],
                    decision="clarify" if kind in ("chosen", "clarify") else kind,
                    entry_id=None if kind == "escalate" else entry, score=0.5,
                    candidates=[entry], created_at=when,
                    chosen_entry_id=entry if kind == "chosen" else None,
                )
                session.add(question)
                await session.flush()
                if kind == "escalate":
                    wait = minutes[index - answered - chosen - unchosen]
                    session.add(MentorRequest(
                        user_id=clerk.id, question_id=question.id, municipality=town,
                        service="ezup", question=question.text, created_at=when,
                        state="new" if wait is None else "closed",
                        first_answer_at=None if wait is None else when + timedelta(minutes=wait),
                        closed_at=None if wait is None else when + timedelta(days=1),
                        closed_reason=None if wait is None else "resolved",
                    ))
                if kind == "answer" and town == "Novi Sad" and index < 4:
                    session.add(Feedback(question_id=question.id, user_id=clerk.id,
                                         value="down" if index == 3 else "up", created_at=when))
            day += 5
        # Outside the month (before it, and at the next month's first instant): not counted.
        first = clerks["Novi Sad"][0]
        for when in (_at(month, 1, 0, 0) - timedelta(minutes=1),
                     _at((month + timedelta(days=32)).replace(day=1), 1, 0, 0)):
            session.add(Question(user_id=first.id, text=QUESTIONS[0], decision="answer",
                                 entry_id=ENTRIES[0], candidates=[], created_at=when))

        # Incidents: one closed within the month, one still open, one from the month before.
        previous = _at(month, 1) - timedelta(days=10)
        for service, declared, closed, touched in (
            ("ezup", _at(month, 10), _at(month, 11), [clerks["Novi Sad"][0], clerks["Niš"][0]]),
            ("esanduce", _at(month, 20), None, [clerks["Čačak"][1]]),
            ("ezup", previous, previous + timedelta(days=1), [clerks["Novi Sad"][1]]),
        ):
            incident = Incident(service=service, text="Servis ne radi", declared_by=admin.id,
                                declared_at=declared, closed_at=closed)
            session.add(incident)
            await session.flush()
            for clerk in touched:
                session.add(IncidentClerk(incident_id=incident.id, user_id=clerk.id,
                                          via="question", created_at=declared))

        # Trainings: who signed up, who attended (check-in or the trainer's mark), the 1-5.
        ns, cc, ni, kg = (clerks[t] for t in ("Novi Sad", "Čačak", "Niš", "Kragujevac"))
        for title, start, status, rows in (
            ("eZUP u praksi", _at(month, 12), "active", [
                (ns[0], "registered", True, 5, "Vrlo korisno, hvala."),
                (ns[1], "registered", True, 4, "=HYPERLINK(\"http://x\")"),
                (ns[2], "registered", False, None, None),
                (cc[0], "registered", True, 3, None),
                (ni[0], "registered", False, None, None),
            ]),
            ("eSanduče za početnike", _at(month, 19), "active", [
                (ni[1], "registered", True, 4, None),
                (kg[0], "registered", True, None, None),
                (ns[0], "registered", False, None, None),
                (cc[1], "waitlisted", False, None, None),
            ]),
            ("Otkazana obuka", _at(month, 15), "cancelled", [
                (ns[1], "registered", False, None, None),
            ]),
        ):
            training = Training(
                title=title, service="ezup", starts_at=start, duration_minutes=90,
                link="https://meet.example.rs/obuka", status=status, created_by=admin.id,
                audience_kind="all", audience_values=[], revision=0,
                materials_link="https://materijali.example.rs/obuka.pdf",
                created_at=start - timedelta(days=7),
            )
            session.add(training)
            await session.flush()
            for position, (clerk, state, attended, rating, comment) in enumerate(rows, 1):
                session.add(Registration(
                    training_id=training.id, user_id=clerk.id, status=state, position=position,
                    attended_at=start + timedelta(minutes=3) if attended else None,
                    attendance_marked_by=clerk.id if attended else None,
                    rating=rating, comment=comment,
                    rated_at=start + timedelta(hours=2) if rating else None,
                    created_at=start - timedelta(days=3),
                ))
        await uow.commit()
    return SEED_EXPECTED
