"""Index throughput and search latency.

    .venv/bin/python bench/bench_index.py                       # 1,000,000 direct + 100,000 from the log
    .venv/bin/python bench/bench_index.py --events 200000 --log-events 20000

1. *Direct*: N generated events (bodies made before the clock starts) go
   through what the indexer does per event -- decode the stored body, build
   the document, insert it and its FTS5 entry in batches -- straight into
   the index API.  Reports events/s.
2. *From the log*: M events published to a SQLite log first (not timed),
   then ``Indexer.catch_up()`` reads them back through the hub and indexes
   them.  Reports events/s of that end-to-end path.
3. *Search*: a fixed query set (rare and common words, phrases, prefixes,
   filters by area / creator / time, no-text listings) against the N-event
   index, as an anonymous reader (so the access filter is in every query);
   each query runs REPEAT times; reports p50 / p95 / max in ms.

Targets: >= 20,000 events/s indexed, search p95 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from creative_hub.access import Identity
from creative_hub.event import Event, decode_event, encode_event
from creative_hub.hub import Hub
from creative_hub.index.indexer import Indexer
from creative_hub.index.search import SearchQuery, search
from creative_hub.index.store import IndexStore, to_doc

SEED = 7
CREATORS = [f"user{i}" for i in range(200)]
STORIES = [f"story:{i}" for i in range(2000)]
REPOS = [f"org/repo{i}" for i in range(300)]
COMMON = "the a of and to in is was for on with as his her that it at by from".split()
THEMES = (
    "forest witch oven bread crumbs moon river castle dragon knight lantern mirror winter garden "
    "kernel parser compiler cache index query stream broker replay offset lease commit merge review "
    "latency throughput benchmark schema migration token signature lineage fork contribution"
).split()
START = datetime(2026, 1, 1, tzinfo=UTC)


def _vocabulary(rng: random.Random, n: int = 20000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = {"".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(n)}
    return sorted(words)


def generate(n: int, seed: int = SEED) -> list[tuple[str, str, int, bytes]]:
    """``n`` (topic, position, time_ms, body) tuples: a mix of narrative and engineering events."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    cum = list(
        itertools.accumulate(1.0 / (i + 1) for i in range(len(vocab)))
    )  # Zipf-like: a few words everywhere
    out = []
    for i in range(n):
        when = START + timedelta(seconds=i * 3)
        words = rng.choices(vocab, cum_weights=cum, k=18) + rng.choices(THEMES, k=2)
        words += rng.choices(COMMON, k=8)
        rng.shuffle(words)
        creator = rng.choice(CREATORS)
        if i % 2 == 0:
            story = rng.choice(STORIES)
            ev = Event(
                type="creative.narrative.fragment",
                id=f"ev-{i}",
                source=f"/peers/{creator}",
                subject=story,
                time=when,
                creator=creator,
                data={"story": story, "title": " ".join(words[:5]), "text": " ".join(words[5:])},
            )
            topic = "creative.narrative"
        else:
            repo = rng.choice(REPOS)
            ev = Event(
                type="creative.engineering.commit",
                id=f"ev-{i}",
                source=f"github:{repo}",
                subject=repo,
                time=when,
                creator=creator,
                data={"repo": repo, "sha": f"{i:040x}", "message": " ".join(words)},
            )
            topic = "creative.engineering"
        out.append((topic, str(i + 1), int(when.timestamp() * 1000), encode_event(ev)))
    return out


QUERIES: list[SearchQuery] = [
    SearchQuery(text="dragon"),
    SearchQuery(text="witch oven"),
    SearchQuery(text='"bread crumbs"'),
    SearchQuery(text="lantern mirror winter"),
    SearchQuery(text="the"),
    SearchQuery(text="comp*"),
    SearchQuery(text="replay -offset"),
    SearchQuery(text="castle OR knight"),
    SearchQuery(text="kernel", area="engineering"),
    SearchQuery(text="forest", area="narrative", creator="user42"),
    SearchQuery(text="merge review", since="2026-01-10T00:00:00Z", until="2026-01-20T00:00:00Z"),
    SearchQuery(text="schema", subject="org/repo7"),
    SearchQuery(text="lineage", type="creative.engineering.commit", limit=50),
    SearchQuery(creator="user7"),
    SearchQuery(area="narrative"),
    SearchQuery(subject="story:1234"),
]


def bench_direct(store: IndexStore, items: list[tuple[str, str, int, bytes]], batch: int) -> float:
    """As the indexer does it: build batch N+1's documents while a worker thread
    commits batch N (SQLite releases the GIL while it writes)."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(1) as pool:
        pending: Future[int] | None = None
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            docs = [to_doc(decode_event(body), t, p, ms, body) for t, p, ms, body in chunk]
            if pending is not None:
                pending.result()
            pending = pool.submit(store.add, docs, {chunk[-1][0]: (chunk[-1][1], len(chunk))})
        if pending is not None:
            pending.result()
    store.optimize()
    return len(items) / (time.perf_counter() - t0)


async def bench_log(tmp: Path, n: int) -> float:
    items = generate(n, seed=SEED + 1)
    async with Hub.connect(f"sqlite:///{tmp / 'hub.db'}") as hub:
        events = [decode_event(body) for _, _, _, body in items]
        for start in range(0, n, 500):
            await hub.publish(events[start : start + 500])
        store = IndexStore(tmp / "hub.db.index.db")
        t0 = time.perf_counter()
        added = await Indexer(hub, store).catch_up()
        rate = added / (time.perf_counter() - t0)
        store.close()
    return rate


def bench_search(store: IndexStore, repeat: int) -> list[float]:
    who = Identity("anonymous")
    times: list[float] = []
    for q in QUERIES:  # warm the page cache once
        search(store, who, q)
    for _ in range(repeat):
        for q in QUERIES:
            t0 = time.perf_counter()
            search(store, who, q)
            times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="events indexed directly")
    ap.add_argument("--log-events", type=int, default=100_000, help="events indexed from a SQLite log")
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=20, help="runs of the query set")
    ap.add_argument("--dir", type=Path, default=None, help="where the files go (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    figures: dict[str, object] = {"events": args.events, "batch": args.batch}
    tmp = args.dir or Path(tempfile.mkdtemp(prefix="bench-index-"))
    tmp.mkdir(parents=True, exist_ok=True)

    print(f"generating {args.events:,} events ...", file=sys.stderr)
    items = generate(args.events)
    store = IndexStore(tmp / "direct.index.db")
    direct = bench_direct(store, items, args.batch)
    del items
    size = (tmp / "direct.index.db").stat().st_size / 1e6
    print(f"direct: {args.events:,} events indexed at {direct:,.0f} events/s ({size:,.0f} MB)")
    figures.update(indexed_per_s=direct, index_mb=size)

    times = bench_search(store, args.repeat)
    q = statistics.quantiles(times, n=100)
    print(
        f"search: {len(QUERIES)} queries x {args.repeat} over {args.events:,} events: "
        f"p50 {q[49]:.2f} ms, p95 {q[94]:.2f} ms, max {max(times):.2f} ms"
    )
    store.close()
    figures.update(search_p50_ms=q[49], search_p95_ms=q[94], search_max_ms=max(times), queries=len(QUERIES))

    if args.log_events:
        rate = asyncio.run(bench_log(tmp, args.log_events))
        print(
            f"from the log: {args.log_events:,} events (SQLite log, hub.replay) "
            f"indexed at {rate:,.0f} events/s"
        )
        figures.update(log_events=args.log_events, from_log_per_s=rate)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
