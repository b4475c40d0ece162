"""Where the Kafka engine's publish path spends a ``Hub.publish`` call: a timeline, not a profile.

    .venv/bin/python bench/kafka_waits.py [--events 20000] [--batch 500] [--rounds 3] [--json PATH]
                                          [--options client.compression.type=none]

``Hub.publish`` is called with ``--batch`` dict events at a time, one call after
the other (as ``bench_peers.py`` does), on a private Kafka broker.  Each call is
split by ``time.perf_counter`` stamps into: the hub layer (``Hub.publish`` less
the engine's ``append``), the writer's dedup catch-up (the broker's end offsets),
planning, producing the records into librdkafka's queue (Python), and waiting for
the round's delivery reports (linger + broker round trip + acks).  The stamps are
put around the engine's own methods for the run only; nothing of the engine changes.
Mean milliseconds per call of the best round, and the same in microseconds per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench_peers import hub_events
from creative_hub.hub import Hub
from creative_hub.log import open_log
from creative_hub.log.kafka import writer as kwriter
from creative_hub.testing.servers.kafka import KafkaServer

Spent = defaultdict[str, float]


def instrument(spent: Spent) -> None:
    """Wrap the writer's steps so each adds its wall time to ``spent``."""
    # What a round waits for its catch-up: ``_ends`` (which may find an early one done).
    name = "_ends" if hasattr(kwriter.TopicWriter, "_ends") else "_catch_up"
    catch_up = getattr(kwriter.TopicWriter, name)
    produce = kwriter.Producer.produce
    round_ = kwriter.TopicWriter._round

    async def timed_catch_up(self: Any, *args: Any) -> list[int]:
        t = time.perf_counter()
        try:
            return await catch_up(self, *args)  # type: ignore[no-any-return]
        finally:
            spent["catch_up"] += time.perf_counter() - t

    async def timed_round(self: Any, calls: Any) -> None:
        t = time.perf_counter()
        try:
            await round_(self, calls)
        finally:
            spent["round"] += time.perf_counter() - t
            spent["rounds"] += 1

    async def timed_produce(self: Any, topic: str, entries: Any) -> Any:
        # Split produce() at its await: the loop that queues records, then the wait.
        t = time.perf_counter()
        task = asyncio.ensure_future(produce(self, topic, entries))
        await asyncio.sleep(0)  # the task runs its produce loop up to its first await
        queued = time.perf_counter()
        result = await task
        end = time.perf_counter()
        spent["produce_queue"] += queued - t
        spent["produce_wait"] += end - queued
        return result

    setattr(kwriter.TopicWriter, name, timed_catch_up)
    kwriter.TopicWriter._round = timed_round  # type: ignore[method-assign]
    kwriter.Producer.produce = timed_produce  # type: ignore[method-assign]


async def run(a: argparse.Namespace, url: str) -> dict[str, Any]:
    spent: Spent = defaultdict(float)
    instrument(spent)
    log = open_log(url)
    await log.open()
    append = log.append

    async def timed_append(topic: str, entries: Any) -> Any:
        t = time.perf_counter()
        try:
            return await append(topic, entries)
        finally:
            spent["append"] += time.perf_counter() - t

    log.append = timed_append  # type: ignore[method-assign]
    best: dict[str, float] | None = None
    try:
        hub = Hub(log, principal="bench")
        await hub.publish(hub_events(1, "warm-up"))
        for r in range(a.rounds):
            events = hub_events(a.events, f"r{r}")
            spent.clear()
            t = time.perf_counter()
            for i in range(0, len(events), a.batch):
                await hub.publish(events[i : i + a.batch])
            spent["total"] = time.perf_counter() - t
            if best is None or spent["total"] < best["total"]:
                best = dict(spent)
    finally:
        await log.close()
    assert best is not None
    calls = -(-a.events // a.batch)
    b = best
    parts = {
        "hub layer (Hub.publish less append)": b["total"] - b["append"],
        "engine append less its round": b["append"] - b["round"],
        "dedup catch-up, waited for": b["catch_up"],
        "plan + index + receipts": b["round"] - b["catch_up"] - b["produce_queue"] - b["produce_wait"],
        "produce into librdkafka (Python loop)": b["produce_queue"],
        "wait for delivery reports": b["produce_wait"],
    }
    out = {
        "events": a.events,
        "batch": a.batch,
        "events_per_s": a.events / b["total"],
        "rounds_per_call": b["rounds"] / calls,
        "ms_per_call": {k: 1000 * v / calls for k, v in parts.items()},
        "us_per_event": {k: 1e6 * v / a.events for k, v in parts.items()},
    }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path)
    p.add_argument("--options", default="", help="more URL options, e.g. client.compression.type=none")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = KafkaServer(Path(tmp) / "kafka")
        server.start()
        try:
            url = server.url + (f"&{a.options}" if a.options else "")
            out = asyncio.run(run(a, url))
        finally:
            server.stop()
    print(f"Hub.publish on Kafka, {a.batch} events per call: {out['events_per_s']:,.0f} events/s, "
          f"{out['rounds_per_call']:.2f} writer rounds per call")  # fmt: skip
    for k, ms in out["ms_per_call"].items():
        print(f"  {k:40s} {ms:7.2f} ms/call  {out['us_per_event'][k]:6.2f} us/event")
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
