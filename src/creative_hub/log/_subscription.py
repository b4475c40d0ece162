"""What every engine's subscription shares: arguments, lifecycle, the async protocols.

An engine's ``subscribe()`` (``Subscribes``: one signature for every engine)
checks its arguments with ``check_subscribe`` (one set of rules, pinned by
the contract suite) and builds the engine's subclass of ``SubscriptionBase``
(``_member``), which gives it:

* ``async with sub`` (``_join()`` on enter, ``close()`` on exit);
* ``async for d in sub`` through ``__anext__``, a plain coroutine: no async
  generator is left suspended when the loop's task is cancelled (an
  abandoned generator is closed later by the garbage collector, in a task of
  its own, at no defined time);
* the lifecycle ``state`` (``SubState``) and one ``repr``;
* the gap notices (``GapReporter``);
* batch delivery, built on the engine's ``next_batch`` and ``ack_many``:
  ``await sub.fetch(max, timeout)`` -> ``Batch`` and ``sub.batches(max,
  timeout)`` (see ``creative_hub.log.batch``).

* ``close()``, which leaves in a task of its own: cancelling the caller does
  not abandon the leaving half-way (a later ``close()`` waits for it).

The engine writes ``_enter()`` (joining: ``_join()`` calls it once),
``next()``, ``next_batch()``, ``ack_many()`` and ``_close()``;
``LockedSubscription`` writes ``next()`` and ``next_batch()`` for a member
that hands out under one lock (SQLite, NATS), and ``LazyDelivery`` is a
delivery that decodes its record only when asked (Redis, Kafka).  The
engine's driver calls go through a ``_guard.Guard``, which also raises
cancellations a driver swallowed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import ClassVar, Generic, Self, TypeVar, Unpack

from ..errors import LogClosed, ValidationError
from .base import (
    DEFAULT_ACK_TIMEOUT,
    DEFAULT_BATCH,
    Delivery,
    GapReporter,
    Record,
    Start,
    SubscribeOptions,
    check_topic,
)
from .batch import Batch, Batches, check_max

__all__ = [
    "MAX_NAME_LENGTH",
    "LazyDelivery",
    "LockedSubscription",
    "SubState",
    "SubscribeArgs",
    "Subscribes",
    "SubscriptionBase",
    "check_subscribe",
]

MAX_NAME_LENGTH = 200  # characters in a group or consumer name (fits every broker's limits once escaped)


class SubState(Enum):
    """Where a subscription is in its life; only ever moves forward."""

    NEW = "new"  # made, not joined
    OPEN = "open"  # a member of the group
    CLOSED = "closed"  # left the group (or never joined and closed)


@dataclass(frozen=True, slots=True)
class SubscribeArgs:
    """``subscribe()``'s arguments, checked."""

    topic: str
    group: str
    consumer: str | None
    ack_timeout: float
    start: Start
    batch: int


def _check_name(field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(field, f"a non-empty name is required, got {value!r}")
    if len(value) > MAX_NAME_LENGTH:
        raise ValidationError(field, f"at most {MAX_NAME_LENGTH} characters, got {len(value)}")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValidationError(field, f"{value!r}: no spaces or control characters")
    return value


def check_subscribe(
    topic: str,
    group: str,
    *,
    consumer: str | None = None,
    ack_timeout: float = DEFAULT_ACK_TIMEOUT,
    start: Start | str = Start.EARLIEST,
    batch: int = DEFAULT_BATCH,
) -> SubscribeArgs:
    """The rules every engine's ``subscribe()`` applies, before it touches the engine.

    ``topic`` a topic name (``check_topic``); ``group`` and ``consumer``
    1..200 printable characters without spaces; ``ack_timeout`` a finite
    number of seconds > 0; ``start`` a ``Start``; ``batch`` an int >= 1.
    Each broken rule is a ValidationError naming the argument.
    """
    check_topic(topic)
    _check_name("group", group)
    if consumer is not None:
        _check_name("consumer", consumer)
    if (
        isinstance(ack_timeout, bool)
        or not isinstance(ack_timeout, (int, float))
        or not math.isfinite(ack_timeout)
        or ack_timeout <= 0
    ):
        raise ValidationError("ack_timeout", f"must be a number of seconds > 0, got {ack_timeout!r}")
    try:
        begin = Start(start)
    except ValueError:
        choices = ", ".join(s.value for s in Start)
        raise ValidationError("start", f"must be one of {choices}, got {start!r}") from None
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValidationError("batch", f"must be an integer >= 1, got {batch!r}")
    return SubscribeArgs(topic, group, consumer, float(ack_timeout), begin, batch)


class LazyDelivery(Delivery):
    """A Delivery that makes its Record on first use, with ``_make_record()`` (Redis, Kafka):
    a handler that reads only ``body`` costs no decoding of ids, keys and positions."""

    __slots__ = ("_rec",)
    _rec: Record | None  #: None until asked for (the subclass's __init__ sets it so)

    @property
    def record(self) -> Record:
        rec = self._rec
        if rec is None:
            rec = self._rec = self._make_record()
        return rec

    @record.setter
    def record(self, value: Record) -> None:
        self._rec = value

    def _make_record(self) -> Record:
        raise NotImplementedError


class SubscriptionBase(GapReporter):
    """The part of a consumer-group membership that is the same on every engine."""

    ENGINE: ClassVar[str] = "log"  #: the engine's name, for repr

    topic: str
    group: str
    consumer: str
    ack_timeout: float
    start: Start
    batch: int
    state: SubState

    def _init_subscription(self, args: SubscribeArgs, consumer: str) -> None:
        """Set the common attributes (engines call it first in ``__init__``)."""
        self.topic = args.topic
        self.group = args.group
        self.consumer = consumer
        self.ack_timeout = args.ack_timeout
        self.start = args.start
        self.batch = args.batch
        self.state = SubState.NEW
        self._leaving: asyncio.Future[None] | None = None
        self._init_gaps()

    @property
    def closed(self) -> bool:
        return self.state is SubState.CLOSED

    def __repr__(self) -> str:
        return (
            f"<{self.ENGINE} subscription {self.topic} group={self.group} "
            f"consumer={self.consumer} {self.state.value}>"
        )

    async def __aenter__(self) -> Self:
        await self._join()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Delivery:
        if self.state is SubState.CLOSED:
            raise StopAsyncIteration
        try:
            return await self.next()
        except LogClosed:
            raise StopAsyncIteration from None

    async def fetch(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> Batch:
        """The next batch: what ``next_batch(max, timeout)`` gives, as one ``Batch`` to settle."""
        if self.state is SubState.CLOSED:
            raise LogClosed("subscription")
        return Batch(self, await self.next_batch(check_max(max), timeout))

    def batches(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> Batches[Batch]:
        """``async for batch in sub.batches(max)``: one ``Batch`` per fetch until closed."""
        check_max(max)
        return Batches(lambda: self.fetch(max, timeout))

    async def close(self) -> None:
        """Leave the group: un-acked deliveries go back to it.  Safe twice.

        Leaving runs in a task of its own: a caller cancelled meanwhile stops
        waiting, the leaving goes on (it is bounded by the engine's timeouts),
        and a later ``close()`` waits for the same leaving.
        """
        if self._leaving is None:
            self._leaving = asyncio.ensure_future(self._close())
        await asyncio.shield(self._leaving)

    def _cut_to(self, deadline: float | None, now: float, wait: float, timeout: float | None) -> float:
        """``wait`` cut to a ``next(timeout)``'s ``deadline``; TimeoutError once it has passed."""
        if deadline is None:
            return wait
        if now >= deadline:
            raise TimeoutError(f"no delivery on {self.topic} within {timeout}s")
        return min(wait, deadline - now)

    async def _join(self) -> None:
        """Join the group: a second call does nothing, a call after ``close()`` is LogClosed.

        (Kafka, whose member joins on a thread of its own, writes its own.)"""
        if self.state is SubState.OPEN:
            return
        if self.state is SubState.CLOSED:
            raise LogClosed("subscription")
        await self._enter()

    # -- the engine's part -------------------------------------------------------
    async def _enter(self) -> None:
        """Join the group (``_join`` calls it while the state is NEW)."""
        raise NotImplementedError

    async def next(self, timeout: float | None = None) -> Delivery:
        raise NotImplementedError

    async def next_batch(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> list[Delivery]:
        raise NotImplementedError

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        """Leave the group (called once, by ``close()``)."""
        raise NotImplementedError


class LockedSubscription(SubscriptionBase):
    """A member that hands out under one lock (SQLite, NATS): ``next`` and ``next_batch``.

    The engine makes ``_lock`` and writes, both called holding it,
    ``_next_locked(timeout)`` (one delivery, waiting up to ``timeout``) and
    ``_more_locked(out, max)`` (adds to ``out`` what is ready now, up to
    ``max`` in all, without waiting).
    """

    _lock: asyncio.Lock

    async def next(self, timeout: float | None = None) -> Delivery:
        """The next delivery; raises TimeoutError if none comes within ``timeout`` s."""
        if self.state is not SubState.OPEN:
            await self._join()
        async with self._lock:
            return await self._next_locked(timeout)

    async def next_batch(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> list[Delivery]:
        """At least one delivery (waiting up to ``timeout``), then up to ``max`` ready now."""
        if self.state is not SubState.OPEN:
            await self._join()
        async with self._lock:
            out = [await self._next_locked(timeout)]
            await self._more_locked(out, max)
            return out

    async def _next_locked(self, timeout: float | None) -> Delivery:
        raise NotImplementedError

    async def _more_locked(self, out: list[Delivery], max: int) -> None:
        raise NotImplementedError


S = TypeVar("S", bound=SubscriptionBase)


class Subscribes(Generic[S]):
    """An engine's ``subscribe()``: the arguments checked one way, then ``_member`` builds the member.

    class MyLog(Subscribes[MySubscription]):
        def _member(self, args: SubscribeArgs) -> MySubscription:
            return MySubscription(self, args)
    """

    def subscribe(self, topic: str, group: str, **options: Unpack[SubscribeOptions]) -> S:
        """Join ``group`` on ``topic`` (see ``creative_hub.log.base.Log.subscribe``)."""
        return self._member(check_subscribe(topic, group, **options))

    def _member(self, args: SubscribeArgs) -> S:
        """The engine's group member for checked ``args`` (not joined yet)."""
        raise NotImplementedError
