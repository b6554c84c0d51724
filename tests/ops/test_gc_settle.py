"""The process freezes what start-up built out of the cyclic GC (bot.runtime.settle_memory), and
a KB revision applied later makes it collectable again for a while, then freezes anew: the
replaced knowledge base must not stay frozen (never freed) for the life of the process."""

from __future__ import annotations

import asyncio
import gc

import pytest

from bot import runtime


@pytest.mark.asyncio
async def test_a_kb_swap_unfreezes_then_freezes_again(monkeypatch: pytest.MonkeyPatch) -> None:
    threshold = gc.get_threshold()
    monkeypatch.setattr(runtime, "REFREEZE_AFTER_SWAP", 0.05)
    try:
        runtime.settle_memory()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == runtime.GC_YOUNG_THRESHOLD
        runtime.unsettle_memory_for_a_while()
        assert gc.get_freeze_count() == 0  # the old KB can be collected now
        await asyncio.sleep(0.2)
        assert gc.get_freeze_count() > 0  # and what lives is frozen again
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
