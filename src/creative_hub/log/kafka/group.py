"""A consumer-group member on one Kafka topic: at-least-once, commit after ack.

One ``confluent_kafka.Consumer`` per subscription, driven by its own thread,
in Kafka group ``<prefix><topic>/<group>`` (one Kafka group per hub topic
and group, so members of one topic never rebalance another's).  Assignment
is ``cooperative-sticky``: a member joining does not take partitions from
one that keeps working.

* **Ack and commit.**  Per partition, the member commits the contiguous
  prefix of acked deliveries (the lowest un-acked offset), a few times a
  second and when it loses the partition or leaves.  The commit metadata
  carries ``d=<offset>``, how far deliveries went, so the next owner knows
  which records are redeliveries (``delivery_count`` >= 2) and ``lag`` can
  report ``pending``.
* **Ack timeout.**  Kafka has none per message, so the member keeps every
  un-acked delivery and hands it out again after ``ack_timeout`` (or after
  ``nack(delay)``).  The member polls Kafka only while its application is
  alive -- inside ``next()``, or within ``ack_timeout`` of its last ``next()``
  or ack.  A member that hangs or is stopped therefore exceeds
  ``max.poll.interval.ms`` (= the ack timeout) and leaves the group; a killed
  one misses heartbeats for ``session.timeout.ms`` (<= the ack timeout).
  Either way the group gives its partitions to another member, which resumes
  from the committed offset: its un-acked deliveries come again.
* **Per-key order.**  A key lives in one partition and a partition is owned
  by one member.  Before it gives a partition up in a rebalance, a member
  waits (at most until their ack deadlines) for its un-acked deliveries of
  that partition, so the next owner does not handle the same key at once.
* **Gaps.**  Offsets are dense, so what retention removed before the group
  got it is counted exactly: at assignment (the committed offset is below the
  partition's low watermark; the member commits the low watermark at once,
  so the gap is counted once) and while consuming (a fetch that jumps ahead:
  ``auto.offset.reset`` moved it past removed records).  The commit metadata
  keeps the partition's running totals (``s=<skipped>;g=<gaps>``) for ``lag``.
* **Start.**  A group that never committed on a partition starts at its
  earliest retained (``Start.EARLIEST``) or end (``Start.LATEST``) offset,
  and commits that start at once, so the group exists (``groups``, ``lag``)
  and a later member does not skip what was appended in between.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import queue
import threading
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

import confluent_kafka as ck

from ...errors import EngineUnavailable, LogClosed
from .._guard import wait_for
from .._subscription import SubscribeArgs, SubscriptionBase, SubState
from ..base import DEFAULT_BATCH, Delivery, Gap, settle_others, unsettled
from .delivery import KafkaDelivery, Part, PartStart, assignment_starts, commit_metadata, on_commit
from .names import logger, position_format

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .engine import KafkaLog

__all__ = ["KafkaSubscription"]

COMMIT_EVERY = 0.05  # seconds between commits of acked offsets
POLL_WAIT = 0.1  # seconds the consumer thread blocks in one poll


class KafkaSubscription(SubscriptionBase):
    """A member of a consumer group on one topic of a KafkaLog; see the module docstring."""

    ENGINE = "Kafka"

    def __init__(self, log: KafkaLog, args: SubscribeArgs) -> None:
        self._init_subscription(args, args.consumer or f"c-{uuid.uuid4().hex[:12]}")
        self.log = log
        self.ktopic = log.ktopic(self.topic)
        self.group_id = log.group_id(self.topic, self.group)
        self.max_pending = max(8 * self.batch, 4096)
        self._partitions = 1
        self._format: list[tuple[str, str]] | None = None  # how a delivery's position is spelled
        self._parts: dict[int, Part] = {}
        # Received, not handed out yet: the messages themselves; the delivery is made
        # when one is handed out, so the buffer ahead holds one GC-tracked object per
        # record, not two, and a delivery acked soon after dies young.
        self._ready: deque[ck.Message] = deque()
        self._inflight = 0
        self._next_due = math.inf
        self._wake = asyncio.Event()
        self._joined = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._commands: queue.SimpleQueue[
            tuple[list[ck.TopicPartition], concurrent.futures.Future[None] | None]
        ]
        self._commands = queue.SimpleQueue()
        self._commit_handle: asyncio.TimerHandle | None = None
        self._active_until = 0.0  # monotonic; the thread polls while the application is alive
        self._waiting = 0  # next() calls in progress
        self._want_pause = False  # read by the consumer thread: our buffer is full
        self._drained = threading.Event()  # set when the buffer is no longer full
        self._stop = False
        self._revoking = 0  # revokes waiting for acks
        self._closing = False
        self._error: BaseException | None = None

    # -- lifecycle -----------------------------------------------------------------
    async def _join(self) -> None:
        if self.closed:
            raise LogClosed("subscription")
        if self._thread is not None:
            await self._wait_joined()
            return
        self.log.check_open()
        self._partitions = await self.log.ensure_topic(self.topic)
        self._format = position_format(self._partitions) if self._partitions > 1 else None
        self._loop = asyncio.get_running_loop()
        self.log.subs.add(self)
        self._active_until = time.monotonic() + max(self.ack_timeout, self.log.options.timeout * 3)
        conf = self._config()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(conf, ready), name=f"ch-kafka-{self.group}-{self.consumer}", daemon=True
        )
        self._thread.start()
        try:
            await asyncio.wrap_future(ready)
        except Exception as e:
            self.state = SubState.CLOSED
            self.log.subs.discard(self)
            raise self.log.fail(e, f"join group {self.group} on {self.topic}") from e
        await self._wait_joined()
        self.state = SubState.OPEN

    async def _wait_joined(self) -> None:
        limit = self.log.options.timeout * 3
        try:
            await wait_for(self._joined.wait(), limit)
        except TimeoutError:
            raise EngineUnavailable(
                self.log.url, f"joining group {self.group} on {self.topic}: no assignment within {limit:g}s"
            ) from None
        if self._error is not None:
            raise self._error

    def _config(self) -> dict[str, Any]:
        opts = self.log.options
        # The session bounds how long a killed member keeps its partitions: no
        # longer than the ack timeout, no shorter than the broker allows.
        session = max(min(opts.session_timeout, self.ack_timeout), opts.min_session)
        conf = opts.base()
        conf.update(
            {
                "group.id": self.group_id,
                "client.id": self.consumer,
                "enable.auto.commit": False,  # commit after the handler acks (at-least-once)
                "enable.auto.offset.store": False,
                "enable.partition.eof": False,
                "auto.offset.reset": "earliest",  # only when a committed offset was removed by retention
                **opts.prefetch(),
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": int(session * 1000),
                "heartbeat.interval.ms": max(100, int(session * 1000 / 3)),
                "max.poll.interval.ms": int(max(self.ack_timeout, session) * 1000),
                "fetch.wait.max.ms": 100,
                "on_commit": on_commit,
            }
        )
        return conf

    async def _close(self) -> None:
        """Leave the group: acked offsets are committed, un-acked deliveries go back to the group."""
        if self.closed:
            return
        self.state = SubState.CLOSED
        self._closing = True
        self.log.subs.discard(self)
        if self._commit_handle is not None:
            self._commit_handle.cancel()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop = True
            await asyncio.to_thread(thread.join)
        self._parts.clear()
        self._ready.clear()
        self._wake.set()

    # -- the consumer thread -------------------------------------------------------------
    def _run(self, conf: dict[str, Any], ready: concurrent.futures.Future[None]) -> None:
        try:
            c = ck.Consumer(conf)
            c.subscribe(
                [self.ktopic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
        except Exception as e:
            ready.set_exception(e)
            return
        ready.set_result(None)
        loop = self._loop
        assert loop is not None
        paused = False
        full_since = 0.0
        try:
            while not self._stop:
                self._run_commands(c)
                if not self._waiting and time.monotonic() > self._active_until:
                    # The application stopped asking: stop polling, so that after
                    # max.poll.interval.ms the group moves our partitions on.
                    time.sleep(0.02)
                    continue
                wait = POLL_WAIT
                if self._want_pause:
                    # Our buffer is full: take nothing more, librdkafka's own queue
                    # holds what it prefetched.  Only if that lasts are the partitions
                    # paused, so we can keep polling (rebalances, max.poll.interval.ms).
                    now = time.monotonic()
                    full_since = full_since or now
                    if not paused and now - full_since > min(1.0, self.ack_timeout / 3):
                        c.pause(c.assignment())
                        paused = True
                    self._drained.wait(0.02)
                    self._drained.clear()
                    if not paused:
                        continue
                    wait = 0
                else:
                    full_since = 0.0
                    if paused:
                        c.resume(c.assignment())
                        paused = False
                try:
                    msg = c.poll(wait)
                    msgs = [msg, *c.consume(self.batch - 1, 0)] if msg is not None else []
                except ck.KafkaException as e:
                    logger.warning("%r: poll failed: %s", self, e)
                    time.sleep(0.1)
                    continue
                if msgs:
                    loop.call_soon_threadsafe(self._on_messages, msgs)
        except BaseException as e:  # surfaced to next()
            self._error = e
            loop.call_soon_threadsafe(self._wake.set)
        finally:
            self._run_commands(c)
            try:
                c.close()  # leaves the group; on_revoke commits what was acked
            except Exception as e:
                logger.debug("%r: close: %s", self, e)

    def _run_commands(self, c: ck.Consumer) -> None:
        while True:
            try:
                offsets, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                if offsets and done is None:
                    c.commit(offsets=offsets, asynchronous=True)
                elif offsets:
                    c.commit(offsets=offsets, asynchronous=False)
                if done is not None:
                    done.set_result(None)
            except Exception as e:
                # Not in the group any more (kicked out, rebalanced): the next
                # owner redelivers what this commit would have covered.
                logger.debug("%r: commit failed: %s", self, e)
                if done is not None:
                    done.set_result(None)

    def _on_assign(self, c: ck.Consumer, tps: list[ck.TopicPartition]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            if tps:
                starts = assignment_starts(c, tps, self.ktopic, self.start, self.log.options.timeout)
                loop.call_soon_threadsafe(self._assigned, starts)
                c.incremental_assign(
                    [ck.TopicPartition(self.ktopic, p, o if o is not None else -1001) for p, o, *_ in starts]
                )
        except Exception as e:
            logger.warning("%r: assignment failed, resuming from committed offsets: %s", self, e)
            unknown: list[PartStart] = [(tp.partition, None, -1, 0, 0, None) for tp in tps]
            loop.call_soon_threadsafe(self._assigned, unknown)
            c.incremental_assign(tps)
        finally:
            loop.call_soon_threadsafe(self._joined.set)

    def _on_revoke(self, c: ck.Consumer, tps: list[ck.TopicPartition]) -> None:
        loop = self._loop
        assert loop is not None
        parts = [tp.partition for tp in tps]
        try:
            fut = asyncio.run_coroutine_threadsafe(self._revoked(parts), loop)
            offsets = fut.result(self.ack_timeout + self.log.options.timeout)
        except Exception as e:  # the loop is gone (process exit): nothing to commit
            logger.debug("%r: revoke: %s", self, e)
            return
        if offsets:
            try:
                c.commit(offsets=offsets, asynchronous=False)
            except Exception as e:
                logger.debug("%r: commit on revoke failed: %s", self, e)

    def _on_lost(self, c: ck.Consumer, tps: list[ck.TopicPartition]) -> None:
        loop = self._loop
        assert loop is not None
        loop.call_soon_threadsafe(self._drop, [tp.partition for tp in tps])

    # -- on the event loop -------------------------------------------------------------
    def _assigned(self, starts: list[PartStart]) -> None:
        for p, start, mark, skipped, gaps, gap in starts:
            part = self._parts[p] = Part(p, start, start if start is not None else -1, mark)
            part.fetched = start if start is not None else -1
            part.skipped, part.gaps = skipped, gaps
            if gap is not None:
                self._gap(p, *gap)

    def _gap(self, p: int, start: int, resume: int) -> None:
        """Report offsets ``start`` .. ``resume - 1`` of partition ``p``: gone before the group had them."""
        fmt = self._format

        def spell(off: int) -> str:
            return str(off) if fmt is None else f"{fmt[p][0]}{off}{fmt[p][1]}"

        after = spell(start - 1) if start > 0 else None
        self._report_gap(Gap(self.topic, self.group, p, after, spell(resume - 1), resume - start))

    async def _revoked(self, parts: list[int]) -> list[ck.TopicPartition]:
        """Wait for un-acked deliveries of ``parts`` (up to their deadlines); returns the commits to make."""
        mine = [self._parts[p] for p in parts if p in self._parts]
        self._revoking += 1
        try:
            await self._await_acks(mine)
        finally:
            self._revoking -= 1
        offsets = [tp for part in mine if (tp := self._commit_of(part, force=True)) is not None]
        self._drop(parts)
        return offsets

    async def _await_acks(self, mine: list[Part]) -> None:
        while not self._closing and not self.log.closed:
            now = time.monotonic()
            live = [o.due for part in mine for o in part.out.values() if o.due > now]
            if not live:
                break
            self._wake.clear()
            try:
                async with asyncio.timeout(min(live) - now):  # not wait_for: see sqlite/engine.py
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _drop(self, parts: list[int]) -> None:
        gone = {p for p in parts if self._parts.pop(p, None) is not None}
        if gone:
            self._ready = deque(m for m in self._ready if (m.partition() or 0) not in gone)
            self._inflight = sum(len(part.out) for part in self._parts.values())
            self._want_pause = len(self._ready) + self._inflight > self.max_pending

    def _on_messages(self, msgs: list[ck.Message]) -> None:
        # The hot path of consuming: per message its partition's bookkeeping, nothing decoded.
        parts, ready = self._parts, self._ready
        append = ready.append
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() not in (ck.KafkaError._PARTITION_EOF, ck.KafkaError._MAX_POLL_EXCEEDED):
                    logger.warning("%r: %s", self, err)
                continue
            p, off = m.partition() or 0, m.offset() or 0
            part = parts.get(p)
            if part is None:
                continue  # no longer ours
            if part.committed is None:
                part.committed = part.handed = off
            elif off > part.fetched >= 0:  # auto.offset.reset jumped past what retention removed
                part.skipped += off - part.fetched
                part.gaps += 1
                self._gap(p, part.fetched, off)
            part.fetched = off + 1
            append(m)
        self._want_pause = len(ready) + self._inflight > self.max_pending
        self._wake.set()

    # -- deliveries ----------------------------------------------------------------
    async def next(self, timeout: float | None = None) -> Delivery:
        """The next delivery (a redelivery first, if one is due); TimeoutError after ``timeout`` s."""
        return (await self.next_batch(1, timeout))[0]

    async def next_batch(self, max: int = DEFAULT_BATCH, timeout: float | None = None) -> list[Delivery]:
        """At least one delivery (waiting up to ``timeout``), then up to ``max`` ready now."""
        if self._thread is None or not self._joined.is_set():
            await self._join()
        out = self._take(max)  # the fast path: something is ready
        if out:
            return out
        deadline = None if timeout is None else time.monotonic() + timeout
        self._waiting += 1  # the consumer thread keeps polling while we wait
        try:
            while True:
                out = self._take(max)
                if out:
                    return out
                now = time.monotonic()
                wait = min(self._next_due - now, 1.0)
                wait = self._cut_to(deadline, now, wait, timeout)
                self._wake.clear()
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can turn a
                    # cancellation into a TimeoutError (swallowed here): see sqlite/engine.py.
                    async with asyncio.timeout(wait if wait > 0.001 else 0.001):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            self._waiting -= 1

    def _take(self, most: int) -> list[Delivery]:
        """Due redeliveries first, then ready records, up to ``most`` handed out (maybe none)."""
        if self.closed or self.log.closed:
            raise LogClosed("subscription")
        if self._error is not None:
            raise self.log.fail(self._error, f"consume {self.topic}")
        now = time.monotonic()
        self._active_until = now + self.ack_timeout
        out: list[Delivery] = []
        if now >= self._next_due:
            out.extend(self._due(now, most))
        ready, parts = self._ready, self._parts
        if not ready or len(out) >= most:
            self._maybe_drained()
            return out
        due = now + self.ack_timeout
        popleft, append = ready.popleft, out.append
        handed = 0
        p_last, prev = -1, 0
        part: Part | None = None
        pout: dict[int, KafkaDelivery] = {}
        for _ in range(min(most - len(out), len(ready))):
            m = popleft()
            p = m.partition() or 0
            if p != p_last:  # a fetch comes in runs of one partition: look it up per run
                part = parts.get(p)
                p_last = p
                if part is not None:
                    pout, prev = part.out, part.prev_mark
            # Only messages of partitions we own are in the buffer (_on_messages keeps
            # those, _drop takes out those of partitions we lose); checked all the same.
            if part is None:
                continue
            off = m.offset() or 0
            pout[off] = d = KafkaDelivery(m, part, off, 2 if off < prev else 1, self, due)
            part.handed = off + 1
            handed += 1
            append(d)
        self._inflight += handed
        if self._commit_handle is None:
            self._schedule_commit()
        if handed and due < self._next_due:
            self._next_due = due
        self._maybe_drained()
        return out

    def _maybe_drained(self) -> None:
        """Tell the consumer thread to fetch again once the buffer is down to half."""
        if self._want_pause and len(self._ready) + self._inflight < self.max_pending // 2:
            self._want_pause = False
            self._drained.set()

    def _due(self, now: float, most: int) -> list[KafkaDelivery]:
        """Up to ``most`` deliveries whose ack deadline passed, handed out again (per partition
        in offset order); recomputes the next deadline.

        One pass over what is out however many are due: a batch that timed out
        whole costs one pass, not one per record (a window of 8,000 took 0.65 s
        of the event loop when each redelivery rescanned it).
        """
        found: list[KafkaDelivery] = []
        nxt = math.inf
        for part in self._parts.values():
            for o in part.out.values():
                if o.due <= now and len(found) < most:
                    found.append(o)
                elif o.due < nxt:
                    nxt = o.due  # due ones beyond ``most`` make it <= now: the next take gets them
        if found:
            again = now + self.ack_timeout
            for d in found:
                d.delivery_count += 1
                d._done = False  # handed out again (after a nack or its ack timeout)
                d.due = again
            nxt = min(nxt, again)
        self._next_due = nxt
        return found

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Ack them all; the acked offsets go out with the next commit (every COMMIT_EVERY s)."""
        mine, others = unsettled(self, deliveries)
        if mine:
            self._acked(mine)
        if others:
            await settle_others(others)

    async def _settle_acks(self, deliveries: Sequence[Delivery]) -> None:
        self._acked(deliveries)

    def _acked(self, deliveries: Sequence[Delivery]) -> None:
        self._active_until = time.monotonic() + self.ack_timeout
        parts = self._parts
        n = 0
        last: Part | None = None
        ours = False
        for d in deliveries:
            k: KafkaDelivery = d  # type: ignore[assignment]  # unsettled() gave only ours
            part = k.part
            if part is not last:  # acks come in runs of one partition: check it per run
                last, ours = part, parts.get(part.partition) is part
            if ours and part.out.pop(k.off, None) is not None:
                n += 1
            # else a late ack for a partition we lost: the new owner redelivers it
        if not n:
            return
        self._inflight -= n
        self._maybe_drained()
        if self._commit_handle is None:
            self._schedule_commit()
        if self._revoking:
            self._wake.set()  # a revoke is waiting for these acks

    async def _settle_nack(self, delivery: Delivery, delay: float) -> None:
        self._active_until = time.monotonic() + self.ack_timeout
        d = delivery
        assert isinstance(d, KafkaDelivery)
        part = d.part
        if self._parts.get(part.partition) is not part or part.out.get(d.off) is not d:
            return
        d.due = time.monotonic() + max(delay, 0.0)
        self._next_due = min(self._next_due, d.due)
        self._wake.set()

    # -- commits -------------------------------------------------------------------
    def _commit_of(self, part: Part, force: bool = False) -> ck.TopicPartition | None:
        if part.committed is None:
            return None
        offset = min(part.out) if part.out else part.handed
        offset = max(offset, part.committed)
        if not force and (offset, part.handed) == part.sent:
            return None
        part.sent = (offset, part.handed)
        part.committed = offset
        meta = commit_metadata(part.handed, part.skipped, part.gaps)
        return ck.TopicPartition(self.ktopic, part.partition, offset, metadata=meta)

    def _schedule_commit(self) -> None:
        if self._commit_handle is None and self._loop is not None and not self.closed:
            self._commit_handle = self._loop.call_later(COMMIT_EVERY, self._commit)

    def _commit(self) -> None:
        self._commit_handle = None
        offsets = [tp for part in self._parts.values() if (tp := self._commit_of(part)) is not None]
        if offsets:
            self._commands.put((offsets, None))

    async def flush(self) -> None:
        """Commit acked offsets now and wait for the broker (used by ``lag``)."""
        if self._thread is None or self.closed:
            return
        offsets = [tp for part in self._parts.values() if (tp := self._commit_of(part)) is not None]
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._commands.put((offsets, done))
        try:
            await wait_for(asyncio.wrap_future(done), self.log.options.timeout)
        except TimeoutError:
            logger.debug("%r: commit flush timed out", self)

    def pending(self) -> int:
        return self._inflight
