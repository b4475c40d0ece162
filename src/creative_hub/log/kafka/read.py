"""Reading Kafka topics in log order: ``fetch``, ``Merge`` of partitions, ``Reader`` and its pool.

With several partitions a topic's order is (storage time, partition,
offset); ``Merge`` releases a message only when that order is certain, so a
range always reads in the same order and a cursor vector resumes exactly.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

try:
    import confluent_kafka as ck
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError('the Kafka engine needs confluent-kafka: pip install "creative-hub[kafka]"') from e

from .names import KafkaOptions, retry

__all__ = ["OFFSET_EARLIEST", "OFFSET_LATEST", "Merge", "Reader", "ReaderPool", "fetch"]

T = TypeVar("T")


def fetch(consumer: ck.Consumer, most: int, timeout: float) -> list[ck.Message]:
    """Up to ``most`` messages, returning as soon as one is there.

    ``consume(n, timeout)`` waits for all ``n`` or the whole timeout; ``poll``
    returns on the first message, and ``consume(n, 0)`` drains what is queued.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    if most <= 1:
        return [first]
    return [first, *consumer.consume(most - 1, 0)]


class Merge:
    """Orders the messages of several partitions by (timestamp, partition, offset).

    Up to ``ends`` (the end offsets when the read began) a message is only
    released once every partition with records left before its end has a
    message buffered, so a given range always comes out in the same order --
    which is what makes a cursor vector resume exactly.  Past ``ends`` (only
    when following) messages come as they arrive.
    """

    def __init__(self, starts: Sequence[int], ends: Sequence[int], follow: bool) -> None:
        self.buffers: list[deque[ck.Message]] = [deque() for _ in starts]
        self.next = list(starts)  # per partition: the next offset not yet received
        self.ends = list(ends)
        self.follow = follow

    def add(self, m: ck.Message) -> None:
        p, o = m.partition() or 0, m.offset() or 0
        if p >= len(self.next) or o < self.next[p]:
            return  # a partition added after the read began, or a re-fetch
        if not self.follow and o >= self.ends[p]:
            self.next[p] = max(self.next[p], self.ends[p])
            return  # appended after the read began: a read without follow stops at its start's end
        self.next[p] = o + 1
        self.buffers[p].append(m)

    def skip_to(self, positions: Sequence[int]) -> None:
        """Offsets without messages (transaction markers): trust the consumer's position."""
        for p, at in enumerate(positions):
            if not self.buffers[p] and at > self.next[p]:
                self.next[p] = at

    @property
    def finished(self) -> bool:
        return not self.follow and all(
            not b and nxt >= end for b, nxt, end in zip(self.buffers, self.next, self.ends, strict=True)
        )

    def pop(self) -> ck.Message | None:
        best: tuple[int, int, int] | None = None
        for p, buf in enumerate(self.buffers):
            if buf:
                m = buf[0]
                key = (m.timestamp()[1], p, m.offset() or 0)
                if best is None or key < best:
                    best = key
            elif self.next[p] < self.ends[p]:
                return None  # this partition has older records still to fetch
        if best is None:
            return None
        return self.buffers[best[1]].popleft()


#: ListOffsets timestamps meaning "the end" / "the start" of a partition (Kafka protocol)
OFFSET_LATEST, OFFSET_EARLIEST = -1, -2


class Reader:
    """A group-less consumer and the one thread that drives it.

    librdkafka clients are not for concurrent calls; one thread per consumer
    serialises them, and a call cancelled on the asyncio side still finishes
    before the next one starts.
    """

    def __init__(self, options: KafkaOptions, name: str, fetch_wait_ms: int = 10) -> None:
        conf = options.base()
        conf.update(
            {
                "group.id": f"{options.prefix}creative-hub-reader",  # required; never joined (assign only)
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": False,
                # How long the broker holds a fetch with nothing to give.  A fetch the previous
                # read left in flight holds up this reader's next one for that long: at
                # librdkafka's 500 ms the story test took 35 s, at 10 ms 3 s.  Readers that
                # follow the end of a topic are kept apart, at 500 ms (see ReaderPool).
                "fetch.wait.max.ms": fetch_wait_ms,
                # A fetch position retention removed is an error to raise (PositionGone),
                # never a silent jump to the earliest record.
                "auto.offset.reset": "error",
                "client.id": name,
            }
        )
        conf.update(options.prefetch(4096))  # a read hands out one record at a time: 4 MiB ahead
        self.consumer = ck.Consumer(conf)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.assigned = False

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, fn, *args)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``call`` without awaiting: the reader's thread starts on it now, while the
        event loop goes on with what it is doing."""
        return asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def list_offsets(self, ktopics: dict[str, int], spec: int, timeout: float) -> dict[str, list[int]]:
        """Per topic, per partition, the offset ``spec`` names (OFFSET_EARLIEST: the first
        retained, OFFSET_LATEST: the end), in one ListOffsets request for them all."""
        tps = [ck.TopicPartition(kt, p, spec) for kt, n in ktopics.items() for p in range(n)]

        def ask() -> list[ck.TopicPartition]:
            found = self.consumer.offsets_for_times(tps, timeout)
            for tp in found:
                if tp.error is not None:  # e.g. a just-created topic's leader epoch: retried
                    raise ck.KafkaException(tp.error)
            return found

        out = {kt: [-1] * n for kt, n in ktopics.items()}
        for tp in retry(ask, timeout):
            out[tp.topic][tp.partition] = tp.offset
        for kt, offsets in out.items():
            for p, o in enumerate(offsets):
                if o < 0:  # not expected; ask the slow way rather than guess
                    tp = ck.TopicPartition(kt, p)
                    ask_one = functools.partial(
                        self.consumer.get_watermark_offsets, tp, timeout, cached=False
                    )
                    low, high = retry(ask_one, timeout)
                    offsets[p] = low if spec == OFFSET_EARLIEST else high
        return out

    def offsets_for_times(self, topic: str, partitions: int, ms: int, timeout: float) -> list[int]:
        """Per partition, the first offset stored at or after ``ms`` (-1: none)."""
        tps = [ck.TopicPartition(topic, p, ms) for p in range(partitions)]
        found = retry(lambda: self.consumer.offsets_for_times(tps, timeout), timeout)
        out = [-1] * partitions
        for tp in found:
            out[tp.partition] = tp.offset if tp.offset is not None and tp.offset >= 0 else -1
        return out

    def positions(self, topic: str, partitions: int) -> list[int]:
        """Where each assigned partition will fetch next (-1 if unknown)."""
        tps = self.consumer.position([ck.TopicPartition(topic, p) for p in range(partitions)])
        return [tp.offset if tp.offset is not None and tp.offset >= 0 else -1 for tp in tps]

    def assign(self, topic: str, starts: Sequence[int]) -> None:
        self.consumer.assign([ck.TopicPartition(topic, p, o) for p, o in enumerate(starts)])
        self.assigned = True

    def unassign(self) -> None:
        if self.assigned:
            self.consumer.unassign()
            self.assigned = False

    def close(self) -> None:
        self._thread.submit(self.consumer.close).result()
        self._thread.shutdown(wait=True)


class ReaderPool:
    """Idle readers kept for reuse: making a consumer costs a connection and a thread.

    Reads that stop at the end use readers whose empty fetches return after ``fetch_wait_ms``
    = 10 (a reused reader waits out the fetch its last read left in flight); reads that
    follow the end use a pool at 500 ms, so an idle follower asks twice a second, not 100 times.
    """

    def __init__(
        self, options: KafkaOptions, keep: int = 4, *, fetch_wait_ms: int = 10, name: str = "reader"
    ) -> None:
        self.options = options
        self.keep = keep
        self.fetch_wait_ms = fetch_wait_ms
        self.name = name
        self._idle: list[Reader] = []
        self._lock = threading.Lock()
        self._n = 0
        self.closed = False

    async def acquire(self) -> Reader:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self._n += 1
            n = self._n
        return await asyncio.to_thread(Reader, self.options, f"ch-{self.name}-{n}", self.fetch_wait_ms)

    async def release(self, reader: Reader) -> None:
        try:
            await reader.call(reader.unassign)
        except Exception:
            await asyncio.to_thread(reader.close)
            return
        with self._lock:
            if not self.closed and len(self._idle) < self.keep:
                self._idle.append(reader)
                return
        await asyncio.to_thread(reader.close)

    async def close(self) -> None:
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
        for r in idle:
            await asyncio.to_thread(r.close)
