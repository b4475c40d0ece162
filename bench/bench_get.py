"""Get-by-id and subject pages: what one ``Hub.get`` and one ``hub://subjects/...`` page cost
at 10k, 100k and 1M events.

    .venv/bin/python bench/bench_get.py                          # 10,000 / 100,000 / 1,000,000
    .venv/bin/python bench/bench_get.py --sizes 10000 100000 --json bench/results/get.json

For each size, a fresh SQLite log gets N events spread over ``--topics``
creative topics (bodies made before the clock starts, appended 500 to a
transaction; not timed), then:

1. *index build*: the first ``get`` of a process with no index file reads the
   log once (timed; a restart reuses the file and reads only what is new);
2. *hit*: ``--lookups`` gets of random stored ids, as an anonymous reader;
3. *miss*: as many gets of random ids that are nowhere (the catch-up before
   the answer included: one read per topic, nothing new);
4. *old scan* (10k and 100k only): the per-topic scan ``Hub.get`` did before
   the index, for scale -- a few lookups of the last event written;
5. *subject page*: ``--pages`` first pages (50 events) of ``hub://subjects/story:K``
   for random K of the 97 subjects the events are spread over (about 1% of the log
   each), through the MCP resource's own code (``mcp.live.page``), catch-up included;
6. *old subject page* (10k and 100k only): what that page cost before the subject
   index -- every topic read until 51 events of the subject turned up.

Reports p50, p95 and mean microseconds per lookup or page.  Flat hit, miss and
page columns are the point; absolute figures are for the project's shared 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from creative_hub.errors import NotFound
from creative_hub.event import Event, encode_event
from creative_hub.hub import Hub
from creative_hub.log import Entry
from creative_hub.mcp.live import page, parse_uri

BATCH = 500
SUBJECTS = 97  # story:0 .. story:96, one event in 97 about each


def bodies(n: int, topics: int) -> list[tuple[str, Entry]]:
    """N (topic, entry) pairs: valid narrative fragments, ids unique."""
    out = []
    for i in range(n):
        area = f"area{i % topics}"
        event = Event(
            type=f"creative.{area}.note",
            source="bench",
            id=str(uuid.uuid4()),
            creator="bench",
            subject=f"story:{i % SUBJECTS}",
            data={"title": f"note {i}", "text": "x" * 120},
        )
        body = encode_event(event)
        out.append((f"creative.{area}", Entry(event.id, "bench", body, event.id)))
    return out


async def fill(url: str, n: int, topics: int) -> list[str]:
    async with Hub.connect(url) as hub:
        made = bodies(n, topics)
        by_topic: dict[str, list[Entry]] = {}
        for topic, entry in made:
            by_topic.setdefault(topic, []).append(entry)
        for topic, entries in by_topic.items():
            for i in range(0, len(entries), BATCH):
                await hub.log.append(topic, entries[i : i + BATCH])
        return [e.id for _, e in made]


def micros(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_us": round(statistics.median(samples) * 1e6),
        "p95_us": round(samples[int(len(samples) * 0.95) - 1] * 1e6),
        "mean_us": round(statistics.fmean(samples) * 1e6),
    }


async def old_scan(hub: Hub, event_id: str) -> None:
    """What Hub.get did before the index: every creative topic read until the id turns up."""
    for name in [t.name for t in await hub.log.topics() if t.name.startswith(("peer.", "creative."))]:
        async for stored in hub._scan(name):
            if stored.event.id == event_id:
                return
    raise NotFound(event_id)


async def old_subject_page(hub: Hub, subject: str, n: int = 50) -> None:
    """What a subject page did before the subject index: each topic read until n+1 matches."""
    for name in [t.name for t in await hub.log.topics() if t.name.startswith(("peer.", "creative."))]:
        found = 0
        async for stored in hub._scan(name):
            if stored.event.subject == subject:
                found += 1
                if found > n:
                    break


async def measure(root: Path, n: int, topics: int, lookups: int, pages: int) -> dict[str, Any]:
    url = f"sqlite:///{root / f'get-{n}.db'}"
    ids = await fill(url, n, topics)
    row: dict[str, Any] = {"events": n}
    async with Hub.connect(url) as trusted:
        hub = trusted.acting("anonymous-reader")
        started = time.perf_counter()
        await hub.get(ids[0])
        row["index_build_s"] = round(time.perf_counter() - started, 2)
        rng = random.Random(n)
        hits = []
        for event_id in rng.sample(ids, min(lookups, len(ids))):
            t = time.perf_counter()
            await hub.get(event_id)
            hits.append(time.perf_counter() - t)
        misses = []
        for _ in range(lookups):
            t = time.perf_counter()
            try:
                await hub.get(str(uuid.uuid4()))
            except NotFound:
                pass
            misses.append(time.perf_counter() - t)
        shown = []
        for _ in range(pages):
            subject = f"story:{rng.randrange(SUBJECTS)}"
            t = time.perf_counter()
            got = await page(hub, parse_uri(f"hub://subjects/{subject}"), None, 50)
            shown.append(time.perf_counter() - t)
            assert len(got.events) >= min(50, n // SUBJECTS), len(got.events)
        row["hit"] = micros(hits)
        row["miss"] = micros(misses)
        row["subject_page"] = micros(shown)
        if n <= 100_000:
            scans = []
            for _ in range(3):
                t = time.perf_counter()
                await old_scan(trusted, ids[-1])
                scans.append(time.perf_counter() - t)
            row["old_scan_ms"] = round(statistics.fmean(scans) * 1e3, 1)
            scans = []
            for k in range(3):
                t = time.perf_counter()
                await old_subject_page(trusted, f"story:{k}")
                scans.append(time.perf_counter() - t)
            row["old_subject_page_ms"] = round(statistics.fmean(scans) * 1e3, 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--topics", type=int, default=8, help="creative topics the events are spread over")
    ap.add_argument("--lookups", type=int, default=2000, help="hits, and as many misses, per size")
    ap.add_argument("--pages", type=int, default=200, help="subject pages per size")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-get-") as tmp:
        for n in a.sizes:
            row = asyncio.run(measure(Path(tmp), n, a.topics, a.lookups, a.pages))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print("| events | hit p50 / p95 µs | miss p50 / p95 µs | index built once | before: the scan, ms |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['events']:,} | {r['hit']['p50_us']:,} / {r['hit']['p95_us']:,} "
            f"| {r['miss']['p50_us']:,} / {r['miss']['p95_us']:,} | {r['index_build_s']} s "
            f"| {r.get('old_scan_ms', '—')} |"
        )
    print()
    print("| events | subject page (50 events) p50 / p95 µs | before: the scan, ms |")
    print("|---|---|---|")
    for r in rows:
        page_us = r["subject_page"]
        print(
            f"| {r['events']:,} | {page_us['p50_us']:,} / {page_us['p95_us']:,} "
            f"| {r.get('old_subject_page_ms', '—')} |"
        )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
