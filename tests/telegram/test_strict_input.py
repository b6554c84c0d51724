"""Numbers and echoed text from users (issue #13): `"²".isdigit()` is True but `int("²")`
raises, so every number a user or a button token carries is checked as ASCII digits; and
text an admin typed is escaped before it is echoed back in an HTML message."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.channels.viber import _number
from bot.services.audience import AudienceError, parse_audience
from bot.services.broadcasts import BroadcastService
from bot.services.buttons import parse
from bot.services.municipalities import MunicipalityDirectory
from bot.services.roles import RoleService
from bot.services.trainings import Invalid, TrainingService, parse_capacity
from bot.services.users import UserService
from storage.models import User
from storage.uow import Database

UNICODE_DIGITS = ["²", "¹²", "①", "٣", "1²", "߁"]


@pytest.mark.parametrize("text", UNICODE_DIGITS)
def test_unicode_digits_are_not_numbers(text: str) -> None:
    assert parse(f"m:{text}") is None and parse(f"fb:{text}:up") is None  # button tokens
    assert _number(text) is None
    try:  # NFKC folding may read "²" as 2; what it must not do is crash with a bare ValueError
        seats = parse_capacity(text)
    except Invalid:
        pass
    else:
        assert seats is None or 1 <= seats <= 10_000


async def test_button_tokens_with_unicode_digits_get_a_polite_reply(database: Database) -> None:
    users = UserService(database, frozenset({"900"}))
    admin = await users.get_or_register("telegram", "900", display_name="Admin")
    clerk = await users.get_or_register("telegram", "101", display_name="Ana")
    trainings = TrainingService(database)
    broadcasts = BroadcastService(database)
    for who in (clerk, admin):
        for verb in ("j", "w", "x", "s", "c", "cy"):
            reply = await trainings.perform(who, f"tr:{verb}:²")
            assert reply is not None and "ne važi" in reply.text
        for verb in ("go", "x"):
            reply = await broadcasts.perform(who, f"bc:{verb}:²", chat_channel="telegram",
                                             chat_id=who.external_id)
            assert reply is not None and "ne važi" in reply.text


async def test_roles_refuse_unicode_digit_ids(database: Database) -> None:
    users = UserService(database, frozenset({"900"}))
    admin = await users.get_or_register("telegram", "900", display_name="Admin")
    roles = RoleService(database, frozenset({"900"}))
    for target in ("²", "①"):
        assert not (await roles.grant(admin, target, "mentor")).changed
        assert not (await roles.revoke(admin, target, "mentor")).changed
    async with database.uow() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(User)) == 1


def test_audience_errors_escape_what_the_admin_typed() -> None:
    directory = MunicipalityDirectory.from_csv()
    typed = "<b>Gotham</b> & <a href='x'>"
    with pytest.raises(AudienceError) as caught:
        parse_audience(typed, directory)
    message = caught.value.message("sr-Latn")
    assert "<b>" not in message and "<a " not in message
    assert "&lt;b&gt;Gotham&lt;/b&gt; &amp;" in message
    with pytest.raises(AudienceError) as caught:
        parse_audience("uloga: <i>boss</i>", directory, allow_roles=True)
    assert "<i>" not in caught.value.message("en")


async def test_training_and_broadcast_dialogues_escape_audience_errors(database: Database) -> None:
    for service in (TrainingService(database), BroadcastService(database)):
        with pytest.raises(Invalid) as caught:
            service.parse_audience("<script>x</script>")
        assert "<script>" not in caught.value.message("sr-Latn")
