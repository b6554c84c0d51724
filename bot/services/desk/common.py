"""The desk's vocabulary: limits, the variables canned replies may use, and the result of a
desk action (the reply, and a short notice for a button toast)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.services.replies import Reply, toast

MAX_INCIDENT_TEXT = 500
MAX_CANNED_TEXT = 3000
MAX_CANNED_NAME = 64
VARIABLES = ("ime", "opstina", "usluga")
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class DeskResult:
    reply: Reply
    ok: bool

    @property
    def notice(self) -> str:
        return toast(self.reply)

