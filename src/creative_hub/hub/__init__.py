"""The hub: publish (validate, stamp, route, append), subscribe, replay.

Every face (CLI, HTTP, MCP) goes through a Hub; none reaches into an engine.

    async with Hub.connect("sqlite:///hub.db", principal="alice") as hub:
        await hub.publish({"type": "creative.narrative.fragment",
                           "data": {"story": "s1", "title": "Opening", "text": "..."}})
        async with hub.subscribe("creative.narrative", group="readers") as sub:
            async for delivery in sub:
                print(delivery.event.data)
                await delivery.ack()

The package, one idea a module: ``core`` (the Hub: views, books, admin),
``publish`` (the publish pipeline), ``subscription`` (one decode-and-gate),
``read`` (replay, lookup by id), ``migrate`` (log to log); topic names and
routing are ``creative_hub.topics``.
"""

from __future__ import annotations

from ..topics import DEADLETTER_PREFIX, PRIVATE, PUBLIC, route
from .core import Hub, default_keys, default_token_key
from .migrate import migrate
from .publish import Receipt
from .read import StoredEvent
from .subscription import HubDelivery, HubSubscription

__all__ = [
    "DEADLETTER_PREFIX",
    "PRIVATE",
    "PUBLIC",
    "Hub",
    "HubDelivery",
    "HubSubscription",
    "Receipt",
    "StoredEvent",
    "default_keys",
    "default_token_key",
    "migrate",
    "route",
]
