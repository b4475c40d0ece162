"""Prometheus metrics of one server (its own registry, so tests can run several).

Counters grow from the start of the process; Prometheus derives rates from
them (``rate(creative_hub_published_events_total[1m])`` is the publish
rate).  Lag, pending and dead letters are read from the log at each scrape.
Redeliveries are not counted here: the log contract reports lag and pending
per group, not how often an event was delivered again.
"""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # every name is creative_hub_<name> (the namespace), e.g. creative_hub_consumer_lag
        counter = functools.partial(Counter, namespace="creative_hub", registry=self.registry)
        gauge = functools.partial(Gauge, namespace="creative_hub", registry=self.registry)
        per_group = ["topic", "group"]
        self.requests = counter("http_requests", "HTTP requests by method and status", ["method", "status"])
        self.published = counter("published_events", "Events published through the HTTP API", ["topic"])
        self.rate_limited = counter(
            "rate_limited_requests", "Requests refused with 429 by the per-token rate limit"
        )
        self.stream_clients = gauge("stream_clients", "Server-Sent Events clients connected")
        self.stream_events = counter("stream_events", "Events sent to Server-Sent Events clients")
        self.stream_dropped = counter(
            "stream_dropped_clients",
            "Server-Sent Events clients disconnected for falling too far behind (slow consumers)",
        )
        self.lag = gauge("consumer_lag", "Events a consumer group has not acked", per_group)
        self.pending = gauge(
            "consumer_pending",
            "Events delivered to a group member and not acked yet (redelivered if never acked)",
            per_group,
        )
        self.skipped = gauge(
            "consumer_skipped_events",
            "Events retention removed before the group got them (reported as gaps; counted ones)",
            per_group,
        )
        self.gaps = gauge(
            "consumer_gaps",
            "Gaps reported to the group: runs of events retention removed before it got them",
            per_group,
        )
        self.dead_letters = gauge("dead_letters", "Events in dead-letter topics", ["topic"])

    def render(self) -> bytes:
        return generate_latest(self.registry)
