"""A consumer-group member on the Redis engine (see ``creative_hub.log.redis`` for the design).

One ``RedisSubscription`` is one Redis consumer (the same name on every
partition stream of the topic).  ``next()`` does all the talking to Redis in
one task, so fetching never races a rebalance:

1. every heartbeat, **rebalance** (one script): renew the membership, release
   partitions handed to others once their deliveries are acked, take the
   partitions this member should have, and claim what their previous owner
   left pending (before anything new from them);
2. redeliver **nacked** records whose delay is over (XCLAIM);
3. every quarter ack timeout, **sweep**: XAUTOCLAIM what has waited longer than
   the ack timeout (a delivery the handler never acked);
4. **fetch**: the pending acks (XACK, one per partition) and XREADGROUP ``>``
   on the owned partitions, in one pipelined round trip, blocking until
   records come or the next of 1-3 is due.

Between ``next()`` calls a background task does step 1 (so a slow or idle
member keeps its partitions and still hands some to members that join),
unless a delivery is held past the ack timeout: then the member lets its
leases lapse, and the group takes its partitions over.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from ...errors import EngineUnavailable, HubError, LogClosed, LogError
from .._retry import Backoff
from .._subscription import SubscribeArgs, SubscriptionBase, SubState
from ..base import DEFAULT_BATCH, Delivery, Gap, Start, settle_others, unsettled
from . import scripts as lua
from .delivery import RedisDelivery
from .names import command, id_key, text

if TYPE_CHECKING:
    from .engine import RedisLog


__all__ = ["RedisSubscription"]

logger = logging.getLogger("creative_hub.log.redis")

_monotonic = time.monotonic

MAX_BLOCK = 1.0  # seconds one XREADGROUP may block
HEARTBEAT_MAX = 0.5  # seconds between rebalances (and lease renewals) at most
HEARTBEAT_MIN = 0.05  # seconds
SWEEP_MAX = 5.0  # seconds between sweeps for overdue deliveries at most
CLAIM_ALL = 0  # CLAIM's count meaning "every pending entry" (taking a partition over)
FETCH_AHEAD_MIN = 64  # records a fetch must bring for the next one to be sent ahead
# Loop iterations a fetch ahead takes to reach the socket: its task's first
# step, then the write, which redis-py runs in a task of its own
# (asyncio.wait_for, as the engine sets a socket timeout).
SEND_STEPS = 2


class RedisSubscription(SubscriptionBase):
    """A member of consumer group ``group`` on ``topic``."""

    ENGINE = "Redis"

    def __init__(self, log: RedisLog, args: SubscribeArgs, consumer: str) -> None:
        self._init_subscription(args, consumer)
        ack_timeout = self.ack_timeout
        self._log = log
        self._gkey = log.group_key(self.topic, self.group)
        self._ttl_ms = max(1, int(ack_timeout * 1000))  # lease and membership lifetime
        self._heartbeat = min(HEARTBEAT_MAX, max(HEARTBEAT_MIN, ack_timeout / 3))
        self._sweep_every = min(SWEEP_MAX, max(HEARTBEAT_MIN, ack_timeout / 4))
        self._streams: list[str] = []
        self._index: dict[bytes, int] = {}  # stream key -> partition
        self._owned: set[int] = set()  # partitions leased to us
        self._wanted: set[int] = set()  # partitions the group assigns to us
        self._queue: deque[RedisDelivery] = deque()  # fetched, not handed out yet
        # Keyed by stream id (bytes, as Redis sends them).  Insertion order is
        # hand-out order, so the first value is the oldest un-acked delivery.
        # Handed out, not acked: stream id -> the delivery (its _at says when; no tuple per record)
        self._outstanding: dict[bytes, RedisDelivery] = {}
        self._acks: dict[int, list[bytes]] = {}  # partition -> acked ids not sent yet
        self._nacks: list[tuple[float, bytes, int, int]] = []  # heap of (due, id, partition, count)
        self._lock = asyncio.Lock()
        self._renewer: asyncio.Task[None] | None = None
        self._ahead: asyncio.Task[None] | None = None  # a fetch ahead in flight
        # Fetch ahead when this many fetched records are left to hand out
        # (half of a big fetch; never after small ones: live traffic).
        self._low_water = -1
        self._busy = 0  # streams that brought records in the last fetch (its COUNT's share)
        self._rebalance_at = 0.0
        self._sweep_at = 0.0
        self._backoff = Backoff(base=0.05, cap=2.0)
        # A blocking read must answer well within the socket timeout.
        self._max_block = min(MAX_BLOCK, log.options.socket_timeout / 2)

    # -- lifecycle ---------------------------------------------------------
    async def _enter(self) -> None:
        async with self._lock:
            if self.state is SubState.NEW:
                await self._join_locked()

    async def _join_locked(self) -> None:
        log = self._log
        start_id = "0" if self.start is Start.EARLIEST else "$"
        parts = int(
            await log.call(
                lua.JOIN,
                log.base(self.topic),
                log.registry,
                self.topic,
                log.options.partitions,
                self.group,
                start_id,
            )
        )
        self._streams = [log.stream(self.topic, p) for p in range(parts)]
        self._index = {s.encode(): p for p, s in enumerate(self._streams)}
        self.state = SubState.OPEN
        log._subs.add(self)
        self._renewer = asyncio.create_task(self._renew_loop(), name=f"renew {self!r}")
        await self._rebalance()
        self._sweep_at = time.monotonic() + self._sweep_every

    async def _close(self) -> None:
        """Leave the group: send pending acks, release the partitions at once.

        Un-acked deliveries stay pending under this consumer; whoever takes the
        partition next claims them.  Safe to call twice.
        """
        if self.state is SubState.CLOSED:
            return
        was_open = self.state is SubState.OPEN
        self.state = SubState.CLOSED
        self._log._subs.discard(self)
        if self._renewer is not None:
            self._renewer.cancel()
            try:
                await self._renewer
            except asyncio.CancelledError:
                pass
            self._renewer = None
        if self._ahead is not None:  # let it finish: what it read must be counted as ours
            try:
                await self._ahead
            except asyncio.CancelledError:
                pass
        self._queue.clear()
        self._nacks.clear()
        if not was_open:
            return
        try:
            await self._flush_acks()
            await self._log.call(lua.LEAVE, self._gkey, self.consumer, self.group, *self._streams)
        except HubError as e:
            # The leases lapse after the ack timeout anyway; the group recovers.
            logger.warning("%r could not leave cleanly: %s", self, e)

    # -- iteration ---------------------------------------------------------
    async def next(self, timeout: float | None = None) -> Delivery:
        """The next delivery; raises TimeoutError if none comes within ``timeout`` s."""
        if self._queue and self.state is SubState.OPEN:
            d = self._hand_out(self._queue.popleft())
            if len(self._queue) <= self._low_water and self._ahead is None:
                await self._fetch_ahead()
            return d
        return await self._next_slow(timeout)

    async def next_batch(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> list[Delivery]:
        """At least one delivery (waiting up to ``timeout``), then up to ``max`` already fetched."""
        queue = self._queue
        if queue and self.state is SubState.OPEN:
            out: list[Delivery] = []
        else:
            out = [await self._next_slow(timeout)]
        n = min(max - len(out), len(queue))
        if n > 0:
            outstanding, popleft = self._outstanding, queue.popleft
            now = _monotonic()
            for _ in range(n):
                d = popleft()
                d._at = now
                outstanding[d._sid] = d
                out.append(d)
        if len(queue) <= self._low_water and self._ahead is None:
            await self._fetch_ahead()
        return out

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Ack them all: the XACKs (one per partition) go out with the next round trip."""
        mine, others = unsettled(self, deliveries)
        if mine:
            if self.state is SubState.OPEN:
                self._queue_acks(mine)
            else:
                await self._ack_closed(mine)
        if others:
            await settle_others(others)

    def _queue_acks(self, ds: Sequence[Delivery]) -> None:
        outstanding, acks = self._outstanding, self._acks
        pop = outstanding.pop
        for d in cast("Sequence[RedisDelivery]", ds):
            pop(d._sid, None)
            ids = acks.get(d._part)
            if ids is None:
                acks[d._part] = [d._sid]
            else:
                ids.append(d._sid)

    async def _ack_closed(self, ds: Sequence[Delivery]) -> None:
        for d in cast("Sequence[RedisDelivery]", ds):
            await self._ack_now(d)

    async def _settle_acks(self, deliveries: Sequence[Delivery]) -> None:
        if self.state is SubState.OPEN:
            self._queue_acks(deliveries)
        else:
            await self._ack_closed(deliveries)

    async def _settle_nack(self, delivery: Delivery, delay: float) -> None:
        assert isinstance(delivery, RedisDelivery)
        self._nacked(delivery, delay)

    def _hand_out(self, d: RedisDelivery) -> RedisDelivery:
        d._at = _monotonic()
        self._outstanding[d._sid] = d
        return d

    async def _fetch_ahead(self) -> None:
        """Fetch the next batch while the handler works through the second half of this one.

        The request goes out before this returns, so Redis' work and the
        round trip overlap the handler's instead of adding to it: the loop
        runs ``SEND_STEPS`` times (a handler that decodes a batch without
        awaiting anything would otherwise hold the request back until it
        asks for more, and nothing would overlap).  It runs under the same
        lock as next()'s own fetches, so it never races a rebalance; it does
        no housekeeping and never blocks: when any is due, or nothing comes,
        next() does the usual.
        """
        if self.state is SubState.OPEN and not self._lock.locked():
            self._ahead = asyncio.create_task(self._run_ahead(), name=f"fetch ahead {self!r}")
            for _ in range(SEND_STEPS):
                await asyncio.sleep(0)

    async def _run_ahead(self) -> None:
        try:
            async with self._lock:
                now = _monotonic()
                due = min(self._rebalance_at, self._sweep_at, self._nacks[0][0] if self._nacks else now + 1)
                readable = sorted(self._owned & self._wanted)
                if self.state is SubState.OPEN and now < due and readable:
                    await self._fetch(readable, 0.0)
        except HubError as e:  # next() retries (and reports) when it needs records
            logger.debug("%r: fetching ahead failed: %s", self, e)
        finally:
            self._ahead = None

    async def _next_slow(self, timeout: float | None) -> Delivery:
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        async with self._lock:
            if self.state is SubState.NEW:
                await self._join_locked()
            tried = False
            failures = 0
            while True:
                if self.state is not SubState.OPEN:
                    raise LogClosed(f"subscription {self.group!r} on {self.topic!r}")
                if self._queue:
                    return self._hand_out(self._queue.popleft())
                now = time.monotonic()
                if tried and deadline is not None and now >= deadline:
                    raise TimeoutError(f"no delivery on {self.topic!r} within {timeout} s")
                try:
                    await self._housekeeping(now)
                    if self._queue:
                        continue
                    wait = self._budget(time.monotonic(), deadline)
                    readable = sorted(self._owned & self._wanted)
                    if readable:
                        await self._fetch(readable, wait)
                    else:  # nothing assigned (yet): wait for the next rebalance
                        await self._flush_acks()
                        await asyncio.sleep(wait)
                    tried = True
                    failures = 0
                except EngineUnavailable as e:
                    # Redis is down, restarting or paused: keep trying (consumers
                    # resume by themselves) until the caller's deadline.
                    failures += 1
                    if deadline is not None and time.monotonic() >= deadline:
                        raise
                    logger.warning("%r: %s; retrying", self, e.reason)
                    pause = self._backoff.compute(failures)
                    if deadline is not None:
                        pause = min(pause, max(0.0, deadline - time.monotonic()))
                    await asyncio.sleep(pause)
                except LogError as e:
                    if "NOGROUP" not in str(e):
                        raise
                    # The stream or group was deleted under us: create it again.
                    logger.warning("%r: %s; joining again", self, e)
                    await self._join_again()

    async def _join_again(self) -> None:
        """Create the group again and rejoin it (``_next_slow`` holds the lock)."""
        if self._renewer is not None:
            self._renewer.cancel()
        self._owned.clear()
        self._queue.clear()
        await self._join_locked()

    def _budget(self, now: float, deadline: float | None) -> float:
        """How long the next fetch may block: until a deadline or some housekeeping is due."""
        wait = min(self._max_block, self._rebalance_at - now, self._sweep_at - now)
        if deadline is not None:
            wait = min(wait, deadline - now)
        if self._nacks:
            wait = min(wait, self._nacks[0][0] - now)
        return max(wait, 0.0)

    # -- round trips ---------------------------------------------------------
    async def _housekeeping(self, now: float) -> None:
        if now >= self._rebalance_at:
            await self._rebalance()
        if self._nacks and self._nacks[0][0] <= now:
            await self._redeliver_nacked(now)
        if now >= self._sweep_at:
            await self._sweep()

    async def _fetch(self, readable: list[int], wait: float) -> None:
        """Send pending acks and read new records from ``readable``, in one round trip."""
        client = self._log.client
        keys = [self._streams[p] for p in readable]
        # COUNT is per stream: split the batch over the streams that brought records last
        # time (all read ones at first), so one fetch brings about one batch (fewer records
        # waiting in memory) whether they are spread or all under one key -- one stream, which
        # a split over every partition left at 1/8 of a batch per round trip.
        count = -(-self.batch // (min(self._busy, len(readable)) or len(readable)))
        args: list[Any] = ["XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count]
        block = int(wait * 1000)
        if block > 0:
            args += ["BLOCK", block]
        args += ["STREAMS", *keys, *[">"] * len(keys)]
        acks = self._take_acks()

        async def do() -> Any:
            if not acks:
                return await command(client, *args)
            pipe = client.pipeline(transaction=False)
            pipe.execute_command("EVALSHA", lua.ACK.sha, 0, *self._ack_args(acks))
            pipe.execute_command(*args)
            acked, reply = await pipe.execute(raise_on_error=False)
            if isinstance(acked, Exception):  # NOSCRIPT after a restart: the records still came
                await self._log.run(lua.ACK, *self._ack_args(acks), client=client)
            if isinstance(reply, Exception):
                raise reply
            return reply

        try:
            reply = await self._log._retry(do)
        except BaseException:
            self._restore_acks(acks)
            raise
        if not reply:
            return
        append, index = self._queue.append, self._index
        before = len(self._queue)
        # RESP3 (redis-py's default) answers with a map, RESP2 with pairs.
        busy = 0
        for stream, entries in reply.items() if isinstance(reply, dict) else reply:
            p = index[stream]
            busy += bool(entries)
            for sid, fields in entries:  # the consume hot path: Records are made when asked for
                append(RedisDelivery(fields, 1, self, p, sid))
        self._busy = busy
        # Big fetches mean a backlog: send the next fetch as soon as this
        # batch is being handed out (at most two batches are ever queued).
        fetched = len(self._queue) - before
        self._low_water = fetched - 1 if fetched >= FETCH_AHEAD_MIN else -1

    async def _rebalance(self) -> None:
        """Renew, release and take partitions (one script); claim what taken ones left pending."""
        await self._flush_acks()
        busy = {d._part for d in self._outstanding.values()}
        busy.update(d._part for d in self._queue)
        busy.update(n[2] for n in self._nacks)
        owned_raw, acquired_raw, wanted_raw, notes = await self._log.call(
            lua.REBALANCE, self._gkey, self.consumer, self._ttl_ms, len(self._streams), *sorted(busy)
        )
        for note in notes:  # '<partition> <last-delivered-id> <newest removed id> <count>'
            part, after, upto, n = text(note).split()
            self._report_gap(
                Gap(self.topic, self.group, int(part), None if after == "0-0" else after, upto, int(n))
            )
        owned = {int(p) for p in owned_raw}
        lost = self._owned - owned
        self._owned = owned
        self._wanted = {int(p) for p in wanted_raw}
        # Hand over what the group gave to others: drop records fetched from
        # them but not handed out (they stay pending; the next owner claims
        # them), so the lease can go as soon as the handed-out ones are acked.
        self._drop(lost | (owned - self._wanted))
        acquired = sorted(int(p) for p in acquired_raw)
        if acquired:
            await self._claim(acquired, min_idle_ms=0, count=CLAIM_ALL)
        self._rebalance_at = time.monotonic() + self._heartbeat

    async def _sweep(self) -> None:
        """Claim what has been pending longer than the ack timeout (never acked) for redelivery."""
        await self._flush_acks()
        if self._owned:
            await self._claim(sorted(self._owned), min_idle_ms=self._ttl_ms, count=self.batch)
        self._sweep_at = time.monotonic() + self._sweep_every

    async def _claim(self, parts: list[int], *, min_idle_ms: int, count: int) -> None:
        reply = await self._log.call(
            lua.CLAIM, self.group, self.consumer, min_idle_ms, count, *[self._streams[p] for p in parts]
        )
        waiting = {d._sid for d in self._queue}
        waiting.update(n[1] for n in self._nacks)
        for p, (got, gone) in zip(parts, reply, strict=True):
            # Pending here, removed by retention: a member that held them died un-acked.
            lost = sorted((g for g in gone if g not in waiting and g not in self._outstanding), key=id_key)
            if lost:
                await self._lost_pending(p, lost)
            for sid, fields, n in got:
                if sid in waiting:
                    continue  # already queued here: not a redelivery
                if min_idle_ms == 0 and sid in self._outstanding:
                    continue  # taking over a partition we had: the handler still has it
                self._outstanding.pop(sid, None)  # overdue: this delivery replaces the old one
                self._queue.append(RedisDelivery(fields, int(n), self, p, sid))

    async def _lost_pending(self, part: int, lost: list[bytes]) -> None:
        """Count and report pending entries retention removed before they were acked."""
        client, gkey = self._log.client, self._gkey

        async def count() -> Any:
            pipe = client.pipeline(transaction=True)
            pipe.hincrby(gkey, "skipped", len(lost))
            pipe.hincrby(gkey, "gaps", 1)
            return await pipe.execute()

        await self._log._retry(count)
        first = id_key(lost[0])
        after = f"{first[0]}-{first[1] - 1}" if first[1] else f"{first[0] - 1}-{2**64 - 1}"
        self._report_gap(Gap(self.topic, self.group, part, after, text(lost[-1]), len(lost)))

    async def _redeliver_nacked(self, now: float) -> None:
        due: dict[int, list[tuple[bytes, int]]] = {}
        while self._nacks and self._nacks[0][0] <= now:
            _, pos, p, count = heapq.heappop(self._nacks)
            if p in self._owned:  # else the partition's new owner claims it
                due.setdefault(p, []).append((pos, count))
        client = self._log.client
        for p, items in due.items():
            counts = dict(items)
            # XCLAIM (min-idle 0) bumps the entry's delivery count and returns it.
            stream = self._streams[p]
            reply = await self._log._retry(
                functools.partial(command, client, "XCLAIM", stream, self.group, self.consumer, 0, *counts)
            )
            for item in reply or []:
                if not item:
                    continue  # removed by retention meanwhile
                sid, fields = item[0], item[1]
                self._queue.append(RedisDelivery(fields, counts.get(sid, 1) + 1, self, p, sid))

    # -- acks --------------------------------------------------------------
    async def _ack_now(self, d: RedisDelivery) -> None:
        # An ack after close(): no next round trip will carry it.
        client = self._log.client
        stream = self._streams[d._part]
        await self._log._retry(lambda: client.xack(stream, self.group, d._sid))

    def _nacked(self, d: RedisDelivery, delay: float) -> None:
        self._outstanding.pop(d._sid, None)
        if self.state is SubState.OPEN:
            due = time.monotonic() + max(delay, 0.0)
            heapq.heappush(self._nacks, (due, d._sid, d._part, d.delivery_count))
        # After close() it stays pending: the partition's next owner claims it.

    def _ack_args(self, acks: dict[int, list[bytes]]) -> list[Any]:
        """ARGV of the ACK script: the group, then each stream with its ids in one string."""
        args: list[Any] = [self.group]
        for p, sids in acks.items():
            args += (self._streams[p], b" ".join(sids))
        return args

    def _take_acks(self) -> dict[int, list[bytes]]:
        acks, self._acks = self._acks, {}
        return acks

    def _restore_acks(self, acks: dict[int, list[bytes]]) -> None:
        for p, positions in acks.items():
            self._acks.setdefault(p, []).extend(positions)

    async def _flush_acks(self) -> None:
        acks = self._take_acks()
        if not acks:
            return
        client = self._log.client

        async def do() -> Any:
            return await self._log.run(lua.ACK, *self._ack_args(acks), client=client)

        try:
            await self._log._retry(do)
        except BaseException:
            self._restore_acks(acks)
            raise

    # -- partitions ----------------------------------------------------------
    def _drop(self, parts: set[int]) -> None:
        """Forget queued and nacked records of ``parts`` (they stay pending in Redis)."""
        if not parts:
            return
        if any(d._part in parts for d in self._queue):
            self._queue = deque(d for d in self._queue if d._part not in parts)
        if any(n[2] in parts for n in self._nacks):
            self._nacks = [n for n in self._nacks if n[2] not in parts]
            heapq.heapify(self._nacks)

    async def _renew_loop(self) -> None:
        """Between next() calls: rebalance (renew, hand over, take over) every heartbeat.

        So a member that is busy in its handler, or not iterating at all,
        keeps what it holds and still hands partitions to members that join.
        Skipped while next() holds the lock (it rebalances itself then) or a
        fetch ahead is on its way (it must not wait behind a rebalance to go
        out), and while a delivery is held past the ack timeout: the member
        then lets its leases lapse, so that the group takes its partitions over.
        """
        while self.state is SubState.OPEN:
            await asyncio.sleep(self._heartbeat)
            if self.state is not SubState.OPEN or self._lock.locked() or self._ahead is not None:
                continue
            oldest = next(iter(self._outstanding.values()), None)
            if oldest is not None and time.monotonic() - oldest._at > self.ack_timeout:
                continue
            try:
                async with self._lock:
                    if self.state is SubState.OPEN:
                        await self._rebalance()
            except HubError as e:
                logger.warning("%r: rebalancing failed: %s", self, e)
