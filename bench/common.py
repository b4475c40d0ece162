"""What the engine benchmarks share: their figures as JSON, for ``bench/report.py``.

Every ``bench_<engine>.py`` takes ``--json PATH`` (write the figures) and
``--sweep 1,10,100,1000`` (also publish at each of these batch sizes, hub
and raw one batch at a time, timing every call).  The JSON has one shape
for all engines::

    {"engine": "redis", "events": 50000, "batch": 500,
     "publish": {"raw": 47372.0, "hub": 57075.0},          # events/s
     "consume": {"raw": 142315.0, "hub": 99032.0},         # events/s
     "latency_ms": {"raw": {"p50": .26, "p99": .45}, "hub": {...}},   # publish -> handler
     "sweep": [{"batch": 1, "events": 1000,
                "publish": {"raw": ..., "hub": ...},       # events/s
                "call_ms": {"raw": {"p50": ..., "p99": ...}, "hub": {...}}}, ...],
     "peak_rss_mb": 123.4, "python": "3.11.2", "notes": "..."}
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_SWEEP = "1,10,100,1000"


def add_report_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument(
        "--sweep",
        default="",
        metavar="SIZES",
        help=f"also publish at these batch sizes, one call at a time (e.g. {DEFAULT_SWEEP})",
    )


def sweep_sizes(text: str) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip()]
    if any(s < 1 for s in sizes):
        raise SystemExit(f"--sweep: batch sizes must be >= 1, got {text!r}")
    return sizes


def sweep_events(batch: int, cap: int) -> int:
    """Events to publish at ``batch``: enough calls to have a p99 (>= 200), few enough to be quick."""
    return min(cap, max(200 * batch, 1000)) if batch > 1 else min(cap, 1000)


def quantiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 and p99 of durations in seconds, in milliseconds."""
    if len(seconds) < 2:
        v = seconds[0] * 1000 if seconds else 0.0
        return {"p50": v, "p99": v}
    q = statistics.quantiles(seconds, n=100, method="inclusive")
    return {"p50": q[49] * 1000, "p99": q[98] * 1000}


class Calls:
    """Per-call durations of a publish loop: ``with calls.timed(): await publish(batch)``."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    @contextmanager
    def timed(self) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds.append(time.perf_counter() - t)

    @property
    def total(self) -> float:
        return sum(self.seconds)


async def sweep_point(
    batch: int,
    events: int,
    raw: Callable[[int, Calls], Awaitable[None]],
    hub: Callable[[int, Calls], Awaitable[None]],
) -> dict[str, Any]:
    """Publish ``events`` in calls of ``batch`` through raw and hub (each given ``(round, calls)``),
    raw first, then hub, then both again; the better round of each counts."""
    best: dict[str, Calls] = {}
    for r in range(2):
        for side, fn in (("raw", raw), ("hub", hub)):
            calls = Calls()
            await fn(r, calls)
            if side not in best or calls.total < best[side].total:
                best[side] = calls
    return {
        "batch": batch,
        "events": events,
        "publish": {side: events / c.total for side, c in best.items()},
        "call_ms": {side: quantiles_ms(c.seconds) for side, c in best.items()},
    }


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def figures(
    engine: str,
    *,
    events: int,
    batch: int,
    publish: tuple[float, float],
    consume: tuple[float, float],
    latency: tuple[Sequence[float], Sequence[float]],
    sweep: list[dict[str, Any]] | None = None,
    notes: str = "",
) -> dict[str, Any]:
    """The JSON figures: ``publish``/``consume`` are (raw, hub) events/s; ``latency`` is
    (raw, hub) publish -> handler durations in seconds."""
    return {
        "engine": engine,
        "events": events,
        "batch": batch,
        "publish": {"raw": publish[0], "hub": publish[1]},
        "consume": {"raw": consume[0], "hub": consume[1]},
        "latency_ms": {"raw": quantiles_ms(latency[0]), "hub": quantiles_ms(latency[1])},
        "sweep": sweep or [],
        "peak_rss_mb": peak_rss_mb(),
        "python": sys.version.split()[0],
        "notes": notes,
    }


def write(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=2) + "\n")
