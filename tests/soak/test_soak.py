"""Soak: mixed load on one engine for SOAK_MINUTES, the hub process's memory and
file descriptors sampled every SOAK_SAMPLE seconds, no growth beyond a bound.

The load, all through one in-process Hub (this process is "the hub process"):

* a publisher of batches (50 events) and one of single events, about
  SOAK_RATE events/s together;
* a consumer group of two members taking batches and acking them;
* replays of the newest few hundred events every second;
* a visitor that subscribes (its own group), reads a few events and leaves,
  every 2 s;
* retention keeping the newest 20,000 events, applied every 2 s, so the
  broker's own storage does not grow without bound either.

The bound (stated in the README): after a warm-up (the first fifth of the
run, at most 5 minutes), resident memory at the end of the load (the median
of the last three samples) is less than 25 % and less than 64 MiB above the
warm-up baseline (the median of the warm-up's last three samples), and once
the load has stopped and its subscriptions are closed, the number of open
file descriptors is back within +5 of the baseline.

Kafka runs with ``?dedup_window=10000``: its publisher keeps a bounded index
of recent ids (100,000 by default) that grows with every event until it is
full, which at this rate takes longer than a short warm-up; a smaller window
is full within the warm-up, so what grows after it is a leak, not the cache.  Samples go to
SOAK_RESULTS (default ``test-artifacts/soak``) as CSV and JSON, with a PNG
plot when matplotlib is installed.  ``SOAK_TRACEMALLOC=1`` also traces Python
allocations and writes the 30 lines whose memory grew most between the end of
the warm-up and the end of the load to ``<engine>-growth.txt`` (memory that
grows outside Python -- librdkafka's, say -- shows in RSS but not there).

The hub's log lines go to ``<engine>.log`` beside the samples, not to pytest:
pytest keeps every record of a test in memory, and the visitors' gap warnings
(their groups fall behind retention between visits) made RSS climb about
0.4 MiB a minute on every engine (found with SOAK_TRACEMALLOC).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import logging
import os
import statistics
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from creative_hub.errors import EngineUnavailable, PositionGone
from creative_hub.hub import Hub
from creative_hub.log import Log, Retention, open_log

pytestmark = [pytest.mark.soak, pytest.mark.slow]

TOPIC = "creative.feedback"
RSS_GROWTH = 0.25  # at most this share above the warm-up baseline
RSS_GROWTH_BYTES = 64 << 20  # and at most this many bytes
FD_GROWTH = 5  # open file descriptors above the warm-up baseline


@dataclass(slots=True)
class Sample:
    t: float  #: seconds since the start
    rss: int  #: bytes
    fds: int
    published: int
    consumed: int
    replayed: int
    visits: int
    timeouts: int  #: retention passes that timed out (retried at the next pass)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def event(n: int) -> dict[str, object]:
    return {
        "type": "creative.feedback.comment",
        "subject": f"story:soak{n % 16}",
        "data": {"on": f"story:soak{n % 16}", "text": f"soak comment {n} " + "x" * 120},
    }


async def test_soak_memory_and_fds_stay_bounded(engine: str, log_url: str) -> None:
    if engine == "kafka":
        log_url += ("&" if "?" in log_url else "?") + "dedup_window=10000"
    results = Path(os.environ.get("SOAK_RESULTS", "test-artifacts/soak"))
    with hub_log_to(results / f"{engine}.log"):
        log = open_log(log_url)
        await log.open()
        try:
            await soak(engine, log)
        finally:
            await log.close()


@contextlib.contextmanager
def hub_log_to(path: Path) -> Iterator[None]:
    """The ``creative_hub`` loggers write to ``path`` (and not to pytest's capture) meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("creative_hub")
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.propagate = propagate
        logger.removeHandler(handler)
        handler.close()


async def soak(engine: str, log: Log) -> None:
    minutes = float(os.environ["SOAK_MINUTES"])
    every = float(os.environ.get("SOAK_SAMPLE", "5"))
    rate = float(os.environ.get("SOAK_RATE", "500"))  # events/s, both publishers together
    results = Path(os.environ.get("SOAK_RESULTS", "test-artifacts/soak"))
    duration = minutes * 60
    warmup = min(duration / 5, 300.0)
    hub = Hub(log, principal="soak")
    await hub.set_retention(TOPIC, Retention(max_count=20_000))
    counts = {"published": 0, "consumed": 0, "replayed": 0, "visits": 0, "timeouts": 0}
    stop = asyncio.Event()
    start = time.monotonic()

    async def paced(period: float) -> bool:
        """Sleep ``period`` (or until stopped); False once stopped."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(period):
                await stop.wait()
        return not stop.is_set()

    async def batch_publisher() -> None:
        n = 0
        while await paced(50 / (rate / 2)):
            await hub.publish([event(n + i) for i in range(50)])
            n += 50
            counts["published"] += 50

    async def single_publisher() -> None:
        n = 1 << 30
        while await paced(1 / (rate / 2)):
            await hub.publish(event(n))
            n += 1
            counts["published"] += 1

    async def member(name: str) -> None:
        async with hub.subscribe(TOPIC, "soak-workers", consumer=name, ack_timeout=30) as sub:
            while not stop.is_set():
                try:
                    batch = await sub.next_batch(100, timeout=0.5)
                except TimeoutError:
                    continue
                await sub.ack_many(batch)
                counts["consumed"] += len(batch)
                sub.gaps()  # a member that falls behind retention is told; keep no notices

    async def replayer() -> None:
        while await paced(1.0):
            info = await log.topic_info(TOPIC)
            try:
                async for _ in hub.replay(TOPIC, limit=300, after=info.first):
                    counts["replayed"] += 1
            except PositionGone:  # retention moved on under us: fine, next round
                pass

    async def visitor() -> None:
        n = 0
        while await paced(2.0):
            n += 1
            async with hub.subscribe(TOPIC, f"soak-visitor-{n % 4}", ack_timeout=30) as sub:
                with contextlib.suppress(TimeoutError):
                    for d in await sub.next_batch(20, timeout=2.0):
                        await d.ack()
            counts["visits"] += 1

    async def trimmer() -> None:
        while await paced(2.0):
            try:
                await log.apply_retention(TOPIC)
            except EngineUnavailable:  # a slow broker round (two shared cores): next pass
                counts["timeouts"] += 1

    samples: list[Sample] = []
    trace = os.environ.get("SOAK_TRACEMALLOC") == "1"
    if trace:
        tracemalloc.start(8)
    snapshots: list[tracemalloc.Snapshot] = []

    async def sampler() -> None:
        while True:
            samples.append(Sample(round(time.monotonic() - start, 1), rss_bytes(), open_fds(), **counts))
            if trace and not snapshots and samples[-1].t >= warmup:
                snapshots.append(tracemalloc.take_snapshot())
            if not await paced(every):
                return

    tasks = [
        asyncio.create_task(f(), name=f.__name__)
        for f in (batch_publisher, single_publisher, replayer, visitor, trimmer, sampler)
    ]
    tasks += [asyncio.create_task(member(f"m{i}"), name=f"member m{i}") for i in (1, 2)]
    try:
        done, _ = await asyncio.wait(tasks, timeout=duration, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            t.result()  # a load task that failed fails the soak
    finally:
        if trace:
            snapshots.append(tracemalloc.take_snapshot())
            tracemalloc.stop()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    if len(snapshots) == 2:
        growth = snapshots[1].compare_to(snapshots[0], "traceback")[:30]
        results.mkdir(parents=True, exist_ok=True)
        lines = []
        for stat in growth:
            lines.append(f"{stat.size_diff / 2**20:+.2f} MiB in {stat.count_diff:+d} blocks")
            lines.extend("    " + line for line in stat.traceback.format())
        (results / f"{engine}-growth.txt").write_text("\n".join(lines) + "\n")
    await asyncio.sleep(1.0)  # closed connections and threads go
    after = Sample(round(time.monotonic() - start, 1), rss_bytes(), open_fds(), **counts)

    warm = [s for s in samples if s.t <= warmup][-3:]
    tail = samples[-3:]
    samples.append(after)
    base_rss = statistics.median(s.rss for s in warm)
    end_rss = statistics.median(s.rss for s in tail)
    base_fds = int(statistics.median(s.fds for s in warm))
    end_fds = after.fds
    summary = {
        "engine": engine,
        "minutes": minutes,
        "warmup_s": warmup,
        "rss_baseline_mib": round(base_rss / 2**20, 1),
        "rss_end_mib": round(end_rss / 2**20, 1),
        "rss_peak_mib": round(max(s.rss for s in samples) / 2**20, 1),
        "rss_growth_pct": round(100 * (end_rss - base_rss) / base_rss, 1),
        "fds_baseline": base_fds,
        "fds_after_stop": end_fds,
        "fds_under_load": int(statistics.median(s.fds for s in tail)),
        "fds_max": max(s.fds for s in samples),
        **counts,
        "events_per_s": round(counts["published"] / (samples[-1].t or 1), 1),
    }
    write_results(results, engine, samples, summary)
    print(json.dumps(summary))
    assert counts["consumed"] > 0 and counts["replayed"] > 0 and counts["visits"] > 0, summary
    assert counts["timeouts"] < 10, f"retention kept timing out: {summary}"
    assert end_rss - base_rss < RSS_GROWTH * base_rss, f"RSS grew more than 25 %: {summary}"
    assert end_rss - base_rss < RSS_GROWTH_BYTES, f"RSS grew more than 64 MiB: {summary}"
    assert end_fds <= base_fds + FD_GROWTH, f"file descriptors grew by more than {FD_GROWTH}: {summary}"


def write_results(root: Path, engine: str, samples: list[Sample], summary: dict[str, object]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{engine}.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(asdict(samples[0])))
        w.writeheader()
        w.writerows(asdict(s) for s in samples)
    (root / f"{engine}.json").write_text(
        json.dumps({"summary": summary, "samples": [asdict(s) for s in samples]}, indent=1)
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    ts = [s.t / 60 for s in samples]
    ax.plot(ts, [s.rss / 2**20 for s in samples], label="RSS (MiB)")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax2 = ax.twinx()
    ax2.plot(ts, [s.fds for s in samples], color="tab:orange", label="open fds")
    ax2.set_ylabel("open file descriptors")
    ax.set_title(f"soak on {engine}: {summary['published']} events published")
    fig.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(root / f"{engine}.png", dpi=100)
    plt.close(fig)
