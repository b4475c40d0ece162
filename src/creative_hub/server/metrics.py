"""Prometheus metrics of one server (its own registry, so tests can run several)."""

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
        self.stream_clients = Gauge(
            "creative_hub_stream_clients", "Server-Sent Events clients connected", registry=self.registry
        )
        self.lag = Gauge(
            "creative_hub_consumer_lag",
            "Events a consumer group has not acked",
            ["topic", "group"],
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "creative_hub_dead_letters", "Events in dead-letter topics", ["topic"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
