"""The other features' button tokens (trainings, mentors, desk, interests, privacy, roadmaps):
every kind packs to exactly the string older messages carry (Telegram and Viber keep working)
and parses back; forged or malformed ones parse to None and the services answer politely."""

from __future__ import annotations

import pytest

from bot.services.buttons import KINDS, Token, pack, parse
from bot.services.buttons_mentoring import (
    BroadcastAction,
    CannedChoice,
    CloseIncident,
    ComposeChoice,
    DeletionChoice,
    HandOver,
    LeaveContact,
    OpenOwn,
    QueueAction,
    ToggleInterest,
)
from bot.services.buttons_roadmaps import (
    RoadmapMatrix,
    RoadmapPlan,
    RoadmapTimeline,
    StepBlocker,
    StepConfirm,
    StepDone,
    StepReturn,
    StepStuck,
)
from bot.services.buttons_trainings import (
    AttendanceList,
    AttendanceToggle,
    CheckIn,
    TrainingCancel,
    TrainingCancelConfirmed,
    TrainingChangePlace,
    TrainingChangeTime,
    TrainingComment,
    TrainingJoin,
    TrainingLeave,
    TrainingList,
    TrainingManage,
    TrainingMaterials,
    TrainingRating,
    TrainingWaitlist,
)
from bot.services.privacy import ACTION_CANCEL
from bot.services.trainings import TrainingService
from bot.services.users import UserService
from storage.uow import Database

# The strings as the services wrote them before the tokens were typed (old buttons in chats).
TOKENS: list[tuple[Token, str]] = [
    (TrainingList(), "tr:l"),
    (TrainingJoin(5), "tr:j:5"),
    (TrainingWaitlist(5), "tr:w:5"),
    (TrainingLeave(5), "tr:x:5"),
    (TrainingManage(5), "tr:s:5"),
    (TrainingCancel(5), "tr:c:5"),
    (TrainingCancelConfirmed(5), "tr:cy:5"),
    (TrainingChangeTime(5), "tr:t:5"),
    (TrainingChangePlace(5), "tr:p:5"),
    (TrainingMaterials(5), "tr:mat:5"),
    (CheckIn(5), "tr:in:5"),
    (AttendanceList(5), "tr:a:5"),
    (AttendanceToggle(5, 42), "tr:at:5:42"),
    (TrainingRating(5, 4), "tr:f:5:4"),
    (TrainingComment(5), "tr:fc:5"),
    (ComposeChoice("send"), "ms:send"),
    (ComposeChoice("cancel"), "ms:cancel"),
    (OpenOwn(17), "mo:17"),
    (LeaveContact(17), "mc:17"),
    (HandOver(17, 0), "mh:17:0"),
    (HandOver(17, 901), "mh:17:901"),
    (HandOver(17, -1), "mh:17:-1"),
    (HandOver(17, -2), "mh:17:-2"),
    (CannedChoice(17, 0, 0), "sab:17:0:0"),
    (CannedChoice(17, 3, 1), "sab:17:3:1"),
    (QueueAction("c", 17), "mq:c:17"),
    (QueueAction("a", 17), "mq:a:17"),
    (CloseIncident("z", 3), "inc:z:3"),
    (BroadcastAction("go", 8), "bc:go:8"),
    (BroadcastAction("stop", 8), "bc:stop:8"),
    (ToggleInterest("ezup"), "int:ezup"),
    (ToggleInterest("*"), "int:*"),
    (DeletionChoice("yes", 1_796_000_000), "pd:yes:1796000000"),
    (DeletionChoice("no", 0), "pd:no:0"),
    (RoadmapMatrix(), "rm"),
    (RoadmapTimeline(8), "ro:8"),
    (RoadmapPlan(8, "ezup"), "rp:8:ezup"),
    (RoadmapPlan(0, ""), "rp:0:"),
    (StepDone(8, "ezup", "obuka"), "rd:8:ezup:obuka"),
    (StepStuck(8, "ezup", "obuka"), "rz:8:ezup:obuka"),
    (StepBlocker(8, "ezup", "obuka", 2), "rb:8:ezup:obuka:2"),
    (StepBlocker(8, "ezup", "obuka", 0), "rb:8:ezup:obuka:0"),
    (StepConfirm(8, "ezup", "obuka"), "rk:8:ezup:obuka"),
    (StepReturn(8, "ezup", "obuka"), "rv:8:ezup:obuka"),
]


@pytest.mark.parametrize(("token", "packed"), TOKENS)
def test_a_feature_token_packs_to_its_old_form_and_parses_back(token: Token, packed: str) -> None:
    assert pack(token) == packed
    assert len(packed.encode()) <= 64  # Telegram's callback_data
    assert parse(packed) == token


def test_every_kind_has_a_round_trip() -> None:
    from tests.services.test_buttons import TOKENS as CLERK_TOKENS

    tried = {type(token) for token, _ in TOKENS + CLERK_TOKENS}
    assert set(KINDS.values()) <= tried


def test_the_cancel_button_of_a_deletion_is_the_typed_token() -> None:
    assert ACTION_CANCEL == "pd:no:0" and parse(ACTION_CANCEL) == DeletionChoice("no", 0)


@pytest.mark.parametrize(
    "action",
    [
        "tr", "tr:", "tr:j", "tr:j:", "tr:j:five", "tr:j:5:6", "tr:zz:5", "tr:l:5", "tr:j:-5",
        "tr:at:5", "tr:f:5:x", "tr:j:²", "ms", "ms:", "mo:", "mo:x", "mo:1:2", "mc:-3",
        "mh:17", "mh:17:x", "mh:-17:1", "mh:17:--1", "mh:17:-", "sab:17:0", "sab:17:x:0",
        "int", "int:", "int:a:b", "pd:yes", "pd:yes:soon", "pd::0", "pd:no:-1",
        "rm:1", "ro:", "ro:x", "rp:8", "rp::ezup", "rd:8:ezup", "rd:8::obuka", "rz:x:ezup:obuka",
        "rb:8:ezup:obuka", "rb:8:ezup:obuka:x", "rk:8:ezup:obuka:1",
    ],
)
def test_a_forged_or_malformed_feature_token_parses_to_none(action: str) -> None:
    assert parse(action) is None


@pytest.mark.parametrize("action", ["tr:j:five", "tr:zz:5", "tr:at:5", "tr:f:5:x", "tr:l:1"])
async def test_a_forged_training_token_is_refused_politely(
    database: Database, action: str
) -> None:
    users = UserService(database, frozenset({"900"}))
    for who in (
        await users.get_or_register("telegram", "101", display_name="Ana"),
        await users.get_or_register("telegram", "900", display_name="Admin"),
    ):
        reply = await TrainingService(database).perform(who, action)
        assert reply is not None and "ne važi" in reply.text


async def test_a_token_of_another_feature_is_not_the_trainings(database: Database) -> None:
    users = UserService(database, frozenset())
    clerk = await users.get_or_register("telegram", "101", display_name="Ana")
    for action in ("int:ezup", "pd:no:0", "mh:1:-1", "e:ezup-login"):
        assert await TrainingService(database).perform(clerk, action) is None
