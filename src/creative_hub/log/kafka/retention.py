"""Retention on Kafka: topic configs for the broker, delete_records for exact cuts.

``max_age`` and ``max_bytes`` become the topic's ``retention.ms`` and
``retention.bytes`` (per partition), which the broker applies by whole
segments in the background.  ``apply_retention`` cuts exactly with
``delete_records``, and is the only way ``max_count`` (not a Kafka setting)
is enforced; the engine runs it at most once a second after appends to a
topic with a retention.  The Retention of every topic is kept in the
compacted topic ``_creative_hub.meta`` (key: hub topic, value: a
``creative.system.retention`` CloudEvent, like every record on every topic
the hub writes), so every process sees the same settings.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import confluent_kafka as ck

# Re-exported by confluent_kafka.admin without __all__; mypy --strict wants it explicit.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from ...errors import EngineUnavailable
from ...event import Event, encode_event
from ..base import Entry, Retention, check_topic
from .names import GONE, retention_ms
from .read import Merge, fetch

if TYPE_CHECKING:
    from .engine import KafkaLog

__all__ = ["META_TOPIC", "RETENTION_EVERY", "apply_retention", "load", "set_retention"]

META_TOPIC = "_creative_hub.meta"  # compacted: hub topic -> its Retention (Kafka has no count limit)
RETENTION_EVERY = 1.0  # seconds between automatic passes per topic


async def load(log: KafkaLog) -> dict[str, Retention]:
    """Every topic's Retention, from the compacted meta topic (read once per engine)."""
    if log.retention_cache is not None:
        return log.retention_cache
    found: dict[str, Retention] = {}
    meta = log.options.prefix + META_TOPIC
    md = await asyncio.to_thread(log.admin.list_topics, topic=meta, timeout=log.options.timeout)
    t = md.topics.get(meta)
    if t is not None and t.error is None and t.partitions:
        reader = await log.readers.acquire()
        try:
            lo, hi = (await log.kafka_offsets({meta: 1}))[meta]
            if hi[0] > lo[0]:
                await reader.call(reader.assign, meta, lo)
                at = lo[0]
                while at < hi[0]:
                    msgs = await reader.call(fetch, reader.consumer, 1000, log.options.timeout)
                    if not msgs:
                        break
                    for m in msgs:
                        if m.error() is not None:
                            continue
                        at = max(at, (m.offset() or 0) + 1)
                        key, value = m.key(), m.value()
                        if key and value:
                            found[key.decode()] = _retention_of(json.loads(value))
        finally:
            await log.readers.release(reader)
    log.retention_cache = found
    return found


async def set_retention(log: KafkaLog, topic: str, retention: Retention) -> None:
    """Store ``retention``; max_age and max_bytes also become the topic's
    ``retention.ms`` / ``retention.bytes`` (the broker applies them per segment)."""
    check_topic(topic)
    n = await log.ensure_topic(topic)
    await load(log)
    meta = log.options.prefix + META_TOPIC
    if (await _describe_meta(log)) is None:
        try:
            await asyncio.wrap_future(
                log.admin.create_topics(
                    [NewTopic(meta, 1, log.options.replication, config={"cleanup.policy": "compact"})],
                    request_timeout=log.options.timeout,
                )[meta]
            )
        except ck.KafkaException as e:
            err = e.args[0] if e.args else None
            if not (isinstance(err, ck.KafkaError) and err.code() == ck.KafkaError.TOPIC_ALREADY_EXISTS):
                raise log.fail(e, "create the meta topic") from e
    producer = log.producer()
    event = retention_event(topic, retention)
    rnd = await producer.produce(meta, [Entry(id=event.id, key=topic, body=encode_event(event), digest="")])
    if rnd.errors[0] is not None:
        raise EngineUnavailable(log.url, f"set retention of {topic}: {rnd.errors[0].str()}")
    per_partition = None if retention.max_bytes is None else max(1, retention.max_bytes // n)
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        log.ktopic(topic),
        incremental_configs=[
            ConfigEntry(
                "retention.ms",
                retention_ms(retention.max_age),
                incremental_operation=AlterConfigOpType.SET,
            ),
            ConfigEntry(
                "retention.bytes",
                "-1" if per_partition is None else str(per_partition),
                incremental_operation=AlterConfigOpType.SET,
            ),
        ],
    )
    await log._admin_call(
        lambda: log.admin.incremental_alter_configs([resource], request_timeout=log.options.timeout),
        f"set retention of {topic}",
    )
    assert log.retention_cache is not None
    log.retention_cache[topic] = retention
    if retention.unlimited:
        log.retention_due.pop(topic, None)
    else:
        log.retention_due[topic] = -math.inf
        await apply_retention(log, topic)


def retention_event(topic: str, retention: Retention) -> Event:
    """The meta topic's record of ``topic``'s retention: a CloudEvent any consumer can read."""
    data = {"topic": topic, "max_age": retention.max_age, "max_count": retention.max_count,
            "max_bytes": retention.max_bytes}  # fmt: skip
    return Event(
        id=str(uuid.uuid4()),
        source="/hub/kafka",
        type="creative.system.retention",
        subject=topic,
        time=datetime.now(UTC),
        datacontenttype="application/json",
        data={k: v for k, v in data.items() if v is not None},
        creator="hub",
    )


def _retention_of(value: Any) -> Retention:
    """A Retention from a meta record: a CloudEvent, or the bare JSON earlier versions wrote."""
    data = value.get("data", {}) if isinstance(value, dict) and "specversion" in value else value
    return Retention(
        max_age=data.get("max_age"), max_count=data.get("max_count"), max_bytes=data.get("max_bytes")
    )


async def _describe_meta(log: KafkaLog) -> int | None:
    meta = log.options.prefix + META_TOPIC
    md = await asyncio.to_thread(log.admin.list_topics, topic=meta, timeout=log.options.timeout)
    t = md.topics.get(meta)
    return None if t is None or t.error is not None or not t.partitions else len(t.partitions)


_ATTEMPTS = 3  # passes over a topic whose start another process keeps moving


class _Moved(Exception):
    """Records this pass was reading were removed meanwhile (another process's pass)."""


async def apply_retention(log: KafkaLog, topic: str) -> int:
    """Delete (``delete_records``) what the retention no longer keeps; returns how many went.

    With several partitions, ``max_count`` removes the oldest in read order
    (storage time); ``max_bytes`` is split evenly between partitions.  One
    pass per topic at a time in a process; a pass that finds records it was
    reading removed by another process's pass starts again from the new start.
    """
    check_topic(topic)
    log.check_open()
    async with log.retention_lock(topic):
        for attempt in range(_ATTEMPTS):
            try:
                return await _apply(log, topic)
            except _Moved:
                if attempt == _ATTEMPTS - 1:
                    raise EngineUnavailable(
                        log.url, f"apply retention to {topic}: its start kept moving under this pass"
                    ) from None
    return 0  # not reached


async def _apply(log: KafkaLog, topic: str) -> int:
    retention = (await load(log)).get(topic)
    n = await log._describe(topic)
    if retention is None or retention.unlimited or n is None:
        return 0
    kt = log.ktopic(topic)
    log.retention_due[topic] = time.monotonic() + RETENTION_EVERY
    reader = await log.readers.acquire()
    try:
        lo, hi = (await log.kafka_offsets({kt: n}))[kt]
        cut = list(lo)
        if retention.max_age is not None:
            ms = int((time.time() - retention.max_age) * 1000)
            found = await log.offsets_for_times(kt, n, ms)
            cut = [max(c, h if at < 0 else at) for c, at, h in zip(cut, found, hi, strict=True)]
        if retention.max_count is not None:
            excess = sum(h - c for c, h in zip(cut, hi, strict=True)) - retention.max_count
            if excess > 0 and n == 1:
                cut[0] += excess
            elif excess > 0:  # the oldest by the order reads use
                cut = await _skip_oldest(log, reader, kt, cut, hi, excess)
        if retention.max_bytes is not None:
            budget = retention.max_bytes // n
            for p in range(n):
                if hi[p] > cut[p]:
                    cut[p] = max(cut[p], await _bytes_cut(log, reader, kt, p, cut[p], hi[p], budget))
    finally:
        await log.readers.release(reader)
    todo = [ck.TopicPartition(kt, p, c) for p, c in enumerate(cut) if c > lo[p]]
    if not todo:
        return 0
    await log._admin_call(
        lambda: log.admin.delete_records(todo, request_timeout=log.options.timeout),
        f"apply retention to {topic}",
    )
    return sum(c - low for c, low in zip(cut, lo, strict=True))


def _usable(msg: ck.Message) -> bool:
    """True for a record; False for a harmless event; _Moved when the records went."""
    err = msg.error()
    if err is None:
        return True
    if err.code() in GONE:
        raise _Moved()
    return False


async def _skip_oldest(
    log: KafkaLog, reader: Any, kt: str, starts: list[int], ends: list[int], k: int
) -> list[int]:
    """Per partition, the first offset kept once the ``k`` oldest records (in read order) go."""
    cut = list(starts)
    await reader.call(reader.assign, kt, starts)
    merge = Merge(starts, ends, follow=False)
    while k > 0:
        m = merge.pop()
        if m is None:
            if merge.finished:
                break
            msgs = await reader.call(fetch, reader.consumer, 1000, log.options.timeout)
            if not msgs:
                raise EngineUnavailable(log.url, f"apply retention: reading {kt} timed out")
            for msg in msgs:
                if _usable(msg):
                    merge.add(msg)
            continue
        cut[m.partition() or 0] = (m.offset() or 0) + 1
        k -= 1
    return cut


async def _bytes_cut(log: KafkaLog, reader: Any, kt: str, p: int, lo: int, hi: int, budget: int) -> int:
    """The first offset of partition ``p`` to keep so that the values kept fit in ``budget`` bytes."""
    sizes: list[int] = []
    await reader.call(reader.consumer.assign, [ck.TopicPartition(kt, p, lo)])
    at = lo
    while at < hi:
        msgs = await reader.call(fetch, reader.consumer, 1000, log.options.timeout)
        if not msgs:
            break
        for m in msgs:
            if _usable(m) and (m.offset() or 0) >= at and (m.offset() or 0) < hi:
                sizes.append(len(m.value() or b""))
                at = (m.offset() or 0) + 1
    total, keep_from = 0, hi
    for i in range(len(sizes) - 1, -1, -1):
        total += sizes[i]
        if total > budget:
            break
        keep_from = lo + i
    return keep_from
