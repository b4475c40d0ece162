"""Open a log by URL: the scheme picks the engine.

Built-in engines register through the same entry-point group third parties
use (``creative_hub.engines``), so ``open_log("myengine://...")`` works once a
package declares ``myengine = "pkg.module:EngineClass"`` there.  An engine
class has ``from_url(url) -> Log``.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit

from ..errors import UnknownEngine
from ._retry import Backoff  # public: agents retry model calls with the engines' policy
from .base import (
    Appended,
    Delivery,
    Entry,
    Feature,
    Gap,
    GroupLag,
    Health,
    Log,
    Record,
    Retention,
    Start,
    Subscription,
    TopicInfo,
    check_topic,
    deleter,
    redact,
)
from .batch import Batch

__all__ = [
    "Backoff",
    "BUILTIN_ENGINES",
    "Appended",
    "Batch",
    "Delivery",
    "Entry",
    "Feature",
    "Gap",
    "GroupLag",
    "Health",
    "Log",
    "Record",
    "Retention",
    "Start",
    "Subscription",
    "TopicInfo",
    "check_topic",
    "deleter",
    "engines",
    "open_log",
    "redact",
]

ENTRY_POINT_GROUP = "creative_hub.engines"

BUILTIN_ENGINES: dict[str, str] = {
    "sqlite": "creative_hub.log.sqlite:SQLiteLog",
    "redis": "creative_hub.log.redis:RedisLog",
    "kafka": "creative_hub.log.kafka:KafkaLog",
    "nats": "creative_hub.log.nats:NatsLog",
}


def engines() -> dict[str, str]:
    """Scheme -> ``module:Class`` for every engine: built-ins, then plugins."""
    found = dict(BUILTIN_ENGINES)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def open_log(url: str, **options: Any) -> Log:
    """The engine for ``url``, not yet opened: ``async with open_log(url) as log``
    is not offered; call ``await log.open()`` and ``await log.close()``.

    open_log("sqlite:///hub.db")            # embedded, the default
    open_log("redis://127.0.0.1:6379/0")
    open_log("kafka://127.0.0.1:9092")
    open_log("nats://127.0.0.1:4222")
    """
    scheme = urlsplit(url).scheme.lower()
    known = engines()
    if scheme not in known:
        raise UnknownEngine(url, sorted(known))
    cls = _load(known[scheme])
    log: Log = cls.from_url(url, **options)
    return log
