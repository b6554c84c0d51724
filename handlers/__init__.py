"""Telegram handlers: one aiogram router per feature.

Each module has a `build_router()` that returns a fresh router, so every dispatcher (a restart
in tests, the bench's polling and webhook runs) gets its own. Order matters, the first match
wins: dialogues with their own states and commands come before the clerk router (which takes
any text as a question), and the fallback router (which takes everything) comes last.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiogram import Router

from handlers.filters import may_want, private_button, private_chat


def private_only(router: Router) -> Router:
    """Clerks talk to the bot in private chats: a router marked so never answers a message or a
    button in a group (the mentors' group has routers of its own)."""
    router.message.filter(private_chat)
    router.callback_query.filter(private_button)
    return router


def gated(router: Router, gate: Callable[..., Awaitable[bool]] = may_want) -> Router:
    """Every message handler of this router wants a command, a state or a group chat: other
    messages (a clerk's question) skip it in one check (`handlers.filters.may_want`)."""
    router.message.filter(gate)
    return router


def build_router() -> Router:
    from handlers import (
        admin,
        audit,
        broadcast,
        clerk,
        desk,
        fallback,
        membership,
        mentor,
        onboarding,
        privacy,
        roadmaps,
        trainings,
    )

    root = Router(name="handlers")
    root.include_routers(
        membership.build_router(),
        private_only(gated(onboarding.build_router())),
        # Features with their own states, commands and buttons. The mentor router also works
        # in the mentors' group, so it is not private_only; it takes the clerk's "Pitaj
        # mentora" button (m:<question>) before the clerk router's placeholder would.
        gated(mentor.build_router(), mentor.may_want_here),
        gated(desk.build_router()),  # mentors' /incident, in private or in the group
        gated(admin.build_router()),
        gated(trainings.build_router()),
        gated(broadcast.build_router()),
        gated(roadmaps.build_router()),  # /plan (private), /opstine, confirmations in the group
        # /moji_podaci, /obrisi_me, /audit: personal data and the audit trail never go to a group.
        private_only(gated(privacy.build_router())),
        private_only(gated(audit.build_router())),
        private_only(clerk.build_router()),
        private_only(fallback.build_router()),
    )
    return root
