"""The Viber channel: Viber's callbacks in, the same services as Telegram, Viber messages out.

Viber POSTs every event to one webhook URL. Each callback's `X-Viber-Content-Signature` (the
HMAC-SHA256 hex digest of the raw body, keyed with the auth token) is checked in constant time
before anything is parsed: a missing or wrong signature gets 403 and nothing is stored.

- `message`: text goes to the AnswerService (or to onboarding while a municipality is awaited);
  keyboard taps arrive as text messages whose text is the button's ActionBody, `act:<token>`,
  with the services' own action tokens ("e:...", "c:...", "fb:...", "lang:...", "mun:..."), so
  a tap is never confused with typed text; `/teme`, `/pomoc` ... typed by hand work as on
  Telegram; pictures, stickers, files, locations, contacts, videos, links get a polite answer.
  Each message_token is handled once (processed_updates, channel "viber").
- `conversation_started`: the welcome and the script/language keyboard, in the HTTP response
  (Viber lets a bot answer this event once, before the user has subscribed).
- `subscribed` registers (or reactivates) the user; `unsubscribed` marks them inactive, so
  broadcasts and reminders skip them; `delivered`, `seen`, `failed` are logged.

- "Ask a mentor" (after escalate, clarify, 👎, or `/mentor`): the clerk may add details and
  pictures or files (their Viber download URLs become the request's attachments), then taps
  "Pošalji mentoru"; the mentor's answer comes back through the outbox, with "resolved",
  follow-up and rating. `/obuke` lists trainings for sign-up (`tr:*` tokens); `/usluge` the
  services the clerk works on (`int:*`). Calendar files are offered to Viber at
  GET /viber/files/<outbox id>/<signature>/<name> (Viber fetches files by URL).
- Privacy, as on Telegram: `/moji_podaci` queues the export file (PrivacyService.queue_export;
  it goes out by the same file link, which works only for EXPORT_LINK_SECONDS); `/obrisi_me`
  asks for confirmation, and the buttons' tokens (`pd:yes:<stamp>`, `pd:no:0`) delete or not.

What the bot is waiting for (a municipality name, a mentor request being written, a follow-up)
travels in the message's `tracking_data`: Viber hands it back with the user's next message, so no
state is kept in the process and any instance can take the next callback.

Wiring (bot/runtime.py owns the aiohttp app and the outbox):
    channel = setup_viber(app, services, senders)      # None when VIBER_AUTH_TOKEN is unset;
                                                       # adds the routes and senders["viber"]
    ... start the HTTP server, OutboxDispatcher(database, senders) ...
    if channel: await start_viber(channel)             # set_webhook when the public URL is set
    ... at exit: await channel.wait_idle(grace); await channel.close()

The package, one job a module: `webhook` (HTTP: signature, file links), `channel` (ViberChannel:
events, claim/replay, registration, where a message goes), `commands`, `actions` (taps, mentor
actions, deletion choice), `drafts` (the mentor request being written), `sending` (replies out,
the outbox when Viber is busy), `ratelimit`, `common` (shared names), `wiring` (runner set-up).
"""

from bot.channels.viber.channel import ViberChannel
from bot.channels.viber.common import CHANNEL, ViberServices, _number, stand_in
from bot.channels.viber.drafts import Draft, viber_attachment
from bot.channels.viber.webhook import SIGNATURE_HEADER, EventNotKept, signature, token_id
from bot.channels.viber.wiring import (
    add_viber_routes,
    build_viber_app,
    build_viber_channel,
    setup_viber,
    start_viber,
    viber_sender,
)

__all__ = [
    "CHANNEL",
    "SIGNATURE_HEADER",
    "Draft",
    "EventNotKept",
    "ViberChannel",
    "ViberServices",
    "_number",
    "add_viber_routes",
    "build_viber_app",
    "build_viber_channel",
    "setup_viber",
    "signature",
    "stand_in",
    "start_viber",
    "token_id",
    "viber_attachment",
    "viber_sender",
]
