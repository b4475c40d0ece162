"""The Kafka engine's own Python per record, and its early catch-up's wait: small, repeatable measures.

    .venv/bin/python bench/kafka_micro.py [--records 200000] [--rounds 5] [--requests 200] [--prepare-ms 2]

Three measures, for telling a change of the engine's code from this machine's noise
(wall figures of whole runs move by up to 2x here; these move by a few percent):

* **group**: a consumer-group member's bookkeeping per record, without a broker --
  confluent ``Message`` objects made up front, handed to the member as its consumer
  thread would (``_on_messages``), handed out (``_take``), each ``body`` read, acked
  (``ack_many``); microseconds per record of each step, best of ``--rounds``;
* **writer**: a produce round's Python without a broker -- the plan, the dedup index,
  positions and receipts (``TopicWriter._round`` with a producer that only numbers
  the records) -- in calls of 500; CPU microseconds per entry, best of ``--rounds``;
* **early catch-up** (needs the test harness's Kafka broker, started here): the
  ListOffsets request ``Hub.publish`` sends ahead (``KafkaLog.will_append``), asked
  through the admin client (what the writer uses) and through a reader's thread (what
  it used before), each followed by ``--prepare-ms`` of CPU-bound Python as the hub's
  preparing is; the wait left after the prepare, p50 and p90 of ``--requests``.
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
from typing import Any

import confluent_kafka as ck

from creative_hub.log import Entry, open_log
from creative_hub.log.kafka import KafkaLog
from creative_hub.log.kafka import writer as kwriter
from creative_hub.log.kafka.delivery import Part
from creative_hub.log.kafka.read import OFFSET_LATEST
from creative_hub.testing.servers.kafka import KafkaServer

BODY = b'{"specversion":"1.0","id":"x","data":{"pad":"' + b"x" * 150 + b'"}}'


async def group(records: int, rounds: int, batch: int = 1000, partitions: int = 4) -> dict[str, float]:
    log = KafkaLog.from_url(f"kafka://127.0.0.1:1?partitions={partitions}")  # never connects
    log._admin = object()  # type: ignore[assignment]  # counts as open: nothing here talks to a broker
    sub = log.subscribe("bench.micro", "g", batch=batch, ack_timeout=60)
    sub._loop = asyncio.get_running_loop()
    best: dict[str, float] = {}
    for _ in range(rounds):
        sub._parts = {p: Part(p, 0, 0, -1) for p in range(partitions)}
        for part in sub._parts.values():
            part.fetched = 0
        sub._ready.clear()
        sub._inflight = 0
        fetches, offs = [], [0] * partitions
        for i in range(records // batch):  # runs of one partition, as librdkafka hands them over
            p = i % partitions
            fetches.append(
                [ck.Message(topic="bench.micro", partition=p, offset=o, key=b"k", value=BODY)
                 for o in range(offs[p], offs[p] + batch)]
            )  # fmt: skip
            offs[p] += batch
        spent = dict.fromkeys(("_on_messages", "_take", "body", "ack_many"), 0.0)
        for msgs in fetches:
            t0 = time.perf_counter()
            sub._on_messages(msgs)
            t1 = time.perf_counter()
            ds = sub._take(batch)
            t2 = time.perf_counter()
            for d in ds:
                d.body  # noqa: B018 -- the handler's look at the record
            t3 = time.perf_counter()
            await sub.ack_many(ds)
            t4 = time.perf_counter()
            for k, v in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                spent[k] += v
        if sub._commit_handle is not None:
            sub._commit_handle.cancel()
            sub._commit_handle = None
        for k, v in spent.items():
            best[k] = min(best.get(k, float("inf")), 1e6 * v / records)
    best["total"] = sum(best.values())
    return best


class _Numbered:
    """A producer that stores nothing: the round's records get offsets 0, 1, 2... on partition 0."""

    def __init__(self) -> None:
        self.next = 0

    async def produce(self, topic: str, entries: list[Entry]) -> Any:
        n, o = len(entries), self.next
        self.next += n
        return argparse.Namespace(
            disorder=False, errors=[None] * n, partitions=[0] * n, offsets=list(range(o, o + n))
        )


async def writer(records: int, rounds: int, batch: int = 500) -> float:
    best = float("inf")
    loop = asyncio.get_running_loop()
    for _ in range(rounds):
        log = KafkaLog.from_url("kafka://127.0.0.1:1?partitions=4")
        producer = _Numbered()
        log.producer = lambda producer=producer: producer  # type: ignore[assignment,method-assign,misc]
        w = kwriter.TopicWriter(log, "bench.micro", "bench.micro", 4)
        w.scanned = [0] * 4

        async def ends(calls: Any, w: kwriter.TopicWriter = w) -> list[int]:
            return list(w.scanned or [])

        w._ends = ends  # type: ignore[method-assign]
        entries = []
        for _ in range(records):
            eid = uuid.uuid4().hex
            entries.append(
                Entry(eid, "bench", BODY, hashlib.sha256(eid.encode()).hexdigest()[:32], creator="bench")
            )
        t = time.process_time()
        for i in range(0, records, batch):
            call = kwriter._Call(entries[i : i + batch], loop.create_future(), 0.0, None)
            await w._round([call])
            call.future.result()
        best = min(best, time.process_time() - t)
    return 1e6 * best / records


def busy(ms: float) -> None:
    t = time.perf_counter()
    while time.perf_counter() - t < ms / 1000:
        pass


async def early(requests: int, prepare_ms: float) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-kafka-micro-") as tmp:
        server = KafkaServer(Path(tmp) / "kafka")
        server.start()
        log = open_log(server.url)
        assert isinstance(log, KafkaLog)
        await log.open()
        try:
            await log.append("bench.micro", [Entry(uuid.uuid4().hex, "k", b"{}", "d")])
            reader = await log._offsets_reader()
            admin, reader_waits = [], []
            for _ in range(requests):  # alternating, so both see the same machine
                t = time.perf_counter()
                answer = kwriter.ask_ends(log.admin, "bench.micro", 4, 10.0)
                assert answer is not None
                busy(prepare_ms)
                await answer
                admin.append(time.perf_counter() - t - prepare_ms / 1000)
                t = time.perf_counter()
                asked = reader.submit(reader.list_offsets, {"bench.micro": 4}, OFFSET_LATEST, 10.0)
                busy(prepare_ms)
                await asked
                reader_waits.append(time.perf_counter() - t - prepare_ms / 1000)
        finally:
            await log.close()
            server.stop()

    def q(xs: list[float]) -> dict[str, float]:
        return {"p50": 1000 * statistics.median(xs), "p90": 1000 * statistics.quantiles(xs, n=10)[8]}

    return {"admin": q(admin), "reader": q(reader_waits)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=200, help="early catch-up requests per side; 0: skip")
    ap.add_argument("--prepare-ms", type=float, default=2.0)
    a = ap.parse_args()
    g = await group(a.records, a.rounds)
    print("group, us per record: " + "  ".join(f"{k} {v:.3f}" for k, v in g.items()))
    per_entry = await writer(a.records // 2, a.rounds)
    print(f"writer round (plan, index, positions, receipts): {per_entry:.3f} us CPU per entry")
    if a.requests:
        e = await early(a.requests, a.prepare_ms)
        print(f"early catch-up, wait after a {a.prepare_ms:g} ms prepare: " + " | ".join(
            f"{side} p50 {v['p50']:.2f} p90 {v['p90']:.2f} ms" for side, v in e.items()))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
