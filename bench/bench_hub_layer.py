"""The hub layer's own cost per event: what ``Hub.publish`` adds before the engine.

    .venv/bin/python bench/bench_hub_layer.py [--events 20000] [--rounds 5] [--profile] [--publish]

``Hub.publish`` = ``hub.publish.plan`` (``Hub.prepare_many``: the dicts
converted in one call; for each event: validate the attributes and the
payload against its schema, stamp id/time/creator/source, route to a
topic, encode the CloudEvent once with its content digest, sign when the
creator has a key; then the write rules, ``check_write``, once per topic
and type) and one ``log.append`` per topic.  This times ``plan`` -- the
public entry point's own code, dicts in, log entries out, without the
engine -- in microseconds per event, best of ``--rounds``:

* ``unsigned``: a hub without a keystore (what the engine benchmarks publish);
* ``signed``: the same events signed with the creator's Ed25519 key
  (``cryptography``), and the bare signing call alone for scale.

A round publishes ``--events`` events, ``--batch`` (500) a call, as the
public-path benchmark (``bench_peers.py``) and the engine benchmarks
publish; like ``Hub.publish`` each call stamps its events with one time
(``now()`` once per call).  Two more rows: all ``--events`` in one call
(the figure the target was first measured with), and one event per call,
as single-event publishes pay.  Each round starts after a ``gc.collect()``: the collector
stays on, but none of the benchmark's own 40,000 fresh dicts are pending.

``--publish`` also times the whole ``Hub.publish`` (500 events per call)
into a SQLite log, to see the layer's share end to end.

The target (issue 23) is at most 3 us per unsigned event.  Each figure is
the best of ``--rounds`` in wall time and, beside it, in CPU time of this
process (steadier on a shared machine: time spent waiting for a core does
not count).  ``--profile`` prints the garbage collector's collections in one unsigned
round (their time per event) and the cProfile of another, the functions
by own time: where the microseconds go (the profiler's own cost per call
inflates small functions).  The log is a throwaway SQLite file
that is opened but never appended to.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from creative_hub.event import now
from creative_hub.hub import Hub
from creative_hub.hub.publish import plan

TARGET_US = 3.0  # the hub layer's budget per unsigned event, microseconds


def make_items(n: int) -> list[dict[str, Any]]:
    """Fragments of about 200 bytes encoded, as the engine benchmarks publish."""
    return [
        {
            "type": "creative.narrative.fragment",
            "subject": f"story:s{i % 16}",
            "data": {"story": f"s{i % 16}", "title": f"Part {i}", "text": "x" * 60},
        }
        for i in range(n)
    ]


def layer_round(hub: Hub, items: list[dict[str, Any]], batch: int) -> tuple[float, float]:
    """(wall, CPU) seconds of ``hub.publish.plan`` over every item (what Hub.publish
    does before the append), ``batch`` items a call, each call with its ``now()``."""
    start, cpu = time.perf_counter(), time.process_time()
    if batch == 1:
        for item in items:  # as Hub.publish of one event: now(), the one item
            plan(hub, [item], now())
    else:
        for i in range(0, len(items), batch):
            plan(hub, items[i : i + batch], now())
    return time.perf_counter() - start, time.process_time() - cpu


async def publish_us(tmp: str, n: int, rounds: int, batch: int = 500) -> tuple[float, float]:
    """Best (wall, CPU) microseconds per event of the whole ``Hub.publish``,
    ``batch`` events per call, into a fresh SQLite log each round (the CPU
    time includes the engine's writer thread)."""
    wall = cpu = float("inf")
    for r in range(rounds):
        async with Hub.connect(
            f"sqlite:///{tmp}/publish{r}.db", principal="alice", keys=f"{tmp}/none.keys"
        ) as hub:
            hub.keystore = None
            await hub.publish(make_items(batch))  # warm-up: tables, statements
            items = make_items(n)
            start, c = time.perf_counter(), time.process_time()
            for i in range(0, n, batch):
                await hub.publish(items[i : i + batch])
            wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - c)
    return wall / n * 1e6, cpu / n * 1e6


def gc_share(hub: Hub, n: int, batch: int) -> str:
    """The garbage collector's collections during one unsigned round, and their time
    per event (``gc.callbacks``): each object left tracked per event costs here."""
    runs: dict[int, list[float]] = {}
    started = [0.0]

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            runs.setdefault(info["generation"], []).append(time.perf_counter() - started[0])

    items = make_items(n)
    gc.collect()  # as best_us: the round starts with none of the benchmark's garbage pending
    gc.callbacks.append(watch)
    try:
        layer_round(hub, items, batch)
    finally:
        gc.callbacks.remove(watch)
    parts = [f"gen{g}: {len(t)} ({sum(t) / n * 1e6:.2f} us/event)" for g, t in sorted(runs.items())]
    total = sum(sum(t) for t in runs.values()) / n * 1e6
    return f"garbage collector in one round: {', '.join(parts) or 'none'}; {total:.2f} us/event in all"


def best_us(hub: Hub, n: int, rounds: int, batch: int) -> tuple[float, float]:
    """Best (wall, CPU) microseconds per event over ``rounds``."""
    wall = cpu = float("inf")
    for _ in range(rounds):
        items = make_items(n)  # fresh dicts: prepare() does not keep them, but be fair
        # The collector stays on, but starts the round with nothing of this
        # benchmark's own making pending (the 40,000 dicts just built): what it
        # then collects is what the round itself leaves (see --profile).
        gc.collect()
        w, c = layer_round(hub, items, batch)
        wall, cpu = min(wall, w), min(cpu, c)
    return wall / n * 1e6, cpu / n * 1e6


async def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--batch", type=int, default=500, help="events per Hub.publish call (500: as bench_peers publishes)"
    )
    p.add_argument("--profile", action="store_true", help="print where one unsigned round spends its time")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    p.add_argument(
        "--publish", action="store_true", help="also time the whole Hub.publish (batches of 500) on SQLite"
    )
    a = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/layer.db"
        async with Hub.connect(url, principal="alice", keys=f"{tmp}/none.keys") as hub:
            hub.keystore = None  # unsigned: what the engine benchmarks publish
            best_us(hub, min(a.events, 2000), 1, a.batch)  # warm-up: imports, caches, schema decoders
            unsigned, unsigned_cpu = best_us(hub, a.events, a.rounds, a.batch)
            one_call, one_call_cpu = best_us(hub, a.events, a.rounds, a.events)
            per_call, per_call_cpu = best_us(hub, a.events, a.rounds, 1)
            profile_text = ""
            if a.profile:
                prof = cProfile.Profile()
                items = make_items(a.events)
                gc.collect()
                prof.enable()
                layer_round(hub, items, a.batch)
                prof.disable()
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
                profile_text = gc_share(hub, a.events, a.batch) + "\n" + out.getvalue()

        async with Hub.connect(url, principal="alice", keys=f"{tmp}/signed.keys") as hub:
            from creative_hub.principals import Keystore

            ks = Keystore(Path(f"{tmp}/signed.keys"))
            ks.create("alice")
            hub.keystore = ks
            best_us(hub, min(a.events, 1000), 1, a.batch)
            signed, _ = best_us(hub, min(a.events, 5000), a.rounds, a.batch)
            key = ks.get("alice")
            assert key is not None
            start = time.perf_counter()
            for i in range(2000):
                key.sign(b"x" * (200 + i % 7))
            sign_only = (time.perf_counter() - start) / 2000 * 1e6
        publish = await publish_us(tmp, a.events, a.rounds) if a.publish else None

    met = "met" if unsigned <= TARGET_US else "NOT met"
    print(
        f"hub layer, unsigned, {a.batch} per call: {unsigned:.2f} us/event, CPU {unsigned_cpu:.2f} "
        f"(target <= {TARGET_US} us: {met})"
    )
    print(f"hub layer, unsigned, {a.events} in one call: {one_call:.2f} us/event, CPU {one_call_cpu:.2f}")
    print(f"hub layer, unsigned, one event per call: {per_call:.2f} us/event, CPU {per_call_cpu:.2f}")
    extra = signed - unsigned
    print(f"hub layer, signed:   {signed:.2f} us/event (+{extra:.2f} us; Ed25519 sign {sign_only:.2f} us)")
    if publish is not None:
        print(
            f"Hub.publish on SQLite, 500 per call: {1e6 / publish[0]:,.0f} events/s, "
            f"{publish[0]:.2f} us/event, CPU {publish[1]:.2f}"
        )
    if profile_text:
        print(profile_text)
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "unsigned_us": unsigned,
                    "unsigned_cpu_us": unsigned_cpu,
                    "batch": a.batch,
                    "unsigned_one_call_us": one_call,
                    "unsigned_one_call_cpu_us": one_call_cpu,
                    "unsigned_per_call_us": per_call,
                    "unsigned_per_call_cpu_us": per_call_cpu,
                    "signed_us": signed,
                    "sign_only_us": sign_only,
                    "publish_sqlite_us": publish[0] if publish else None,
                    "publish_sqlite_cpu_us": publish[1] if publish else None,
                    "target_us": TARGET_US,
                    "events": a.events,
                    "python": sys.version.split()[0],
                },
                indent=2,
            )  # fmt: skip
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
