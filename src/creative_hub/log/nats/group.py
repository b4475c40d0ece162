"""Consumer groups on JetStream: a durable pull consumer per partition, leased to one member.

A group on a topic with N partitions is N durable consumers
(``<group>-p0`` .. ``<group>-p<N-1>``), each filtered to its partition's
subjects ``<topic>.*.<n>``, explicit ack, ``ack_wait`` = the ack timeout.
Members share the partitions through the KV bucket ``creative_hub_groups``:

* ``<stream>.<group>.m.<member>`` -- a member's heartbeat;
* ``<stream>.<group>.p.<n>`` -- the lease on partition n: the member's name.

Both carry a server-side TTL (``Nats-TTL``) and are written with compare-and-set on the
key's revision, so two members never hold one partition.  A member pulls only from
partitions it holds, so records with the same key (same partition) reach one member at a
time, in stream order.

Timing, all derived from the ack timeout T:

* a lease is renewed every T/3 (whenever ``next()`` runs) and lives 2T on
  the server, so a delivery is covered by a live lease for a full T;
* a pull request never outlives the local lease deadline, so a member that
  is paused (SIGSTOP) cannot receive records after its lease lapsed;
* a member that is killed stops renewing: after at most 2T another member
  takes the partition;
* JetStream's ack wait (T) runs from the fetch, the contract's from the hand-out: a record
  that waited in the buffer goes out with a +WPI (its ack wait restarts), or, if it waited
  nearly T, is left to the server's redelivery, never handed out beside it (``_pop``).

Handing a partition over: the old holder stops pulling, unsubscribes its reply inbox
(JetStream drops pull requests nobody listens to), waits for the deliveries it handed out
to be acked (up to T) and for the server's ack floor to include its acks, then deletes its
lease.  The new holder, if the consumer has un-acked deliveries (a crash, or records the old
holder fetched but never handed out), resets the consumer to its ack floor
(``CONSUMER.RESET``, nats-server 2.14): everything after the floor is delivered again, in
order.  So a takeover never delivers a newer record of a key before an older one that was
not acked.  Redeliveries after a reset count from the previous delivery (``delivery_count`` >= 2).

Gaps (records retention removed before the group got them; see
``creative_hub.log.base.Gap``).  JetStream moves a consumer past removed
records by itself -- its ack floor too -- so the group keeps its own marks:

* a member releasing a partition writes the consumer's ack floor (``<stream>.<group>.f.<n>``
  = ``<consumer seq> <stream seq>``); the next holder compares it with the server's: consumer
  sequences are dense, so the difference is exactly the deliveries that were removed un-acked;
* a holder compares the stream's first sequence with the newest record it
  received on each partition -- at takeover, and on topics with limits
  whenever a record arrives that is not the next stream sequence, before
  handing it out: records removed there before they were delivered cannot
  be counted (the partitions share one stream sequence), so the gap is
  reported with its range and ``count=None`` -- a range in which this
  partition may have had no record at all.

Running totals are in ``<stream>.<group>.s`` (``<skipped> <gaps>``), for ``lag``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSub
from nats.js import api

from ...errors import EngineUnavailable, LogClosed
from .._subscription import LockedSubscription, SubscribeArgs, SubState
from ..base import Delivery, Gap, Record, Start, settle_others, unsettled
from .client import ERR_WRONG_LAST_SEQUENCE, KV, META_GROUP, GroupHost, Topic, status_of
from .names import LEASE_BUCKET, consumer_name, escape, record_of

__all__ = ["NatsSubscription"]

logger = logging.getLogger("creative_hub.log.nats")

LEASE_FACTOR = 2.0  # a lease lives this many ack timeouts on the server after its last renewal
MAINTAIN_EVERY = 1.0  # seconds between membership checks at most (faster rebalancing)
PULL_EXPIRES = 5.0  # seconds a pull request waits on the server at most
PULL_MARGIN = 0.1  # seconds between a pull request's expiry and the lease deadline
MAX_ACK_PENDING = 10_000  # per partition consumer: un-acked deliveries before JetStream holds back
FLOOR_WAIT = 2.0  # seconds a leaving member waits for the server to apply its acks
FLOOR_TTL = 30 * 86400  # seconds a released partition's ack floor mark is kept
# A record that waited in the buffer longer than this share of the ack
# timeout (at most ..._MAX s) is handed out with a +WPI: the handler gets a full T.
PROGRESS_AFTER, PROGRESS_AFTER_MAX = 0.1, 1.0
# One that waited longer than T less this share (at most ..._MAX s: the fetch's
# and a +WPI's travel fit in it) is dropped: the server redelivers it about now.
STALE_MARGIN, STALE_MARGIN_MAX = 0.25, 2.0


@dataclass(slots=True)
class _Pull:
    subject: str  # the request's reply subject (status answers come there)
    remaining: int
    expires_at: float  # monotonic


@dataclass(eq=False, slots=True)
class _Part:
    """A partition this member holds."""

    index: int
    consumer: str
    revision: int  # of our lease key
    deadline: float  # monotonic: renew before it, hand out nothing after it
    prev_delivered: int  # the consumer's delivered stream seq when we took it (for delivery counts)
    sub: NatsSub | None = None
    inbox: str = ""
    # Open pull requests, oldest first: JetStream serves them in that order,
    # and records arrive with their own subject, not the request's.
    pulls: deque[_Pull] = field(default_factory=deque)
    outstanding: int = 0  # records requested and not yet received
    buffered: int = 0  # received, not handed out
    inflight: dict[int, Msg] = field(default_factory=dict)  # handed out, not acked (by stream seq)
    max_acked: int = 0
    requests: int = 0
    releasing: bool = False
    release_by: float = 0.0  # monotonic: give up waiting for acks then
    last_seen: int = 0  # newest stream seq received on this partition (or known delivered)


class NatsSubscription(LockedSubscription):
    """A member of a consumer group on one topic of a NatsLog."""

    ENGINE = "NATS"

    def __init__(self, log: GroupHost, args: SubscribeArgs) -> None:
        self._init_subscription(args, args.consumer or f"c-{uuid.uuid4().hex[:12]}")
        self.log = log
        self._ttl = max(1, math.ceil(self.ack_timeout * LEASE_FACTOR))  # whole seconds, server side
        self._t: Topic | None = None
        self._parts: dict[int, _Part] = {}
        # Received, not handed out: a heap by stream sequence, so records of
        # different partitions go out in log order when they are all here;
        # each with its arrival (monotonic), from which its ack wait runs.
        self._buffer: list[tuple[int, int, float, _Part, Msg]] = []
        self._progress_after = min(self.ack_timeout * PROGRESS_AFTER, PROGRESS_AFTER_MAX)
        self._stale_after = self.ack_timeout - min(self.ack_timeout * STALE_MARGIN, STALE_MARGIN_MAX)
        self._progress: list[Msg] = []  # handed out after a long wait: +WPI to send
        self._received = 0  # tie-break in the heap (a redelivery can repeat a sequence)
        self._event = asyncio.Event()
        self._next_maintain = 0.0
        self._lock = asyncio.Lock()
        self._prefix = ""  # <stream>.<group>. once the topic is known
        self._limited = True  # the stream has retention limits (as of the last look)
        self._jumps: list[tuple[_Part, int, int | None]] = []  # (partition, newest before, next) to check
        self._gtoken = escape(self.group)

    # -- joining ---------------------------------------------------------------
    async def _enter(self) -> None:
        log = self.log
        log.check_open()
        t = await log.topic_of(self.topic, create=True)
        assert t is not None
        self._t = t
        self._prefix = f"{t.stream}.{self._gtoken}."
        await log.bucket()
        with log.guard(f"join group {self.group} on {self.topic}"):
            await self._ensure_consumers(t)
        log.joined(self)
        self.state = SubState.OPEN
        await self._maintain()

    def _consumer_config(self, t: Topic, i: int, start_seq: int | None) -> api.ConsumerConfig:
        name = consumer_name(self.group, i)
        return api.ConsumerConfig(
            name=name,
            durable_name=name,
            description=f"creative-hub group {self.group} on {self.topic}, partition {i}",
            deliver_policy=api.DeliverPolicy.ALL
            if start_seq is None
            else api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start_seq,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_timeout,
            max_deliver=self.log.options.max_deliver,
            filter_subject=f"{self.topic}.*.{i}",
            max_ack_pending=MAX_ACK_PENDING,
            metadata={META_GROUP: self.group, "creative_hub.partition": str(i)},
        )

    async def _ensure_consumers(self, t: Topic) -> None:
        """Create the group's partition consumers, or bring their ack wait to ours."""
        js = self.log.js
        start_seq: int | None = None
        if self.start is Start.LATEST:
            start_seq = (await js.stream_info(t.stream)).state.last_seq + 1

        async def one(i: int) -> None:
            name = consumer_name(self.group, i)
            try:
                info = await js.consumer_info(t.stream, name)
            except nats.js.errors.NotFoundError:
                try:
                    await js.add_consumer(t.stream, self._consumer_config(t, i, start_seq))
                except nats.js.errors.BadRequestError:
                    pass  # created meanwhile by another member
                return
            if abs((info.config.ack_wait or 0) - self.ack_timeout) > 1e-3:
                # The latest member's ack timeout wins (consumer ack_wait is updatable).
                info.config.ack_wait = self.ack_timeout
                await js.add_consumer(t.stream, info.config)

        await asyncio.gather(*(one(i) for i in range(t.partitions)))

    # -- membership and leases -------------------------------------------------
    async def _maintain(self) -> None:
        """Heartbeat, renew leases, share partitions out fairly, finish hand-overs."""
        with self.log.guard(f"group {self.group} on {self.topic}"):
            await self._maintain_inner()

    async def _maintain_inner(self) -> None:
        log, t, me = self.log, self._t, self.consumer
        assert t is not None
        now = time.monotonic()
        self._next_maintain = now + min(self.ack_timeout / 3, MAINTAIN_EVERY)
        await log.kv_put(f"{self._prefix}m.{escape(me)}", me.encode(), ttl=self._ttl)
        keys = await log.kv_scan(self._prefix + ">")
        members = sum(1 for k, v in keys.items() if k.startswith(self._prefix + "m.") and not v.deleted)
        leases = {
            int(k.rsplit(".", 1)[1]): v
            for k, v in keys.items()
            if k.startswith(self._prefix + "p.") and k.rsplit(".", 1)[1].isdigit()
        }
        # Our leases: still ours?  Renew those due.
        for p in list(self._parts.values()):
            cur = leases.get(p.index)
            if cur is None or cur.deleted or cur.revision != p.revision or cur.value != me.encode():
                logger.warning("%s group %s: lost partition %d", self.topic, self.group, p.index)
                await self._drop(p)
                continue
            if p.deadline - time.monotonic() < self.ack_timeout * (LEASE_FACTOR - 1 / 3):
                sent = time.monotonic()
                rev = await log.kv_put(self._lease_key(p.index), me.encode(), ttl=self._ttl, last=p.revision)
                if rev is None:
                    logger.warning("%s group %s: lost partition %d", self.topic, self.group, p.index)
                    await self._drop(p)
                    continue
                p.revision = rev
                p.deadline = sent + self.ack_timeout * LEASE_FACTOR
        target = math.ceil(t.partitions / max(members, 1))
        # Too many (a member joined): give back the highest ones once acked.
        active = sorted(i for i, p in self._parts.items() if not p.releasing)
        for i in active[target:]:
            await self._start_release(self._parts[i])
        for p in [p for p in self._parts.values() if p.releasing]:
            if not p.inflight or time.monotonic() > p.release_by:
                await self._release(p)
        # Too few: take free partitions.
        held = sum(1 for p in self._parts.values() if not p.releasing)
        for i in range(t.partitions):
            if held >= target:
                break
            if i in self._parts:
                continue
            cur = leases.get(i)
            if cur is not None and not cur.deleted:
                continue  # someone holds it
            sent = time.monotonic()
            rev = await log.kv_put(
                self._lease_key(i), me.encode(), ttl=self._ttl, last=cur.revision if cur is not None else 0
            )
            if rev is None:
                continue  # another member was faster
            mark = keys.get(f"{self._prefix}f.{i}")
            await self._take(t, i, rev, sent + self.ack_timeout * LEASE_FACTOR, mark)
            held += 1

    def _lease_key(self, i: int) -> str:
        return f"{self._prefix}p.{i}"

    async def _take(self, t: Topic, i: int, revision: int, deadline: float, mark: KV | None = None) -> None:
        """Start serving partition ``i``, whose lease we just won (``mark``: its last holder's ack floor)."""
        log = self.log
        name = consumer_name(self.group, i)
        try:
            info = await log.js.consumer_info(t.stream, name)
        except nats.js.errors.NotFoundError:
            await self._ensure_consumers(t)  # deleted behind our back: make it again
            info = await log.js.consumer_info(t.stream, name)
        prev = info.delivered.stream_seq if info.delivered else 0
        if mark is not None and not mark.deleted and mark.value and info.ack_floor is not None:
            # Deliveries the last holder left un-acked that JetStream removed
            # moved the server's ack floor past them: consumer seqs are dense.
            cseq, sseq = (int(x) for x in mark.value.split())
            vanished = info.ack_floor.consumer_seq - cseq
            if vanished > 0:
                upto = str(info.ack_floor.stream_seq)
                await self._gap(Gap(self.topic, self.group, i, str(sseq) if sseq else None, upto, vanished))
            await log.kv_put(f"{self._prefix}f.{i}", b"", ttl=FLOOR_TTL, delete=True)
        if info.num_ack_pending:
            # Deliveries of an earlier holder (crashed, or fetched and never
            # handed out): deliver everything after the ack floor again, in order.
            await log.js.reset_consumer(t.stream, name)
        p = _Part(i, name, revision, deadline, prev)
        p.last_seen = prev
        await self._check_removed(t, [(p, prev, None)])
        p.inbox = f"{log.reply_prefix}.g{log.nc._nuid.next().decode()}"

        async def on_msg(msg: Msg) -> None:
            self._on_msg(p, msg)

        p.sub = await log.nc.subscribe(p.inbox + ".*", cb=on_msg)
        self._parts[i] = p

    async def _check_removed(self, t: Topic, jumps: list[tuple[_Part, int, int | None]]) -> None:
        """Report records retention removed after ``a`` (and before ``b``) on each (partition, a, b).

        Uncounted: the stream's partitions share its sequence, so a removed
        range may have held none of this partition's records.
        """
        info = await self.log.js.stream_info(t.stream)
        c = info.config
        self._limited = bool(c.max_age or (c.max_msgs or 0) > 0 or (c.max_bytes or 0) > 0)
        first = info.state.first_seq
        for p, a, b in jumps:
            upto = first - 1 if b is None else min(first, b) - 1
            if upto > a and (a or upto > 0):
                await self._gap(Gap(self.topic, self.group, p.index, str(a) if a else None, str(upto), None))

    async def _gap(self, gap: Gap) -> None:
        """Report ``gap`` and add it to the group's running totals (compare-and-set)."""
        self._report_gap(gap)
        log, key = self.log, f"{self._prefix}s"
        for _ in range(20):
            cur = (await log.kv_scan(key)).get(key)
            skipped, gaps = (int(x) for x in cur.value.split()) if cur and cur.value else (0, 0)
            value = f"{skipped + (gap.count or 0)} {gaps + 1}".encode()
            headers = {"Nats-Expected-Last-Subject-Sequence": str(cur.revision if cur else 0)}
            msg = await log.request(f"$KV.{LEASE_BUCKET}.{key}", value, headers)
            resp = json.loads(msg.data)
            if "error" not in resp:
                return
            if resp["error"].get("err_code") != ERR_WRONG_LAST_SEQUENCE:
                log.raise_api(resp)

    async def _start_release(self, p: _Part) -> None:
        p.releasing = True
        p.release_by = time.monotonic() + self.ack_timeout
        await self._unsubscribe(p)

    async def _unsubscribe(self, p: _Part) -> None:
        if p.sub is not None:
            sub, p.sub = p.sub, None
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        p.pulls.clear()
        p.outstanding = 0

    async def _release(self, p: _Part) -> None:
        """Hand ``p`` back to the group: make sure our acks count, then delete the lease."""
        log, t = self.log, self._t
        assert t is not None
        await self._unsubscribe(p)
        # The next holder resets to the ack floor: our acks must be in it, or
        # it would deliver again what we handled.  Un-acked deliveries hold
        # the floor below them, so wait only for what the floor can reach.
        target = p.max_acked
        if p.inflight:
            target = min(target, min(p.inflight) - 1)
        if target > 0:
            deadline = time.monotonic() + FLOOR_WAIT
            while time.monotonic() < deadline:
                info = await log.js.consumer_info(t.stream, p.consumer)
                if info.ack_floor is None or info.ack_floor.stream_seq >= target:
                    break
                await asyncio.sleep(0.02)
        self._parts.pop(p.index, None)
        info = await log.js.consumer_info(t.stream, p.consumer)
        if info.ack_floor is not None:  # the next holder counts what is removed un-acked after it
            floor = f"{info.ack_floor.consumer_seq} {info.ack_floor.stream_seq}".encode()
            await log.kv_put(f"{self._prefix}f.{p.index}", floor, ttl=FLOOR_TTL)
        await log.kv_put(self._lease_key(p.index), b"", ttl=self._ttl, last=p.revision, delete=True)

    async def _drop(self, p: _Part) -> None:
        """Forget a partition we lost: its deliveries go stale (their acks do nothing)."""
        self._parts.pop(p.index, None)
        await self._unsubscribe(p)

    # -- receiving -------------------------------------------------------------
    def _on_msg(self, p: _Part, msg: Msg) -> None:
        if self._parts.get(p.index) is not p:
            return  # a partition we gave up
        if msg.reply and msg.reply.startswith("$JS.ACK."):
            p.outstanding -= 1
            if p.pulls:
                head = p.pulls[0]
                head.remaining -= 1
                if head.remaining <= 0:
                    p.pulls.popleft()
            tokens = msg.reply.split(".")
            nine = len(tokens) == 9
            seq = int(tokens[5] if nine else tokens[7])
            if seq > p.last_seen:
                if seq > p.last_seen + 1 and self._limited:  # records in between: removed?
                    self._jumps.append((p, p.last_seen, seq))
                p.last_seen = seq
            self._received += 1
            heapq.heappush(self._buffer, (seq, self._received, time.monotonic(), p, msg))
            p.buffered += 1
            self._event.set()
            return
        if status_of(msg) == "100":
            return  # idle heartbeat
        # 404 / 408 / 409 on a request's own subject: that request is over.
        for pull in p.pulls:
            if pull.subject == msg.subject:
                p.outstanding -= pull.remaining
                p.pulls.remove(pull)
                break
        self._event.set()

    async def _top_up(self, now: float) -> None:
        """Keep pull requests open on every partition we hold, within our budget."""
        log, t = self.log, self._t
        assert t is not None
        active = [p for p in self._parts.values() if not p.releasing and p.sub is not None]
        if not active:
            return
        per = max(self.batch // len(active), 64)
        for p in active:
            while p.pulls and now > p.pulls[0].expires_at + 1.0:  # lost (a reconnect): its 408 never came
                p.outstanding -= p.pulls.popleft().remaining
            if p.outstanding > per // 2 or p.buffered >= per:
                continue
            # A pull request must end before our lease could: after that the
            # partition may be someone else's.
            expires = min(PULL_EXPIRES, p.deadline - now - PULL_MARGIN)
            if expires < 0.05:
                continue  # renew first
            n = per - p.outstanding
            p.requests += 1
            reply = f"{p.inbox}.{p.requests}"
            payload = json.dumps({"batch": n, "expires": int(expires * 1e9)}).encode()
            await log.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{t.stream}.{p.consumer}", payload, reply=reply)
            p.pulls.append(_Pull(reply, n, now + expires))
            p.outstanding += n

    def _deliver(self, p: _Part, msg: Msg) -> Delivery:
        tokens = (msg.reply or "").split(".")
        off = 2 if len(tokens) == 9 else 4  # $JS.ACK.<stream>... or $JS.ACK.<domain>.<hash>.<stream>...
        count, seq, ts = int(tokens[off + 2]), int(tokens[off + 3]), int(tokens[off + 5])
        if seq <= p.prev_delivered and count == 1:
            count = 2  # delivered before a reset: this is a redelivery
        record: Record = record_of(self.topic, seq, ts // 1_000_000, msg)
        p.inflight[seq] = msg
        return Delivery(record, count, owner=self, token=(p, seq, msg))

    # -- acks ------------------------------------------------------------------
    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Ack them all: one +ACK each (JetStream acks are per message), written in one go."""
        mine, others = unsettled(self, deliveries)
        if mine:
            await self._settle_acks(mine)
        if others:
            await settle_others(others)

    async def _settle_acks(self, deliveries: Sequence[Delivery]) -> None:
        parts, now = self._parts, time.monotonic()
        publish = self.log.nc.publish
        with self.log.guard("ack"):
            for d in deliveries:
                token: tuple[_Part, int, Msg] = d._token
                p, seq, msg = token
                if parts.get(p.index) is not p or now >= p.deadline:
                    continue  # a partition we lost: its new holder delivers it again
                p.inflight.pop(seq, None)
                if seq > p.max_acked:
                    p.max_acked = seq
                # As msg.ack(): an empty message to the reply subject.  Written
                # to the connection's buffer; the flusher sends them together.
                await publish(msg.reply)
                msg._ackd = True

    async def _settle_nack(self, delivery: Delivery, delay: float) -> None:
        token: tuple[_Part, int, Msg] = delivery._token
        p, seq, msg = token
        if self._parts.get(p.index) is not p or time.monotonic() >= p.deadline:
            return
        p.inflight.pop(seq, None)
        with self.log.guard("nack"):
            await msg.nak(delay=delay if delay > 0 else None)

    # -- handing out -----------------------------------------------------------
    async def _more_locked(self, out: list[Delivery], max: int) -> None:
        """What is already received (``next_batch``), then a new pull if that took some."""
        waited = time.monotonic() - self._progress_after
        while len(out) < max and not self._jumps:  # a possible gap is checked first
            d = self._pop(waited)
            if d is None:
                break
            out.append(d)
        if self._progress:
            await self._send_progress()
        if len(out) > 1:
            # What was taken may be worth a new pull request at once.
            with self.log.guard(f"pull from {self.topic}"):
                await self._top_up(time.monotonic())

    async def _next_locked(self, timeout: float | None) -> Delivery:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.state is SubState.CLOSED or not self.log.is_open:
                raise LogClosed("subscription")
            now = time.monotonic()
            renew_by = self.ack_timeout * (LEASE_FACTOR - 1 / 3)
            if now >= self._next_maintain or any(p.deadline - now < renew_by for p in self._parts.values()):
                await self._maintain()
                now = time.monotonic()
            # Ask for more before the buffer runs dry, so records keep flowing.
            with self.log.guard(f"pull from {self.topic}"):
                await self._top_up(now)
            while self._jumps:  # before handing out what came after them (more may come meanwhile)
                jumps, self._jumps = self._jumps, []
                assert self._t is not None
                with self.log.guard(f"look for removed records of {self.topic}"):
                    mine = [j for j in jumps if self._parts.get(j[0].index) is j[0]]
                    await self._check_removed(self._t, mine)
            d = self._pop(time.monotonic() - self._progress_after)
            if d is not None:
                if self._progress:
                    await self._send_progress()
                return d
            wait = max(self._next_maintain - now, 0.001)
            wait = self._cut_to(deadline, now, wait, timeout)
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):  # not wait_for: see sqlite/engine.py's _wait_for_append
                    await self._event.wait()

    def _pop(self, waited: float) -> Delivery | None:
        """The next record to hand out, or None (``waited``: now less ``_progress_after``).

        JetStream's ack wait runs from the fetch.  A record that waited here
        while the handler was slow is not handed out beside its redelivery:
        a copy the server already sent again gives way to the later copy,
        one whose ack wait is about to run out is left to the redelivery,
        and one that waited long is handed out with a +WPI (``_progress``).
        """
        buf, parts = self._buffer, self._parts
        while buf:
            seq, _, at, p, msg = heapq.heappop(buf)
            if parts.get(p.index) is not p or p.releasing:
                continue  # fetched for a partition we gave up: its next holder gets it
            p.buffered -= 1
            if buf and buf[0][0] == seq:
                continue  # the server sent it again (same seq, received later): that copy is live
            if at <= waited:
                if waited - at >= self._stale_after - self._progress_after:
                    continue  # its ack wait ends about now: the server redelivers it
                self._progress.append(msg)
            return self._deliver(p, msg)
        return None

    async def _send_progress(self) -> None:
        """+WPI for records handed out after a long wait: their ack wait restarts now."""
        msgs, self._progress = self._progress, []
        publish = self.log.nc.publish
        with self.log.guard("ack progress"):
            for msg in msgs:
                await publish(msg.reply or "", b"+WPI")

    # -- leaving ---------------------------------------------------------------
    async def _close(self) -> None:
        """Leave the group: un-acked deliveries go back to it.  Safe twice."""
        if self.state is SubState.CLOSED:
            return
        async with self._lock:
            await self._leave()

    async def _leave(self) -> None:
        if self.state is SubState.CLOSED:
            return
        joined, self.state = self.state is SubState.OPEN, SubState.CLOSED
        self.log.left(self)
        if not joined or not self.log.is_open:
            return
        try:
            for p in list(self._parts.values()):
                await self._unsubscribe(p)
            for p in list(self._parts.values()):
                await self._release(p)  # un-acked ones go back: the next holder delivers them again
            await self.log.kv_put(
                f"{self._prefix}m.{escape(self.consumer)}", b"", ttl=self._ttl, delete=True
            )
        except (EngineUnavailable, nats.errors.Error, OSError, TimeoutError) as e:
            logger.warning(
                "%s group %s: could not leave cleanly (%s); leases expire anyway", self.topic, self.group, e
            )
        finally:
            self._parts.clear()
            self._buffer.clear()
