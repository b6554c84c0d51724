"""The mentor desk: incidents on a service, and canned replies.

Incidents. A mentor or admin declares that a service does not work (`/incident eZUP ne radi
prijava od 9h`: the first word names the service, matched against the KB's services). While it
is open, a clerk whose question concerns that service (the matcher's best candidate, or the
service named in the text) gets the notice first, and is recorded on the incident, as is a clerk
whose escalation is on that service. Closing it tells each recorded clerk once, through the
outbox, in their language and channel. Roles are checked against the database on every
privileged action; declaring and closing go to the audit trail.

Canned replies. Mentors keep short reusable answers (`/sablon_novi naziv | tekst`, `/sabloni`,
`/sablon_obrisi naziv`) with {ime} (the clerk's name), {opstina} and {usluga} filled from the
request. "Šablon" on a request card lists them; choosing one gives the mentor the filled-in
text as a draft, to send as it is ("Pošalji ovako", through the mentor queue's answer) or to
edit and send as their reply.

Action tokens: inc:z:<id> close an incident · sab:<request>:0:0 the canned replies for a request
· sab:<request>:<reply>:0 the draft · sab:<request>:<reply>:1 send the draft as it is.

The package is split by responsibility: common, base (services by name), incidents, canned.
"""

from __future__ import annotations

from bot.services.desk.canned import DeskCanned
from bot.services.desk.common import (
    MAX_CANNED_NAME,
    MAX_CANNED_TEXT,
    MAX_INCIDENT_TEXT,
    VARIABLES,
    DeskResult,
)
from bot.services.desk.incidents import DeskIncidents

__all__ = [
    "MAX_CANNED_NAME",
    "MAX_CANNED_TEXT",
    "MAX_INCIDENT_TEXT",
    "VARIABLES",
    "DeskResult",
    "DeskService",
]


class DeskService(DeskIncidents, DeskCanned):
    """The mentor desk: incidents and canned replies."""
