"""Signals for curators, recorded by the services as clerks and mentors act (real services, real
SQLite and PostgreSQL): the clarify pick, a 👎 and what came next, escalations with no entry and
those a mentor answered from an existing entry; all in the console's review queue, once each."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import AppServices, build_services
from bot.config import Settings
from bot.services.users import UserProfile, profile_of
from storage.curation import KbSignal

CLARIFY = ["kako da platim taksu", "ezup prijava", "sanduce", "eplacanje", "pecat", "pristup"]
ESCALATE = ["koliko je plata referenta", "xqzv wplk", "gde je najbliža pekara"]


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[AppServices]:
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    built = await build_services(settings)
    try:
        yield built
    finally:
        await built.close()


async def person(services: AppServices, external_id: str, role: str = "clerk") -> UserProfile:
    async with services.database.uow() as uow:
        row, _ = await uow.users.get_or_create("telegram", external_id)
        row.role, row.display_name, row.onboarded = role, f"Osoba {external_id}", True
        row.municipality = "Čačak"
        await uow.commit()
        return profile_of(row)


async def signals(services: AppServices) -> list[tuple[str, int, str | None]]:
    from sqlalchemy import select

    async with services.database.uow(read_only=True) as uow:
        rows = await uow.session.scalars(select(KbSignal).order_by(KbSignal.id))
        return [(s.kind, s.question_id, s.entry_id) for s in rows]


def first_with(services: AppServices, decision: str, texts: list[str]) -> str:
    for text in texts:
        if services.answers.matcher.match(text).decision == decision:
            return text
    raise AssertionError(f"none of {texts} gives {decision}")


async def test_clarify_pick_is_recorded_once_and_leads_the_guesses(
    services: AppServices,
) -> None:
    clerk = await person(services, "9001")
    curator = await person(services, "9002", "curator")
    text = first_with(services, "clarify", CLARIFY)
    reply = await services.answers.ask(clerk, text)
    action = reply.buttons[1][0].action  # the second choice: c:<question>:<entry>
    _, question, entry_id = action.split(":")
    await services.answers.show_entry(clerk, entry_id, int(question))
    await services.answers.show_entry(clerk, entry_id, int(question))  # tapped twice
    assert await signals(services) == [("clarify_pick", int(question), entry_id)]
    group = next(
        g for g in await services.curation.suggestions(curator) if int(question) in g.question_ids
    )
    assert group.guesses[0].entry_id == entry_id
    assert entry_id in group.picked


async def test_thumbs_down_then_asked_again_or_asked_a_mentor(services: AppServices) -> None:
    clerk = await person(services, "9011")
    curator = await person(services, "9012", "curator")
    answered = await services.answers.ask(clerk, "kako da dobijem pristup ezupu")
    down = answered.buttons[0][1].action  # fb:<question>:down
    first = int(down.split(":")[1])
    await services.answers.feedback(clerk, first, "down")
    await services.answers.ask(clerk, "a kako se podnosi zahtev za pristup ezupu")
    assert ("down_then_asked", first, None) in await signals(services)

    created = await services.mentoring.create_request(clerk, question_id=first)
    assert created.new
    kinds = [kind for kind, qid, _ in await signals(services) if qid == first]
    assert kinds == ["down_then_asked", "down_then_mentor"]

    queue = await services.curation.queue(curator)
    assert {s.kind for s in queue.signals} >= {"down_then_asked", "down_then_mentor"}
    assert all("kako da dobijem pristup" in s.text for s in queue.signals)


async def test_escalation_without_entry_and_a_mentor_answer_from_an_entry(
    services: AppServices,
) -> None:
    clerk = await person(services, "9021")
    mentor = await person(services, "9022", "mentor")
    curator = await person(services, "9023", "curator")
    text = first_with(services, "escalate", ESCALATE)
    reply = await services.answers.ask(clerk, text)
    question = int(reply.buttons[0][0].action.split(":")[1])  # m:<question>
    created = await services.mentoring.create_request(clerk, question_id=question)
    assert created.number is not None
    entry = services.knowledge_base.get("ezup-what-is")
    assert entry is not None
    from knowledge_base.normalize import normalize

    await services.mentoring.claim(mentor, created.number)
    result = await services.mentoring.answer(
        mentor, created.number, normalize(entry.answer.replace("<b>", "").replace("</b>", ""))
    )
    assert result.ok
    found = await signals(services)
    assert ("escalated_no_entry", question, None) in found
    assert ("mentor_matched_entry", question, "ezup-what-is") in found
    group = next(
        g for g in await services.curation.suggestions(curator) if question in g.question_ids
    )
    assert group.guesses[0].entry_id == "ezup-what-is"


async def test_a_mentors_draft_becomes_a_new_entry_and_leaves_the_queue(
    services: AppServices,
) -> None:
    clerk = await person(services, "9031")
    mentor = await person(services, "9032", "mentor")
    curator = await person(services, "9033", "curator")
    text = "Kako da dodam novog zaposlenog u eZUP, zove se Petar Petrović, tel 0641234567?"
    created = await services.mentoring.create_request(clerk, text=text)
    assert created.number is not None
    await services.mentoring.claim(mentor, created.number)
    await services.mentoring.answer(mentor, created.number, "Administrator organa ga dodaje.")
    assert (await services.mentoring.add_to_knowledge_base(mentor, created.number)).ok

    (draft,) = (await services.curation.queue(curator)).drafts
    assert "0641234567" not in draft.question  # personal data removed when it was made
    source = "https://www.ite.gov.rs/tekst/sr/95/sistem-za-razmenu-podataka-ezup.php"
    outcome = await services.curation.save_entry(
        curator,
        {
            "id": "ezup-novi-zaposleni",
            "service": "ezup",
            "question": "Kako da dodam novog zaposlenog u eZUP?",
            "alternatives": ["novi korisnik ezup", "dodavanje zaposlenog u ezup"],
            "answer": f'{draft.answer}\nIzvor: <a href="{source}">ITE</a>',
            "sources": [source],
        },
        draft_id=draft.id,
    )
    assert outcome.ok, outcome.problems
    assert (await services.curation.queue(curator)).drafts == []
    entry = services.curation.entry("ezup-novi-zaposleni")
    assert entry is not None and entry.reviewed_by == "Osoba 9033"
    assert services.answers.matcher.match("dodavanje zaposlenog u ezup").entry_id == entry.id
