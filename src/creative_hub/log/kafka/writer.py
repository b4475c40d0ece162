"""The Kafka engine's write side: one idempotent producer, one writer per topic.

A writer turns ``append`` calls into produce rounds.  Calls that arrive while
a round is in flight are merged into the next round, so concurrent publishers
share broker round trips (group commit).  Each round:

1. **catches up the dedup index** -- asks the broker for the end of every
   partition and reads whatever other writers appended since the index last
   looked (usually nothing: one watermark request);
2. **plans** -- an id already in the index (or earlier in the round) is a
   duplicate, or an IdConflict if its digest differs; a call with a conflict
   fails whole and nothing of it is produced;
3. **produces** the rest with the idempotent producer (``acks=all``), sends
   them at once (no ``linger.ms`` wait: the round is whole), and waits for
   every delivery report;
4. records the new ids and positions in the index.

The catch-up's request may go out early: ``expect`` (``KafkaLog.will_append``,
which ``Hub.publish`` calls once it has routed a call's first event) sends the
ListOffsets request while the hub still prepares the rest of the call, so the
round finds its answer there.  A round uses such an answer only if it was asked
after every call of the round began (see ``TopicWriter._ends``); otherwise the
round asks afresh.

What this guarantees: an id is stored once per topic against retries from
any process, as long as the retry starts after the first attempt's produce
was acked or failed (the catch-up sees it), and the id is within the newest
``dedup_window`` ids.  Two processes racing the same id at the same instant
can both store it; a read skips the later copy within its window (see
``read``), a consumer group gets both (like a redelivery: handlers are
idempotent anyway, at-least-once).  Within one producer session librdkafka's idempotence
removes the broker-side duplicates of its own internal retries.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from ...errors import EngineUnavailable, IdConflict
from ..base import Appended, Entry
from .names import CONTENT_TYPE, H_DIGEST, H_ID, KafkaOptions, encode_position, header, logger
from .read import fetch

if TYPE_CHECKING:
    from .engine import KafkaLog

__all__ = ["Producer", "TopicWriter", "ask_ends"]

EARLY_TIMEOUT = 2.0  # seconds an early catch-up request through the admin client may take
LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]


class _Round:
    """Delivery reports of one produce round, collected on the producer's poll thread.

    One bound method serves every message of the round (a callable per message
    -- ``functools.partial(done, i)`` -- costs more than the produce itself:
    measured 4.5-7 us against 2.9 us a record).  A report finds its message's
    index by key: a key always goes to the same partition, and the idempotent
    producer reports a partition's messages in produce order, so each key's
    indices are taken first in, first out.  ``disorder`` turns true if a key's
    offsets ever go down (the order did not hold): the round's positions are
    then not trusted (see ``TopicWriter._round``).
    """

    __slots__ = ("disorder", "errors", "future", "keys", "left", "loop", "offsets", "partitions")

    def __init__(self, n: int, loop: asyncio.AbstractEventLoop) -> None:
        self.partitions: list[int] = [-1] * n
        self.offsets: list[int] = [-1] * n
        self.errors: list[ck.KafkaError | None] = [None] * n
        self.keys: dict[bytes, list[Any]] = {}  # key -> [deque of indices, last offset]
        self.disorder = False
        self.left = n
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def expect(self, key: bytes, i: int) -> None:
        slot = self.keys.get(key)
        if slot is None:
            self.keys[key] = [deque((i,)), -1]
        else:
            slot[0].append(i)

    def done(self, err: ck.KafkaError | None, msg: ck.Message) -> None:
        slot = self.keys[msg.key() or b""]
        i = slot[0].popleft()
        if err is not None:
            self.errors[i] = err
        else:
            off = msg.offset() or 0
            if off <= slot[1]:
                self.disorder = True
            slot[1] = off
            self.partitions[i] = msg.partition() or 0
            self.offsets[i] = off
        self.left -= 1
        if self.left == 0:  # one wake-up of the event loop per round, not per message
            self.loop.call_soon_threadsafe(_resolve, self.future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Producer:
    """``confluent_kafka.Producer`` (idempotent, acks=all) with a thread serving its delivery reports.

    The sync producer is used, not ``confluent_kafka.aio``: AIOProducer cannot
    send headers, and ``produce()`` itself never blocks (it queues), so only
    the delivery reports need a thread.
    """

    def __init__(self, options: KafkaOptions) -> None:
        conf = options.base()
        conf.update(
            {
                "enable.idempotence": True,  # implies acks=all, max.in.flight <= 5, retries
                "acks": "all",
                "linger.ms": options.linger_ms,
                "message.timeout.ms": int(options.timeout * 1000),  # fail an append after this, never hang
                # Same key -> same partition as Java clients (murmur2), so other
                # producers of the Kafka ecosystem agree with us on per-key order.
                "partitioner": "murmur2_random",
                "compression.type": "lz4",
                "error_cb": self._on_error,
                "client.id": "creative-hub",
            }
        )
        for k, v in options.client.items():
            conf[k] = v
        self.producer = ck.Producer(conf)
        self.fatal: ck.KafkaError | None = None
        self._stop = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ch-kafka-producer", daemon=True)
        self._thread.start()

    def _on_error(self, err: ck.KafkaError) -> None:
        if err.fatal():  # e.g. the idempotence sequence broke: this producer is done
            self.fatal = err
            logger.error("kafka producer fatal error: %s", err)
        else:
            logger.debug("kafka producer: %s", err)

    def _serve(self) -> None:
        # A round is produced whole before it is waited for, so librdkafka's linger
        # (batching records that may still come) only delays it: measured 8.1 ms of
        # waiting per 500-record round, against ~3 ms once sent at once.  While
        # anything is queued or in flight this thread serves it with ``flush``, which
        # sends queued records at once whatever ``linger.ms`` says, and returns when
        # every one is delivered (or after 0.1 s, to look at ``_stop``).  Idle, it
        # sleeps on ``_wake`` (set by ``produce`` once a round is queued) and polls
        # now and then for error callbacks.
        producer, wake = self.producer, self._wake
        while not self._stop:
            if len(producer):
                producer.flush(0.1)
            else:
                wake.wait(0.1)
                wake.clear()
                producer.poll(0)

    async def produce(self, topic: str, entries: Sequence[Entry]) -> _Round:
        """Produce ``entries`` in order; returns when every one is acked or failed."""
        loop = asyncio.get_running_loop()
        rnd = _Round(len(entries), loop)
        produce, expect, done = self.producer.produce, rnd.expect, rnd.done
        for i, e in enumerate(entries):
            headers: list[tuple[str, str | bytes | None]] = [
                ("content-type", CONTENT_TYPE),
                (H_ID, e.id.encode()),
                (H_DIGEST, e.digest.encode()),
            ]
            key = e.key.encode()
            expect(key, i)
            while True:
                try:
                    produce(topic, e.body, key, headers=headers, on_delivery=done)
                    break
                except BufferError:  # local queue full: let the poll thread drain it
                    self._wake.set()
                    await asyncio.sleep(0.005)
        self._wake.set()  # the round is queued: send it now (see _serve)
        await rnd.future
        return rnd

    def close(self, timeout: float) -> None:
        try:
            self.producer.flush(timeout)
        finally:
            self._stop = True
            self._wake.set()
            self._thread.join()


@dataclass(slots=True)
class _Call:
    entries: list[Entry]
    future: asyncio.Future[list[Appended]]
    at: float  # monotonic time of the append: the call began at or before it
    early: _Early | None  # the early request sent for this call, if any


@dataclass(slots=True)
class _Early:
    """A catch-up's request sent by ``TopicWriter.expect`` before its call appended."""

    first: Entry | None  # the first entry of the call it was sent for; None once that call came
    at: float  # monotonic time it started: before its ListOffsets request went out
    future: asyncio.Future[dict[str, list[int]]]  # the ends, asked of the broker


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # an early catch-up nobody awaited: not "never retrieved"


def ask_ends(
    admin: AdminClient, ktopic: str, partitions: int, timeout: float
) -> asyncio.Future[dict[str, list[int]]] | None:
    """The ends of ``ktopic``'s partitions, asked now through the admin client; the future
    resolves on the event loop once every partition's answer is in.

    Not through a reader's thread: the early catch-up is asked while ``Hub.publish``
    prepares its events, Python work that holds the GIL for milliseconds, and a reader
    thread needs the GIL to start its request and again to read the answer -- measured,
    its request started 1.5-2.3 ms after it was asked and the round still waited 1.4-2.1
    ms for it.  The admin client queues the request in C within this call; librdkafka's
    own threads send it and take the answer without the GIL, which is needed only to
    hand the answer over.  The answer is the last stable offset (read-committed), as the
    readers' consumers see the end.  None if the request could not be made (the round
    then asks through a reader)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[dict[str, list[int]]] = loop.create_future()
    try:
        futures = admin.list_offsets(
            {ck.TopicPartition(ktopic, p): LATEST for p in range(partitions)},
            isolation_level=ck.IsolationLevel.READ_COMMITTED,
            # Short: while a leader moves the admin may wait for it; the round then asks a reader.
            request_timeout=min(timeout, EARLY_TIMEOUT),
        )
    except Exception as e:
        logger.debug("early list offsets of %s: %s", ktopic, e)
        return None
    left = [len(futures)]
    lock = threading.Lock()

    def resolve() -> None:
        if answer.done():
            return
        ends = [-1] * partitions
        try:
            for tp, f in futures.items():
                ends[tp.partition] = f.result().offset
        except Exception as e:
            answer.set_exception(e)
            return
        answer.set_result({ktopic: ends})

    def one_done(_: Any) -> None:  # on librdkafka's thread: one wake-up of the loop, when all are in
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            try:
                loop.call_soon_threadsafe(resolve)
            except RuntimeError:  # the loop is closed: nobody waits for it
                pass

    for f in futures.values():
        f.add_done_callback(one_done)
    return answer


class TopicWriter:
    """Appends to one Kafka topic, deduplicated by id; see the module docstring."""

    def __init__(self, log: KafkaLog, topic: str, ktopic: str, partitions: int) -> None:
        self.log = log
        self.topic = topic
        self.ktopic = ktopic
        self.partitions = partitions
        self.window = log.options.dedup_window
        # id -> (position, digest), oldest first (a dict keeps insertion order); trimmed to
        # ``window`` in bulk once it is a quarter over, not one pop per id.
        self.index: dict[str, tuple[str, str]] = {}
        self.scanned: list[int] | None = None  # per partition: next offset the index has not seen
        self._calls: list[_Call] = []
        self._task: asyncio.Task[None] | None = None
        self._early: _Early | None = None

    def expect(self, first: Entry) -> None:
        """A call is about to append here, ``first`` first: ask for the ends the dedup
        catch-up needs now.

        Measured: the catch-up (a ListOffsets round trip through the reader's
        thread) took 1.1-2.0 ms of a 500-event ``Hub.publish`` call, which spends
        2-3 ms preparing its events before it appends.  The request goes out here,
        through the admin client (``ask_ends``: a task would not start before the
        caller's next ``await``, a reader's thread not before the caller lets go of
        the GIL), so it runs while the caller prepares.
        """
        if self._early is not None or self._calls or (self._task is not None and not self._task.done()):
            return  # one asked already, or a round under way: the next round asks itself
        at = time.monotonic()  # before the request goes out
        future = self.log.ask_ends(self.ktopic, self.partitions)
        if future is not None:
            future.add_done_callback(_retrieved)
            self._early = _Early(first, at, future)

    async def append(self, entries: list[Entry]) -> list[Appended]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Appended]] = loop.create_future()
        early = self._early
        if early is not None and entries and entries[0] is early.first:
            early.first = None  # claimed: only the first append with that object is that call
        else:
            early = None
        self._calls.append(_Call(entries, future, time.monotonic(), early))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"kafka-writer-{self.topic}")
        return await future

    async def _run(self) -> None:
        while self._calls:
            calls, self._calls = self._calls, []
            calls = [c for c in calls if not c.future.done()]  # cancelled callers
            if not calls:
                continue
            try:
                await self._round(calls)
            except BaseException as e:
                err = self.log.fail(e, f"append to {self.topic}") if isinstance(e, Exception) else e
                for c in calls:
                    if not c.future.done():
                        c.future.set_exception(err)
                if not isinstance(e, Exception):
                    raise

    # -- the dedup index -------------------------------------------------------
    def _remember(self, id_: str, position: str, digest: str) -> None:
        index = self.index
        index.pop(id_, None)  # (re)inserted: now the newest
        index[id_] = (position, digest)
        if len(index) > self.window + self.window // 4:
            self._trim()

    def _trim(self) -> None:
        index = self.index
        for id_ in list(itertools.islice(index, len(index) - self.window)):
            del index[id_]

    async def _catch_up(self, asked: asyncio.Future[dict[str, list[int]]] | None = None) -> list[int]:
        """Bring the index up to the end of the topic; returns the end offsets (``asked``:
        from that request, already sent)."""
        kt, log = self.ktopic, self.log
        # Usually nothing new: one ListOffsets request for every partition's end.
        hi: list[int] | None = None
        if asked is not None:
            try:
                hi = (await asked)[kt]
            except Exception as e:  # e.g. the admin's "no leader" for a while after a broker restart
                logger.debug("early list offsets of %s failed, asking a reader: %s", kt, e)
        if hi is None or any(h < 0 for h in hi):
            hi = (await log.kafka_offsets({kt: self.partitions}, low=False))[kt][1]
        if self.scanned == hi:  # (a topic made again has smaller ends: rescanned below)
            return hi
        lo = (await log.kafka_offsets({kt: self.partitions}, high=False))[kt][0]
        if self.scanned is None:
            # First use in this process: the newest ``window`` ids, spread over partitions.
            per = -(-self.window // self.partitions)
            self.scanned = [max(lo[p], hi[p] - per) for p in range(self.partitions)]
        starts = [max(s, low) for s, low in zip(self.scanned, lo, strict=True)]
        if any(s < h for s, h in zip(starts, hi, strict=True)):
            reader = await log.readers.acquire()
            try:
                await reader.call(reader.assign, kt, starts)
                await self._scan(reader, starts, hi)
            finally:
                await log.readers.release(reader)
        self.scanned = list(hi)
        return hi

    async def _scan(self, reader: Any, starts: list[int], ends: list[int]) -> None:
        cursor = [s - 1 for s in starts]
        deadline = time.monotonic() + self.log.options.timeout * 3
        while any(c < e - 1 for c, e in zip(cursor, ends, strict=True)):
            if time.monotonic() > deadline:
                raise EngineUnavailable(
                    self.log.url, f"reading {self.topic} to rebuild the dedup index timed out"
                )
            msgs = await reader.call(fetch, reader.consumer, 1000, 0.5)
            if not msgs:
                # Transaction markers have offsets but no message: ask where we are.
                pos = await reader.call(
                    reader.consumer.position,
                    [ck.TopicPartition(self.ktopic, p) for p in range(self.partitions)],
                )
                for tp in pos:
                    if tp.offset is not None and tp.offset > 0:
                        cursor[tp.partition] = max(cursor[tp.partition], tp.offset - 1)
                continue
            for m in msgs:
                if m.error() is not None:
                    continue
                p, o = m.partition() or 0, m.offset() or 0
                if o <= cursor[p] or o >= ends[p]:
                    continue
                cursor[p] = o
                id_, digest = header(m, H_ID), header(m, H_DIGEST)
                if id_ is not None and id_ not in self.index:
                    self._remember(id_, encode_position(cursor), digest or "")

    async def _ends(self, calls: list[_Call]) -> list[int]:
        """The catch-up for a round, from the early request if it went out after every
        call of the round began -- the call it was asked for (which began before it:
        its first entry is the one named) and calls that appended before it -- else
        from a fresh one."""
        early, self._early = self._early, None
        if early is not None and all(c.early is early or c.at <= early.at for c in calls):
            return await self._catch_up(early.future)
        return await self._catch_up()

    # -- one round -------------------------------------------------------------
    async def _round(self, calls: list[_Call]) -> None:
        ends = await self._ends(calls)
        new: list[Entry] = []
        pending: dict[str, int] = {}  # id -> its index in ``new``, this round
        # Per call, its plan: a range, every entry new and stored at new[n] (the usual case);
        # else per entry: n >= 0, new[n] is stored for it; -n-1, a copy of new[n] earlier in
        # the round; a str, the position it was already stored at.
        plans: list[tuple[_Call, range | list[int | str]]] = []
        for call in calls:
            plan = self._plan(call, new, pending)
            if plan is not None:
                plans.append((call, plan))
        rnd_positions: list[str] = []
        errors: list[ck.KafkaError | None] = []
        failed = False
        if new:
            rnd = await self.log.producer().produce(self.ktopic, new)
            if rnd.disorder:  # cannot happen with an idempotent producer; positions unknown if it does
                # Stored, but which offset is whose is not known: the index learns them by
                # reading the topic back at the next round, so a retry gets true receipts.
                raise EngineUnavailable(
                    self.log.url, f"append to {self.topic}: delivery reports out of produce order; retry"
                )
            errors = rnd.errors
            rnd_positions = self._positions(rnd.partitions, rnd.offsets, ends)
            failed = any(err is not None for err in errors)
            index = self.index
            if failed:
                for e, err, pos in zip(new, errors, rnd_positions, strict=True):
                    if err is None:
                        index[e.id] = (pos, e.digest)
            else:  # one C-level update for the round, not a store per entry
                digests = [e.digest for e in new]
                index.update(zip([e.id for e in new], zip(rnd_positions, digests, strict=True), strict=True))
            if len(index) > self.window + self.window // 4:
                self._trim()
            if not failed:
                self._advance(rnd.partitions, rnd.offsets)
        for call, plan in plans:
            if call.future.done():
                continue
            if failed:
                bad = next((errors[r if r >= 0 else -r - 1] for r in plan if isinstance(r, int)
                            and errors[r if r >= 0 else -r - 1] is not None), None)  # fmt: skip
                if bad is not None:
                    call.future.set_exception(
                        EngineUnavailable(self.log.url, f"append to {self.topic}: {bad.name()}: {bad.str()}")
                    )
                    continue
            if isinstance(plan, range):
                mine = rnd_positions[plan.start : plan.stop]
                call.future.set_result([Appended(pos, False) for pos in mine])
                continue
            call.future.set_result(
                [
                    Appended(r, True) if isinstance(r, str)
                    else Appended(rnd_positions[r], False) if r >= 0
                    else Appended(rnd_positions[-r - 1], True)
                    for r in plan
                ]
            )  # fmt: skip

    def _plan(self, call: _Call, new: list[Entry], pending: dict[str, int]) -> range | list[int | str] | None:
        """What of ``call`` to store (see ``_round``), its new entries added to ``new`` and
        ``pending``; None if an id conflicts (the call fails whole, nothing of it is produced)."""
        index = self.index
        entries = call.entries
        ids = [e.id for e in entries]
        base = len(new)
        # The usual call: every id new to the topic, the round and the call -- set
        # operations in C, not three dict lookups per entry.
        if index.keys().isdisjoint(ids) and pending.keys().isdisjoint(ids) and len(set(ids)) == len(ids):
            new.extend(entries)
            pending.update(zip(ids, range(base, base + len(ids)), strict=True))
            return range(base, base + len(ids))
        plan: list[int | str] = []
        mine: dict[str, int] = {}
        fresh: list[Entry] = []
        for e in entries:
            eid = e.id
            old = index.get(eid)
            if old is not None:
                if old[1] and old[1] != e.digest:
                    call.future.set_exception(IdConflict(self.topic, eid))
                    return None
                plan.append(old[0])
                continue
            n = mine.get(eid)
            if n is None:
                n = pending.get(eid)
            if n is not None:
                first = new[n] if n < base else fresh[n - base]
                if first.digest != e.digest:
                    call.future.set_exception(IdConflict(self.topic, eid))
                    return None
                plan.append(-n - 1)
                continue
            n = base + len(fresh)
            mine[eid] = n
            fresh.append(e)
            plan.append(n)
        new.extend(fresh)
        pending.update(mine)
        return plan

    def _advance(self, partitions: list[int], offsets: list[int]) -> None:
        """Move ``scanned`` past this round's records where they follow it with nothing between:
        the index holds them already and need not read them back."""
        assert self.scanned is not None
        n = self.partitions
        lo, hi, count = [-1] * n, [-1] * n, [0] * n
        for p, o in zip(partitions, offsets, strict=True):
            if count[p] == 0 or o < lo[p]:
                lo[p] = o
            if o > hi[p]:
                hi[p] = o
            count[p] += 1
        for p in range(n):
            if count[p] and lo[p] == self.scanned[p] and hi[p] - lo[p] + 1 == count[p]:
                self.scanned[p] = hi[p] + 1

    def _positions(self, partitions: list[int], offsets: list[int], ends: list[int]) -> list[str]:
        """Receipt positions: the offset; with partitions > 1, the cursor as if read in append order."""
        if self.partitions == 1:
            return [str(o) for o in offsets]
        cursor = [e - 1 for e in ends]
        parts = [str(c) for c in cursor]  # encode_position(cursor), one partition's text redone each time
        out = []
        join = ",".join
        for p, o in zip(partitions, offsets, strict=True):
            if p >= 0 and o > cursor[p]:
                cursor[p] = o
                parts[p] = str(o)
            out.append(join(parts))
        return out
