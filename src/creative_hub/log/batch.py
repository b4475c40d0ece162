"""Batch delivery: one object per fetched batch, settled with one ack for all or for a prefix.

``await sub.fetch(max, timeout)`` gives a :class:`Batch` (what ``next_batch``
gives, as one object); ``async for batch in sub.batches(max, timeout)`` loops
over them.  A consumer that handles records in order acks what it finished
in one call -- ``await batch.ack()`` for all of it, ``await batch.ack(upto=n)``
for the first ``n`` -- and the engine settles that in one round (its
``ack_many``: one commit per partition on Kafka, one XACK per partition on
Redis, one write of acks on SQLite, the +ACKs written in one go on NATS --
not one AckAll for a prefix: the group's consumers ack explicitly, since a
member may ack records out of order, and AckAll would ack every earlier
record of the partition with it).
What is not acked comes back to the group: at once (or after ``delay``) with
``await batch.nack()``, else after the ack timeout -- every record of the
batch at the same time, since the batch was handed out at once.

The records stay the engine's bytes; nothing is decoded here (the hub's
``HubBatch`` decodes each record when it is first looked at).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Generic, Protocol, TypeVar, overload

from ..errors import LogClosed, ValidationError
from .base import Delivery

__all__ = ["Acker", "Batch", "Batches", "check_max"]


class Acker(Protocol):
    """What settles a batch: its subscription."""

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None: ...


class Batch(Sequence[Delivery]):
    """The deliveries of one fetch, in order (per key, append order); settle them here.

    ``len(batch)``, ``batch[i]``, ``for d in batch`` as a sequence of
    ``Delivery``.  ``ack()`` acks every one not settled yet, ``ack(upto=n)``
    the first ``n`` (a prefix: a consumer handling in order acks what it
    finished), in one round either way; ``nack(delay)`` sends the un-settled
    rest back to the group.  A delivery's own ``ack()``/``nack()`` still work;
    settling twice is harmless.
    """

    __slots__ = ("_owner", "deliveries")

    def __init__(self, owner: Acker, deliveries: list[Delivery]) -> None:
        self._owner = owner
        self.deliveries = deliveries

    def __len__(self) -> int:
        return len(self.deliveries)

    @overload
    def __getitem__(self, i: int) -> Delivery: ...

    @overload
    def __getitem__(self, i: slice) -> list[Delivery]: ...

    def __getitem__(self, i: int | slice) -> Delivery | list[Delivery]:
        return self.deliveries[i]

    def __iter__(self) -> Iterator[Delivery]:
        return iter(self.deliveries)

    @property
    def pending(self) -> int:
        """How many of the batch are neither acked nor nacked."""
        return sum(1 for d in self.deliveries if not d.done)

    @property
    def done(self) -> bool:
        """True once every delivery of the batch is acked or nacked."""
        return all(d.done for d in self.deliveries)

    async def ack(self, upto: int | None = None) -> None:
        """Ack the whole batch, or its first ``upto`` deliveries, in one round.

        The rest of a prefix-acked batch stays handed out: ``nack()`` it, ack
        it later, or it comes back after the ack timeout.
        """
        deliveries = self.deliveries
        if upto is not None:
            if isinstance(upto, bool) or not isinstance(upto, int) or not 0 <= upto <= len(deliveries):
                raise ValidationError("upto", f"must be an integer 0..{len(deliveries)}, got {upto!r}")
            deliveries = deliveries[:upto]
        if deliveries:
            await self._owner.ack_many(deliveries)

    async def nack(self, delay: float = 0.0) -> None:
        """Send every delivery not settled yet back to the group, after ``delay`` seconds."""
        for d in self.deliveries:
            if not d.done:
                await d.nack(delay)

    def __repr__(self) -> str:
        return f"<Batch of {len(self.deliveries)}, {self.pending} pending>"


B = TypeVar("B")


class Batches(Generic[B]):
    """``async for batch in sub.batches(...)``: one batch per fetch until the subscription closes.

    ``fetch`` is the subscription's (a ``TimeoutError`` from it ends nothing:
    it reaches the loop, as ``next()``'s does).  A class, not an async
    generator: a loop cancelled while it holds a batch leaves no generator
    suspended for the garbage collector to close.
    """

    __slots__ = ("_fetch",)

    def __init__(self, fetch: Callable[[], Awaitable[B]]) -> None:
        self._fetch = fetch

    def __aiter__(self) -> Batches[B]:
        return self

    async def __anext__(self) -> B:
        try:
            return await self._fetch()
        except LogClosed:
            raise StopAsyncIteration from None


def check_max(max: int) -> int:
    """A batch size: an int >= 1, else a ValidationError naming ``max``."""
    if isinstance(max, bool) or not isinstance(max, int) or max < 1:
        raise ValidationError("max", f"must be an integer >= 1, got {max!r}")
    return max
