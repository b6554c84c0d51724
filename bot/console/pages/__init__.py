"""Console pages: each module registers its pages with `bot.console.page` when imported."""
