"""What every part of the Viber channel shares: the channel's name, the tracking_data markers,
the services it uses (`ViberServices`) and a stand-in profile for when the database is down."""

from __future__ import annotations

from dataclasses import dataclass

from bot.app import AppServices
from bot.digits import to_int
from bot.services.answering import AnswerService
from bot.services.audience import InterestService
from bot.services.delivery import DeliveryService
from bot.services.mentoring import MentoringService
from bot.services.privacy import PrivacyService
from bot.services.roadmaps import RoadmapService
from bot.services.trainings import TrainingService
from bot.services.users import UserProfile, UserService

LOGGER = "bot.channels.viber"  # one logger for the whole channel, as before the split
CHANNEL = "viber"
AWAIT_MUNICIPALITY = "mun"  # tracking_data: the next text is (part of) a municipality name
TRAINING_COMMENT = "tc:"  # tracking_data: the next text is a comment on training <n>


def stand_in(viber_id: str, language: str) -> UserProfile:
    """A profile to reply with when the real one cannot be loaded (database down)."""
    return UserProfile(
        id=0,
        channel=CHANNEL,
        external_id=viber_id,
        display_name="",
        language=language,
        municipality=None,
        role="clerk",
        active=True,
        onboarded=False,
    )


def _number(text: str) -> int | None:
    return to_int(text, 11)


@dataclass(frozen=True)
class ViberServices:
    """What the Viber channel uses of the app's services, and nothing more."""

    users: UserService
    answers: AnswerService
    mentoring: MentoringService
    trainings: TrainingService
    interests: InterestService
    privacy: PrivacyService
    roadmaps: RoadmapService
    delivery: DeliveryService

    @classmethod
    def of(cls, services: AppServices) -> ViberServices:
        return cls(
            users=services.users,
            answers=services.answers,
            mentoring=services.mentoring,
            trainings=services.trainings,
            interests=services.interests,
            privacy=services.privacy,
            roadmaps=services.roadmaps,
            delivery=services.delivery,
        )
