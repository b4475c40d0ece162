"""The log contract: what every engine (sqlite, redis, kafka, nats) must do.

The rungs, each adding to the one before (compare eventsourcing's recorders):

1. **append / read** -- an ordered, deduplicated log per topic.
2. **subscribe** -- consumer groups: one member per event, ack, redelivery
   after the ack timeout, per-partition-key order across members.
3. **retention / lag / health** -- bounded topics and observable groups.

**Gaps.**  A group that falls behind retention (its members read slower than
``max_age`` / ``max_count`` / ``max_bytes`` let records live) cannot get
what retention removed.  That is never a silent loss: the subscription
reports a :class:`Gap` -- topic, group, engine partition, the position range
and, where the engine can count them, how many events the group skipped --
before it hands out the first retained record after it, and then goes on
with the retained records.  Every member's subscription keeps the notices
(``sub.gaps()`` takes them; ``sub.on_gap = callback`` is called at once;
``sub.skipped`` counts the events), logs each at WARNING, and the group's
total is in ``GroupLag.skipped`` / ``GroupLag.gaps`` (the Prometheus gauges
``creative_hub_consumer_skipped_events`` and ``creative_hub_consumer_gaps``).
Each gap is reported once per group, by the member that owns its partition.
What counts as skipped: a record retention removed before the group
*delivered* it to any member.  A record already delivered and held by a live
member is still handled and acked normally; one delivered to a member that
then died un-acked, and removed before a new owner could get it, is
reported as a gap with ``count=None`` (its range only).  Engines that cannot
count (NATS: a stream's partitions share one sequence, and JetStream
removes records by its own limits) report ``count=None`` and the range.

Optional capabilities are declared in one place, the engine class's
``FEATURES`` (a frozenset of ``Feature``); nobody probes for methods:

* ``Feature.DELETE``: ``async delete(topic, ids) -> int`` removes single
  records by id (compaction; SQLite, Redis, NATS -- Kafka leaves folded
  records to retention); ``deleter(log)`` gives it, typed;
* ``Feature.ATOMIC_APPEND``: a batch is stored whole or not at all;
* ``Feature.GAP_COUNTS``: a Gap counts the events it skipped (else ``count``
  may be None and the range is what the engine knows).

Engines deal in bytes: the hub encodes an event once (CloudEvents structured
JSON) and the engine stores the body with the few attributes it needs to
route and deduplicate (``id``, partition ``key``, content ``digest``).  The
method docstrings below are the rules ``creative_hub.testing.contract``
checks on every engine.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypedDict, Unpack, runtime_checkable

import msgspec

from ..errors import ValidationError

if TYPE_CHECKING:
    from .batch import Batch

__all__ = [
    "Appended",
    "DEFAULT_ACK_TIMEOUT",
    "DEFAULT_BATCH",
    "Deleter",
    "Delivery",
    "Entry",
    "Feature",
    "Gap",
    "GapReporter",
    "GroupLag",
    "Health",
    "Log",
    "ReadOptions",
    "ReadRange",
    "Record",
    "Retention",
    "Settler",
    "Start",
    "SubscribeOptions",
    "Subscription",
    "TopicInfo",
    "check_topic",
    "deleter",
    "redact",
    "settle_others",
    "unsettled",
]

DEFAULT_ACK_TIMEOUT = 30.0  # seconds an un-acked delivery waits before redelivery
DEFAULT_BATCH = 256  # events fetched per round trip by a subscription
MAX_GAP_NOTICES = 1024  # gap notices a subscription keeps until gaps() takes them (oldest dropped)

logger = logging.getLogger("creative_hub.log")

_TOPIC = re.compile(r"^[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*)*$")
MAX_TOPIC_LENGTH = 200  # characters; under every broker's limit (Kafka: 249)


def check_topic(topic: str) -> str:
    """Return ``topic`` if it is a valid topic name, else raise ValidationError.

    Topic names are dot-separated words of ``a-z 0-9 _ -``: they map onto Redis
    keys, Kafka topics and NATS subjects alike, and cannot escape a prefix
    (no ``/``, ``..``, wildcards or spaces).
    """
    if not isinstance(topic, str) or not _TOPIC.match(topic) or len(topic) > MAX_TOPIC_LENGTH:
        raise ValidationError(
            "topic",
            f"{topic!r} is not a topic name: dot-separated words of a-z, 0-9, '_' "
            f"and '-', at most {MAX_TOPIC_LENGTH} characters",
        )
    return topic


class Entry(msgspec.Struct, gc=False):
    """One event as the log stores it (untracked by the garbage collector: one is
    made per event published, and its fields, strings and bytes, are in no cycle)."""

    id: str  #: the event id; the idempotency key within a topic
    key: str  #: partition key; events with the same key keep their order
    body: bytes  #: the encoded event (CloudEvents structured JSON)
    digest: str  #: content hash; a re-sent id with another digest is a conflict
    creator: str = ""  #: who made it; engines with subject routing use it (nats)


@dataclass(slots=True)
class Appended:
    """The receipt of one appended entry."""

    position: str  #: where it is (or already was) in the topic
    duplicate: bool = False  #: True when the id was already stored


class Record(msgspec.Struct, gc=False):
    """One stored event, as read back (untracked by the garbage collector, as ``Entry``)."""

    topic: str
    position: str  #: opaque to callers; pass it back as ``read(after=...)``
    id: str
    key: str
    body: bytes
    time_ms: int  #: when the log stored it, in ms since the epoch


class Delivery:
    """A record handed to one member of a consumer group; ack it when handled.

    ``ack()`` after the handler's effect is durable (at-least-once).  An
    un-acked delivery is redelivered after the subscription's ack timeout,
    to this member or, if it died, to another.  ``nack(delay)`` asks for
    redelivery after ``delay`` seconds.  Acking twice is harmless.

    An engine makes one with ``Delivery(record, count, owner=sub, token=t)``:
    no closures per record; ``ack()`` calls ``owner._settle_acks([self])``
    and ``nack()`` calls ``owner._settle_nack(self, delay)``, and the owner
    finds its bookkeeping through ``token``.
    """

    __slots__ = ("_done", "_owner", "_token", "delivery_count", "record")

    def __init__(self, record: Record, delivery_count: int, *, owner: Settler, token: Any = None) -> None:
        self.record = record
        self.delivery_count = delivery_count  #: 1 on first delivery, then more
        self._done = False
        self._owner = owner
        self._token = token

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def key(self) -> str:
        return self.record.key

    @property
    def body(self) -> bytes:
        return self.record.body

    @property
    def position(self) -> str:
        return self.record.position

    @property
    def topic(self) -> str:
        return self.record.topic

    @property
    def done(self) -> bool:
        """True once acked or nacked."""
        return self._done

    async def ack(self) -> None:
        """Mark handled: it will not be delivered to this group again."""
        if not self._done:
            self._done = True
            await self._owner._settle_acks((self,))

    async def nack(self, delay: float = 0.0) -> None:
        """Not handled: deliver it again after ``delay`` seconds."""
        if not self._done:
            self._done = True
            await self._owner._settle_nack(self, delay)

    def __repr__(self) -> str:
        r = self.record
        return f"<Delivery {r.topic}@{r.position} id={r.id} n={self.delivery_count}>"


class Settler(Protocol):
    """What settles a Delivery: its subscription (engines implement these two)."""

    async def _settle_acks(self, deliveries: Sequence[Delivery]) -> None:
        """Ack ``deliveries`` (already marked done, all owned by this settler)."""
        ...

    async def _settle_nack(self, delivery: Delivery, delay: float) -> None: ...


def unsettled(owner: object, deliveries: Iterable[Delivery]) -> tuple[list[Delivery], list[Delivery]]:
    """For ``ack_many``: mark every delivery not yet acked or nacked as done.

    Returns (those ``owner`` settles, those another subscription settles);
    already settled ones are left out (acking twice is harmless).
    """
    mine: list[Delivery] = []
    others: list[Delivery] = []
    for d in deliveries:
        if d._done:
            continue
        d._done = True
        (mine if d._owner is owner else others).append(d)
    return mine, others


async def settle_others(others: list[Delivery]) -> None:
    """Ack deliveries ``ack_many`` was given that belong to another subscription."""
    for d in others:
        await d._owner._settle_acks((d,))


class Feature(StrEnum):
    """What an engine can do beyond the contract; declared in its class's ``FEATURES``."""

    DELETE = "delete"  #: ``async delete(topic, ids) -> int``: single records removed by id
    ATOMIC_APPEND = "atomic_append"  #: a batch is stored whole or not at all
    GAP_COUNTS = "gap_counts"  #: gaps count the events they skipped
    APPEND_HINT = "append_hint"  #: ``will_append(topic, first)``: told a call's first entry early


class Deleter(Protocol):
    """An engine with ``Feature.DELETE``."""

    async def delete(self, topic: str, ids: Sequence[str]) -> int:
        """Remove single records of ``topic`` by id; how many went (unknown ids and topics: 0)."""
        ...


def deleter(log: Log) -> Deleter | None:
    """``log`` as a Deleter if its engine declares ``Feature.DELETE``, else None."""
    if Feature.DELETE in log.FEATURES:
        return log  # type: ignore[return-value]  # declared: the engine has the method
    return None


class Start(StrEnum):
    """Where a consumer group that has never committed begins."""

    EARLIEST = "earliest"  # the whole retained history, then live (catch-up)
    LATEST = "latest"  # only events appended after the group was created


class ReadOptions(TypedDict, total=False):
    """The keywords of ``read()`` (the log's and the hub's ``replay``); defaults in ReadRange."""

    after: str | None  #: only records after this position (default None: from the start)
    since: float | None  #: only records stored at or after this time, epoch seconds (default None)
    limit: int | None  #: at most this many records (default None: no limit)
    follow: bool  #: after the end, wait for new records instead of stopping (default False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadRange:
    """One read's ReadOptions with the defaults filled in: ``ReadRange(**options)``."""

    after: str | None = None
    since: float | None = None
    limit: int | None = None
    follow: bool = False


class SubscribeOptions(TypedDict, total=False):
    """The keywords of ``subscribe()`` (the log's and the hub's); their defaults and
    rules are ``creative_hub.log._subscription.check_subscribe``'s."""

    consumer: str | None  #: this member's name (default None: one made up, unique per member)
    ack_timeout: float  #: seconds before an un-acked delivery comes again (default DEFAULT_ACK_TIMEOUT)
    start: Start  #: where a group that never acked begins (default Start.EARLIEST)
    batch: int  #: records fetched per round trip (default DEFAULT_BATCH)


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    """How much of a topic the hot log keeps.  ``None`` means no limit.

    Retention(max_age=7 * 86400)   # drop events older than a week
    Retention(max_count=100_000)   # keep the newest 100k events
    Retention(max_bytes=1 << 30)   # keep about the newest GiB
    """

    max_age: float | None = None  #: seconds
    max_count: int | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_age", "max_count", "max_bytes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValidationError(f"retention.{name}", f"must be > 0, got {value!r}")

    @property
    def unlimited(self) -> bool:
        return self.max_age is None and self.max_count is None and self.max_bytes is None


@dataclass(slots=True)
class TopicInfo:
    """What a topic holds now."""

    name: str
    count: int  #: events retained
    first: str | None  #: position of the oldest retained event
    last: str | None  #: position of the newest event
    bytes: int | None = None  #: stored size, where the engine knows it
    retention: Retention = field(default_factory=Retention)


@dataclass(slots=True)
class GroupLag:
    """How far a consumer group is behind the end of a topic."""

    topic: str
    group: str
    lag: int  #: events not yet acked by the group
    pending: int = 0  #: delivered to a member but not acked yet
    members: int = 0  #: members seen alive recently
    skipped: int = 0  #: events retention removed before the group got them (counted ones; see Gap)
    gaps: int = 0  #: gaps reported to the group (also those an engine could not count)


@dataclass(frozen=True, slots=True)
class Gap:
    """Records retention removed before a consumer group got them: reported, never silent.

    Positions are the engine's, within ``partition`` (a Kafka offset, a Redis
    stream id, a SQLite or NATS sequence): the group had everything up to
    ``after`` (``None``: from the start) and resumes after ``upto``.
    """

    topic: str
    group: str
    partition: int  #: the engine partition the gap is in
    after: str | None  #: the group's position before the gap (exclusive)
    upto: str  #: the newest position of the gap (inclusive); the group resumes after it
    count: int | None  #: events skipped; None where the engine cannot count them (the range holds them)
    time: float = field(default_factory=time.time)  #: when it was reported (epoch seconds)

    def __str__(self) -> str:
        n = "an unknown number of" if self.count is None else str(self.count)
        return (
            f"{self.topic} group {self.group} partition {self.partition}: {n} event(s) after "
            f"{self.after or 'the start'} up to {self.upto} were removed by retention before the group "
            "got them"
        )


class GapReporter:
    """The gap half of a subscription, shared by the engines (a base class of each).

    ``_report_gap(gap)`` counts it, logs it at WARNING, keeps it for
    ``gaps()`` and calls ``on_gap`` (whose exceptions are logged, never raised).
    """

    topic: str
    group: str
    skipped: int  #: events this subscription reported skipped (counted gaps only)
    on_gap: Callable[[Gap], object] | None  #: called with each gap as it is found

    def _init_gaps(self) -> None:
        self.skipped = 0
        self.on_gap = None
        self._gap_notices: deque[Gap] = deque(maxlen=MAX_GAP_NOTICES)

    def gaps(self) -> list[Gap]:
        """The gaps reported since the last call, oldest first (and forget them)."""
        out = list(self._gap_notices)
        self._gap_notices.clear()
        return out

    def _report_gap(self, gap: Gap) -> None:
        if gap.count is not None:
            self.skipped += gap.count
        logger.warning("gap: %s", gap)
        self._gap_notices.append(gap)
        if self.on_gap is not None:
            try:
                self.on_gap(gap)
            except Exception:
                logger.exception("on_gap callback failed for %s", gap)


@dataclass(slots=True)
class Health:
    ok: bool
    engine: str
    url: str  #: without any password
    detail: str = ""


@runtime_checkable
class Subscription(Protocol):
    """A consumer-group membership, used as::

    async with log.subscribe("creative.narrative", "indexer") as sub:
        async for delivery in sub:
            handle(delivery.body)
            await delivery.ack()
    """

    topic: str
    group: str
    consumer: str
    skipped: int  #: events reported skipped by retention (see Gap)
    on_gap: Callable[[Gap], object] | None  #: called with each Gap as it is found

    def gaps(self) -> list[Gap]:
        """Gaps (records retention removed before the group got them) found since the last call.

        A gap is found before the first retained record after it is handed
        out, and each is reported once per group (see the module docstring).
        """
        ...

    async def __aenter__(self) -> Subscription: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def next(self, timeout: float | None = None) -> Delivery:
        """The next delivery; raises TimeoutError if none comes within ``timeout`` s."""
        ...

    async def next_batch(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> list[Delivery]:
        """At least one delivery and at most ``max``: those ready now, in order.

        Waits like ``next()`` for the first one (TimeoutError if none comes
        within ``timeout`` s), then adds what is already fetched or due,
        without waiting for more.  Deliveries come in the order ``next()``
        would give them (per key, append order), each counted as handed out:
        every one must be acked (``ack_many`` or its own ``ack()``) or it is
        redelivered after the ack timeout, like any other delivery.
        """
        ...

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Ack all ``deliveries`` at once: the same as ``ack()`` on each.

        The engine settles them in one round (one XACK per partition, one
        commit, one write of acks) instead of one per delivery.  Deliveries
        already acked or nacked are skipped (acking twice is harmless); a
        delivery of a partition this member lost meanwhile is ignored, as its
        ``ack()`` would be (the new owner delivers it again).
        """
        ...

    async def fetch(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> Batch:
        """The next batch as one object: ``next_batch(max, timeout)``'s deliveries, in order.

        ``batch.ack()`` acks them all and ``batch.ack(upto=n)`` the first
        ``n``, each in one round (as ``ack_many``); the rest stay handed out
        and come back to the group on ``batch.nack()`` or, all at once, after
        the ack timeout -- once each, not once per fetch.  ``max`` an int >= 1.
        """
        ...

    def batches(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> AsyncIterator[Batch]:
        """``async for batch in sub.batches(max)``: ``fetch()`` in a loop, until the subscription closes."""
        ...

    async def close(self) -> None:
        """Leave the group.  Un-acked deliveries go back to the group.  Safe twice."""
        ...


@runtime_checkable
class Log(Protocol):
    """An engine.  Open it with ``creative_hub.log.open_log(url)``."""

    url: str  #: as given, password removed
    FEATURES: ClassVar[frozenset[Feature]]  #: what it can do beyond the contract (see Feature)

    async def open(self) -> None:
        """Connect (or create the file).  Raises EngineUnavailable naming the URL."""
        ...

    async def close(self) -> None:
        """Release connections.  Safe to call twice; any use afterwards raises LogClosed."""
        ...

    async def append(self, topic: str, entries: Sequence[Entry]) -> list[Appended]:
        """Store ``entries`` at the end of ``topic`` in the given order.

        The topic is created on first use.  An id already in the topic (within
        the engine's dedup window) is not stored again: its receipt has the
        original position and ``duplicate=True``.  The same id with another
        digest raises IdConflict, and then none of the batch is stored.
        """
        ...

    def read(self, topic: str, **options: Unpack[ReadOptions]) -> AsyncIterator[Record]:
        """Yield the topic's records in log order (``options``: see ReadOptions).

        A position already removed by retention raises PositionGone, never a
        silent jump.  A topic that does not exist yields nothing.
        """
        ...

    def subscribe(self, topic: str, group: str, **options: Unpack[SubscribeOptions]) -> Subscription:
        """Join ``group`` on ``topic`` (``options``: see SubscribeOptions).

        Each record reaches one member of the group.  A record not acked within
        ``ack_timeout`` seconds (the member crashed, hangs or was killed) is
        delivered again.  Records with the same key are delivered in append
        order, and never to two members at once, even with several members.
        """
        ...

    async def topics(self) -> list[TopicInfo]:
        """Every topic with its counts, sorted by name."""
        ...

    async def topic_info(self, topic: str) -> TopicInfo:
        """One topic's counts; raises NotFound if it does not exist."""
        ...

    async def set_retention(self, topic: str, retention: Retention) -> None:
        """Set how much of ``topic`` is kept; applied by the engine or by ``apply_retention``."""
        ...

    async def apply_retention(self, topic: str) -> int:
        """Remove what the topic's retention no longer keeps; returns how many went."""
        ...

    async def groups(self, topic: str) -> list[str]:
        """The consumer groups that have joined ``topic``."""
        ...

    async def lag(self, topic: str, group: str) -> GroupLag:
        """How many records of ``topic`` the group has not acked yet."""
        ...

    async def health(self) -> Health:
        """Whether the engine answers now."""
        ...


def redact(url: str) -> str:
    """``url`` with a password or token replaced by ``***`` (safe to log or print).

    redact("redis://:secret@h:6379/0")        -> "redis://:***@h:6379/0"
    redact("nats://tok@h1:4222,h2:4222")      -> "nats://***@h1:4222,h2:4222"
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "?" in netloc and not slash:
        netloc, q, query = netloc.partition("?")
        tail = q + query
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        return url
    name, colon, _ = userinfo.partition(":")
    safe = f"{name}:***" if colon else "***"
    return f"{scheme}://{safe}@{hosts}{slash}{tail}"
