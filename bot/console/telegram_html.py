"""An answer as Telegram shows it, as safe HTML for the console's preview.

Telegram's HTML subset in the KB is <b>, <i> and <a href="https://...">; everything else in the
text is shown as text. Each tag is rebuilt from the whitelist and everything between tags is
escaped, so whatever a curator types, the preview can carry no markup of its own.
"""

from __future__ import annotations

import html
import re

from markupsafe import Markup

_TAG = re.compile(r"<[^<>]*>")
_LINK = re.compile(r'<a href="(https://[^"\s<>]+)">')


def telegram_preview(text: str) -> Markup:
    parts: list[str] = []
    pos = 0
    for match in _TAG.finditer(text):
        parts.append(html.escape(html.unescape(text[pos : match.start()])))
        pos = match.end()
        tag = match.group(0)
        link = _LINK.fullmatch(tag)
        if tag in ("<b>", "</b>", "<i>", "</i>", "</a>"):
            parts.append(tag)
        elif link is not None:
            href = html.escape(html.unescape(link.group(1)))
            parts.append(f'<a href="{href}" rel="noopener noreferrer" target="_blank">')
        else:
            parts.append(html.escape(tag))
    parts.append(html.escape(html.unescape(text[pos:])))
    return Markup("".join(parts))
