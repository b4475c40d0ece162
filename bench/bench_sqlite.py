"""Hub on SQLite vs raw sqlite3 doing the same work, in one run.

    .venv/bin/python bench/bench_sqlite.py [--events 100000] [--batch 500]

Publish: the same rows, the same batch size, the same table and indexes and
the same durability (WAL, synchronous=NORMAL).  Raw gets the very rows the
hub stores (made before the clock starts) and inserts them with
executemany; the hub gets the events as dicts (as the CLI and HTTP give
them) and validates, stamps, encodes, routes, deduplicates and inserts.

Consume: the engine's consumer group (``next_batch(--batch)`` + ``ack_many``,
the commit written with the next fetch) vs raw sqlite3 keeping what the
group promises (``raw_consume``: per batch a claim with a lease and the
delivered mark, then the commit after the handler: two write transactions),
each over the file it just published (rounds alternate, best of three).  The
``hub consume`` row adds the hub's decoding and validation of every event
(``HubSubscription.next_batch``), which raw does not do.

Latency: one event at a time, publish -> handler, in one process: raw
inserts on a thread and wakes a reader that selects the new row; the hub
publishes and a consumer-group member receives it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from common import Calls, add_report_args, figures, sweep_events, sweep_point, sweep_sizes, write
from creative_hub.hub import Hub
from creative_hub.log.sqlite import SQLiteLog

console = Console()


def make_events(n: int) -> list[dict[str, object]]:
    # ~200-byte payloads, as in FACTS.md's baselines
    return [
        {
            "id": str(uuid.uuid4()),
            "type": "creative.narrative.fragment",
            "subject": f"story:{i % 50}",
            "data": {"story": f"s{i % 50}", "title": f"Scene {i}", "text": "x" * 120},
        }
        for i in range(n)
    ]


RAW_SCHEMA = """
CREATE TABLE ev (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
  part INTEGER NOT NULL, key TEXT NOT NULL, creator TEXT NOT NULL, digest TEXT NOT NULL,
  time_ms INTEGER NOT NULL, body BLOB NOT NULL);
CREATE INDEX ev_part ON ev (part);
"""


def hub_rows(events: list[dict[str, object]]) -> list[tuple[str, int, str, str, str, bytes]]:
    """The rows the hub stores for ``events``, made outside any timing."""
    hub = Hub(None, principal="bench")  # type: ignore[arg-type]  # prepare() needs no log
    rows = []
    for e in events:
        _, _, entry = hub.prepare(e)
        rows.append(
            (entry.id, zlib.crc32(entry.key.encode()) % 8, entry.key, entry.creator, entry.digest, entry.body)
        )
    return rows


def raw_publish(
    path: Path, rows: list[tuple[str, int, str, str, str, bytes]], batch: int, calls: Calls | None = None
) -> float:
    """Insert the hub's very rows with executemany, ``batch`` per transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(RAW_SCHEMA)
    calls = calls or Calls()
    for i in range(0, len(rows), batch):
        with calls.timed():
            now = int(time.time() * 1000)
            chunk = [
                (id_, part, key, creator, digest, now, body)
                for id_, part, key, creator, digest, body in rows[i : i + batch]
            ]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO ev (id, part, key, creator, digest, time_ms, body) VALUES (?,?,?,?,?,?,?)", chunk
            )
            conn.execute("COMMIT")
    conn.close()
    return len(rows) / calls.total


async def hub_publish(
    path: Path, events: list[dict[str, object]], batch: int, calls: Calls | None = None
) -> float:
    log = SQLiteLog(path)
    await log.open()
    hub = Hub(log, principal="bench")
    calls = calls or Calls()
    for i in range(0, len(events), batch):
        with calls.timed():
            await hub.publish(events[i : i + batch])
    await log.close()
    return len(events) / calls.total


async def sweep(tmp: Path, sizes: list[int], cap: int) -> list[dict[str, object]]:
    out = []
    for b in sizes:
        n = sweep_events(b, cap)
        evs = [make_events(n) for _ in range(2)]
        rows = [hub_rows(e) for e in evs]

        async def raw(k: int, calls: Calls, b: int = b, rows: list[Any] = rows) -> None:
            raw_publish(tmp / f"sweep-raw-{b}-{uuid.uuid4().hex[:6]}.db", rows[k], b, calls)

        async def hub(k: int, calls: Calls, b: int = b, evs: list[Any] = evs) -> None:
            await hub_publish(tmp / f"sweep-hub-{b}-{uuid.uuid4().hex[:6]}.db", evs[k], b, calls)

        out.append(await sweep_point(b, n, raw, hub))
    return out


RAW_GROUP = """
CREATE TABLE IF NOT EXISTS grp (name TEXT PRIMARY KEY, committed INTEGER NOT NULL,
  delivered INTEGER NOT NULL, owner TEXT, lease_until REAL);
INSERT OR REPLACE INTO grp VALUES ('g', 0, 0, NULL, NULL);
"""


def raw_consume(path: Path, n: int, batch: int, ack_timeout: float = 30.0) -> float:
    """What the hub's group promises, in plain sqlite3, per batch of ``batch``:

    1. claim: in one write transaction, read the rows after the committed
       position and save the group's ``delivered`` mark with a lease
       (owner, deadline) -- a consumer that dies leaves them to whoever
       takes the lease after it ends, and they know those rows come again
       (each row's delivery count: 2 if at or below ``delivered``);
    2. the handler: look at each body;
    3. commit after the handler: a second write transaction saves the
       committed position and gives up the lease (only if it still holds it).

    No decoding: the body stays bytes (the hub hands over decoded, checked events).
    One consumer takes every row in order, so per-key order holds trivially.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(RAW_GROUP)
    got = redelivered = 0
    started = time.perf_counter()
    while got < n:
        conn.execute("BEGIN IMMEDIATE")
        committed, delivered = conn.execute(
            "SELECT committed, delivered FROM grp WHERE name = 'g'"
        ).fetchone()
        rows = conn.execute(
            "SELECT seq, id, key, body, time_ms FROM ev WHERE seq > ? ORDER BY seq LIMIT ?",
            (committed, batch),
        ).fetchall()
        if rows:
            conn.execute(
                "UPDATE grp SET delivered = max(delivered, ?), owner = 'c1', lease_until = ? "
                "WHERE name = 'g'",
                (rows[-1][0], time.monotonic() + ack_timeout),
            )
        conn.execute("COMMIT")
        for seq, _id, _key, body, _t in rows:  # the handler
            got += len(body) > 0
            redelivered += seq <= delivered  # its delivery count is 2
        if rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE grp SET committed = ?, owner = NULL, lease_until = NULL "
                "WHERE name = 'g' AND owner = 'c1'",
                (rows[-1][0],),
            )
            conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return n / elapsed


async def engine_consume(path: Path, n: int, batch: int, *, hub: bool = False) -> float:
    """The engine's group (or, with ``hub``, the hub's subscription, decoding every event)."""
    log = SQLiteLog(path)
    await log.open()
    group = f"bench-{uuid.uuid4().hex[:6]}"
    sub = Hub(log, principal="bench").subscribe("creative.narrative", group, batch=batch) if hub else None
    inner = log.subscribe("creative.narrative", group, batch=batch)
    got = 0
    if sub is not None:
        async with sub:
            started = time.perf_counter()
            while got < n:
                hds = await sub.next_batch(batch, timeout=10)
                got += len(hds)
                await sub.ack_many(hds)
            elapsed = time.perf_counter() - started
    else:
        async with inner:
            started = time.perf_counter()
            while got < n:
                ds = await inner.next_batch(batch, timeout=10)
                for d in ds:
                    got += len(d.body) > 0
                await inner.ack_many(ds)
            elapsed = time.perf_counter() - started
    await log.close()
    return n / elapsed


async def raw_latency(path: Path, n: int) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(RAW_SCHEMA)
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    wake = asyncio.Event()
    lat: list[float] = []
    sent: dict[str, float] = {}

    def insert(e: dict[str, object]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO ev (id, part, key, creator, digest, time_ms, body) VALUES (?,?,?,?,?,?,?)",
            (e["id"], 0, "k", "c", "", int(time.time() * 1000), msgspec.json.encode(e)),
        )
        conn.execute("COMMIT")

    async def consumer() -> None:
        cursor = 0
        while len(lat) < n:
            await wake.wait()
            wake.clear()
            rows = await asyncio.to_thread(
                lambda c=cursor: reader.execute(
                    "SELECT seq, body FROM ev WHERE seq > ? ORDER BY seq", (c,)
                ).fetchall()
            )
            for seq, body in rows:
                cursor = seq
                ev = json.loads(body)
                lat.append(time.perf_counter() - sent[ev["id"]])

    task = asyncio.create_task(consumer())
    for e in make_events(n):
        sent[str(e["id"])] = time.perf_counter()
        await asyncio.to_thread(insert, e)
        wake.set()
        await asyncio.sleep(0.001)
    await task
    conn.close()
    reader.close()
    return lat


async def hub_latency(path: Path, n: int) -> list[float]:
    log = SQLiteLog(path)
    await log.open()
    hub = Hub(log, principal="bench")
    lat: list[float] = []
    sent: dict[str, float] = {}
    sub = hub.subscribe("creative.narrative", "bench", ack_timeout=30)
    await sub.__aenter__()

    async def consumer() -> None:
        while len(lat) < n:
            d = await sub.next(timeout=30)
            lat.append(time.perf_counter() - sent[d.event.id])
            await d.ack()

    task = asyncio.create_task(consumer())
    for e in make_events(n):
        sent[str(e["id"])] = time.perf_counter()
        await hub.publish(e)
        await asyncio.sleep(0.001)
    await task
    await sub.close()
    await log.close()
    return lat


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--latency-events", type=int, default=2000)
    add_report_args(ap)
    a = ap.parse_args()
    sweep_points: list[dict[str, object]] = []
    events = make_events(a.events)
    rows = hub_rows(events)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        console.print(f"[bold]SQLite[/]: {a.events} events, batch {a.batch}, WAL synchronous=NORMAL")
        raw_rates, hub_rates = [], []
        for run in range(3):  # interleaved, best of three, so neither gets a warmer cache
            raw_rates.append(raw_publish(tmp / f"raw{run}.db", rows, a.batch))
            hub_rates.append(asyncio.run(hub_publish(tmp / f"hub{run}.db", events, a.batch)))
        raw_rate, hub_rate = max(raw_rates), max(hub_rates)
        raw_cons, eng_cons, hub_cons = [], [], []
        for run in range(3):
            raw_cons.append(raw_consume(tmp / f"raw{run}.db", a.events, a.batch))
            eng_cons.append(asyncio.run(engine_consume(tmp / f"hub{run}.db", a.events, a.batch)))
            hub_cons.append(asyncio.run(engine_consume(tmp / f"hub{run}.db", a.events, a.batch, hub=True)))
        raw_con, eng_con, hub_con = max(raw_cons), max(eng_cons), max(hub_cons)
        raw_lat = asyncio.run(raw_latency(tmp / "rawlat.db", a.latency_events))
        hub_lat = asyncio.run(hub_latency(tmp / "hublat.db", a.latency_events))
        if a.sweep:
            sweep_points = asyncio.run(sweep(tmp, sweep_sizes(a.sweep), a.events))
    table = Table(title="creative-hub on SQLite vs raw sqlite3 (same run)", title_justify="left")
    for col in ("metric", "raw sqlite3", "hub", "hub / raw"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    table.add_row(
        "batched publish, events/s", f"{raw_rate:,.0f}", f"{hub_rate:,.0f}", f"{hub_rate / raw_rate:.2f}x"
    )
    table.add_row(
        "consume + ack (engine group), events/s",
        f"{raw_con:,.0f}",
        f"{eng_con:,.0f}",
        f"{eng_con / raw_con:.2f}x",
    )
    table.add_row(
        "consume + ack (hub, decoding), events/s",
        f"{raw_con:,.0f}",
        f"{hub_con:,.0f}",
        f"{hub_con / raw_con:.2f}x",
    )
    for p in (50, 99):
        r, h = pct(raw_lat, p), pct(hub_lat, p)
        table.add_row(f"publish->handler p{p}, ms", f"{r:.2f}", f"{h:.2f}", f"{h / r:.2f}x")
    console.print(table)
    write(a.json, figures(
        "sqlite", events=a.events, batch=a.batch, publish=(raw_rate, hub_rate), consume=(raw_con, eng_con),
        latency=(raw_lat, hub_lat), sweep=sweep_points,
        notes=f"hub consume with decoding and validation of every event: {hub_con:,.0f} events/s",
    ))  # fmt: skip
    sys.exit(0)


if __name__ == "__main__":
    main()
