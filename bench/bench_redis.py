"""Redis engine vs raw redis-py, in one run on one private redis-server.

    .venv/bin/python bench/bench_redis.py [--events 50000] [--batch 500] [--rounds 3]

Three measures, each the best of ``--rounds``:

* **publish**: ``RedisLog.append`` in batches of ``--batch`` vs a raw redis-py
  pipeline of the same XADDs (same fields, same bodies, same batch size);
* **consume**: a subscription's ``next_batch(--batch)`` + ``ack_many`` of it
  (the engine pipelines the XACKs with its next XREADGROUP) vs a raw
  XREADGROUP COUNT ``--batch`` + one XACK of the batch's ids, in a loop;
* **latency**: one event published, then handled (ping-pong, so nothing
  queues), p50 and p99: ``append`` -> ``sub.next()`` + ack vs XADD ->
  XREADGROUP BLOCK + XACK.

Events are ~200-byte bodies (as in FACTS.md) over 16 keys.  The server runs
with the harness's settings (AOF, fsync every second) on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table

from common import Calls, add_report_args, figures, sweep_events, sweep_point, sweep_sizes, write
from creative_hub.log import Entry, open_log
from creative_hub.log.redis import RedisLog
from creative_hub.testing.servers.redis import RedisServer

KEYS = [f"creator-{i}" for i in range(16)]


def make_entries(n: int, tag: str) -> list[Entry]:
    out = []
    for i in range(n):
        eid = uuid.uuid4().hex
        key = KEYS[i % len(KEYS)]
        body = json.dumps(
            {"specversion": "1.0", "id": eid, "source": "/bench", "type": "creative.bench.tick",
             "partitionkey": key, "data": {"n": i, "tag": tag, "pad": "x" * 40}}
        ).encode()  # fmt: skip
        out.append(Entry(eid, key, body, hashlib.sha256(body).hexdigest()[:32], creator=key))
    return out


# -- publish -------------------------------------------------------------------
async def publish_hub(
    log: RedisLog, entries: list[Entry], batch: int, topic: str, calls: Calls | None = None
) -> float:
    calls = calls or Calls()
    for i in range(0, len(entries), batch):
        with calls.timed():
            await log.append(topic, entries[i : i + batch])
    return calls.total


async def publish_raw(
    r: aioredis.Redis, entries: list[Entry], batch: int, stream: str, calls: Calls | None = None
) -> float:
    calls = calls or Calls()
    for i in range(0, len(entries), batch):
        with calls.timed():
            pipe = r.pipeline(transaction=False)
            for e in entries[i : i + batch]:
                fields = {"id": e.id, "key": e.key, "digest": e.digest, "creator": e.creator, "event": e.body}
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
            await pipe.execute()
    return calls.total


async def sweep(log: RedisLog, r: aioredis.Redis, sizes: list[int], cap: int) -> list[dict[str, object]]:
    out = []
    for b in sizes:
        n = sweep_events(b, cap)
        data = [make_entries(n, f"s{b}-{k}") for k in range(2)]

        async def raw(k: int, calls: Calls, b: int = b, data: list[list[Entry]] = data) -> None:
            await publish_raw(r, data[k], b, f"raw:sweep{uuid.uuid4().hex[:8]}", calls)

        async def hub(k: int, calls: Calls, b: int = b, data: list[list[Entry]] = data) -> None:
            await publish_hub(log, data[k], b, f"bench.sweep{uuid.uuid4().hex[:8]}", calls)

        out.append(await sweep_point(b, n, raw, hub))
    return out


# -- consume -------------------------------------------------------------------
async def consume_hub(log: RedisLog, topic: str, n: int, batch: int) -> float:
    handled = 0
    async with log.subscribe(topic, f"g-{uuid.uuid4().hex[:6]}", batch=batch) as sub:
        t0 = time.perf_counter()
        while handled < n:
            ds = await sub.next_batch(batch, timeout=10)
            for d in ds:
                handled += len(d.body) > 0
            await sub.ack_many(ds)
        elapsed = time.perf_counter() - t0
    return elapsed


async def consume_raw(r: aioredis.Redis, stream: str, n: int, batch: int) -> float:
    group = f"g-{uuid.uuid4().hex[:6]}"
    await r.xgroup_create(stream, group, "0")
    handled = 0
    t0 = time.perf_counter()
    while handled < n:
        reply = await r.xreadgroup(group, "c", {stream: ">"}, count=batch, block=1000)
        entries = reply[stream.encode()][0] if isinstance(reply, dict) else reply[0][1]
        ids = []
        for sid, fields in entries:
            handled += len(fields[b"event"]) > 0
            ids.append(sid)
        await r.xack(stream, group, *ids)
    return time.perf_counter() - t0


# -- latency -------------------------------------------------------------------
# Both ways: a handler task waits for records (the hub: sub.next(); raw:
# XREADGROUP BLOCK), the producer publishes one event and waits until the
# handler has it, so nothing queues.  The handler acks after signalling.
async def ping_pong(
    publish: Callable[[Entry], Awaitable[object]], got: asyncio.Queue[float], n: int
) -> list[float]:
    out = []
    for e in make_entries(n, "lat"):
        t0 = time.perf_counter()
        await publish(e)
        out.append(await got.get() - t0)
    return out


async def latency_hub(log: RedisLog, n: int) -> list[float]:
    topic = f"bench.lat{uuid.uuid4().hex[:8]}"
    got: asyncio.Queue[float] = asyncio.Queue()
    stop = asyncio.Event()
    async with log.subscribe(topic, "lat", batch=16) as sub:

        async def handler() -> None:
            while not stop.is_set():
                try:
                    d = await sub.next(timeout=0.2)
                except TimeoutError:
                    continue
                got.put_nowait(time.perf_counter())
                await d.ack()

        task = asyncio.create_task(handler())
        await ping_pong(lambda e: log.append(topic, [e]), got, 10)  # warm up
        out = await ping_pong(lambda e: log.append(topic, [e]), got, n)
        stop.set()
        await task
    return out


async def latency_raw(r: aioredis.Redis, n: int) -> list[float]:
    stream = f"raw:lat{uuid.uuid4().hex[:8]}"
    await r.xgroup_create(stream, "lat", "$", mkstream=True)
    got: asyncio.Queue[float] = asyncio.Queue()
    stop = asyncio.Event()

    async def handler() -> None:
        while not stop.is_set():
            reply = await r.xreadgroup("lat", "c", {stream: ">"}, count=16, block=200)
            if not reply:
                continue
            entries = reply[stream.encode()][0] if isinstance(reply, dict) else reply[0][1]
            for _ in entries:
                got.put_nowait(time.perf_counter())
            await r.xack(stream, "lat", *[sid for sid, _ in entries])

    def publish(e: Entry) -> Awaitable[object]:
        fields = {"id": e.id, "key": e.key, "digest": e.digest, "creator": e.creator, "event": e.body}
        return r.xadd(stream, fields)  # type: ignore[arg-type]

    task = asyncio.create_task(handler())
    await ping_pong(publish, got, 10)
    out = await ping_pong(publish, got, n)
    stop.set()
    await task
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


async def main(argv: list[str] | None = None) -> None:
    pub_hub: list[float]
    pub_raw: list[float]
    con_hub: list[float]
    con_raw: list[float]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pings", type=int, default=2000, help="events in the latency test")
    add_report_args(p)
    a = p.parse_args(argv)
    sweep_points: list[dict[str, object]] = []
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            log = open_log(server.url)
            assert isinstance(log, RedisLog)
            await log.open()
            raw = aioredis.Redis.from_url(server.url)
            try:
                n, batch, rounds = a.events, a.batch, a.rounds
                console.print(f"redis-server on {server.url}: {n} events, batch {batch}, best of {rounds}")
                hub_topics = [f"bench.pub{uuid.uuid4().hex[:8]}" for _ in range(rounds)]
                raw_streams = [f"raw:pub{uuid.uuid4().hex[:8]}" for _ in range(rounds)]
                data = [make_entries(n, f"r{r}") for r in range(rounds)]
                # Rounds alternate raw and hub, so a busy neighbour slows both alike.
                pub_raw, pub_hub, con_raw, con_hub = [], [], [], []  # seconds per round
                for r in range(rounds):
                    pub_raw.append(await publish_raw(raw, data[r], batch, raw_streams[r]))
                    pub_hub.append(await publish_hub(log, data[r], batch, hub_topics[r]))
                for r in range(rounds):
                    # Consume what was published: each round a new group over a full topic.
                    con_raw.append(await consume_raw(raw, raw_streams[r], n, batch))
                    con_hub.append(await consume_hub(log, hub_topics[r], n, batch))
                lat_raw = await latency_raw(raw, a.pings)
                lat_hub = await latency_hub(log, a.pings)
                if a.sweep:
                    sweep_points = await sweep(log, raw, sweep_sizes(a.sweep), n)
            finally:
                await raw.aclose()
                await log.close()
        finally:
            server.stop()

    table = Table(title="creative-hub Redis engine vs raw redis-py (same run, same server)")
    table.add_column("measure")
    table.add_column("hub engine", justify="right")
    table.add_column("raw redis-py", justify="right")
    table.add_column("hub / raw", justify="right")
    table.add_column("target", justify="right")
    # Best of the rounds, each side (the least disturbed run of each).
    ph, pr, ch, cr = min(pub_hub), min(pub_raw), min(con_hub), min(con_raw)
    table.add_row(
        f"publish, batches of {batch} (events/s)", f"{n / ph:,.0f}", f"{n / pr:,.0f}", f"{pr / ph:.2f}x",
        ">= 0.8x",
    )  # fmt: skip
    table.add_row(
        f"consume + ack, batches of {batch} (events/s)", f"{n / ch:,.0f}", f"{n / cr:,.0f}",
        f"{cr / ch:.2f}x", ">= 0.8x",
    )  # fmt: skip
    for q in (50, 99):
        h, r = pct(lat_hub, q), pct(lat_raw, q)
        table.add_row(
            f"publish -> handler p{q} (ms)", f"{h:.3f}", f"{r:.3f}", f"{h / r:.2f}x",
            "<= 2x" if q == 99 else "",
        )  # fmt: skip
    console.print(table)
    console.print(f"python {sys.version.split()[0]}, redis-py {aioredis.__name__} "
                  f"{__import__('redis').__version__}, hiredis: {_has_hiredis()}")  # fmt: skip
    write(a.json, figures(
        "redis", events=n, batch=batch, publish=(n / pr, n / ph), consume=(n / cr, n / ch),
        latency=(lat_raw, lat_hub), sweep=sweep_points,
        notes="raw: redis-py (hiredis) XADD pipelined per batch; XREADGROUP + one XACK per batch",
    ))  # fmt: skip


def _has_hiredis() -> bool:
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    asyncio.run(main())
