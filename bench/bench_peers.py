"""The hub's public path against the fair raw client and the peers, one run per engine.

    .venv/bin/python bench/bench_peers.py [--engines sqlite,redis,nats,kafka] [--events 20000]
                                          [--rounds 3] [--json PATH]

What a user calls, not the engine alone: ``Hub.publish`` of dict events
(validate, stamp, encode, route, dedup, receipts), batched (``--batch`` per
call) and one event per call, and ``hub.subscribe`` consume + ack of decoded
events (``next_batch`` + ``ack_many``; ``consume_batches``: the batch API,
``fetch()`` + ``for`` + one ``batch.ack()``).  Beside it, on the same server in the
same process, rounds alternating, best round of each side:

* **fair raw**: the broker's own client doing what the hub promises -- a
  receipt per event and a commit after the handler: redis-py pipelined XADD
  (each entry's id back) and XREADGROUP + XACK; nats-py ``publish_async`` with
  every PubAck awaited and pull ``fetch`` + ack; confluent-kafka with a
  delivery report per record, in calls of ``--batch`` each waiting for all
  its reports (as ``Hub.publish`` returns receipts), and ``consume`` +
  commit; sqlite3 inserting the
  hub's rows, and consuming with a lease and the delivered mark claimed per
  batch and the commit after the handler (the functions of
  ``bench_<engine>.py``);
* **FastStream 0.7.8**, each broker's best path, named in the output: Redis
  stream publishes through one pipeline per batch and a batch stream
  subscriber in a group (acks after the handler); NATS JetStream publishes
  gathered per batch (it has no batch publish) and a batch pull subscriber;
  Kafka (aiokafka) ``publish_batch`` and a batch subscriber (auto-commit,
  its default);
* **eventsourcing 9.5** on SQLite: an aggregate's domain events saved
  ``--batch`` per ``save()``, replayed through the notification log, against
  ``Hub.publish`` and ``Hub.replay`` on the SQLite engine.

Ratios are hub / other (higher is better).  The hub's events are about 400
bytes encoded (a payload of about 130, the rest the attributes the hub sets:
id, source, time, creator, partition key); the raw clients' own records
about 200-230 (SQLite's raw side inserts the hub's rows, about 430).  Raw
consume never parses a body; the hub decodes and checks every event it
hands over.  ``consume_path.py`` times raw over the hub's own records too.
Run it on a quiet machine; ``bench/report.py`` runs it with the others.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from common import peak_rss_mb, write
from creative_hub.hub import Hub
from creative_hub.log import open_log

console = Console(width=150)
PAD = "x" * 96  # payload text: the hub's encoded event is about 400 bytes


def hub_events(n: int, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "creative.narrative.fragment",
            "subject": f"story:{i % 16}",
            "data": {"story": f"s{i % 16}", "title": f"{tag} {i}", "text": PAD},
        }
        for i in range(n)
    ]


def peer_messages(n: int, tag: str) -> list[dict[str, Any]]:
    """What a FastStream user publishes: the same payload as a JSON object."""
    return [{"n": i, "tag": tag, "story": f"s{i % 16}", "text": PAD} for i in range(n)]


# -- the hub's public path ------------------------------------------------------
async def hub_publish(hub: Hub, events: list[dict[str, Any]], batch: int) -> float:
    t = time.perf_counter()
    for i in range(0, len(events), batch):
        await hub.publish(events[i : i + batch])
    return time.perf_counter() - t


async def hub_publish_single(hub: Hub, events: list[dict[str, Any]]) -> float:
    t = time.perf_counter()
    for e in events:
        await hub.publish(e)
    return time.perf_counter() - t


async def hub_consume(hub: Hub, topic: str, n: int, batch: int) -> float:
    got, t0 = 0, 0.0
    async with hub.subscribe(topic, group=f"g{uuid.uuid4().hex[:8]}", batch=batch) as sub:
        while got < n:
            ds = await sub.next_batch(batch, timeout=30)
            if not t0:
                t0 = time.perf_counter()
            for d in ds:
                d.event.data  # noqa: B018 -- the handler's work: look at the event
            got += len(ds)
            await sub.ack_many(ds)
    return time.perf_counter() - t0


async def hub_consume_batches(hub: Hub, topic: str, n: int, batch: int) -> float:
    """As ``hub_consume``, through the batch API: ``fetch()``, ``for`` (decoded as
    reached), one ``batch.ack()``."""
    got, t0 = 0, 0.0
    async with hub.subscribe(topic, group=f"g{uuid.uuid4().hex[:8]}", batch=batch) as sub:
        while got < n:
            b = await sub.fetch(batch, timeout=30)
            if not t0:
                t0 = time.perf_counter()
            for d in b:
                d.event.data  # noqa: B018 -- the handler's work: look at the event
            got += len(b)
            await b.ack()
    return time.perf_counter() - t0


# -- rounds -----------------------------------------------------------------------
Side = Callable[[int], Awaitable[float]]  # round -> seconds for n events


async def best(sides: dict[str, Side], rounds: int) -> dict[str, float]:
    """Seconds of the best round of each side; rounds alternate the sides."""
    out: dict[str, float] = {name: float("inf") for name in sides}
    for r in range(rounds):
        for name, side in sides.items():
            out[name] = min(out[name], await side(r))
    return out


# -- engines ------------------------------------------------------------------------
TOPIC = "creative.narrative"  # where Hub.publish routes the bench's fragments


async def bench_engine(engine: str, url: str, a: argparse.Namespace, extra: dict[str, Any]) -> dict[str, Any]:
    """The hub's path on ``url`` (batched, single, consume) beside ``extra`` sides per measure.

    Every round publishes through ``Hub.publish`` to the topic it routes to;
    each consume round is a new group reading the topic's first ``n`` events.
    """
    n, batch, rounds = a.events, a.batch, a.rounds
    single_n = min(n, a.single)
    figures: dict[str, Any] = {"engine": engine, "events": n, "batch": batch, "single_events": single_n}
    log = open_log(url)
    await log.open()
    try:
        hub = Hub(log, principal="bench")  # no keystore: unsigned, as the engine benchmarks
        await hub.publish(hub_events(1, "warm-up"))  # the topic and the writer exist before any clock

        async def hub_pub(r: int) -> float:
            return await hub_publish(hub, hub_events(n, f"r{r}"), batch)

        async def hub_one(r: int) -> float:
            return await hub_publish_single(hub, hub_events(single_n, f"one{r}"))

        async def hub_con(r: int) -> float:
            return await hub_consume(hub, TOPIC, n, batch)

        async def hub_bat(r: int) -> float:
            return await hub_consume_batches(hub, TOPIC, n, batch)

        for measure, hub_side, count in (
            ("publish", hub_pub, n),
            ("publish_single", hub_one, single_n),
            ("consume", hub_con, n),
        ):
            sides = {"hub": hub_side}
            if measure == "consume":  # the batch API in the same rounds, alternating with the others
                sides["hub_batches"] = hub_bat
            sides.update(extra.get(measure, {}))
            seconds = await best(sides, rounds)
            figures[measure] = {k: count / v for k, v in seconds.items()}
        consume = figures["consume"]
        figures["consume_batches"] = {**consume, "hub": consume.pop("hub_batches")}
    finally:
        await log.close()
    return figures


def seconds_of(n: int, rate: float) -> float:
    return n / rate


# -- Redis ---------------------------------------------------------------------------
async def redis_run(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import redis.asyncio as aioredis
    from faststream.redis import RedisBroker, StreamSub

    from bench_redis import consume_raw, make_entries, publish_raw
    from creative_hub.testing.servers.redis import RedisServer

    n, batch, single_n = a.events, a.batch, min(a.events, a.single)
    server = RedisServer(tmp / "redis")
    server.start()
    r = aioredis.Redis.from_url(server.url)
    broker = RedisBroker(server.url, logger=None)
    await broker.connect()
    raw_streams: list[str] = []
    fs_streams: list[str] = []
    try:

        async def raw_pub(rnd: int) -> float:
            raw_streams.append(f"raw:{uuid.uuid4().hex[:8]}")
            return await publish_raw(r, make_entries(n, f"r{rnd}"), batch, raw_streams[-1])

        async def raw_one(rnd: int) -> float:
            return await publish_raw(
                r, make_entries(single_n, f"o{rnd}"), 1, f"rawone:{uuid.uuid4().hex[:8]}"
            )

        async def raw_con(rnd: int) -> float:
            return await consume_raw(r, raw_streams[rnd], n, batch)

        async def fs_pub(rnd: int) -> float:
            fs_streams.append(f"fs:{uuid.uuid4().hex[:8]}")
            msgs = peer_messages(n, f"r{rnd}")
            t = time.perf_counter()
            for i in range(0, n, batch):
                async with broker._connection.pipeline() as pipe:
                    for m in msgs[i : i + batch]:
                        await broker.publish(m, stream=fs_streams[-1], pipeline=pipe)
                    await pipe.execute()
            return time.perf_counter() - t

        async def fs_one(rnd: int) -> float:
            msgs, stream = peer_messages(single_n, f"o{rnd}"), f"fsone:{uuid.uuid4().hex[:8]}"
            t = time.perf_counter()
            for m in msgs:
                await broker.publish(m, stream=stream)
            return time.perf_counter() - t

        async def fs_con(rnd: int) -> float:
            consumer = RedisBroker(server.url, logger=None)
            sub = StreamSub(
                fs_streams[rnd], group=f"g{uuid.uuid4().hex[:8]}", consumer="c1", batch=True,
                max_records=batch, last_id="0",
            )  # fmt: skip
            return await run_faststream(consumer, consumer.subscriber(stream=sub), n)

        extra = {
            "publish": {"raw": raw_pub, "faststream": fs_pub},
            "publish_single": {"raw": raw_one, "faststream": fs_one},
            "consume": {"raw": raw_con, "faststream": fs_con},
        }
        figures = await bench_engine("redis", server.url, a, extra)
        figures["paths"] = {
            "raw": "redis-py (hiredis) XADD pipelined per batch, each entry id back; "
            "XREADGROUP + one XACK per batch, bodies not parsed",
            "faststream": "RedisBroker.publish(stream=) through one pipeline per batch; "
            "StreamSub(batch=True) in a group, acked after the handler",
        }
        return figures
    finally:
        await broker.stop()
        await r.aclose()
        server.stop()


async def run_faststream(broker: Any, register: Callable[..., Any], n: int) -> float:
    """Start ``broker`` with a batch handler; seconds from its first batch until ``n`` handled."""
    done = asyncio.Event()
    state = {"count": 0, "t0": 0.0}

    async def handle(msgs: list[dict[str, Any]]) -> None:
        if not state["t0"]:
            state["t0"] = time.perf_counter()
        for m in msgs:
            m["n"]
        state["count"] += len(msgs)
        if state["count"] >= n:
            done.set()

    register(handle)
    await broker.start()
    try:
        await asyncio.wait_for(done.wait(), 300)
        return time.perf_counter() - state["t0"]
    finally:
        await broker.stop()


# -- NATS -----------------------------------------------------------------------------
async def nats_run(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import nats
    from faststream.nats import JStream, NatsBroker, PullSub

    from bench_nats import entries, raw_consume, raw_publish
    from creative_hub.testing.servers.nats import NatsServer

    n, batch, single_n = a.events, a.batch, min(a.events, a.single)
    server = NatsServer(tmp / "nats")
    server.start()
    url = server.url.split("?", 1)[0]
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="RAWBENCH", subjects=["rawbench.>"])
    await js.add_stream(name="FSBENCH", subjects=["fsbench.>"])
    broker = NatsBroker(url, logger=None)
    await broker.connect()
    try:

        async def raw_pub(rnd: int) -> float:
            return seconds_of(n, await raw_publish(js, f"rawbench.r{rnd}", entries(n, f"r{rnd}"), batch))

        async def raw_one(rnd: int) -> float:
            return seconds_of(single_n, await raw_publish(js, f"rawbench.o{rnd}", entries(single_n, "o"), 1))

        async def raw_con(rnd: int) -> float:
            rate = await raw_consume(js, "RAWBENCH", f"rawbench.r{rnd}", n, name=f"c{rnd}")
            return seconds_of(n, rate)

        async def fs_pub(rnd: int) -> float:
            msgs = peer_messages(n, f"r{rnd}")
            t = time.perf_counter()
            for i in range(0, n, batch):
                await asyncio.gather(
                    *(broker.publish(m, f"fsbench.r{rnd}", stream="FSBENCH") for m in msgs[i : i + batch])
                )
            return time.perf_counter() - t

        async def fs_one(rnd: int) -> float:
            msgs = peer_messages(single_n, f"o{rnd}")
            t = time.perf_counter()
            for m in msgs:
                await broker.publish(m, f"fsbench.o{rnd}", stream="FSBENCH")
            return time.perf_counter() - t

        async def fs_con(rnd: int) -> float:
            consumer = NatsBroker(url, logger=None)
            register = consumer.subscriber(
                f"fsbench.r{rnd}", stream=JStream("FSBENCH", declare=False), durable=f"d{rnd}",
                pull_sub=PullSub(batch_size=batch, batch=True),
            )  # fmt: skip
            return await run_faststream(consumer, register, n)

        extra = {
            "publish": {"raw": raw_pub, "faststream": fs_pub},
            "publish_single": {"raw": raw_one, "faststream": fs_one},
            "consume": {"raw": raw_con, "faststream": fs_con},
        }
        figures = await bench_engine("nats", server.url, a, extra)
        figures["paths"] = {
            "raw": "nats-py JetStream publish_async, every PubAck awaited per batch; "
            "pull fetch + ack each, bodies not parsed",
            "faststream": "NatsBroker.publish(stream=) gathered per batch (no batch publish); "
            "PullSub(batch=True), acked after the handler",
        }
        return figures
    finally:
        await broker.stop()
        await nc.close()
        server.stop()


# -- Kafka ----------------------------------------------------------------------------
async def kafka_run(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from faststream.kafka import KafkaBroker

    from bench_kafka import create_topic, make_entries, raw_consume, raw_publish_calls
    from creative_hub.testing.servers.kafka import KafkaServer

    n, batch, single_n = a.events, a.batch, min(a.events, a.single)
    server = KafkaServer(tmp / "kafka")
    server.start()
    boot = server.bootstrap
    # aiokafka's defaults hold ~70 events of 200 bytes per batch (16 KiB): room for a
    # whole --batch, with the hub's durability (acks=all, idempotent) and linger.
    broker = KafkaBroker(
        boot, logger=None, max_batch_size=4 * 1024 * 1024, acks="all", enable_idempotence=True, linger_ms=5
    )
    await broker.connect()
    raw_topics: list[str] = []
    fs_topics: list[str] = []
    try:

        async def raw_pub(rnd: int) -> float:
            raw_topics.append(f"rawk{uuid.uuid4().hex[:8]}")
            await asyncio.to_thread(create_topic, boot, raw_topics[-1])
            # One key, as Hub.publish's events have (their creator's): one partition, as the hub's.
            entries = make_entries(n, f"r{rnd}", keys=["bench"])
            return await asyncio.to_thread(raw_publish_calls, boot, raw_topics[-1], entries, batch)

        async def raw_con(rnd: int) -> float:
            return await asyncio.to_thread(raw_consume, boot, raw_topics[rnd], n, batch)

        async def fs_pub(rnd: int) -> float:
            fs_topics.append(f"fsk{uuid.uuid4().hex[:8]}")
            await asyncio.to_thread(create_topic, boot, fs_topics[-1])
            msgs = peer_messages(n, f"r{rnd}")
            t = time.perf_counter()
            for i in range(0, n, batch):
                await broker.publish_batch(*msgs[i : i + batch], topic=fs_topics[-1])
            return time.perf_counter() - t

        async def fs_one(rnd: int) -> float:
            topic = f"fsko{uuid.uuid4().hex[:8]}"
            await asyncio.to_thread(create_topic, boot, topic)
            msgs = peer_messages(single_n, f"o{rnd}")
            t = time.perf_counter()
            for m in msgs:
                await broker.publish(m, topic=topic)
            return time.perf_counter() - t

        async def fs_con(rnd: int) -> float:
            consumer = KafkaBroker(boot, logger=None)
            register = consumer.subscriber(
                fs_topics[rnd], group_id=f"g{uuid.uuid4().hex[:8]}", batch=True, max_records=batch,
                auto_offset_reset="earliest",
            )  # fmt: skip
            return await run_faststream(consumer, register, n)

        extra = {
            "publish": {"raw": raw_pub, "faststream": fs_pub},
            "publish_single": {"faststream": fs_one},
            "consume": {"raw": raw_con, "faststream": fs_con},
        }
        figures = await bench_engine("kafka", server.url, a, extra)
        figures["paths"] = {
            "raw": f"confluent-kafka in calls of {batch} like Hub.publish: a delivery report per record "
            "kept (partition, offset), each call flushed and all its reports in before the next, "
            "one key as the hub's events; "
            "consume(batch) + commit after the handler, bodies not parsed",
            "faststream": "aiokafka publish_batch (one partition, no keys, one RecordMetadata per batch); "
            "batch subscriber, auto-commit (its default)",
        }
        return figures
    finally:
        await broker.stop()
        server.stop()


# -- SQLite -----------------------------------------------------------------------------
async def sqlite_run(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    from bench_sqlite import hub_rows, make_events, raw_consume, raw_publish

    class Story(Aggregate):
        @event("Fragment")
        def add(self, n: int, text: str) -> None:
            pass

    n, batch, single_n = a.events, a.batch, min(a.events, a.single)
    raw_files: list[Path] = []
    es_apps: list[Application] = []

    def es_app() -> Application:
        path = tmp / f"es-{uuid.uuid4().hex[:8]}.db"
        return Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})

    async def raw_pub(rnd: int) -> float:
        raw_files.append(tmp / f"raw-{uuid.uuid4().hex[:8]}.db")
        return seconds_of(n, raw_publish(raw_files[-1], hub_rows(make_events(n)), batch))

    async def raw_one(rnd: int) -> float:
        path = tmp / f"rawone-{uuid.uuid4().hex[:8]}.db"
        return seconds_of(single_n, raw_publish(path, hub_rows(make_events(single_n)), 1))

    async def raw_con(rnd: int) -> float:
        return seconds_of(n, raw_consume(raw_files[rnd], n, batch))

    async def es_pub(rnd: int) -> float:
        app = es_app()
        es_apps.append(app)
        t = time.perf_counter()
        for i in range(0, n, batch):
            story = Story()
            for k in range(i, min(i + batch, n)):
                story.add(k, PAD)
            app.save(story)
        return time.perf_counter() - t

    async def es_one(rnd: int) -> float:
        app = es_app()
        story = Story()
        app.save(story)
        t = time.perf_counter()
        for k in range(single_n):
            story.add(k, PAD)
            app.save(story)
        return time.perf_counter() - t

    async def es_replay(rnd: int) -> float:
        app = es_apps[rnd]
        got, start = 0, 1
        t = time.perf_counter()
        while got < n:
            page = app.recorder.select_notifications(start=start, limit=batch)
            if not page:
                break
            for notification in page:
                app.mapper.to_domain_event(notification)
            got += len(page)
            start = page[-1].id + 1
        return time.perf_counter() - t

    extra = {
        "publish": {"raw": raw_pub, "eventsourcing": es_pub},
        "publish_single": {"raw": raw_one, "eventsourcing": es_one},
        "consume": {"raw": raw_con},
    }
    url = f"sqlite:///{tmp}/hub.db"
    figures = await bench_engine("sqlite", url, a, extra)

    # Replay: Hub.replay of the topic vs eventsourcing's notification log, decoded.
    log = open_log(url)
    await log.open()
    try:
        hub = Hub(log, principal="bench")

        async def hub_replay(rnd: int) -> float:
            got = 0
            t = time.perf_counter()
            async for stored in hub.replay(TOPIC):
                stored.event.data  # noqa: B018
                got += 1
                if got >= n:
                    break
            return time.perf_counter() - t

        seconds = await best({"hub": hub_replay, "eventsourcing": es_replay}, a.rounds)
        figures["replay"] = {k: n / v for k, v in seconds.items()}
    finally:
        await log.close()
    figures["paths"] = {
        "raw": "sqlite3 inserting the hub's very rows, one transaction per batch; per batch a claim "
        "(rows after the committed position, delivered mark and lease saved) and a commit after the handler, "
        "bodies not parsed",
        "eventsourcing": "eventsourcing 9.5 SQLite: an aggregate's domain events saved per batch "
        "(one save per event when single); replay: the notification log, each notification "
        "mapped to its domain event",
    }
    return figures


RUNS = {"sqlite": sqlite_run, "redis": redis_run, "nats": nats_run, "kafka": kafka_run}
PEER = {"sqlite": "eventsourcing", "redis": "faststream", "nats": "faststream", "kafka": "faststream"}


def ratio(figs: dict[str, float], other: str) -> str:
    if "hub" not in figs or other not in figs:
        return "—"
    return f"{figs['hub'] / figs[other]:.2f}x"


def show(results: list[dict[str, Any]]) -> None:
    table = Table(title="Hub's public path (Hub.publish / hub.subscribe) vs fair raw and peers, events/s")
    for col in ("engine", "measure", "hub", "fair raw", "hub / raw", "peer", "hub / peer"):
        table.add_column(col, justify="right" if col not in ("engine", "measure") else "left")
    for fig in results:
        peer = PEER[fig["engine"]]
        for measure in ("publish", "publish_single", "consume", "consume_batches", "replay"):
            if measure not in fig:
                continue
            f = fig[measure]
            table.add_row(
                fig["engine"], measure, f"{f['hub']:,.0f}", f"{f['raw']:,.0f}" if "raw" in f else "—",
                ratio(f, "raw"), f"{f[peer]:,.0f} ({peer})" if peer in f else "—", ratio(f, peer),
            )  # fmt: skip
    console.print(table)


async def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", default="sqlite,redis,nats,kafka")
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--single", type=int, default=2_000, help="events published one per call")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    a = p.parse_args(argv)
    results = []
    for engine in a.engines.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-peers-{engine}-") as tmp:
            console.print(f"[bold]{engine}[/]: {a.events} events, batch {a.batch}, best of {a.rounds}")
            results.append(await RUNS[engine](a, Path(tmp)))
    show(results)
    write(a.json, {"results": results, "peak_rss_mb": peak_rss_mb(), "python": sys.version.split()[0]})
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(asyncio.run(main()))
