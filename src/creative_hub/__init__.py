"""creative-hub: an event hub for creative work, on SQLite, Redis, Kafka or NATS.

    from creative_hub import Hub
    async with Hub.connect("sqlite:///hub.db", principal="alice") as hub:
        await hub.publish({"type": "creative.narrative.fragment", "data": {...}})
"""

from .errors import (
    AccessDenied,
    EngineUnavailable,
    HubError,
    IdConflict,
    LogClosed,
    LogError,
    NotFound,
    PayloadTooLarge,
    PositionGone,
    UnknownEngine,
    ValidationError,
)
from .event import Event, derive_id, parse_event
from .hub import Hub, HubDelivery, HubSubscription, Receipt, StoredEvent, migrate
from .ledger import EffectLedger
from .log import Log, Retention, Start, open_log

__version__ = "0.1.0"  # the one place: pyproject (hatch), OpenAPI and AsyncAPI read it

__all__ = [
    "AccessDenied",
    "EffectLedger",
    "EngineUnavailable",
    "Event",
    "Hub",
    "HubDelivery",
    "HubError",
    "HubSubscription",
    "IdConflict",
    "Log",
    "LogClosed",
    "LogError",
    "NotFound",
    "PayloadTooLarge",
    "PositionGone",
    "Receipt",
    "Retention",
    "Start",
    "StoredEvent",
    "UnknownEngine",
    "ValidationError",
    "derive_id",
    "migrate",
    "open_log",
    "parse_event",
]
