"""Topic names and routing: every topic name the hub uses is built here.

    creative.<area>            the shared hub, one topic per area of the event type
    peer.<id>.<stream>         a peer's hub: drafts, published, contributions, feedback, audit
    archive.<topic>            what compaction folded out of <topic>
    deadletter.<topic>         records of <topic> a subscriber could not decode
    system.<name>              the hub's own books (registry, grants, federation cursors, ...)

Only the hub writes ``archive.``, ``deadletter.`` and ``system.`` topics
(``access.check_write``).  Modules build names with these functions instead
of by hand, so a change of scheme is one edit.
"""

from __future__ import annotations

from .event import Event
from .schemas import PAYLOADS

__all__ = [
    "ARCHIVE_PREFIX",
    "CREATIVE_PREFIX",
    "DEADLETTER_PREFIX",
    "PEER_PREFIX",
    "PRIVATE",
    "PUBLIC",
    "SYSTEM_PREFIX",
    "archive",
    "creative",
    "deadletter",
    "drafts",
    "peer",
    "published",
    "route",
    "system",
]

PUBLIC, PRIVATE = "public", "private"  # an event's visibility: private work goes to drafts only

CREATIVE_PREFIX = "creative."
PEER_PREFIX = "peer."
ARCHIVE_PREFIX = "archive."
DEADLETTER_PREFIX = "deadletter."  # records a subscriber could not decode go to deadletter.<topic>
SYSTEM_PREFIX = "system."


def creative(area: str) -> str:
    """The shared hub's topic for ``area`` (``narrative`` -> ``creative.narrative``)."""
    return CREATIVE_PREFIX + area


def peer(owner: str, stream: str) -> str:
    """``peer.<owner>.<stream>``: one stream of a peer's hub."""
    return f"{PEER_PREFIX}{owner}.{stream}"


def drafts(owner: str) -> str:
    """``owner``'s private work (read by others through grants only)."""
    return peer(owner, "drafts")


def published(owner: str) -> str:
    """``owner``'s public work."""
    return peer(owner, "published")


def archive(topic: str) -> str:
    """Where compaction keeps what it folded out of ``topic``."""
    return ARCHIVE_PREFIX + topic


def deadletter(topic: str) -> str:
    """Where records of ``topic`` that are not valid events are kept, with the reason."""
    return DEADLETTER_PREFIX + topic


def system(name: str) -> str:
    """One of the hub's own books (``registry``, ``grants``, ...)."""
    return SYSTEM_PREFIX + name


_SHARED_TOPICS: dict[
    str, str
] = {}  # type -> creative.<area>, filled as events are routed (publish's hot path)


def route(event: Event) -> str:
    """The topic an event belongs to.

    Shared hub: ``creative.<area>`` from the type.  A peer's hub:
    contributions and decisions go to ``peer.<id>.contributions``, feedback to
    ``peer.<id>.feedback``, private work to ``peer.<id>.drafts`` and public
    work to ``peer.<id>.published``.
    """
    if event.hub in (None, "shared"):
        topic = _SHARED_TOPICS.get(event.type)
        if topic is None:
            topic = creative(event.type.split(".")[1])
            if event.type in PAYLOADS:  # known types only: the cache stays bounded
                _SHARED_TOPICS[event.type] = topic
        return topic
    area = event.type.split(".")[1]
    if area in ("contributions", "feedback"):
        return peer(event.hub, area)
    return drafts(event.hub) if event.visibility == PRIVATE else published(event.hub)
