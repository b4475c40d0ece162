"""Kafka-only behaviour: faults on a real broker, and interop with plain Kafka tools.

The shared broker (``servers`` fixture) serves the tests that do not hurt
it; tests that stop, pause or restart a broker start a private one in
``tmp_path``.  No mocks, no timing assertions: waits are bounded only so a
broken engine fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import confluent_kafka as ck
import pytest
from cloudevents.core.bindings import kafka as ce_kafka

from creative_hub.errors import EngineUnavailable, PositionGone, ValidationError
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger
from creative_hub.log import Entry, Log, Retention, open_log
from creative_hub.log.kafka import KafkaLog
from creative_hub.testing.contract import WAIT, make_entries, new_topic
from creative_hub.testing.servers.kafka import KafkaServer
from creative_hub.testing.worker import assert_effects_once, hung_on, spawn, survive

pytestmark = pytest.mark.kafka


@pytest.fixture
def kafka_url(servers: object) -> str:
    return servers.get("kafka").url  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
async def klog(kafka_url: str) -> AsyncIterator[Log]:
    log = open_log(kafka_url)
    await log.open()
    try:
        yield log
    finally:
        await log.close()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[KafkaServer]:
    """A broker of this test alone, free to be stopped, paused and restarted."""
    server = KafkaServer(tmp_path / "kafka")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def bootstrap(url: str) -> str:
    return url.split("://", 1)[1].split("?", 1)[0]


async def read_ids(log: Log, topic: str) -> list[str]:
    return [r.id async for r in log.read(topic)]


# -- faults ---------------------------------------------------------------------
async def test_sigkilled_member_mid_batch_is_redelivered_to_the_survivor(
    klog: Log, kafka_url: str, tmp_path: Path
) -> None:
    # Two members share a group.  One, in another process, performs the effect
    # of its 4th event and is SIGKILLed before acking.  The group rebalances
    # its partitions to the survivor, which gets every un-committed event
    # again; with the ledger each effect still happens once.
    topic, group = new_topic("kafka"), "effects"
    entries = make_entries(40, keys=[f"k{i}" for i in range(8)])
    ledger_path, marker = tmp_path / "ledger.db", tmp_path / "marker"
    ledger = EffectLedger(ledger_path)
    survivor = klog.subscribe(topic, group, consumer="survivor", ack_timeout=2)
    await survivor.__aenter__()
    proc = spawn(kafka_url, topic, group, ledger_path, marker, hang_after=3)
    try:
        # Survivor works too, but holds back until the worker has hung, so
        # that the worker surely owns partitions with events left.
        await klog.append(topic, entries)
        hung = await hung_on(proc, marker, WAIT)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        redelivered = await survive(survivor, ledger, group, len(entries), timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await survivor.close()
    assert_effects_once(ledger, (e.id for e in entries))
    assert hung in redelivered, "the un-acked event was not redelivered"
    ledger.close()


async def test_broker_restart_keeps_acked_publishes_and_committed_offsets(
    private_broker: KafkaServer,
) -> None:
    # Everything append() acked is there after a graceful stop + restart, and
    # a group resumes from its committed offset, on the same log object.
    log = open_log(private_broker.url + "&timeout=20")
    await log.open()
    try:
        topic = new_topic("kafka")
        entries = make_entries(50, keys=["a", "b", "c"])
        receipts = await log.append(topic, entries)
        assert not any(r.duplicate for r in receipts)
        async with log.subscribe(topic, "resume", ack_timeout=5) as sub:
            handled = []
            for _ in range(20):
                d = await sub.next(timeout=WAIT)
                handled.append(d.id)
                await d.ack()

        private_broker.stop()  # SIGTERM: a controlled shutdown
        private_broker.start()

        assert sorted(await read_ids(log, topic)) == sorted(e.id for e in entries)
        later = make_entries(5, keys=["a"])
        await log.append(topic, later)
        async with log.subscribe(topic, "resume", ack_timeout=5) as sub:
            rest = []
            while len(handled) + len(rest) < len(entries) + len(later):
                d = await sub.next(timeout=WAIT)
                rest.append(d.id)
                await d.ack()
        assert sorted(handled + rest) == sorted(e.id for e in entries + later), (
            "lost or repeated after restart"
        )
        assert (await log.lag(topic, "resume")).lag == 0
    finally:
        await log.close()


async def test_publisher_retrying_after_a_timeout_creates_no_duplicate(private_broker: KafkaServer) -> None:
    # The broker freezes (SIGSTOP) in the middle of a big append: the append
    # fails fast with EngineUnavailable, some of it may be stored.  Retrying
    # the same batch, from the same log and from a fresh one, stores each id once.
    log = open_log(private_broker.url + "&timeout=3")
    await log.open()
    topic = new_topic("kafka")
    entries = make_entries(20_000, keys=[f"k{i}" for i in range(10)])
    try:
        await log.append(topic, entries[:10])  # the topic exists, the writer is warm
        task = asyncio.create_task(log.append(topic, entries[10:]))
        await asyncio.sleep(0.05)
        private_broker.pause()
        try:
            await asyncio.wait_for(task, 60)
            first_try_failed = False
        except EngineUnavailable:
            first_try_failed = True
        finally:
            private_broker.resume()
        receipts = await log.append(topic, entries)  # the retry
        assert len(receipts) == len(entries)
        if not first_try_failed:
            assert all(r.duplicate for r in receipts)
    finally:
        await log.close()
    # A publisher in a new process (a fresh log) retries the whole batch again.
    fresh = open_log(private_broker.url)
    await fresh.open()
    try:
        again = await fresh.append(topic, entries)
        assert all(a.duplicate for a in again)
        ids = await read_ids(fresh, topic)
        assert len(ids) == len(set(ids)) == len(entries)
    finally:
        await fresh.close()


async def test_receipt_lost_before_a_restart_is_not_stored_twice(klog: Log, kafka_url: str) -> None:
    # A publisher's produce reached the broker but its process died before the
    # receipt: the records are there (written here by a plain producer with
    # the engine's headers).  The retry from a new process finds them.
    topic = new_topic("kafka")
    entries = make_entries(5)
    await klog.append(topic, entries[:1])
    producer = ck.Producer({"bootstrap.servers": bootstrap(kafka_url)})
    for e in entries[1:]:
        producer.produce(
            topic,
            e.body,
            e.key.encode(),
            headers=[("ch-id", e.id.encode()), ("ch-digest", e.digest.encode())],
        )
    assert producer.flush(WAIT) == 0
    fresh = open_log(kafka_url + "&timeout=30")  # a loaded CI box can take a while to settle epochs
    await fresh.open()
    try:
        receipts = await fresh.append(topic, entries)
        assert all(r.duplicate for r in receipts)
        assert await read_ids(fresh, topic) == [e.id for e in entries]
    finally:
        await fresh.close()


async def test_an_early_catch_up_serves_only_the_call_it_was_asked_for(kafka_url: str) -> None:
    # Hub.publish names its first entry (will_append) so the writer asks the broker for
    # the topic's ends while the hub prepares the rest.  A named call that never appends
    # (it failed after naming) must not lend that early answer to a later call: a copy
    # another process stored in between would go unseen and be stored twice.
    topic = new_topic("kafka")
    here, other = open_log(kafka_url), open_log(kafka_url)
    await here.open()
    await other.open()
    try:
        assert isinstance(here, KafkaLog)
        await here.append(topic, make_entries(1))  # the writer exists
        named, dup = make_entries(2)
        here.will_append(topic, named)  # ... and that call fails: `named` is never appended
        assert not (await other.append(topic, [dup]))[0].duplicate
        again = await here.append(topic, [dup])  # a retry begun after the other's ack
        assert again[0].duplicate
        # The named call itself is answered from its early request, receipts as usual.
        calls = make_entries(3)
        here.will_append(topic, calls[0])
        assert [r.duplicate for r in await here.append(topic, calls)] == [False] * 3
        assert all(r.duplicate for r in await here.append(topic, calls))
        ids = await read_ids(here, topic)
        assert ids.count(dup.id) == 1 and len(ids) == len(set(ids)) == 5
    finally:
        await here.close()
        await other.close()


async def test_an_early_catch_up_that_fails_is_asked_again_through_a_reader(
    kafka_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The early request goes through the admin client, whose ListOffsets fails for a
    # while after a broker restart ("no leader").  Such a failure must neither fail the
    # call nor skip the catch-up: the round asks a reader, so a copy another process
    # stored is still seen.
    from creative_hub.log.kafka import engine as kafka_engine

    asked: list[str] = []

    def failing(admin: object, ktopic: str, partitions: int, timeout: float) -> asyncio.Future[object]:
        asked.append(ktopic)
        answer: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        answer.set_exception(ck.KafkaException(ck.KafkaError(ck.KafkaError.LEADER_NOT_AVAILABLE)))
        return answer

    topic = new_topic("kafka")
    here, other = open_log(kafka_url), open_log(kafka_url)
    await here.open()
    await other.open()
    try:
        assert isinstance(here, KafkaLog)
        await here.append(topic, make_entries(1))  # the writer exists
        monkeypatch.setattr(kafka_engine, "ask_ends", failing)
        (dup,) = make_entries(1)
        assert not (await other.append(topic, [dup]))[0].duplicate
        here.will_append(topic, dup)
        again = await here.append(topic, [dup])
        assert asked and again[0].duplicate
        ids = await read_ids(here, topic)
        assert ids.count(dup.id) == 1
    finally:
        await here.close()
        await other.close()


async def test_broker_down_at_open_fails_fast_naming_the_url() -> None:
    port = _closed_port()
    log = open_log(f"kafka://127.0.0.1:{port}?timeout=2")
    started = time.monotonic()
    with pytest.raises(EngineUnavailable) as e:
        await log.open()
    assert f"127.0.0.1:{port}" in str(e.value)
    assert time.monotonic() - started < WAIT  # bounded, not the client's 60 s default retry loop


async def test_freed_c_heap_is_handed_back_while_open(
    kafka_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # librdkafka's freed buffers stay in glibc's arenas unless trimmed (log/kafka/malloc.py).
    from creative_hub.log.kafka import malloc as _malloc

    assert _malloc.available()  # Linux with glibc: the machines this runs on
    calls: list[int] = []
    real = _malloc._TRIM
    assert real is not None
    monkeypatch.setattr(_malloc, "_TRIM", lambda pad: calls.append(pad) or real(pad))
    sep = "&" if "?" in kafka_url else "?"
    log = open_log(f"{kafka_url}{sep}malloc_trim=0.05")
    await log.open()
    try:
        deadline = time.monotonic() + WAIT
        while len(calls) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert calls[:2] == [0, 0]
    finally:
        await log.close()
    seen = len(calls)
    await asyncio.sleep(0.2)
    assert len(calls) == seen  # stopped with the log
    off = open_log(f"{kafka_url}{sep}malloc_trim=0")
    await off.open()
    try:
        await asyncio.sleep(0.2)
        assert len(calls) == seen
    finally:
        await off.close()
    with pytest.raises(ValidationError, match="malloc_trim"):
        open_log(f"{kafka_url}{sep}malloc_trim=often")


def _closed_port() -> int:
    from creative_hub.testing.servers import free_port

    return free_port()


# -- positions, partitions, retention ---------------------------------------------
async def test_cursor_vector_resumes_exactly_across_partitions(kafka_url: str) -> None:
    # Six partitions, many keys: reading after any record's position yields
    # exactly the rest of the read, in the same order.
    log = open_log(kafka_url + "&partitions=6")
    await log.open()
    try:
        topic = new_topic("kafka")
        for i in range(4):
            await log.append(topic, make_entries(15, keys=[f"k{j}" for j in range(12)], tag=str(i)))
        records = [r async for r in log.read(topic)]
        assert len(records) == 60 and all(r.position.count(",") == 5 for r in records)
        for k in (0, 13, 31, 58, 59):
            rest = [r.id async for r in log.read(topic, after=records[k].position)]
            assert rest == [r.id for r in records[k + 1 :]]
        info = await log.topic_info(topic)
        assert info.count == 60 and info.first == records[0].position and info.last == records[-1].position
    finally:
        await log.close()


async def test_count_retention_over_partitions_keeps_the_newest_in_read_order(kafka_url: str) -> None:
    log = open_log(kafka_url + "&partitions=3")
    await log.open()
    try:
        topic = new_topic("kafka")
        for i in range(3):
            await log.append(topic, make_entries(10, keys=["x", "y", "z", "w"], tag=str(i)))
        before = [r async for r in log.read(topic)]
        await log.set_retention(topic, Retention(max_count=12))
        after = [r.id async for r in log.read(topic)]
        assert after == [r.id for r in before[-12:]]
        with pytest.raises(PositionGone):
            [r async for r in log.read(topic, after=before[5].position)]
        assert (await log.topic_info(topic)).retention == Retention(max_count=12)
    finally:
        await log.close()


async def test_retention_is_kept_by_the_cluster(klog: Log, kafka_url: str) -> None:
    # Retention lives in the cluster (topic configs + the meta topic), not
    # in the process that set it.
    topic = new_topic("kafka")
    await klog.append(topic, make_entries(3))
    await klog.set_retention(topic, Retention(max_age=3600, max_bytes=1 << 20))
    other = open_log(kafka_url)
    await other.open()
    try:
        assert (await other.topic_info(topic)).retention == Retention(max_age=3600, max_bytes=1 << 20)
    finally:
        await other.close()
    admin = ck.admin.AdminClient({"bootstrap.servers": bootstrap(kafka_url)})
    res = ck.admin.ConfigResource(ck.admin.ConfigResource.Type.TOPIC, topic)  # type: ignore[attr-defined]
    configs = admin.describe_configs([res])[res].result(WAIT)
    assert configs["retention.ms"].value == "3600000"
    assert configs["message.timestamp.type"].value == "LogAppendTime"


# -- interop ---------------------------------------------------------------------
async def test_events_are_cloudevents_to_a_plain_kafka_consumer(klog: Log, kafka_url: str) -> None:
    # What the hub writes, confluent-kafka alone (no creative_hub code) reads
    # as structured-mode CloudEvents, keyed by the partition key.
    hub = Hub(klog, principal="alice")
    peer = f"p{uuid.uuid4().hex[:10]}"
    receipts = await hub.publish(
        [
            {
                "type": "creative.narrative.fragment",
                "hub": peer,
                "subject": "story:s1",
                "data": {"story": "s1", "title": f"Part {i}", "text": "..."},
            }
            for i in range(3)
        ]
    )
    topic = receipts[0].topic
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap(kafka_url),
            "group.id": f"plain-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        messages: list[ck.Message] = []
        deadline = time.monotonic() + WAIT
        while len(messages) < 3 and time.monotonic() < deadline:
            m = await asyncio.to_thread(consumer.poll, 0.5)
            if m is not None and m.error() is None:
                messages.append(m)
    finally:
        consumer.close()
    assert len(messages) == 3
    events = []
    for m in messages:
        headers = {k: v for k, v in m.headers() or [] if isinstance(v, bytes)}
        assert headers["content-type"].startswith(b"application/cloudevents+json")
        assert m.key() == b"alice"
        events.append(
            ce_kafka.from_structured_event(ce_kafka.KafkaMessage(headers, m.key(), m.value() or b""))
        )
    assert [e.get_id() for e in events] == [r.id for r in receipts]
    assert all(
        e.get_type() == "creative.narrative.fragment" and e.get_source() == "/peers/alice" for e in events
    )
    assert [e.get_data()["title"] for e in events] == ["Part 0", "Part 1", "Part 2"]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (scripts/install-kafka.sh)")
async def test_events_are_readable_with_kcat(klog: Log, kafka_url: str) -> None:
    hub = Hub(klog, principal="bob")
    peer = f"p{uuid.uuid4().hex[:10]}"
    (receipt,) = await hub.publish(
        {
            "type": "creative.narrative.fragment",
            "hub": peer,
            "data": {"story": "s", "title": "T", "text": "x"},
        }
    )
    out = await asyncio.to_thread(
        subprocess.run,
        [
            "kcat",
            "-b",
            bootstrap(kafka_url),
            "-C",
            "-t",
            receipt.topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k\t%h\t%s\n",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    key, headers, value = out.stdout.strip().split("\t", 2)
    assert key == "bob"
    assert "content-type=application/cloudevents+json" in headers
    event = json.loads(value)
    assert event["specversion"] == "1.0" and event["id"] == receipt.id and event["data"]["title"] == "T"


async def test_hand_produced_junk_goes_to_the_dead_letter_topic(klog: Log, kafka_url: str) -> None:
    # Records produced by hand with a plain Kafka producer (no headers, not
    # events) reach the hub as Records and are dead-lettered with the reason;
    # a foreign but valid CloudEvent is handled.
    hub = Hub(klog, principal="alice")
    topic = new_topic("creative")
    await klog.append(topic, make_entries(1))  # creates the topic
    good = hub.prepare(
        {"type": "creative.narrative.fragment", "data": {"story": "s", "title": "ok", "text": "."}}
    )[2]
    producer = ck.Producer({"bootstrap.servers": bootstrap(kafka_url)})
    # One key for all: one partition, so they come in this order.
    producer.produce(topic, b"\xff\xfe not json at all", b"alice")
    producer.produce(topic, json.dumps({"specversion": "1.0", "id": "half"}).encode(), b"alice")
    producer.produce(topic, good.body, b"alice")
    assert producer.flush(WAIT) == 0
    got = []
    async with hub.subscribe(topic, "readers", ack_timeout=30) as sub:
        while len(got) < 1:
            d = await sub.next(timeout=WAIT)
            got.append(d.event.id)
            await d.ack()
        # the first record, from make_entries, is not an event either
        assert sub.dead_letters == 3
    assert got == [good.id]
    letters = [s.event async for s in hub.replay("deadletter." + topic)]
    assert len(letters) == 3
    assert all("not a valid event" in letter.data["reason"] for letter in letters)
    # Delivery order across partitions is not fixed: find each letter by what it kept.
    bodies = {letter.data["body"]: letter.data for letter in letters}
    assert any(body.endswith("not json at all") for body in bodies)
    assert "half" in {letter.data["record_id"] for letter in letters}  # the id came from the JSON body


async def test_engine_errors_are_translated(klog: Log) -> None:
    assert isinstance(klog, KafkaLog)
    with pytest.raises(EngineUnavailable):
        raise klog.fail(ck.KafkaException(ck.KafkaError(ck.KafkaError._TRANSPORT)), "test")
    await klog.append(new_topic("kafka"), [Entry("x", "k", b"{}", "d")])


# -- the member's bookkeeping, without a broker ------------------------------------
async def test_buffered_records_become_deliveries_only_when_handed_out() -> None:
    """Records fetched ahead wait as the consumer's messages (one tracked object each,
    not two: the collector's full passes come sooner with every long-lived one); a
    delivery is made when handed out, in offset order per partition, counted as a
    redelivery below the previous owner's mark; those of a partition lost are never
    handed out, and the commit covers the acked prefix."""
    import gc

    from creative_hub.log.kafka.delivery import Part
    from creative_hub.log.kafka.names import position_format

    log = KafkaLog.from_url("kafka://127.0.0.1:1?partitions=2")  # never connects
    log._admin = object()  # type: ignore[assignment]  # counts as open: nothing here talks to a broker
    sub = log.subscribe("buffered", "g", batch=100, ack_timeout=60)
    sub._loop = asyncio.get_running_loop()
    sub._format = position_format(2)  # as joining sets it
    sub._parts = {0: Part(0, 0, 0, 3), 1: Part(1, 0, 0, -1)}
    for part in sub._parts.values():
        part.fetched = 0
    msgs = [
        ck.Message(topic="buffered", partition=p, offset=o, key=b"k", value=b"v%d" % o)
        for p in (0, 1)
        for o in range(500)
    ]  # fmt: skip
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        sub._on_messages(msgs)
        grown = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert grown < 50, f"{grown} tracked objects for 1,000 buffered records"
    sub._drop([1])
    handed = sub._take(1000)  # what next_batch hands out once joined
    assert [(d.part.partition, d.off) for d in handed] == [(0, o) for o in range(500)]  # type: ignore[attr-defined]
    assert [d.delivery_count for d in handed[:4]] == [2, 2, 2, 1]
    assert handed[7].body == b"v7" and handed[7].position == "7,-1"
    await sub.ack_many(handed[:10])
    await sub.ack_many(handed[11:20])
    tp = sub._commit_of(sub._parts[0])
    assert tp is not None and tp.offset == 10 and tp.metadata == "d=500"
    assert sub.pending() == 500 - 19
    if sub._commit_handle is not None:
        sub._commit_handle.cancel()
