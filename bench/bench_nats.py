"""NATS engine vs raw nats-py JetStream, measured in one run on one server.

    .venv/bin/python bench/bench_nats.py [--events 20000] [--latency 1000] [--rounds 3]

Starts its own nats-server (JetStream, file store, loopback, temp dir) and
measures, for 200-byte events:

* publish: the engine's ``append`` in batches of 1000 vs raw ``publish_async``
  (with ``Nats-Msg-Id``) awaiting the acks of each 1000 -- the same batching;
* consume: a one-member group (``next_batch(500)`` + ``ack_many``) vs a raw
  durable pull consumer (``fetch(500)`` + ``ack()`` of each message);
* publish-to-handler latency: one event at a time (append / ``js.publish``),
  handed to a waiting consumer (group ``next()`` / raw ``fetch(1)``); p50, p99.

Throughputs are the best of ``--rounds``, raw and hub alternating.
Targets (issue 5): publish >= 0.8x raw, consume >= 0.8x raw, p99 <= 2x raw.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import nats
from nats.js import api
from rich.console import Console
from rich.table import Table

from common import Calls, add_report_args, figures, sweep_events, sweep_point, sweep_sizes, write
from creative_hub.log import Entry, open_log
from creative_hub.testing.servers.nats import NatsServer

BODY = 200  # bytes per event
BATCH = 1000  # events per append / per ack wait


def entries(n: int, tag: str) -> list[Entry]:
    out = []
    for i in range(n):
        eid = uuid.uuid4().hex
        body = (f'{{"id":"{eid}","n":{i},"tag":"{tag}","pad":"'.encode()).ljust(BODY - 2, b"x") + b'"}'
        out.append(Entry(eid, f"key{i % 16}", body, hashlib.sha256(body).hexdigest()[:32], creator="bench"))
    return out


async def raw_publish(
    js: nats.js.JetStreamContext,
    subject: str,
    es: list[Entry],
    batch: int = BATCH,
    calls: Calls | None = None,
) -> float:
    calls = calls or Calls()
    for k in range(0, len(es), batch):
        with calls.timed():
            futs = [
                await js.publish_async(subject, e.body, headers={"Nats-Msg-Id": e.id})
                for e in es[k : k + batch]
            ]
            await asyncio.gather(*futs)
    return len(es) / calls.total


async def hub_publish(
    log: object, topic: str, es: list[Entry], batch: int = BATCH, calls: Calls | None = None
) -> float:
    calls = calls or Calls()
    for k in range(0, len(es), batch):
        with calls.timed():
            await log.append(topic, es[k : k + batch])  # type: ignore[attr-defined]
    return len(es) / calls.total


async def sweep(
    log: object, js: nats.js.JetStreamContext, topic: str, sizes: list[int], cap: int
) -> list[dict[str, object]]:
    out = []
    for b in sizes:
        n = sweep_events(b, cap)
        data = [entries(n, f"s{b}-{k}") for k in range(2)]

        async def raw(k: int, calls: Calls, b: int = b, data: list[list[Entry]] = data) -> None:
            await raw_publish(js, f"raw.sweep{b}x{k}", data[k], b, calls)

        async def hub(k: int, calls: Calls, b: int = b, data: list[list[Entry]] = data) -> None:
            await hub_publish(log, f"{topic}.sweep{b}x{k}", data[k], b, calls)

        out.append(await sweep_point(b, n, raw, hub))
    return out


async def raw_consume(
    js: nats.js.JetStreamContext, stream: str, subject: str, n: int, name: str = "rawc"
) -> float:
    await js.add_consumer(
        stream,
        api.ConsumerConfig(
            durable_name=name,
            ack_policy=api.AckPolicy.EXPLICIT,
            filter_subject=subject,
            max_ack_pending=20_000,
        ),
    )
    psub = await js.pull_subscribe_bind(name, stream)
    got = 0
    t0 = time.perf_counter()
    while got < n:
        for m in await psub.fetch(500, timeout=5):
            await m.ack()
            got += 1
    return n / (time.perf_counter() - t0)


async def hub_consume(log: object, topic: str, n: int) -> float:
    async with log.subscribe(topic, "bench", ack_timeout=30, batch=500) as sub:  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        got = 0
        while got < n:
            ds = await sub.next_batch(500, timeout=30)
            got += len(ds)
            await sub.ack_many(ds)
        return n / (time.perf_counter() - t0)


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1] * 1000  # ms


async def raw_latency(js: nats.js.JetStreamContext, stream: str, subject: str, n: int) -> list[float]:
    await js.add_consumer(
        stream,
        api.ConsumerConfig(
            durable_name="rawlat",
            ack_policy=api.AckPolicy.EXPLICIT,
            filter_subject=subject,
            deliver_policy=api.DeliverPolicy.NEW,
        ),
    )
    psub = await js.pull_subscribe_bind("rawlat", stream)
    sent: dict[str, float] = {}
    lat: list[float] = []

    async def consume() -> None:
        while len(lat) < n:
            try:
                msgs = await psub.fetch(1, timeout=5)
            except nats.errors.TimeoutError:
                continue
            for m in msgs:
                lat.append(time.perf_counter() - sent[m.headers["Nats-Msg-Id"]])  # type: ignore[index]
                await m.ack()

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    for e in entries(n, "rawlat"):
        sent[e.id] = time.perf_counter()
        await js.publish(subject, e.body, headers={"Nats-Msg-Id": e.id})
        await asyncio.sleep(0.001)
    await asyncio.wait_for(task, 60)
    return lat


async def hub_latency(log: object, topic: str, n: int) -> list[float]:
    sent: dict[str, float] = {}
    lat: list[float] = []
    from creative_hub.log import Start

    async with log.subscribe(topic, "latency", ack_timeout=30, start=Start.LATEST) as sub:  # type: ignore[attr-defined]

        async def consume() -> None:
            while len(lat) < n:
                d = await sub.next(timeout=30)
                lat.append(time.perf_counter() - sent[d.id])
                await d.ack()

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        for e in entries(n, "hublat"):
            sent[e.id] = time.perf_counter()
            await log.append(topic, [e])  # type: ignore[attr-defined]
            await asyncio.sleep(0.001)
        await asyncio.wait_for(task, 60)
    return lat


async def main(
    events: int, latency: int, rounds: int = 3, sweep_text: str = "", json_path: Path | None = None
) -> None:
    sweep_points: list[dict[str, object]] = []
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "nats").start()
        try:
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            await js.add_stream(
                api.StreamConfig(name="RAW", subjects=["raw.>"], storage=api.StorageType.FILE)
            )
            log = open_log(server.url)
            await log.open()
            topic = f"bench.t{uuid.uuid4().hex[:8]}"
            # Warm up both paths (connections, stream creation, JIT-free but caches).
            await raw_publish(js, "raw.warm", entries(2000, "warm"))
            await hub_publish(log, f"{topic}.warm", entries(2000, "warm"))
            rows = []
            # Alternate raw and hub runs so a noisy moment hurts both alike; best of rounds.
            raw_pubs, hub_pubs, raw_cons, hub_cons = [], [], [], []
            for r in range(rounds):
                raw_pubs.append(await raw_publish(js, f"raw.pub{r}", entries(events, "raw")))
                hub_pubs.append(await hub_publish(log, f"{topic}.r{r}", entries(events, "hub")))
            for r in range(rounds):
                raw_cons.append(await raw_consume(js, "RAW", f"raw.pub{r}", events, f"rawc{r}"))
                hub_cons.append(await hub_consume(log, f"{topic}.r{r}", events))
                console.log(
                    f"round {r}: publish raw {raw_pubs[r]:,.0f}/s hub {hub_pubs[r]:,.0f}/s; "
                    f"consume raw {raw_cons[r]:,.0f}/s hub {hub_cons[r]:,.0f}/s"
                )
            raw_pub, hub_pub, raw_con, hub_con = max(raw_pubs), max(hub_pubs), max(raw_cons), max(hub_cons)
            rows.append(("publish (events/s)", raw_pub, hub_pub, hub_pub / raw_pub, ">= 0.8"))
            rows.append(("consume (events/s)", raw_con, hub_con, hub_con / raw_con, ">= 0.8"))
            raw_lat = await raw_latency(js, "RAW", "raw.lat", latency)
            console.log("raw latency done")
            hub_lat = await hub_latency(log, f"{topic}.lat", latency)
            for q in (50, 99):
                r, h = pct(raw_lat, q), pct(hub_lat, q)
                rows.append((f"publish-to-handler p{q} (ms)", r, h, h / r, "<= 2" if q == 99 else ""))
            if sweep_text:
                sweep_points = await sweep(log, js, topic, sweep_sizes(sweep_text), events)
            await log.close()
            await nc.close()
        finally:
            server.stop()
    table = Table(title=f"NATS engine vs raw nats-py JetStream ({events} events of {BODY} B, one run)")
    for col in ("measure", "raw nats-py", "creative-hub", "ratio", "target"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    for name, raw, hub, ratio, target in rows:
        table.add_row(
            name,
            f"{raw:,.2f}" if raw < 100 else f"{raw:,.0f}",
            f"{hub:,.2f}" if hub < 100 else f"{hub:,.0f}",
            f"{ratio:.2f}x",
            target,
        )
    console.print(table)
    write(json_path, figures(
        "nats", events=events, batch=BATCH, publish=(raw_pub, hub_pub), consume=(raw_con, hub_con),
        latency=(raw_lat, hub_lat), sweep=sweep_points,
        notes="raw: nats-py JetStream publish_async, acks awaited per batch; pull fetch + ack",
    ))  # fmt: skip


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--latency", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    add_report_args(p)
    a = p.parse_args()
    asyncio.run(main(a.events, a.latency, a.rounds, a.sweep, a.json))
