"""Reading through the hub: replay (grant-gated and audited), lookup by id, raw records.

The functions take the ``Hub`` first and are the hub's methods of the same
name (``Hub.replay``, ``Hub.get``, ``Hub.records``, ``Hub.tail_start``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Unpack

import msgspec

from .. import topics
from ..access import can_read, can_read_event, check_read, needs_grant
from ..errors import NotFound
from ..event import Event, decode_event
from ..log import Record
from ..log.base import ReadOptions, ReadRange, check_topic

if TYPE_CHECKING:
    from .core import Hub

__all__ = ["AUDIT_BATCH", "StoredEvent", "get", "records", "replay", "tail_start"]

logger = logging.getLogger("creative_hub.hub")

AUDIT_BATCH = 100  # drafts read through grants per audit record, at most (replay)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event read back from the log, with where it is."""

    topic: str
    position: str
    time_ms: int
    event: Event


def _decoded(topic: str, r: Record) -> StoredEvent | None:
    """``r`` as a StoredEvent, or None (logged) when it is not a valid event."""
    try:
        return StoredEvent(topic, r.position, r.time_ms, decode_event(r.body))
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        logger.warning("skipping %s@%s: not a valid event (%s)", topic, r.position, e)
        return None


async def replay(hub: Hub, topic: str, **options: Unpack[ReadOptions]) -> AsyncGenerator[StoredEvent, None]:
    """Events of ``topic`` in log order (history; with ``follow``, then live), as the
    log's ``read(topic, **options)`` (``ReadOptions``: after, since, limit, follow).

    Someone else's drafts, read through grants, come filtered event by event
    (``limit`` then counts the events handed over) and audited for the owner
    a batch at a time, before the batch is handed over.
    """
    check_topic(topic)
    if needs_grant(hub.identity, topic):
        async for granted in _replay_granted(hub, topic, ReadRange(**options)):
            yield granted
        return
    check_read(hub.identity, topic)
    agent = hub.identity.agent
    async for r in hub.log.read(topic, **options):
        stored = _decoded(topic, r)
        if stored is None:
            continue
        if agent:
            hub.reads.add(hub.principal, (stored.event.id,))
        yield stored


async def records(
    hub: Hub, topic: str, *, after: str | None = None, limit: int | None = None
) -> AsyncGenerator[Record, None]:
    """The raw records of ``topic`` (bodies as stored, junk too) for indexes and
    compaction, which keep bodies.  In someone else's drafts only the events a
    live grant covers (no junk); these reads are not audited, so a face hands
    events to a person through ``replay`` or ``get``, never through this."""
    check_topic(topic)
    gated = needs_grant(hub.identity, topic)
    if gated:
        await hub.grants.refresh()
    check_read(hub.identity, topic)
    async for r in hub.log.read(topic, after=after, limit=limit):
        if gated:
            await hub.grants.refresh()  # at most every REFRESH_AGE: a revocation counts mid-read
            stored = _decoded(topic, r)
            if stored is None or not can_read_event(hub.identity, topic, stored.event.subject):
                continue
        yield r


async def _replay_granted(hub: Hub, topic: str, span: ReadRange) -> AsyncIterator[StoredEvent]:
    grants = hub.grants
    limit, follow = span.limit, span.follow
    await grants.refresh()
    check_read(hub.identity, topic)
    # History goes out in audited batches; live events (follow) one at a time.
    size = 1 if follow else min(limit or AUDIT_BATCH, AUDIT_BATCH)
    left = limit
    batch: list[StoredEvent] = []
    async for r in hub.log.read(topic, after=span.after, since=span.since, follow=follow):
        stored = _decoded(topic, r)
        if stored is None:
            continue
        await grants.refresh()  # at most every REFRESH_AGE: a revocation counts mid-replay
        who = hub.identity
        if not can_read_event(who, topic, stored.event.subject):
            continue
        batch.append(stored)
        if left is not None:
            left -= 1
        if len(batch) >= size or left == 0:
            await grants.record_reads(who, topic, [s.event for s in batch], "replay")
            hub._handed([s.event for s in batch])
            for s in batch:
                yield s
            batch = []
            if left == 0:
                return
    if batch:
        await grants.record_reads(hub.identity, topic, [s.event for s in batch], "replay")
        hub._handed([s.event for s in batch])
        for s in batch:
            yield s


async def get(hub: Hub, event_id: str, topic: str | None = None) -> StoredEvent:
    """The event with ``event_id`` (in ``topic``, or in any peer or shared topic
    this principal may read).  NotFound otherwise: an event in a topic the principal may not
    read is "not found" too, so a guessed id tells nothing.  A lookup in the id index
    (``ids.py``) and a read of one record: the same cost at any size of log, hit or miss."""
    if topic is not None:
        check_topic(topic)
    if hub.identity.grants is not None:
        await hub.grants.refresh()
    who = hub.identity
    for attempt in range(2):
        if attempt:  # a miss: first what the log holds beyond the index (other writers too)
            await hub.ids.catch_up()
        for place in hub.ids.places(event_id):
            name = place.topic
            if topic is not None and name != topic:
                continue
            # Without a topic: the creative work (peer hubs and shared topics),
            # not work queues, archives or dead letters -- name the topic for those.
            if topic is None and not name.startswith((topics.PEER_PREFIX, topics.CREATIVE_PREFIX)):
                continue
            if not can_read(who, name):
                continue
            record = await hub.ids.fetch(place, event_id)
            if record is None:
                continue
            stored = _decoded(name, record)
            if stored is None:
                continue
            if not can_read_event(who, name, stored.event.subject):
                continue  # not theirs to see: "not found", like any other
            await hub.grants.record_reads(who, name, [stored.event], "get")
            hub._handed([stored.event])
            return stored
    raise NotFound(f"no event {event_id!r}")


async def tail_start(hub: Hub, topic: str, n: int) -> str | None:
    """The position after which the last ``n`` records of ``topic`` begin (None: from
    its beginning, or no such topic yet).  Positions only, so no event is handed over."""
    check_topic(topic)
    check_read(hub.identity, topic)
    try:
        info = await hub.log.topic_info(topic)
    except NotFound:
        return None
    if n == 0:
        return info.last
    if info.count <= n:
        return None
    window: deque[str] = deque(maxlen=n + 1)
    async for r in hub.log.read(topic):
        window.append(r.position)
    return window[0] if len(window) > n else None
