"""Prometheus metrics of one server (its own registry, so tests can run several).

Counters grow from the start of the process; Prometheus derives rates from
them (``rate(creative_hub_published_events_total[1m])`` is the publish
rate).  Lag, pending and dead letters are read from the log at each scrape.
Redeliveries are not counted here: the log contract reports lag and pending
per group, not how often an event was delivered again.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "creative_hub_http_requests",
            "HTTP requests by method and status",
            ["method", "status"],
            registry=self.registry,
        )
        self.published = Counter(
            "creative_hub_published_events",
            "Events published through the HTTP API",
            ["topic"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "creative_hub_rate_limited_requests",
            "Requests refused with 429 by the per-token rate limit",
            registry=self.registry,
        )
        self.stream_clients = Gauge(
            "creative_hub_stream_clients", "Server-Sent Events clients connected", registry=self.registry
        )
        self.stream_events = Counter(
            "creative_hub_stream_events",
            "Events sent to Server-Sent Events clients",
            registry=self.registry,
        )
        self.stream_dropped = Counter(
            "creative_hub_stream_dropped_clients",
            "Server-Sent Events clients disconnected for falling too far behind (slow consumers)",
            registry=self.registry,
        )
        self.lag = Gauge(
            "creative_hub_consumer_lag",
            "Events a consumer group has not acked",
            ["topic", "group"],
            registry=self.registry,
        )
        self.pending = Gauge(
            "creative_hub_consumer_pending",
            "Events delivered to a group member and not acked yet (redelivered if never acked)",
            ["topic", "group"],
            registry=self.registry,
        )
        self.skipped = Gauge(
            "creative_hub_consumer_skipped_events",
            "Events retention removed before the group got them (reported as gaps; counted ones)",
            ["topic", "group"],
            registry=self.registry,
        )
        self.gaps = Gauge(
            "creative_hub_consumer_gaps",
            "Gaps reported to the group: runs of events retention removed before it got them",
            ["topic", "group"],
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "creative_hub_dead_letters", "Events in dead-letter topics", ["topic"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
