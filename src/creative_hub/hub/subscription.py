"""The hub's subscription: a consumer-group membership handing over decoded, permitted events.

Every record goes through one decode-and-gate (``HubSubscription._take``):
decoded and validated, or dead-lettered; then, on someone else's drafts,
kept only when a live grant covers it, audited before it is handed over.

``fetch()`` / ``batches()`` hand over one ``HubBatch`` per fetched batch: its
records are decoded one by one as the handler reaches them (``for``),
so a handler that stops early and nacks the rest never decodes the rest;
one ``ack()`` settles the batch or a prefix of it.  Gated subscriptions
decode the whole batch first: grants and the audit are per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from ..access import can_read_event, check_read, needs_grant
from ..errors import ValidationError
from ..event import Event, decode_event, validate_event
from ..log import Batch, Delivery, Gap
from ..log.base import DEFAULT_BATCH
from ..log.batch import Batches, check_max

if TYPE_CHECKING:
    from .core import Hub

__all__ = ["HubBatch", "HubDelivery", "HubSubscription"]

_NOT_AN_EVENT = (msgspec.DecodeError, msgspec.ValidationError, ValidationError)


class HubDelivery(msgspec.Struct, gc=False, eq=False):
    """An event handed to one member of a group; ``ack()`` once handled.

    Not tracked by the garbage collector (one is made per event handed over,
    like the ``Event`` it holds): it refers to its delivery and event only,
    and nothing they reach refers back to it, so it is in no cycle.  Each
    tracked object alive per event in flight makes the collector's full
    passes over the whole heap come sooner.
    """

    delivery: Delivery
    event: Event

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
            d = await self.inner.__anext__()  # StopAsyncIteration once closed
            hd = self._plain(d)
            if hd is not None:
                return hd
            taken = await self._take([d])
            if taken:
                return taken[0]

    async def next(self, timeout: float | None = None) -> HubDelivery:
        if self.gated:
            await self._check()
        while True:
            d = await self.inner.next(timeout)
            hd = self._plain(d)
            if hd is not None:
                return hd
            taken = await self._take([d])
            if taken:
                return taken[0]

    def _plain(self, d: Delivery) -> HubDelivery | None:
        """``_take`` of one delivery when nothing needs awaiting -- a valid event of a
        subscription no grant gates -- else None, and ``_take`` decides (one per
        event handed by ``async for``/``next``: no coroutine and list each)."""
        if self.gated:
            return None
        try:
            event = decode_event(d.body)
            if self.validate:
                validate_event(event)
        except _NOT_AN_EVENT:
            return None  # dead-lettered by _take
        if self.hub._is_agent():
            self.hub._handed((event,))
        return HubDelivery(d, event)

    async def next_batch(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> list[HubDelivery]:
        """At least one event (waiting up to ``timeout``), up to ``max`` ready now; junk is dead-lettered."""
        await self._check()
        while True:
            taken = await self._take(await self.inner.next_batch(max, timeout))
            if taken:
                return taken

    async def fetch(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> HubBatch:
        """The next batch of records as one ``HubBatch`` (see ``creative_hub.log.Subscription.fetch``).

        Its events are decoded as ``for`` reaches them; junk met is
        dead-lettered by the batch's next ``ack``/``nack``.  A gated subscription decodes and admits the
        whole batch here, and fetches again when nothing of it was admitted.
        """
        check_max(max)
        await self._check()
        while True:
            hb = HubBatch(self, await self.inner.fetch(max, timeout))
            if not self.gated:
                return hb
            handed = await self._take(hb.batch)
            if handed:
                hb._settle_gated(handed)
                return hb

    def batches(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> Batches[HubBatch]:
        """``async for batch in sub.batches(max)``: one ``HubBatch`` per fetch until closed."""
        check_max(max)
        return Batches(lambda: self.fetch(max, timeout))

    async def _junk(self, d: Delivery, e: Exception) -> None:
        await self.hub.dead_letter(d.record, f"not a valid event: {e}", group=self.group)
        await d.ack()
        self.dead_letters += 1

    async def _take(self, batch: Sequence[Delivery]) -> list[HubDelivery]:
        """The one decode-and-gate: what of ``batch`` may be handed over (the rest is
        dead-lettered or acked unseen), remembered for agent principals."""
        out: list[HubDelivery] = []
        for d in batch:
            try:
                event = decode_event(d.body)
                if self.validate:
                    validate_event(event)
            except _NOT_AN_EVENT as e:
                await self._junk(d, e)
                continue
            out.append(HubDelivery(d, event))
        if out and self.gated:
            out = await self._admit(out)
        if out and self.hub._is_agent():
            self.hub._handed([hd.event for hd in out])
        return out

    async def _check(self) -> None:
        """Grants are read from the log: the topic-level check of a gated subscription waits for them."""
        if self.gated:
            await self.hub.grants.refresh()
            check_read(self.hub.identity, self.topic)

    async def _admit(self, deliveries: list[HubDelivery]) -> list[HubDelivery]:
        """The deliveries a live grant covers, audited; the rest are acked unseen.

        Decided at one instant for the batch, once per subject (the grants
        that cover a subject are the same for every event about it).
        """
        await self.hub.grants.refresh()
        who, topic, at = self.hub.identity, self.topic, datetime.now(UTC)
        decided: dict[str | None, bool] = {}
        keep: list[HubDelivery] = []
        drop: list[HubDelivery] = []
        for hd in deliveries:
            subject = hd.event.subject
            ok = decided.get(subject)
            if ok is None:
                ok = decided[subject] = can_read_event(who, topic, subject, at)
            (keep if ok else drop).append(hd)
        if drop:
            await self.inner.ack_many([hd.delivery for hd in drop])
        await self.hub.grants.record_reads(who, self.topic, [hd.event for hd in keep], "subscribe")
        return keep

    async def ack_many(self, deliveries: Sequence[HubDelivery]) -> None:
        """Ack every one of ``deliveries`` in one round (see ``Subscription.ack_many``)."""
        await self.inner.ack_many([hd.delivery for hd in deliveries])

    async def close(self) -> None:
        await self.inner.close()


_UNSEEN = None  # a record of a HubBatch not decoded yet
_SKIPPED = False  # junk, or not admitted by the grants: not handed over


class HubBatch:
    """One fetched batch of events; each record is decoded when the handler first reaches it.

    ``len(batch)`` counts records (junk included: it is dead-lettered, not
    handed over).  ``for hd in batch`` gives the ``HubDelivery`` of each
    event in order (per key, append order), decoding as it goes; going
    through it again gives the same ones, decoded once.  ``ack()`` acks the
    batch in one round, first checking the records not reached yet;
    ``ack(upto=n)`` acks through the ``n``-th event handed over;
    ``nack(delay)`` sends the rest back to the group, undecoded.  Junk met on
    the way is dead-lettered (and acked) by the next ``ack``/``nack``, never
    acked unseen.  Unacked, the batch comes back after the ack timeout.
    """

    __slots__ = ("_agent", "_junk", "_seen", "_slots", "_sub", "batch")

    def __init__(self, sub: HubSubscription, batch: Batch) -> None:
        self._sub = sub
        self.batch = batch
        self._slots: list[HubDelivery | bool | None] = [_UNSEEN] * len(batch)
        self._seen = 0  # records decoded: always a prefix (iteration and ack go in order)
        self._junk: list[tuple[Delivery, Exception]] = []  # met, not dead-lettered yet
        self._agent = sub.hub.identity.agent  # an agent principal remembers what it was handed

    def _settle_gated(self, handed: list[HubDelivery]) -> None:
        """A gated batch, decoded and admitted whole: ``handed`` are what gets handed over."""
        by_delivery = {id(hd.delivery): hd for hd in handed}
        self._slots = [by_delivery.get(id(d), _SKIPPED) for d in self.batch]
        self._seen = len(self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def pending(self) -> int:
        """Records neither acked nor nacked yet (see ``Batch.pending``)."""
        return self.batch.pending

    def _resolve(self, i: int) -> HubDelivery | None:
        """Record ``i``'s HubDelivery, decoding it the first time; None if not handed over."""
        slot = self._slots[i]
        if slot is _UNSEEN:
            d = self.batch.deliveries[i]
            try:
                event = decode_event(d.body)
                if self._sub.validate:
                    validate_event(event)
            except _NOT_AN_EVENT as e:
                self._junk.append((d, e))
                slot = _SKIPPED
            else:
                slot = HubDelivery(d, event)
                if self._agent:
                    self._sub.hub._handed((event,))
            self._slots[i] = slot
            self._seen = i + 1
        return slot if isinstance(slot, HubDelivery) else None

    def __iter__(self) -> Iterator[HubDelivery]:
        for i in range(len(self._slots)):
            hd = self._resolve(i)
            if hd is not None:
                yield hd

    async def _dead_letter(self) -> None:
        junk, self._junk = self._junk, []
        for d, e in junk:
            await self._sub._junk(d, e)

    async def ack(self, upto: int | None = None) -> None:
        """Ack the whole batch, or through its ``upto``-th event, in one round."""
        if upto is None:
            for i in range(self._seen, len(self._slots)):
                self._resolve(i)
            await self._dead_letter()
            await self.batch.ack()
            return
        if isinstance(upto, bool) or not isinstance(upto, int) or upto < 0:
            raise ValidationError("upto", f"must be an integer >= 0, got {upto!r}")
        end, seen = 0, 0
        while seen < upto:
            if end == len(self._slots):
                raise ValidationError("upto", f"the batch has {seen} events, got {upto}")
            if self._resolve(end) is not None:
                seen += 1
            end += 1
        await self._dead_letter()
        await self.batch.ack(upto=end)

    async def nack(self, delay: float = 0.0) -> None:
        """Send every record not settled yet back to the group, after ``delay`` seconds."""
        await self._dead_letter()
        await self.batch.nack(delay)

    def __repr__(self) -> str:
        return f"<HubBatch {self._sub.topic} of {len(self._slots)}, {self.pending} pending>"
