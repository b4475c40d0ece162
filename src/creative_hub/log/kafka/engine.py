"""KafkaLog: the engine object (topics, append, read, retention, groups, lag, health)."""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import confluent_kafka as ck

# Re-exported by confluent_kafka.admin without __all__; mypy --strict wants it explicit.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    NewTopic,
)

try:
    from confluent_kafka import ConsumerGroupTopicPartitions
except ImportError:  # pragma: no cover - older clients
    from confluent_kafka.admin import ConsumerGroupTopicPartitions  # type: ignore[attr-defined,no-redef]

from ...errors import EngineUnavailable, LogClosed, LogError, NotFound, PositionGone, ValidationError
from .._guard import Guard
from .._reads import Reads
from .._subscription import SubscribeArgs, Subscribes
from ..base import (
    Appended,
    Entry,
    Feature,
    GroupLag,
    Health,
    ReadRange,
    Record,
    Retention,
    TopicInfo,
    check_topic,
)
from . import malloc as _malloc
from . import retention as _retention
from .delivery import mark_of, totals_of
from .group import KafkaSubscription
from .names import (
    GONE,
    RETRY,
    KafkaOptions,
    decode_position,
    encode_position,
    logger,
    message_record,
    transient,
    translate,
)
from .read import OFFSET_EARLIEST, OFFSET_LATEST, Merge, Reader, ReaderPool, fetch
from .writer import Producer, TopicWriter, ask_ends

__all__ = ["KafkaLog"]

READ_WINDOW = 100_000  # ids a read remembers to skip a duplicate copy that slipped in


class KafkaLog(Reads, Subscribes[KafkaSubscription]):
    """The Kafka-API engine (Apache Kafka, Redpanda).

    KafkaLog.from_url("kafka://127.0.0.1:9092")
    KafkaLog.from_url("kafka://k1:9092,k2:9092?partitions=6&replication=3")
    KafkaLog.from_url("kafka://user:pw@redpanda:9092?client.security.protocol=SASL_PLAINTEXT")
    """

    engine = "kafka"
    # Gaps are counted (offsets are dense).  No DELETE: Kafka cannot remove single
    # records (folded revisions go with retention); appends are not atomic.
    FEATURES = frozenset({Feature.GAP_COUNTS, Feature.APPEND_HINT})

    def __init__(self, options: KafkaOptions, url: str | None = None) -> None:
        self.options = options
        self.url = url or f"kafka://{options.bootstrap}"
        self.readers = ReaderPool(options)
        self.followers = ReaderPool(options, keep=2, fetch_wait_ms=500, name="follower")
        self.subs: set[KafkaSubscription] = set()
        self.closed = False
        self._admin: AdminClient | None = None
        self._producer: Producer | None = None
        self._partitions: dict[str, int] = {}  # hub topic -> partition count, for topics known to exist
        self._writers: dict[str, TopicWriter] = {}
        self.retention_cache: dict[str, Retention] | None = None
        self.retention_due: dict[str, float] = {}
        self._retention_locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._lister: Reader | None = None  # asks ListOffsets only (see kafka_offsets)
        self._lister_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> KafkaLog:
        """``kafka://host:port[,host:port][?partitions=N&replication=R&prefix=P&timeout=S...]``."""
        from .. import redact

        return cls(KafkaOptions.from_url(url, **options), redact(url))

    def __repr__(self) -> str:
        return f"KafkaLog({self.url!r})"

    # -- names ----------------------------------------------------------------------
    def ktopic(self, topic: str) -> str:
        """The Kafka topic of a hub topic: the same name (legal as is), after the prefix."""
        return self.options.prefix + topic

    def group_id(self, topic: str, group: str) -> str:
        """One Kafka group per (topic, group): ``<prefix><topic>/<group>``."""
        return f"{self.options.prefix}{topic}/{group}"

    # -- lifecycle --------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and check a broker answers (EngineUnavailable within ``timeout`` if not)."""
        if self.closed:
            raise LogClosed("kafka log")
        if self._admin is not None:
            return
        conf = self.options.base()
        admin = AdminClient(conf)
        try:
            await asyncio.to_thread(admin.list_topics, timeout=self.options.timeout)
        except Exception as e:
            raise EngineUnavailable(
                self.url,
                f"no Kafka broker answered at {self.options.bootstrap} "
                f"within {self.options.timeout:g}s ({e})",
            ) from e
        self._admin = admin
        trimmer = _malloc.start(self.options.malloc_trim)  # librdkafka's freed buffers, back to the OS
        if trimmer is not None:
            self._background.add(trimmer)
            trimmer.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Leave every group, flush the producer, drop connections.  Safe twice."""
        if self.closed:
            return
        for sub in list(self.subs):
            await sub.close()
        self.closed = True
        background = list(self._background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await asyncio.to_thread(producer.close, self.options.timeout)
        await self.readers.close()
        await self.followers.close()
        if self._lister is not None:
            lister, self._lister = self._lister, None
            await asyncio.to_thread(lister.close)
        self._admin = None

    def retention_lock(self, topic: str) -> asyncio.Lock:
        """Held by a retention pass over ``topic``: one at a time in this process."""
        lock = self._retention_locks.get(topic)
        if lock is None:
            lock = self._retention_locks[topic] = asyncio.Lock()
        return lock

    def check_open(self) -> None:
        if self.closed:
            raise LogClosed("kafka log")
        if self._admin is None:
            raise LogClosed("kafka log (not opened: await log.open() first)")

    # -- errors: names.translate is the one place that knows the client's errors --------
    def _translate(self, e: BaseException, doing: str) -> LogError:
        return translate(self.url, e, doing)

    def guard(self, doing: str) -> Guard:
        """``with self.guard(doing):`` around client calls (see ``log._guard``)."""
        return Guard(self._translate, doing)

    def fail(self, e: BaseException, doing: str) -> LogError:
        """The error to raise for ``e`` where a ``guard`` block does not fit (a stored error)."""
        return self._translate(e, doing)

    def producer(self) -> Producer:
        if self._producer is None or self._producer.fatal is not None:
            # A fatal idempotence error ends a producer: start a new session.
            old, self._producer = self._producer, Producer(self.options)
            if old is not None:
                old._stop = True
        return self._producer

    @property
    def admin(self) -> AdminClient:
        self.check_open()
        assert self._admin is not None
        return self._admin

    async def _admin_call(self, make: Callable[[], Any], doing: str) -> Any:
        """Run an admin request (``make()`` returns its future, or a dict of them) and await it;
        again, briefly, while the cluster answers with a transient error (leader moving, restart)."""
        deadline = time.monotonic() + self.options.timeout
        failures = 0
        while True:
            try:
                futures = make()
                if isinstance(futures, dict):
                    return [await asyncio.wrap_future(f) for f in futures.values()]
                return await asyncio.wrap_future(futures)
            except LogError:
                raise
            except Exception as e:
                if not transient(e) or time.monotonic() > deadline:
                    raise self.fail(e, doing) from e
            await asyncio.sleep(RETRY.compute(failures))
            failures += 1

    # -- topics ----------------------------------------------------------------------
    async def _describe(self, topic: str) -> int | None:
        """The partition count of ``topic``, or None if it does not exist."""
        if topic in self._partitions:
            return self._partitions[topic]
        kt = self.ktopic(topic)
        with self.guard(f"describe {topic}"):
            md = await asyncio.to_thread(self.admin.list_topics, topic=kt, timeout=self.options.timeout)
        t = md.topics.get(kt)
        if t is None or t.error is not None or not t.partitions:
            return None
        self._partitions[topic] = len(t.partitions)
        return len(t.partitions)

    async def ensure_topic(self, topic: str) -> int:
        """Create ``topic`` if needed; its partition count."""
        n = await self._describe(topic)
        if n is not None:
            return n
        kt = self.ktopic(topic)
        config = {
            # time_ms is when the broker stored the record, and rises with the offset.
            "message.timestamp.type": "LogAppendTime",
            "cleanup.policy": "delete",
        }
        if self.options.replication >= 2:
            config["min.insync.replicas"] = str(min(2, self.options.replication))
        new = NewTopic(kt, self.options.partitions, self.options.replication, config=config)
        try:
            await asyncio.wrap_future(
                self.admin.create_topics([new], request_timeout=self.options.timeout)[kt]
            )
        except ck.KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, ck.KafkaError) and err.code() == ck.KafkaError.TOPIC_ALREADY_EXISTS:
                pass
            elif isinstance(err, ck.KafkaError) and "collides" in err.str():
                raise ValidationError(
                    "topic",
                    f"{topic!r} collides with an existing Kafka topic that differs only in '.' vs '_' "
                    "(Kafka forbids such pairs); pick another name",
                ) from e
            else:
                raise self.fail(e, f"create topic {topic}") from e
        # Creation is asynchronous: wait until the metadata shows leaders.
        deadline = time.monotonic() + self.options.timeout
        while time.monotonic() < deadline:
            md = await asyncio.to_thread(self.admin.list_topics, topic=kt, timeout=self.options.timeout)
            t = md.topics.get(kt)
            if (
                t is not None
                and t.error is None
                and t.partitions
                and all(p.leader >= 0 for p in t.partitions.values())
            ):
                self._partitions[topic] = len(t.partitions)
                return len(t.partitions)
            await asyncio.sleep(0.05)
        raise EngineUnavailable(
            self.url, f"topic {topic} was created but has no leader after {self.options.timeout:g}s"
        )

    # -- append ----------------------------------------------------------------------
    async def append(self, topic: str, entries: Sequence[Entry]) -> list[Appended]:
        """Store ``entries`` in order; see ``writer`` for what dedup guarantees."""
        check_topic(topic)
        self.check_open()
        if not entries:
            return []
        writer = self._writers.get(topic)
        if writer is None:
            n = await self.ensure_topic(topic)
            writer = self._writers.get(topic) or TopicWriter(self, topic, self.ktopic(topic), n)
            self._writers[topic] = writer
        result = await writer.append(list(entries))
        if self.retention_due.get(topic, math.inf) <= time.monotonic():
            self.retention_due[topic] = time.monotonic() + _retention.RETENTION_EVERY
            self._spawn(self.apply_retention(topic))
        return result

    def will_append(self, topic: str, first: Entry) -> None:
        """A hint: a call is about to ``append`` entries to ``topic``, ``first`` (this very
        object) first.  ``Hub.publish`` gives it once it has routed a call's first event;
        the topic's writer asks for the ends its dedup catch-up needs now, overlapping the
        caller's work (see ``writer``)."""
        writer = self._writers.get(topic)
        if writer is not None and not self.closed:
            writer.expect(first)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.warning("kafka background task failed: %s", t.exception())

        task.add_done_callback(done)

    # -- read ------------------------------------------------------------------------
    async def _records(self, topic: str, span: ReadRange) -> AsyncIterator[Record]:
        """Records in log order: offset order with one partition; with several, merged by
        (storage time, partition, offset), so the same range always reads in the same order.
        Records appended while following come as they arrive."""
        after, since, follow = span.after, span.since, span.follow
        self.check_open()
        remaining = math.inf if span.limit is None else span.limit
        if remaining <= 0:
            return
        n = await self._describe(topic)
        while n is None:
            if not follow:
                return
            await asyncio.sleep(0.2)
            n = await self._describe(topic)
        cursor = decode_position(after, n) if after is not None else [-1] * n
        kt = self.ktopic(topic)
        pool = self.followers if follow else self.readers
        reader = await pool.acquire()
        try:
            # Asked through this read's own reader: that also tells it where the partitions'
            # leaders are, so its first fetch goes out at once (through the lister, each read
            # waited for a metadata refresh: the story test took 19 s instead of 3).
            lo, hi = (await self.kafka_offsets({kt: n}, via=reader))[kt]
            if after is not None and any(c + 1 < low for c, low in zip(cursor, lo, strict=True)):
                raise PositionGone(topic, after, self._first_position(lo, hi))
            starts = [max(c + 1, low) for c, low in zip(cursor, lo, strict=True)]
            if since is not None:
                ms = int(since * 1000)
                found = await self.offsets_for_times(kt, n, ms)
                starts = [max(s, h if at < 0 else at) for s, at, h in zip(starts, found, hi, strict=True)]
            cursor = [s - 1 for s in starts]
            if not follow and all(s >= h for s, h in zip(starts, hi, strict=True)):
                return
            await reader.call(reader.assign, kt, starts)
            merge = Merge(starts, hi, follow)
            seen: OrderedDict[str, tuple[int, int]] = OrderedDict()
            yielded = False
            while True:
                m = merge.pop()
                if m is None:
                    if merge.finished or self.closed:
                        return
                    msgs = await reader.call(fetch, reader.consumer, 1000, 0.2)
                    for msg in msgs:
                        err = msg.error()
                        if err is None:
                            merge.add(msg)
                        elif err.code() in GONE:
                            # Retention removed records this read had not reached yet.
                            lo, hi2 = (await self.kafka_offsets({kt: n}, via=reader))[kt]
                            if yielded or after is not None or since is not None:
                                where = str(cursor[0]) if n == 1 else encode_position(cursor)
                                raise PositionGone(topic, where, self._first_position(lo, hi2))
                            # A read from the start that has given nothing yet starts at the new start.
                            starts = [max(c + 1, low) for c, low in zip(cursor, lo, strict=True)]
                            cursor = [s - 1 for s in starts]
                            await reader.call(reader.assign, kt, starts)
                            merge = Merge(starts, hi, follow)
                            break
                        elif err.code() != ck.KafkaError._PARTITION_EOF:
                            logger.warning("read %s: %s", topic, err)
                    if not msgs:
                        merge.skip_to(await reader.call(reader.positions, kt, n))
                    continue
                p, o = m.partition() or 0, m.offset() or 0
                cursor[p] = o
                record = message_record(topic, m, str(o) if n == 1 else encode_position(cursor))
                if record.id:
                    first = seen.get(record.id)
                    if first is not None and first != (p, o):
                        continue  # a duplicate copy that slipped in (see writer): skip it
                    seen[record.id] = (p, o)
                    if len(seen) > READ_WINDOW:
                        seen.popitem(last=False)
                yield record
                yielded = True
                remaining -= 1
                if remaining <= 0:
                    return
        finally:
            await pool.release(reader)

    @staticmethod
    def _first_position(lo: list[int], hi: list[int]) -> str | None:
        if all(low >= high for low, high in zip(lo, hi, strict=True)):
            return None
        if len(lo) == 1:
            return str(lo[0])
        return encode_position([low - 1 for low in lo])

    # -- subscribe -------------------------------------------------------------------
    def _member(self, args: SubscribeArgs) -> KafkaSubscription:
        """A Kafka consumer-group member; see ``group`` for how Kafka groups are used."""
        return KafkaSubscription(self, args)

    # -- topics, retention -------------------------------------------------------------
    def _hub_topics(self, names: Sequence[str]) -> list[str]:
        prefix, out = self.options.prefix, []
        for kt in names:
            if not kt.startswith(prefix):
                continue
            name = kt[len(prefix) :]
            try:
                check_topic(name)
            except ValidationError:
                continue  # internal (__consumer_offsets, the meta topic) or not ours
            out.append(name)
        return sorted(out)

    async def _offsets(self, topics: dict[str, int]) -> dict[str, tuple[list[int], list[int]]]:
        """(low, high) offsets of every partition of ``topics`` (hub names): see ``kafka_offsets``."""
        found = await self.kafka_offsets({self.ktopic(t): n for t, n in topics.items()})
        return {t: found[self.ktopic(t)] for t in topics}

    async def kafka_offsets(
        self, ktopics: dict[str, int], *, low: bool = True, high: bool = True, via: Reader | None = None
    ) -> dict[str, tuple[list[int], list[int]]]:
        """(low, high) offsets of every partition of ``ktopics`` (Kafka names), asked of the broker
        in one ListOffsets request for the starts and one for the ends (a side not asked for,
        ``low=False`` or ``high=False``, comes as empty lists).

        Through ``via`` if given, else through a consumer kept for this alone and never
        assigned, so no fetch of its own is ever in flight to hold the request up.  Not through
        the admin client: its ListOffsets fails outright ("no leaders found") for a while
        after a broker restart."""
        if not ktopics:
            return {}
        reader, wait = via or await self._offsets_reader(), self.options.timeout
        with self.guard("list offsets"):
            # The starts first: then low <= high even if retention removes records in between.
            lows = await reader.call(reader.list_offsets, ktopics, OFFSET_EARLIEST, wait) if low else None
            highs = await reader.call(reader.list_offsets, ktopics, OFFSET_LATEST, wait) if high else None
        return {kt: ([] if lows is None else lows[kt], [] if highs is None else highs[kt]) for kt in ktopics}

    def ask_ends(self, ktopic: str, partitions: int) -> asyncio.Future[dict[str, list[int]]] | None:
        """The ListOffsets request for the ends of ``ktopic``'s partitions, sent now through
        the admin client and not awaited (see ``writer.ask_ends``); None when closed."""
        if self._admin is None or self.closed:
            return None
        return ask_ends(self._admin, ktopic, partitions, self.options.timeout)

    async def offsets_for_times(self, ktopic: str, partitions: int, ms: int) -> list[int]:
        """Per partition of ``ktopic``, the first offset stored at or after ``ms`` (-1: none)."""
        reader, wait = await self._offsets_reader(), self.options.timeout
        with self.guard("find offsets by time"):
            return await reader.call(reader.offsets_for_times, ktopic, partitions, ms, wait)

    async def _offsets_reader(self) -> Reader:
        if self._lister is None:
            async with self._lister_lock:
                if self._lister is None:
                    self.check_open()
                    self._lister = await asyncio.to_thread(Reader, self.options, "ch-offsets")
        return self._lister

    async def _info(self, topic: str, lo: list[int], hi: list[int]) -> TopicInfo:
        count = sum(max(0, h - low) for low, h in zip(lo, hi, strict=True))
        first = self._first_position(lo, hi)
        if count and len(lo) > 1:
            async for r in self.read(topic, limit=1):  # the cursor after the first record read
                first = r.position
        last = None
        if count:
            last = str(hi[0] - 1) if len(hi) == 1 else encode_position([h - 1 for h in hi])
        retention = (await _retention.load(self)).get(topic, Retention())
        return TopicInfo(name=topic, count=count, first=first, last=last, bytes=None, retention=retention)

    async def topics(self) -> list[TopicInfo]:
        """Every hub topic on the cluster (Kafka topics under the prefix with hub-legal names)."""
        self.check_open()
        with self.guard("list topics"):
            md = await asyncio.to_thread(self.admin.list_topics, timeout=self.options.timeout)
        counts = {}
        for name in self._hub_topics(list(md.topics)):
            t = md.topics[self.ktopic(name)]
            if t.error is None and t.partitions:
                counts[name] = len(t.partitions)
                self._partitions[name] = len(t.partitions)
        offsets = await self._offsets(counts)
        return [await self._info(t, *offsets[t]) for t in sorted(counts)]

    async def topic_info(self, topic: str) -> TopicInfo:
        check_topic(topic)
        self.check_open()
        n = await self._describe(topic)
        if n is None:
            raise NotFound(f"topic {topic!r} does not exist")
        offsets = await self._offsets({topic: n})
        return await self._info(topic, *offsets[topic])

    async def set_retention(self, topic: str, retention: Retention) -> None:
        """Store ``retention``; see ``retention`` for how Kafka applies it."""
        await _retention.set_retention(self, topic, retention)

    async def apply_retention(self, topic: str) -> int:
        """Delete what the retention no longer keeps (``delete_records``); returns how many went."""
        return await _retention.apply_retention(self, topic)

    # -- groups ----------------------------------------------------------------------
    async def groups(self, topic: str) -> list[str]:
        """Groups with a committed offset on ``topic`` (every member commits its start on joining)."""
        check_topic(topic)
        self.check_open()
        result = await self._admin_call(
            lambda: self.admin.list_consumer_groups(request_timeout=self.options.timeout), "list groups"
        )
        head = f"{self.options.prefix}{topic}/"
        return sorted(g.group_id[len(head) :] for g in result.valid if g.group_id.startswith(head))

    async def lag(self, topic: str, group: str) -> GroupLag:
        """Records not acked by ``group``: end offsets minus committed offsets, summed."""
        check_topic(topic)
        self.check_open()
        for sub in list(self.subs):  # make this process's acks visible first
            if sub.topic == topic and sub.group == group:
                await sub.flush()
        n = await self._describe(topic)
        if n is None:
            raise NotFound(f"group {group!r} has not joined topic {topic!r}")
        gid, kt = self.group_id(topic, group), self.ktopic(topic)
        request = ConsumerGroupTopicPartitions(gid, [ck.TopicPartition(kt, p) for p in range(n)])
        (committed,) = await self._admin_call(
            lambda: self.admin.list_consumer_group_offsets([request], request_timeout=self.options.timeout),
            f"lag of {group} on {topic}",
        )
        parts = {
            tp.partition: tp for tp in committed.topic_partitions if tp.offset is not None and tp.offset >= 0
        }
        if not parts:
            raise NotFound(f"group {group!r} has not joined topic {topic!r}")
        lo, hi = (await self._offsets({topic: n}))[topic]
        lag = pending = skipped = gaps = 0
        for p in range(n):
            tp = parts.get(p)
            if tp is not None:
                s, g = totals_of(tp.metadata)
                skipped, gaps = skipped + s, gaps + g
            start = lo[p] if tp is None else max(tp.offset, lo[p])
            lag += max(0, hi[p] - start)
            if tp is not None:
                pending += max(0, min(mark_of(tp.metadata), hi[p]) - start)
        members = 0
        try:
            (desc,) = await self._admin_call(
                lambda: self.admin.describe_consumer_groups([gid], request_timeout=self.options.timeout),
                "describe group",
            )
            members = len(desc.members)
        except LogError:
            pass
        return GroupLag(topic, group, lag, pending, members, skipped, gaps)

    async def health(self) -> Health:
        """Whether a broker answers a metadata request now."""
        try:
            self.check_open()
            md = await asyncio.to_thread(self.admin.list_topics, timeout=min(self.options.timeout, 5.0))
        except Exception as e:
            return Health(False, self.engine, self.url, str(self.fail(e, "metadata")))
        return Health(True, self.engine, self.url, f"{len(md.brokers)} broker(s), cluster {md.cluster_id}")
