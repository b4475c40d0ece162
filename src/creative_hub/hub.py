"""The hub: publish (validate, stamp, route, append), subscribe, replay.

Every face (CLI, HTTP, MCP) goes through a Hub; none reaches into an engine.

    async with Hub.connect("sqlite:///hub.db", principal="alice") as hub:
        await hub.publish({"type": "creative.narrative.fragment",
                           "data": {"story": "s1", "title": "Opening", "text": "..."}})
        async with hub.subscribe("creative.narrative", group="readers") as sub:
            async for delivery in sub:
                print(delivery.event.data)
                await delivery.ack()
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from .access import Identity, can_list, can_read, can_read_event, check_read, check_write, needs_grant
from .derived import ReadLog, check_inputs, confine, confined_copy
from .errors import AccessDenied, HubError, NotFound, PayloadTooLarge, ValidationError
from .event import (
    DEFAULT_MAX_EVENT_BYTES,
    Event,
    decode_event,
    digest,
    encode_event,
    encode_stamped,
    now,
    parse_event,
    validate_event,
)
from .grants import GrantBook
from .ids import EventIds, default_ids_path
from .ledger import EffectLedger
from .log import Delivery, Entry, Gap, GroupLag, Log, Record, Retention, Start, TopicInfo, open_log
from .log.base import DEFAULT_ACK_TIMEOUT, DEFAULT_BATCH, check_topic
from .origins import check_client_event
from .principals import Keystore, Registry, sign_event
from .schemas import DeadLetter

__all__ = ["DEADLETTER_PREFIX", "Hub", "HubDelivery", "HubSubscription", "Receipt", "StoredEvent", "route"]

logger = logging.getLogger(__name__)

DEADLETTER_PREFIX = "deadletter."  # records a subscriber could not decode go to deadletter.<topic>
AUDIT_BATCH = 100  # drafts read through grants per audit record, at most (replay)
PUBLIC, PRIVATE = "public", "private"
_encoder = msgspec.json.Encoder()


def route(event: Event) -> str:
    """The topic an event belongs to.

    Shared hub: ``creative.<area>`` from the type.  A peer's hub:
    contributions and decisions go to ``peer.<id>.contributions``, feedback to
    ``peer.<id>.feedback``, private work to ``peer.<id>.drafts`` and public
    work to ``peer.<id>.published``.
    """
    area = event.type.split(".")[1]
    if event.hub in (None, "shared"):
        return "creative." + area
    if area in ("contributions", "feedback"):
        return f"peer.{event.hub}.{area}"
    stream = "drafts" if event.visibility == PRIVATE else "published"
    return f"peer.{event.hub}.{stream}"


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where a published event went."""

    id: str
    topic: str
    position: str
    duplicate: bool  #: True if the id was already there (a safe retry)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event read back from the log, with where it is."""

    topic: str
    position: str
    time_ms: int
    event: Event


class HubDelivery:
    """An event handed to one member of a group; ``ack()`` once handled."""

    __slots__ = ("delivery", "event")

    def __init__(self, delivery: Delivery, event: Event) -> None:
        self.delivery = delivery
        self.event = event

    @property
    def topic(self) -> str:
        return self.delivery.topic

    @property
    def position(self) -> str:
        return self.delivery.position

    @property
    def delivery_count(self) -> int:
        return self.delivery.delivery_count

    async def ack(self) -> None:
        await self.delivery.ack()

    async def nack(self, delay: float = 0.0) -> None:
        await self.delivery.nack(delay)

    def __repr__(self) -> str:
        return f"<HubDelivery {self.topic}@{self.position} {self.event.type} id={self.event.id}>"


class HubSubscription:
    """A consumer-group membership that decodes events and dead-letters junk.

    A record that is not a valid event (written by hand, by an older or foreign
    producer, or corrupted) is appended to ``deadletter.<topic>`` with the
    reason, acked, and never reaches the handler; the loop goes on.

    Records retention removed before the group got them are reported, never
    skipped silently: ``gaps()``, ``on_gap`` and ``skipped`` are the engine
    subscription's (see ``creative_hub.log.base.Gap``).

    Someone else's drafts, read through grants, are decided event by event
    (``creative_hub.access.can_read_event``, with a grant view at most
    ``grants.REFRESH_AGE`` old): an event no live grant covers is acked for the
    group and never handed over, and each batch handed over is audited first.
    """

    def __init__(self, hub: Hub, inner: Any, *, validate: bool = True) -> None:
        self.hub = hub
        self.inner = inner
        self.validate = validate
        self.topic: str = inner.topic
        self.group: str = inner.group
        self.gated = needs_grant(hub.identity, self.topic)  # someone else's drafts: grants decide
        self.dead_letters = 0
        self._iterating = False

    @property
    def on_gap(self) -> Callable[[Gap], object] | None:
        """Called with each Gap (records retention removed before the group got them)."""
        on_gap: Callable[[Gap], object] | None = self.inner.on_gap
        return on_gap

    @on_gap.setter
    def on_gap(self, callback: Callable[[Gap], object] | None) -> None:
        self.inner.on_gap = callback

    @property
    def skipped(self) -> int:
        """Events this subscription was told retention removed before the group got them."""
        return int(self.inner.skipped)

    def gaps(self) -> list[Gap]:
        """The gaps reported since the last call, oldest first."""
        gaps: list[Gap] = self.inner.gaps()
        return gaps

    async def __aenter__(self) -> HubSubscription:
        await self._check()
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.inner.__aexit__(exc_type, exc, tb)

    def __aiter__(self) -> HubSubscription:
        return self

    async def __anext__(self) -> HubDelivery:
        # A coroutine, not an async generator: a loop cancelled while it holds a
        # delivery leaves no generator suspended for the garbage collector to close.
        if not self._iterating:
            await self._check()
            self._iterating = True
        while True:
            d = await self.inner.__anext__()  # StopAsyncIteration once the subscription is closed
            hd = await self._decode(d)
            if hd is not None and (not self.gated or await self._admit([hd])):
                self.hub._handed([hd.event])
                return hd

    async def next(self, timeout: float | None = None) -> HubDelivery:
        await self._check()
        while True:
            d = await self.inner.next(timeout)
            hd = await self._decode(d)
            if hd is not None and (not self.gated or await self._admit([hd])):
                self.hub._handed([hd.event])
                return hd

    async def next_batch(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> list[HubDelivery]:
        """At least one event (waiting up to ``timeout``), up to ``max`` ready now; junk is dead-lettered."""
        await self._check()
        while True:
            batch = await self.inner.next_batch(max, timeout)
            out: list[HubDelivery] = []
            for d in batch:
                try:
                    event = decode_event(d.body)
                    if self.validate:
                        validate_event(event)
                except (msgspec.DecodeError, msgspec.ValidationError, ValidationError):
                    hd = await self._decode(d)  # dead-letters it (and acks it)
                    if hd is not None:
                        out.append(hd)
                    continue
                out.append(HubDelivery(d, event))
            if out and self.gated:
                out = await self._admit(out)
            if out:
                self.hub._handed([hd.event for hd in out])
                return out

    async def _check(self) -> None:
        """Grants are read from the log: the topic-level check of a gated subscription waits for them."""
        if self.gated:
            await self.hub.grants.refresh()
            check_read(self.hub.identity, self.topic)

    async def _admit(self, deliveries: list[HubDelivery]) -> list[HubDelivery]:
        """The deliveries a live grant covers, audited; the rest are acked unseen."""
        await self.hub.grants.refresh()
        who = self.hub.identity
        keep = [hd for hd in deliveries if can_read_event(who, self.topic, hd.event.subject)]
        drop = [hd for hd in deliveries if hd not in keep]
        if drop:
            await self.inner.ack_many([hd.delivery for hd in drop])
        await self.hub.grants.record_reads(who, self.topic, [hd.event for hd in keep], "subscribe")
        return keep

    async def ack_many(self, deliveries: Sequence[HubDelivery]) -> None:
        """Ack every one of ``deliveries`` in one round (see ``Subscription.ack_many``)."""
        await self.inner.ack_many([hd.delivery for hd in deliveries])

    async def _decode(self, d: Delivery) -> HubDelivery | None:
        try:
            event = decode_event(d.body)
            if self.validate:
                validate_event(event)
        except (msgspec.DecodeError, msgspec.ValidationError, ValidationError) as e:
            await self.hub.dead_letter(d.record, f"not a valid event: {e}", group=self.group)
            await d.ack()
            self.dead_letters += 1
            return None
        return HubDelivery(d, event)

    async def close(self) -> None:
        await self.inner.close()


class Hub:
    """Publish and subscribe through one log.

    Hub(log, principal="alice")                     # an opened Log; trusted (the hub itself)
    Hub.connect("redis://127.0.0.1:6390/0")          # async context manager
    hub.acting("bob", authenticated=True)            # bob's view: access rules apply

    A *trusted* hub (the default for the Python API, sources and migrations)
    may publish with any ``creator`` and read every topic.  Faces (CLI, HTTP,
    MCP) act through ``acting()``: the creator is always the acting principal,
    whatever the payload says, and the rules of ``creative_hub.access`` apply.
    Events are signed with the creator's key when the keystore has it.
    """

    def __init__(
        self,
        log: Log,
        *,
        principal: str = "local",
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        trusted: bool = True,
        authenticated: bool = False,
        keystore: Keystore | None = None,
        registry: Registry | None = None,
        grants: GrantBook | None = None,
        via: str | None = None,
        ids: EventIds | None = None,
    ) -> None:
        self.log = log
        self.principal = principal
        self.max_event_bytes = max_event_bytes
        self.trusted = trusted
        self.authenticated = authenticated
        self.keystore = keystore
        self.via = via  # the face this view serves (http, mcp): named in audit records
        self._registry = registry
        self._grants = grants
        self._ids = ids
        self._parent: Hub | None = None  # acting() views share the index of the hub they came from
        self._owns_log = True
        #: the file of the key that MACs API tokens (``Hub.connect``: found from the URL)
        self.token_key: str | None = None

    @classmethod
    def connect(cls, url: str, **kwargs: Any) -> _Connect:
        """``async with Hub.connect(url) as hub``: opens the log, closes it after.

        ``keys=PATH`` sets the keystore (default: ``<db>.keys`` beside a SQLite
        file, else ``.creative-hub/keys``).
        """
        return _Connect(url, kwargs)

    @property
    def identity(self) -> Identity:
        # Grants count for signed-in principals only; the view is shared, and kept fresh by reads.
        grants = self.grants if self.authenticated and not self.trusted else None
        return Identity(self.principal, self.authenticated, self.trusted, grants, self.via, self._is_agent())

    def _is_agent(self) -> bool:
        """A signed-in agent principal (work queues are theirs; the hub checks their ``inputs``)."""
        if self.trusted or not self.authenticated or self._registry is None:
            return False
        p = self._registry.principals.get(self.principal)
        return p is not None and p.kind == "agent"

    @property
    def reads(self) -> ReadLog:
        """What this process handed to each principal lately (``derived.check_inputs``)."""
        return self.grants.reads

    @property
    def grants(self) -> GrantBook:
        """Grants on drafts (kept in the log) and the audit of the reads they allow."""
        if self._grants is None:
            self._grants = GrantBook(self.log, self.keystore)
        return self._grants

    @property
    def registry(self) -> Registry:
        """Principals, tokens and public keys (kept in the log)."""
        if self._registry is None:
            keystore = self.keystore or Keystore(".creative-hub/keys")
            token_key = Path(self.token_key) if self.token_key else None
            self._registry = Registry(self.log, keystore, token_key=token_key)
        return self._registry

    @property
    def ids(self) -> EventIds:
        """Where each event id is (``ids.py``): beside a SQLite file, else in memory."""
        if self._ids is None:
            if self._parent is not None:
                return self._parent.ids  # made when first needed, not with every view
            self._ids = EventIds(self.log, default_ids_path(self.log.url))
        return self._ids

    def acting(self, principal: str, *, authenticated: bool = False, via: str | None = None) -> Hub:
        """This hub as seen by ``principal``: same log, access rules applied.
        ``via`` names the face (http, mcp) in the owner's audit of draft reads."""
        child = Hub(
            self.log,
            principal=principal,
            max_event_bytes=self.max_event_bytes,
            trusted=False,
            authenticated=authenticated,
            keystore=self.keystore,
            registry=self.registry,
            grants=self.grants,
            via=via,
            ids=self._ids,
        )
        child._owns_log = False
        child._parent = self if self._ids is None else None
        return child

    async def close(self) -> None:
        if self._owns_log:
            if self._ids is not None:
                self._ids.close()
            await self.log.close()

    # -- publish -------------------------------------------------------------
    def prepare(
        self, item: Event | Mapping[str, Any], stamp: datetime | None = None
    ) -> tuple[str, Event, Entry]:
        """Validate and stamp one event; returns its topic, the event and the log entry."""
        if type(item) is dict or (not isinstance(item, Event) and isinstance(item, Mapping)):
            obj = dict(item)
            if "specversion" not in obj:
                obj["specversion"] = "1.0"
            if "id" not in obj:
                obj["id"] = str(uuid.uuid4())
            creator = (obj.get("creator") if self.trusted else None) or self.principal
            obj["creator"] = creator
            if "source" not in obj:
                obj["source"] = f"/peers/{creator}"
            event = parse_event(obj)
        elif isinstance(item, Event):
            event = item
            if not self.trusted:
                event.creator = self.principal  # never a name from the payload
            if not event.id:
                event.id = str(uuid.uuid4())
            if event.creator is None:
                event.creator = self.principal
            if not event.source:
                event.source = f"/peers/{event.creator}"
            validate_event(event)
        else:
            raise ValidationError("event", f"must be an Event or a JSON object, got {type(item).__name__}")
        if not self.trusted:
            check_client_event(event, self.principal)  # sources' ids and `source` values are the hub's
        if event.partitionkey is None:
            event.partitionkey = event.creator
        if event.hub is None:
            event.hub = "shared"
        if event.visibility is None:
            event.visibility = PUBLIC
        key = self.keystore.get(event.creator) if self.keystore is not None and event.creator else None
        if key is not None:
            if event.time is None:
                event.time = stamp or now()
            event.signature = None
            event.signature = sign_event(event, key)
            body, dg = encode_event(event), digest(event)
        elif event.time is None and event.signature is None and event.specversion == "1.0":
            # Hot path: one encode gives the digest (without time) and the body.
            stamp = stamp or now()
            body, dg = encode_stamped(event, _encoder.encode(stamp))
            event.time = stamp
        else:
            if event.time is None:
                event.time = stamp or now()
            body, dg = encode_event(event), digest(event)
        if len(body) > self.max_event_bytes:
            raise PayloadTooLarge(len(body), self.max_event_bytes)
        assert event.partitionkey is not None and event.creator is not None
        return route(event), event, Entry(event.id, event.partitionkey, body, dg, event.creator)

    async def publish(
        self,
        events: Event | Mapping[str, Any] | Iterable[Event | Mapping[str, Any]],
        *,
        topic: str | None = None,
    ) -> list[Receipt]:
        """Validate every event, then append them; a bad one means none is appended.

        Events go to their topics in the given order (``topic``: all to that
        one instead, e.g. an agent's output queue).  Publishing the same id
        again (a retry) stores nothing and returns the original position.
        A ``private`` event goes to a drafts stream or nowhere.  What a
        principal made from drafts read through a grant is stored private to
        their owner, or refused (``creative_hub.derived``).
        """
        items = [events] if isinstance(events, (Event, Mapping)) else list(events)
        prepared: list[tuple[str, Event, Entry]] = []
        stamp = now()  # one publish, one time
        for i, item in enumerate(items):
            try:
                routed, event, entry = self.prepare(item, stamp)
                target = routed if topic is None else topic
                if event.visibility == PRIVATE and not target.endswith(".drafts"):
                    raise ValidationError(
                        "visibility",
                        f"'private' would be stored in {target!r}, which others read: "
                        "private work goes to your drafts ('hub' set to you, or POST /v1/peers/<you>/drafts)",
                    )
                prepared.append((target, event, entry))
            except ValidationError as e:
                raise (e.at(i) if len(items) > 1 else e) from None
        by_topic: dict[str, list[int]] = {}
        who = self.identity
        for i, (target, event, _) in enumerate(prepared):
            check_write(who, target, event.type)
            linked = event.inputs or event.causationid or event.supersedes or event.forkedfrom
            if linked and not who.trusted:
                prepared[i] = await self._confined(who, target, event, prepared[i], stamp)
            by_topic.setdefault(prepared[i][0], []).append(i)
        receipts: list[Receipt | None] = [None] * len(prepared)
        for topic, indexes in by_topic.items():
            appended = await self.log.append(topic, [prepared[i][2] for i in indexes])
            for i, a in zip(indexes, appended, strict=True):
                receipts[i] = Receipt(prepared[i][1].id, topic, a.position, a.duplicate)
        return [r for r in receipts if r is not None]

    async def _confined(
        self, who: Identity, target: str, event: Event, item: tuple[str, Event, Entry], stamp: datetime
    ) -> tuple[str, Event, Entry]:
        """``item`` as it may be stored: checked inputs (agents); moved to the owner's
        drafts when made from drafts read through a grant (``derived.confine``)."""
        if who.agent and event.inputs:
            await check_inputs(self, event)
        owner = await confine(self, event)
        drafts = f"peer.{owner}.drafts"
        if owner is None or (target == drafts and event.hub == owner and event.visibility == PRIVATE):
            return item
        _, moved, entry = self.prepare(confined_copy(event, owner), stamp)
        return drafts, moved, entry

    async def dead_letter(self, record: Record, reason: str, *, group: str | None = None) -> Receipt:
        """Keep an unusable record in ``deadletter.<topic>``, with the reason."""
        letter = Event(
            type="creative.system.deadletter",
            id=f"dl-{record.topic}-{record.position}",
            source="/hub/deadletter",
            subject=record.topic,
            creator="hub",
            data=DeadLetter(
                topic=record.topic,
                position=record.position,
                reason=reason[:2000],
                group=group,
                record_id=record.id,
                body=record.body[:65536].decode("utf-8", errors="replace"),
            ),
        )
        letter.time = now()
        letter.partitionkey = record.topic
        letter.hub = "shared"
        letter.visibility = PUBLIC
        topic = DEADLETTER_PREFIX + record.topic
        logger.warning("dead-lettered %s@%s to %s: %s", record.topic, record.position, topic, reason)
        body = encode_event(letter)
        (a,) = await self.log.append(topic, [Entry(letter.id, record.topic, body, digest(letter), "hub")])
        return Receipt(letter.id, topic, a.position, a.duplicate)

    # -- read ----------------------------------------------------------------
    async def replay(
        self,
        topic: str,
        *,
        after: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        follow: bool = False,
    ) -> AsyncGenerator[StoredEvent, None]:
        """Events of ``topic`` in log order (history; with ``follow``, then live).

        Someone else's drafts, read through grants, come filtered event by event
        (``limit`` then counts the events handed over) and audited for the owner
        a batch at a time, before the batch is handed over.
        """
        check_topic(topic)
        if needs_grant(self.identity, topic):
            async for stored in self._replay_granted(topic, after, since, limit, follow):
                yield stored
            return
        check_read(self.identity, topic)
        agent = self.identity.agent
        async for r in self.log.read(topic, after=after, since=since, limit=limit, follow=follow):
            try:
                event = decode_event(r.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                logger.warning("skipping %s@%s: not a valid event (%s)", topic, r.position, e)
                continue
            if agent:
                self.reads.add(self.principal, (event.id,))
            yield StoredEvent(topic, r.position, r.time_ms, event)

    async def _scan(
        self,
        topic: str,
        *,
        after: str | None = None,
        since: float | None = None,
        limit: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[StoredEvent]:
        """The decoded events of ``topic``, no access check (the caller made it)."""
        async for r in self.log.read(topic, after=after, since=since, limit=limit, follow=follow):
            try:
                event = decode_event(r.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                logger.warning("skipping %s@%s: not a valid event (%s)", topic, r.position, e)
                continue
            yield StoredEvent(topic, r.position, r.time_ms, event)

    async def _replay_granted(
        self, topic: str, after: str | None, since: float | None, limit: int | None, follow: bool
    ) -> AsyncIterator[StoredEvent]:
        grants = self.grants
        await grants.refresh()
        check_read(self.identity, topic)
        # History goes out in audited batches; live events (follow) one at a time.
        size = 1 if follow else min(limit or AUDIT_BATCH, AUDIT_BATCH)
        left = limit
        batch: list[StoredEvent] = []
        async for stored in self._scan(topic, after=after, since=since, follow=follow):
            await grants.refresh()  # at most every REFRESH_AGE: a revocation counts mid-replay
            who = self.identity
            if not can_read_event(who, topic, stored.event.subject):
                continue
            batch.append(stored)
            if left is not None:
                left -= 1
            if len(batch) >= size or left == 0:
                await grants.record_reads(who, topic, [s.event for s in batch], "replay")
                self._handed([s.event for s in batch])
                for s in batch:
                    yield s
                batch = []
                if left == 0:
                    return
        if batch:
            await grants.record_reads(self.identity, topic, [s.event for s in batch], "replay")
            self._handed([s.event for s in batch])
            for s in batch:
                yield s

    def _handed(self, events: Sequence[Event]) -> None:
        """Remember what an agent principal was handed (its ``inputs`` are checked against it)."""
        if self.identity.agent:
            self.reads.add(self.principal, (e.id for e in events))

    async def get(self, event_id: str, topic: str | None = None) -> StoredEvent:
        """The event with ``event_id`` (in ``topic``, or in any peer or shared topic
        this principal may read).  NotFound otherwise: an event in a topic the principal may not
        read is "not found" too, so a guessed id tells nothing.  A lookup in the id index
        (``ids.py``) and a read of one record: the same cost at any size of log, hit or miss."""
        if topic is not None:
            check_topic(topic)
        if self.identity.grants is not None:
            await self.grants.refresh()
        who = self.identity
        for attempt in range(2):
            if attempt:  # a miss: first what the log holds beyond the index (other writers too)
                await self.ids.catch_up()
            for place in self.ids.places(event_id):
                name = place.topic
                if topic is not None and name != topic:
                    continue
                # Without a topic: the creative work (peer hubs and shared topics),
                # not work queues, archives or dead letters -- name the topic for those.
                if topic is None and not name.startswith(("peer.", "creative.")):
                    continue
                if not can_read(who, name):
                    continue
                record = await self.ids.fetch(place, event_id)
                if record is None:
                    continue
                try:
                    stored = StoredEvent(name, record.position, record.time_ms, decode_event(record.body))
                except (msgspec.DecodeError, msgspec.ValidationError) as e:
                    logger.warning("skipping %s@%s: not a valid event (%s)", name, record.position, e)
                    continue
                if not can_read_event(who, name, stored.event.subject):
                    continue  # not theirs to see: "not found", like any other
                await self.grants.record_reads(who, name, [stored.event], "get")
                self._handed([stored.event])
                return stored
        raise NotFound(f"no event {event_id!r}")

    def subscribe(
        self,
        topic: str,
        group: str,
        *,
        consumer: str | None = None,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        start: Start = Start.EARLIEST,
        batch: int = DEFAULT_BATCH,
        validate: bool = True,
    ) -> HubSubscription:
        """Join ``group`` on ``topic``: history first (unless start=LATEST), then live.
        Someone else's drafts: checked against the grants now, or -- when the hub's
        view of them is older than ``grants.REFRESH_AGE`` -- on first use."""
        if not needs_grant(self.identity, topic) or self.grants.fresh:
            check_read(self.identity, topic)
        inner = self.log.subscribe(
            topic, group, consumer=consumer, ack_timeout=ack_timeout, start=start, batch=batch
        )
        return HubSubscription(self, inner, validate=validate)

    async def handle(
        self,
        topic: str,
        group: str,
        handler: Callable[[Event, Any], Awaitable[None] | None],
        *,
        ledger: EffectLedger,
        stop_after: int | None = None,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
    ) -> int:
        """Run ``handler(event, tx)`` once per event id for ``group``, then ack.

        ``tx`` is the ledger's transaction: whatever the handler writes through
        it commits together with the record that the event was handled, so a
        redelivery (after a crash before the ack) finds it done and skips it.
        Returns how many events were handled (``stop_after`` bounds it).
        """
        handled = 0
        async with self.subscribe(topic, group, ack_timeout=ack_timeout) as sub:
            async for d in sub:
                with ledger.once(group, d.event.id) as tx:
                    if tx is not None:
                        result = handler(d.event, tx)
                        if result is not None:
                            await result
                await d.ack()
                handled += 1
                if stop_after is not None and handled >= stop_after:
                    break
        return handled

    # -- admin ---------------------------------------------------------------
    async def topics(self) -> list[TopicInfo]:
        """The topics this principal may read (others are not even named; nor is a
        topic subject grants alone open, see ``access.can_list``)."""
        if self.identity.grants is not None:
            await self.grants.refresh()
        return [t for t in await self.log.topics() if can_list(self.identity, t.name)]

    async def stats(self) -> list[tuple[TopicInfo, list[GroupLag]]]:
        """Per topic: its counts, and the lag of every group on it."""
        out = []
        for info in await self.topics():
            lags = [await self.log.lag(info.name, g) for g in await self.log.groups(info.name)]
            out.append((info, lags))
        return out

    async def set_retention(self, topic: str, retention: Retention) -> None:
        if not self.trusted:
            raise AccessDenied("setting retention needs the hub's own rights")
        await self.log.set_retention(topic, retention)


class _Connect:
    def __init__(self, url: str, kwargs: dict[str, Any]) -> None:
        self.url = url
        self.kwargs = kwargs
        self.hub: Hub | None = None

    async def __aenter__(self) -> Hub:
        log_options = self.kwargs.pop("log_options", {})
        keys = self.kwargs.pop("keys", None)
        log = open_log(self.url, **log_options)
        await log.open()
        self.hub = Hub(log, keystore=Keystore(keys or default_keys(self.url)), **self.kwargs)
        self.hub.token_key = default_token_key(self.url)
        return self.hub

    async def __aexit__(self, *exc: object) -> None:
        if self.hub is not None:
            await self.hub.close()


async def migrate(
    source: Log,
    target: Log,
    *,
    topics: Sequence[str] | None = None,
    batch: int = 500,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, tuple[int, int]]:
    """Copy topics from ``source`` to ``target`` with ids, order and bodies kept.

    Returns ``{topic: (copied, already_there)}``.  Running it again copies
    nothing (ids dedup).  Group positions are not copied: positions differ
    between engines, so groups on the target start from its beginning.
    ``progress(topic, done, total)`` is called after each batch.
    """
    infos = {t.name: t for t in await source.topics()}
    names = list(topics) if topics is not None else sorted(infos)
    missing = [n for n in names if n not in infos]
    if missing:
        raise HubError(f"topic(s) not in the source log: {', '.join(missing)}")
    return {
        name: await _copy_topic(source, target, name, infos[name].count, batch, progress) for name in names
    }


async def _copy_topic(
    source: Log,
    target: Log,
    name: str,
    total: int,
    batch: int,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[int, int]:
    copied = dup = done = 0
    chunk: list[Entry] = []
    records = source.read(name)
    while True:
        r = await anext(records, None)
        if r is not None:
            try:
                event = decode_event(r.body)
                d, creator = digest(event), event.creator or ""
            except (msgspec.DecodeError, msgspec.ValidationError):
                d, creator = _raw_digest(r.body), ""  # junk is copied as it is
            chunk.append(Entry(r.id, r.key, r.body, d, creator))
        if chunk and (r is None or len(chunk) >= batch):
            for a in await target.append(name, chunk):
                dup += a.duplicate
                copied += not a.duplicate
            done += len(chunk)
            chunk = []
            if progress is not None:
                progress(name, done, total)
        if r is None:
            return copied, dup


def default_token_key(url: str) -> str:
    """Where the key that MACs API tokens lives: beside a SQLite file, else in ./.creative-hub.

    Found from the log, not the keystore, so every process on the same log
    checks tokens alike whichever keystore it signs with."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :].split("?", 1)[0] + ".token-key"
    return os.path.join(".creative-hub", "token-key")


def default_keys(url: str) -> str:
    """Where private keys live by default: beside a SQLite file, else ./.creative-hub/keys."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :].split("?", 1)[0] + ".keys"
    return os.path.join(".creative-hub", "keys")


def _raw_digest(body: bytes) -> str:
    import hashlib

    return hashlib.blake2b(body, digest_size=16).hexdigest()
