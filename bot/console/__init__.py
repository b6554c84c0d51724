"""The curators' web console at /console: one more channel over the same services.

Pages live in `bot/console/pages/` (every module there is imported and registers its pages
with `@page`), templates in `bot/console/templates/` (they extend `base.html`). How to add a
page: docs/console.md.
"""

from bot.console.core import ADMINS, CURATORS, Ctx, page, setup_console

__all__ = ["ADMINS", "CURATORS", "Ctx", "page", "setup_console"]
