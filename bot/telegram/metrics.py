"""Prometheus metrics of the Telegram channel, on a registry of their own (one per runner, so
several bots in one process - tests, the bench - never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "bot_updates_total",
            "Telegram updates received, by kind and outcome",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.update_seconds = Histogram(
            "bot_update_seconds",
            "Time to handle one update",
            ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.decisions = Counter(
            "bot_answer_decisions_total",
            "What the bot did with a question",
            ["decision"],
            registry=self.registry,
        )
        self.api_calls = Counter(
            "bot_telegram_api_calls_total",
            "Outgoing Bot API calls, by method and outcome (each attempt counts)",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "bot_rate_limited_total",
            "Messages slowed down by the per-clerk limit",
            registry=self.registry,
        )
        self.duplicates = Counter(
            "bot_duplicate_updates_total",
            "Updates seen before and skipped",
            registry=self.registry,
        )
        self.storage_errors = Counter(
            "bot_storage_unavailable_total",
            "Updates answered with 'try again' (DB down)",
            registry=self.registry,
        )
        self.outbox = Counter(
            "bot_outbox_deliveries_total",
            "Outbox messages handed to Telegram, by outcome",
            ["status"],
            registry=self.registry,
        )
        self.up = Gauge("bot_up", "1 while the bot is running", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
