"""Where ``hub.subscribe`` spends its time per engine: the engine's consume, the hub's, raw on its records.

    .venv/bin/python bench/consume_path.py [--engines sqlite,redis,kafka,nats] [--events 20000]
                                           [--rounds 5] [--batch 500] [--profile] [--json PATH]

``--events`` events are published once with ``Hub.publish`` (as in
``bench_peers.py``: one principal, so one partition key), then every round
reads all of them with a new group, the sides alternating, best round of each:

* ``engine``: the engine's own group (``log.subscribe``: ``next_batch`` +
  ``ack_many``, the handler looks at each body);
* ``hub``: ``hub.subscribe``, the same calls, each event decoded and checked;
* ``hub_batches``: ``hub.subscribe``'s ``fetch()`` + ``for`` + one ``ack()``;
* ``hub_unchecked``: ``hub.subscribe(validate=False)``: decoded, not checked
  (what ``validate_event`` costs);
* ``raw`` (Redis, Kafka): the fair raw consume of ``bench_<engine>.py`` over
  the very records the hub reads (its own group on the hub's stream or topic).

Per side: events/s and microseconds per event of wall time (from the first
batch, as the other benchmarks), then, over the whole side -- joining the
group, consuming, leaving, the same for every side, raw included --
microseconds per event of this process's CPU (every thread: the Kafka
consumer's and SQLite's database threads too), of the broker process's
CPU, and of the garbage collector (``gc.callbacks``; full passes over the
heap counted apart).  Then the
hub's decode-and-gate alone on 500 of the stored bodies (best of 200):
``decode_event`` and ``validate_event`` per event.  ``--profile`` adds the
cProfile of one ``hub`` round (the event loop's thread only).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench_peers import TOPIC, hub_events
from common import write
from creative_hub.event import decode_event, validate_event
from creative_hub.hub import Hub
from creative_hub.log import Log, open_log
from creative_hub.testing.servers import Server, start_server

console = Console(width=150)


class Clock:
    """Wall, this process's CPU, the broker's CPU and the collector's time over one round."""

    def __init__(self, server: Server | None) -> None:
        self.pid = server.proc.pid if server is not None and server.proc is not None else None
        self.gc_s = 0.0
        self.full = 0
        self._gc_t0 = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        else:
            self.gc_s += time.perf_counter() - self._gc_t0
            self.full += info["generation"] == 2

    def broker_cpu(self) -> float:
        if self.pid is None:
            return 0.0
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def start(self) -> tuple[float, float, float]:
        self.gc_s, self.full = 0.0, 0
        return time.perf_counter(), time.process_time(), self.broker_cpu()

    def stop(self, t0: tuple[float, float, float]) -> dict[str, float]:
        return {
            "wall": time.perf_counter() - t0[0],
            "cpu": time.process_time() - t0[1],
            "broker_cpu": self.broker_cpu() - t0[2],
            "gc": self.gc_s,
            "full_gc": self.full,
        }


Round = Callable[[], Awaitable[dict[str, float]]]


async def timed_loop(
    clock: Clock, sub: Any, n: int, batch: int, look: Callable[[Any], object]
) -> dict[str, float]:
    """``next_batch`` + ``ack_many`` until ``n``: wall time from the first batch,
    CPU and the collector over the whole subscription (joining and leaving too)."""
    got, first = 0, 0.0
    t0 = clock.start()
    async with sub:
        while got < n:
            ds = await sub.next_batch(batch, timeout=30)
            first = first or time.perf_counter()
            for d in ds:
                look(d)
            got += len(ds)
            await sub.ack_many(ds)
        wall = time.perf_counter() - first
    return {**clock.stop(t0), "wall": wall}


async def timed_batches(clock: Clock, sub: Any, n: int, batch: int) -> dict[str, float]:
    got, first = 0, 0.0
    t0 = clock.start()
    async with sub:
        while got < n:
            b = await sub.fetch(batch, timeout=30)
            first = first or time.perf_counter()
            for d in b:
                d.event.data  # noqa: B018 -- the handler's work: look at the event
            got += len(b)
            await b.ack()
        wall = time.perf_counter() - first
    return {**clock.stop(t0), "wall": wall}


def raw_side(engine: str, log: Log, server: Server, clock: Clock, n: int, batch: int) -> Round | None:
    """The fair raw consume of ``bench_<engine>.py``, over the hub's own stream or topic."""
    if engine == "kafka":
        from bench_kafka import raw_consume

        ktopic = log.ktopic(TOPIC)  # type: ignore[attr-defined]

        async def kafka_raw() -> dict[str, float]:
            t0 = clock.start()  # raw_consume's wall is from its first batch; CPU over the whole call
            wall = await asyncio.to_thread(raw_consume, server.bootstrap, ktopic, n, batch)  # type: ignore[attr-defined]
            return {**clock.stop(t0), "wall": wall}

        return kafka_raw
    if engine == "redis":
        import redis.asyncio as aioredis

        from bench_redis import consume_raw

        async def redis_raw() -> dict[str, float]:
            r = aioredis.Redis.from_url(server.url)
            try:
                parts = await log.partitions(TOPIC) or 1  # type: ignore[attr-defined]
                streams = [log.stream(TOPIC, p) for p in range(parts)]  # type: ignore[attr-defined]
                lengths = [await r.xlen(s) for s in streams]
                stream = streams[lengths.index(max(lengths))]  # one principal: one partition key
                t0 = clock.start()
                wall = await consume_raw(r, stream, n, batch)
                return {**clock.stop(t0), "wall": wall}
            finally:
                await r.aclose()

        return redis_raw
    return None


def gate_costs(bodies: list[bytes]) -> dict[str, float]:
    """``decode_event`` and ``validate_event`` alone, microseconds per event (best of 200)."""
    events = [decode_event(b) for b in bodies]
    out: dict[str, float] = {}
    for name, run in (
        ("decode_event", lambda: [decode_event(b) for b in bodies]),
        ("validate_event", lambda: [validate_event(e) for e in events]),
    ):
        best = min(_seconds(run) for _ in range(200))
        out[name] = best / len(bodies) * 1e6
    return out


def _seconds(run: Callable[[], object]) -> float:
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


async def bench_engine(engine: str, a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    server = None if engine == "sqlite" else start_server(engine, tmp)
    url = f"sqlite:///{tmp}/hub.db" if server is None else server.url
    log = open_log(url)
    await log.open()
    clock = Clock(server)
    n, batch = a.events, a.batch
    try:
        hub = Hub(log, principal="bench")
        events = hub_events(n, "c")
        for i in range(0, n, 500):
            await hub.publish(events[i : i + 500])
        del events  # as bench_peers.py: nothing of the publishing stays on the heap

        def group() -> str:
            return f"g{uuid.uuid4().hex[:8]}"

        def body(d: Any) -> object:
            return d.body

        def data(d: Any) -> object:
            return d.event.data

        sides: dict[str, Round] = {
            "engine": lambda: timed_loop(clock, log.subscribe(TOPIC, group(), batch=batch), n, batch, body),
            "hub": lambda: timed_loop(clock, hub.subscribe(TOPIC, group(), batch=batch), n, batch, data),
            "hub_batches": lambda: timed_batches(clock, hub.subscribe(TOPIC, group(), batch=batch), n, batch),
            "hub_unchecked": lambda: timed_loop(
                clock, hub.subscribe(TOPIC, group(), batch=batch, validate=False), n, batch, data
            ),
        }
        raw = raw_side(engine, log, server, clock, n, batch) if server is not None else None
        if raw is not None:
            sides["raw"] = raw
        best: dict[str, dict[str, float]] = {}
        for _ in range(a.rounds):
            for name, side in sides.items():
                got = await side()
                if name not in best or got["wall"] < best[name]["wall"]:
                    best[name] = got
        bodies = [r.body async for r in _first(log, 500)]
        out: dict[str, Any] = {"engine": engine, "events": n, "batch": batch, "sides": best}
        out["gate_us"] = gate_costs(bodies)
        if a.profile:
            out["profile"] = await profile(sides["hub"])
        return out
    finally:
        gc.callbacks.remove(clock._on_gc)
        await log.close()
        if server is not None:
            server.stop()


async def _first(log: Log, k: int) -> Any:
    got = 0
    async for r in log.read(TOPIC):
        yield r
        got += 1
        if got >= k:
            return


async def profile(side: Round) -> str:
    prof = cProfile.Profile()
    prof.enable()
    await side()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(18)
    return text.getvalue()


def show(results: list[dict[str, Any]]) -> None:
    table = Table(title="hub.subscribe: where the time goes (best round of each side; us per event)")
    for col in ("engine", "side", "events/s", "wall", "process CPU", "broker CPU", "GC (full passes)"):
        table.add_column(col, justify="left" if col in ("engine", "side") else "right")
    for res in results:
        n = res["events"]
        for side, f in res["sides"].items():
            us = {k: f[k] / n * 1e6 for k in ("wall", "cpu", "broker_cpu", "gc")}
            table.add_row(
                res["engine"], side, f"{n / f['wall']:,.0f}", f"{us['wall']:.2f}", f"{us['cpu']:.2f}",
                f"{us['broker_cpu']:.2f}" if res["engine"] != "sqlite" else "-",
                f"{us['gc']:.2f} ({f['full_gc']:.0f})",
            )  # fmt: skip
    console.print(table)
    for res in results:
        gate = ", ".join(f"{k} {v:.2f} us" for k, v in res["gate_us"].items())
        console.print(f"{res['engine']}: per event, alone: {gate}")
        if "profile" in res:
            console.print(res["profile"])


async def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", default="sqlite,redis,kafka,nats")
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--profile", action="store_true", help="also cProfile one hub round per engine")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    a = p.parse_args(argv)
    results = []
    for engine in a.engines.split(","):
        with tempfile.TemporaryDirectory(prefix=f"consume-path-{engine}-") as tmp:
            console.print(f"[bold]{engine}[/]: {a.events} events, batch {a.batch}, best of {a.rounds}")
            results.append(await bench_engine(engine, a, Path(tmp)))
    show(results)
    write(a.json, {"results": results, "python": sys.version.split()[0], "load": os.getloadavg()})
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
