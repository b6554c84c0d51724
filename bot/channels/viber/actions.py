"""Keyboard taps (`act:<token>`): the services' own action tokens, paging, the deletion choice
and what a clerk does with a mentor request."""

from __future__ import annotations

import logging

from bot.channels.viber.commands import ViberCommands
from bot.channels.viber.common import LOGGER, TRAINING_COMMENT, _number
from bot.channels.viber.drafts import CALL_BACK, FOLLOW_UP, Draft, _attachment_of, _offers
from bot.channels.viber_render import PAGE_KIND
from bot.digits import to_int
from bot.services.actions import perform
from bot.services.buttons import ChooseMunicipality, SetLanguage, parse
from bot.services.roadmaps import ROADMAP_KINDS
from bot.services.users import UserProfile

log = logging.getLogger(LOGGER)

PAGEABLE = ("svc", "menu")  # actions whose lists are paged (they only read, never write)


class ViberActions(ViberCommands):
    """A tapped token -> the service that owns it -> the reply."""

    async def _on_action(
        self, user: UserProfile, token: str, page: int = 0, tracking: str = ""
    ) -> None:
        """A keyboard tap: the same tokens as Telegram's buttons, plus Viber's own
        (`cmd:<command>`, `pg:<page>:<token>`)."""
        kind, _, rest = token.partition(":")
        answers = self.services.answers
        if kind == "cmd" and rest:
            await self._run_command(user, rest)
            return
        if kind == PAGE_KIND:
            number, _, source = rest.partition(":")
            if to_int(number) is not None and source.partition(":")[0] in PAGEABLE:
                await self._on_action(user, source, page=int(number))
            else:
                await self.send(user, answers.stale_button(user))
            return
        tapped = parse(token)
        if isinstance(tapped, SetLanguage):
            await self._show_step(await self.onboarding.choose_language(user, tapped.code))
            return
        if isinstance(tapped, ChooseMunicipality):
            await self._show_step(await self.onboarding.choose_municipality(user, tapped.token))
            return
        if kind in ("m", "ms", "mr", "mrt", "mo", "mc") and self._mentoring is not None:
            await self._mentor_action(user, kind, rest, tracking)
            return
        if kind == "m":
            question_id = _number(rest)
            if question_id is not None:
                log.info("viber.mentor_requested user_id=%s", user.id)
                await self.send(user, answers.mentor_requested(user, question_id))
                return
        if kind == "tr" and rest.startswith("fc:") and self._trainings is not None:
            training = _number(rest[len("fc:") :])  # a comment after the rating: the next text
            if training is not None:
                prompt = self._trainings.attendance.comment_prompt(user)
                await self.send(user, prompt, tracking=f"{TRAINING_COMMENT}{training}")
                return
        if kind == "tr" and self._trainings is not None:
            reply = await self._trainings.perform(user, token)
            await self.send(user, reply or answers.stale_button(user))
            return
        if kind == "int" and rest and self._interests is not None:
            await self.send(user, await self._interests.toggle(user.id, user.language, rest))
            return
        if kind == "pd":
            await self._deletion_choice(user, rest)
            return
        if kind in ROADMAP_KINDS:  # /plan: "Urađeno", "Zapeli smo" (the service checks who)
            roadmap_reply = await self.services.roadmaps.perform(user, token)
            await self.send(user, roadmap_reply or answers.stale_button(user))
            return
        user, reply = await perform(token, user, answers, self.services.users)
        await self.send(user, reply, source=token if kind in PAGEABLE else None, page=page)

    async def _deletion_choice(self, user: UserProfile, choice: str) -> None:
        """The /obrisi_me buttons: "yes:<stamp when offered>" deletes (if still fresh), "no:0"
        keeps everything."""
        privacy = self.services.privacy
        answer, _, stamp = choice.partition(":")
        if answer == "no":
            await self.send(user, privacy.deletion_cancelled(user))
        elif answer == "yes" and to_int(stamp, 11) is not None:
            reply = await privacy.confirm_deletion(user, int(stamp))
            # Not queued if Viber is busy: a queued reply would store the Viber id of a user
            # who was just deleted.
            await self.send(user, reply, queue=False)
        else:
            await self.send(user, self.services.answers.stale_button(user))

    # -- asking a mentor ----------------------------------------------------------------------

    async def _mentor_action(self, user: UserProfile, kind: str, rest: str, tracking: str) -> None:
        mentoring = self._mentoring
        stale = self.services.answers.stale_button(user)
        if mentoring is None:
            await self.send(user, stale)
            return
        if kind == "m":
            question_id = _number(rest)
            if question_id is None:
                await self.send(user, stale)
                return
            question = await mentoring.question_text(user, question_id)
            if question is None:
                await self.send(user, stale)
                return
            await self._start_draft(user, question_id, question)
        elif kind == "ms" and rest == "send":
            draft = Draft.decode(tracking)
            if draft is None:
                await self.send(user, stale)
                return
            created = await mentoring.create_request(
                user,
                question_id=draft.question_id,
                details=draft.details,
                attachments=[_attachment_of(a) for a in draft.attachments],
                source_key=draft.source_key(user),
            )
            still_writing = created.number is None and _offers(created.reply, "ms:send")
            log.info("viber.mentor_request user_id=%s number=%s", user.id, created.number)
            await self.send(user, created.reply, tracking=draft.encode() if still_writing else None)
        elif kind == "ms" and rest == "cancel":
            await self.send(user, mentoring.cancelled(user))
        elif kind == "mr":
            number_text, _, value = rest.partition(":")
            number = _number(number_text)
            if number is not None and value == "ok":
                await self.send(user, (await mentoring.clerk_resolved(user, number)).reply)
            elif number is not None and value == "more":
                await self.send(
                    user, mentoring.followup_prompt(user, number), tracking=f"{FOLLOW_UP}{number}"
                )
            else:
                await self.send(user, stale)
        elif kind == "mo" and _number(rest) is not None:
            # a follower sends their question as their own request after all
            created = await mentoring.open_own(user, int(rest))
            await self.send(user, created.reply)
        elif kind == "mc" and _number(rest) is not None:
            await self.send(
                user, mentoring.callback_prompt(user, int(rest)), tracking=f"{CALL_BACK}{rest}"
            )
        elif kind == "mrt":
            number_text, _, value = rest.partition(":")
            number, rating = _number(number_text), _number(value)
            if number is None or rating is None:
                await self.send(user, stale)
                return
            await self.send(user, (await mentoring.rate(user, number, rating)).reply)
        else:
            await self.send(user, stale)
