"""Kafka engine vs raw confluent-kafka, in one run on one private Kafka broker.

    .venv/bin/python bench/bench_kafka.py [--events 100000] [--batch 1000] [--rounds 2]

Three measures (throughputs: best of ``--rounds``):

* **publish**: ``KafkaLog.append`` in batches of ``--batch`` (up to 4 calls
  in flight) vs a raw ``confluent_kafka.Producer`` producing the same records
  (same value, key and headers) and flushing, with the same settings:
  idempotent, acks=all, linger.ms=5, lz4, murmur2 partitioner;
* **consume**: a subscription's ``next_batch(--batch)`` + ``ack_many`` of it
  (the engine commits acked offsets) vs a raw consumer in a group polling
  batches of ``--batch`` and committing each batch asynchronously; timed from
  the first record to the last, so group joins are not counted;
* **latency**: one record published, then handled (ping-pong, so nothing
  queues), p50 and p99: ``append`` -> ``sub.next()`` + ack vs produce +
  ``flush`` (sent at once, as the engine sends each round) -> a raw
  consumer's poll on another thread.

Records are ~200-byte CloudEvents over 16 keys, on topics of 4 partitions.
The broker is the test harness's (Apache Kafka 4.x, KRaft, loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from rich.console import Console
from rich.table import Table

from common import Calls, add_report_args, figures, sweep_events, sweep_point, sweep_sizes, write
from creative_hub.log import Entry, open_log
from creative_hub.log.kafka import KafkaLog
from creative_hub.testing.servers.kafka import KafkaServer

KEYS = [f"creator-{i}" for i in range(16)]
PARTITIONS = 4
CONTENT_TYPE = b"application/cloudevents+json; charset=utf-8"


def make_entries(n: int, tag: str, keys: list[str] = KEYS) -> list[Entry]:
    out = []
    for i in range(n):
        eid = uuid.uuid4().hex
        key = keys[i % len(keys)]
        body = json.dumps(
            {"specversion": "1.0", "id": eid, "source": "/bench", "type": "creative.bench.tick",
             "partitionkey": key, "data": {"n": i, "tag": tag, "pad": "x" * 40}}
        ).encode()  # fmt: skip
        out.append(Entry(eid, key, body, hashlib.sha256(body).hexdigest()[:32], creator=key))
    return out


def producer_conf(bootstrap: str) -> dict[str, Any]:
    """The engine's producer settings, for the raw side."""
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "partitioner": "murmur2_random",
    }


def create_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"message.timestamp.type": "LogAppendTime"}
    admin.create_topics([NewTopic(name, PARTITIONS, 1, config=config)])[name].result(30)
    time.sleep(0.5)  # leaders elected


# -- publish -------------------------------------------------------------------
def raw_publish(bootstrap: str, topic: str, entries: list[Entry]) -> float:
    p = ck.Producer(producer_conf(bootstrap))
    p.list_topics(topic, timeout=10)  # metadata and connections first, as the engine has them
    t = time.perf_counter()
    for e in entries:
        headers = [("content-type", CONTENT_TYPE), ("ch-id", e.id.encode()), ("ch-digest", e.digest.encode())]
        while True:
            try:
                p.produce(topic, e.body, e.key.encode(), headers=headers)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush()
    return time.perf_counter() - t


def raw_publish_reports(bootstrap: str, topic: str, entries: list[Entry]) -> float:
    """``raw_publish`` as a caller writes it who must know where each record went (the
    hub's receipts): a delivery callback per record, bound to its index (the idiom of
    confluent-kafka's examples), keeping each record's partition and offset."""
    p = ck.Producer(producer_conf(bootstrap))
    p.list_topics(topic, timeout=10)
    where: list[tuple[int, int] | None] = [None] * len(entries)

    def report(i: int, err: ck.KafkaError | None, msg: ck.Message) -> None:
        if err is None:
            where[i] = (msg.partition(), msg.offset())

    t = time.perf_counter()
    for i, e in enumerate(entries):
        headers = [("content-type", CONTENT_TYPE), ("ch-id", e.id.encode()), ("ch-digest", e.digest.encode())]
        while True:
            try:
                p.produce(topic, e.body, e.key.encode(), headers=headers,
                          on_delivery=lambda err, msg, i=i: report(i, err, msg))  # fmt: skip
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush()
    took = time.perf_counter() - t
    assert all(w is not None for w in where), "a record without its delivery report"
    return took


async def engine_publish(log: KafkaLog, topic: str, entries: list[Entry], batch: int) -> float:
    await log.append(topic, make_entries(1, "warm"))  # topic, writer, dedup index ready
    chunks = [entries[i : i + batch] for i in range(0, len(entries), batch)]
    gate = asyncio.Semaphore(4)

    async def one(chunk: list[Entry]) -> None:
        async with gate:
            await log.append(topic, chunk)

    t = time.perf_counter()
    await asyncio.gather(*(one(c) for c in chunks))
    return time.perf_counter() - t


# -- one call at a time, a receipt per record: the fair raw for Hub.publish ------------
def raw_publish_calls(
    bootstrap: str, topic: str, entries: list[Entry], batch: int, calls: Calls | None = None
) -> float:
    """Publish in calls of ``batch`` records as ``Hub.publish`` is called: each call produces
    its records with a delivery callback per record bound to its index (the idiom of
    confluent-kafka's examples) and returns only when every one of them is reported, with
    its partition and offset kept (the receipt); then the next call.  Waits with ``flush``,
    which sends at once whatever ``linger.ms`` says, as the engine sends each produce round.
    Returns the seconds of all the calls (each also timed in ``calls``, if given)."""
    p = ck.Producer(producer_conf(bootstrap))
    p.list_topics(topic, timeout=10)  # metadata and connections first, as the engine has them
    where: list[tuple[int, int] | None] = [None] * len(entries)
    failed: list[ck.KafkaError] = []

    def report(i: int, err: ck.KafkaError | None, msg: ck.Message) -> None:
        if err is None:
            where[i] = (msg.partition() or 0, msg.offset() or 0)
        else:
            failed.append(err)

    total = 0.0
    for start in range(0, len(entries), batch):
        t = time.perf_counter()
        for i in range(start, min(start + batch, len(entries))):
            e = entries[i]
            headers = [("content-type", CONTENT_TYPE), ("ch-id", e.id.encode()),
                       ("ch-digest", e.digest.encode())]  # fmt: skip
            p.produce(topic, e.body, e.key.encode(), headers=headers,
                      on_delivery=lambda err, msg, i=i: report(i, err, msg))  # fmt: skip
        p.flush()  # the call's receipts: every record of it reported
        took = time.perf_counter() - t
        total += took
        if calls is not None:
            calls.seconds.append(took)
        if failed:
            raise RuntimeError(f"raw publish: {failed[0]}")
    assert all(w is not None for w in where), "a record without its delivery report"
    return total


async def sweep(log: KafkaLog, bootstrap: str, sizes: list[int], cap: int) -> list[dict[str, object]]:
    out = []
    for b in sizes:
        n = sweep_events(b, cap)
        data = [make_entries(n, f"s{b}-{k}") for k in range(2)]

        async def raw(k: int, calls: Calls, b: int = b, data: list[list[Entry]] = data) -> None:
            topic = f"bench.sweepraw{b}x{k}{uuid.uuid4().hex[:4]}"
            create_topic(bootstrap, topic)
            await asyncio.to_thread(raw_publish_calls, bootstrap, topic, data[k], b, calls)

        async def hub(k: int, calls: Calls, b: int = b, data: list[list[Entry]] = data) -> None:
            topic = f"bench.sweephub{b}x{k}{uuid.uuid4().hex[:4]}"
            await log.append(topic, make_entries(1, "warm"))  # topic, writer, dedup index ready
            for i in range(0, len(data[k]), b):
                with calls.timed():
                    await log.append(topic, data[k][i : i + b])

        out.append(await sweep_point(b, n, raw, hub))
    return out


# -- consume -------------------------------------------------------------------
def raw_consume(bootstrap: str, topic: str, n: int, batch: int) -> float:
    c = ck.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex}", "enable.auto.commit": False,
         "auto.offset.reset": "earliest", "partition.assignment.strategy": "cooperative-sticky"}
    )  # fmt: skip
    c.subscribe([topic])
    got, t0 = 0, 0.0
    try:
        while got < n:
            first = c.poll(1.0)
            if first is None or first.error() is not None:
                continue
            msgs = [first, *c.consume(batch - 1, 0)]
            if not t0:
                t0 = time.perf_counter()
            for m in msgs:
                if m.error() is None:
                    m.value()  # the handler's work: look at the record
                    got += 1
            c.commit(asynchronous=True)
        return time.perf_counter() - t0
    finally:
        c.close()


async def engine_consume(log: KafkaLog, topic: str, n: int, batch: int) -> float:
    got, t0 = 0, 0.0
    async with log.subscribe(topic, f"eng-{uuid.uuid4().hex}", ack_timeout=60, batch=batch) as sub:
        while got < n:
            ds = await sub.next_batch(batch, timeout=30)
            if not t0:
                t0 = time.perf_counter()
            for d in ds:
                d.body  # noqa: B018 -- the handler's work: look at the record
            got += len(ds)
            await sub.ack_many(ds)
        return time.perf_counter() - t0


# -- latency -------------------------------------------------------------------
def raw_latency(bootstrap: str, topic: str, n: int) -> list[float]:
    p = ck.Producer(producer_conf(bootstrap))
    c = ck.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"raw-lat-{uuid.uuid4().hex}",
         "enable.auto.commit": False, "auto.offset.reset": "latest",
         "partition.assignment.strategy": "cooperative-sticky", "fetch.wait.max.ms": 100}
    )  # fmt: skip
    assigned = threading.Event()
    c.subscribe([topic], on_assign=lambda cons, parts: assigned.set())
    received: dict[bytes, float] = {}
    arrived = threading.Event()
    stop = False

    def consume() -> None:
        while not stop:
            m = c.poll(0.1)
            if m is not None and m.error() is None:
                received[m.key() or b""] = time.perf_counter()
                c.commit(message=m, asynchronous=True)
                arrived.set()

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        while not assigned.is_set():
            time.sleep(0.05)
        time.sleep(0.5)  # assignment settled, fetch positions resolved
        out = []
        entries = make_entries(n, "lat")
        for i, e in enumerate(entries):
            arrived.clear()
            key = f"{KEYS[i % len(KEYS)]}-{i}".encode()
            t = time.perf_counter()
            p.produce(topic, e.body, key, headers=[("content-type", CONTENT_TYPE)])
            p.flush()  # sent at once, as the hub sends each produce round (no linger.ms wait)
            if not arrived.wait(10):
                raise RuntimeError("raw latency: record not received")
            out.append(received[key] - t)
        return out
    finally:
        stop = True
        thread.join()
        c.close()
        p.flush()


async def engine_latency(log: KafkaLog, topic: str, n: int) -> list[float]:
    await log.append(topic, make_entries(1, "warm"))
    out = []
    async with log.subscribe(topic, f"eng-lat-{uuid.uuid4().hex}", ack_timeout=60) as sub:
        await (await sub.next(timeout=30)).ack()
        for e in make_entries(n, "lat"):
            t = time.perf_counter()
            append = asyncio.create_task(log.append(topic, [e]))
            d = await sub.next(timeout=30)
            out.append(time.perf_counter() - t)
            await d.ack()
            await append
    return out


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1] * 1000


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pings", type=int, default=500)
    add_report_args(ap)
    a = ap.parse_args()
    sweep_points: list[dict[str, object]] = []
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        t = time.perf_counter()
        server = KafkaServer(Path(tmp) / "kafka")
        server.start()
        console.print(f"[dim]broker up in {time.perf_counter() - t:.1f}s at {server.bootstrap}[/]")
        log = open_log(f"kafka://{server.bootstrap}?partitions={PARTITIONS}")
        assert isinstance(log, KafkaLog)
        await log.open()
        try:
            rows: list[tuple[str, str, str, str]] = []
            raw_pub, eng_pub, raw_con, eng_con, raw_rep = [], [], [], [], []
            # The broker's JIT warms up over the first ~100k records: an unmeasured round first,
            # or whichever side runs first is measured against a cold broker.
            create_topic(server.bootstrap, "bench.warmup")
            warm = make_entries(a.events, "w")
            await asyncio.to_thread(raw_publish, server.bootstrap, "bench.warmup", warm)
            del warm  # a bigger heap slows the side doing more in Python (the GC scans it)
            for r in range(a.rounds):
                entries = make_entries(a.events, f"r{r}")
                raw_topic, eng_topic = f"bench.raw{r}", f"bench.eng{r}"
                create_topic(server.bootstrap, raw_topic)
                bs = server.bootstrap
                raw_pub.append(a.events / await asyncio.to_thread(raw_publish, bs, raw_topic, entries))
                rep_topic = f"bench.rawrep{r}"
                create_topic(server.bootstrap, rep_topic)
                took = await asyncio.to_thread(raw_publish_reports, bs, rep_topic, entries)
                raw_rep.append(a.events / took)
                eng_pub.append(a.events / await engine_publish(log, eng_topic, entries, a.batch))
                n = a.events
                raw_con.append(n / await asyncio.to_thread(raw_consume, bs, raw_topic, n, a.batch))
                eng_con.append(a.events / await engine_consume(log, eng_topic, a.events + 1, a.batch))
                console.print(
                    f"[dim]round {r}: publish raw {raw_pub[-1]:,.0f}/s (with reports {raw_rep[-1]:,.0f}/s) "
                    f"engine {eng_pub[-1]:,.0f}/s; "
                    f"consume raw {raw_con[-1]:,.0f}/s engine {eng_con[-1]:,.0f}/s[/]"
                )
            rp, ep, rc, ec = max(raw_pub), max(eng_pub), max(raw_con), max(eng_con)
            rows.append(("publish (events/s)", f"{rp:,.0f}", f"{ep:,.0f}", f"{ep / rp:.2f}x (>= 0.8)"))
            rr = max(raw_rep)
            rows.append(("publish, raw keeping offsets", f"{rr:,.0f}", f"{ep:,.0f}", f"{ep / rr:.2f}x"))
            rows.append(("consume (events/s)", f"{rc:,.0f}", f"{ec:,.0f}", f"{ec / rc:.2f}x (>= 0.8)"))
            create_topic(server.bootstrap, "bench.rawlat")
            raw_lat = await asyncio.to_thread(raw_latency, server.bootstrap, "bench.rawlat", a.pings)
            eng_lat = await engine_latency(log, "bench.englat", a.pings)
            for q in (50, 99):
                r_ms, e_ms = pct(raw_lat, q), pct(eng_lat, q)
                target = " (<= 2)" if q == 99 else ""
                ratio = f"{e_ms / r_ms:.2f}x{target}"
                rows.append((f"publish->handler p{q} (ms)", f"{r_ms:.2f}", f"{e_ms:.2f}", ratio))
            if a.sweep:
                sweep_points = await sweep(log, server.bootstrap, sweep_sizes(a.sweep), a.events)
        finally:
            await log.close()
            server.stop()
    table = Table(title=f"Kafka engine vs raw confluent-kafka ({a.events:,} events, batch {a.batch})")
    for col in ("measure", "raw confluent-kafka", "creative-hub kafka", "engine / raw"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    data = figures(
        "kafka", events=a.events, batch=a.batch, publish=(rp, ep), consume=(rc, ec),
        latency=(raw_lat, eng_lat), sweep=sweep_points,
        notes="raw: confluent-kafka produce of every record then one flush; consume(batch) + async commit",
    )  # fmt: skip
    data["publish"]["raw_with_reports"] = rr  # raw keeping each record's partition and offset
    write(a.json, data)


if __name__ == "__main__":
    asyncio.run(main())
