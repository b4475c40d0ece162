"""bench/report.py: the tables, the README splice and the plots, from canned figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


report = _load("report")
common = _load("common")


def _engine(name: str, pub: tuple[float, float], con: tuple[float, float]) -> dict[str, Any]:
    return common.figures(  # type: ignore[no-any-return]
        name,
        events=1000,
        batch=100,
        publish=pub,
        consume=con,
        latency=([0.001, 0.002, 0.003], [0.002, 0.003, 0.004]),
        sweep=[
            {
                "batch": b,
                "events": 1000,
                "publish": {"raw": 1000.0 * b, "hub": 900.0 * b},
                "call_ms": {"raw": {"p50": 0.1 * b, "p99": 0.2 * b}, "hub": {"p50": 0.2 * b, "p99": 0.3 * b}},
            }
            for b in (1, 10)
        ],  # fmt: skip
    )


RESULTS = {
    "redis": _engine("redis", (100.0, 120.0), (100.0, 70.0)),
    "kafka": _engine("kafka", (1000.0, 280.0), (1000.0, 900.0)),
}
META = {"command": "make bench-report", "date": "2026-11-25", "machine": "Linux x86_64", "cpus": 2,
        "python": "3.11", "minutes": 12.0}  # fmt: skip


def test_engine_table_gives_ratios_and_says_which_targets_are_missed() -> None:
    text = report.render(RESULTS, META)
    redis = next(line for line in text.splitlines() if line.startswith("| Redis"))
    kafka = next(line for line in text.splitlines() if line.startswith("| Kafka"))
    assert "100 → 120 (**1.20x** (≥ 0.8x met))" in redis
    assert "100 → 70 (**0.70x** (≥ 0.8x NOT met))" in redis
    assert "1,000 → 280 (**0.28x** (≥ 0.8x NOT met))" in kafka
    assert "1,000 → 900 (**0.90x** (≥ 0.8x met))" in kafka
    assert "| SQLite" not in text  # engines that did not run are left out, not made up
    assert "batch 1 | batch 10" in text and "900/s (0.90x), p99 0.30 ms" in text
    assert "`.venv/bin/python bench/bench_redis.py --events 50000 --rounds 5`" in text


def test_splice_replaces_only_between_the_markers() -> None:
    readme = f"# Title\n\n## Performance\n\n{report.START}\nold table\n{report.END}\n\n## Next\n"
    out = report.splice(readme, "new table\n")
    assert out == f"# Title\n\n## Performance\n\n{report.START}\nnew table\n{report.END}\n\n## Next\n"
    assert report.splice(out, "new table\n") == out  # idempotent


def test_splice_without_markers_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="bench-report:start"):
        report.splice("# no markers here\n", "table")


def test_plots_are_written(tmp_path: Path) -> None:
    written = report.plot(RESULTS, tmp_path)
    assert sorted(p.name for p in written) == ["latency.png", "throughput.png"]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_readme_has_the_markers_the_report_writes_between() -> None:
    readme = (BENCH.parent / "README.md").read_text()
    assert readme.index(report.START) < readme.index(report.END)


def test_public_path_table_marks_targets_against_raw_and_the_peer() -> None:
    peers = {
        "results": [
            {
                "engine": "redis",
                "publish": {"hub": 90.0, "raw": 100.0, "faststream": 80.0},
                "publish_single": {"hub": 10.0, "raw": 20.0, "faststream": 5.0},
                "consume": {"hub": 70.0, "raw": 100.0, "faststream": 100.0},
                "paths": {"faststream": "pipelined stream publishes"},
            },
            {"engine": "sqlite", "publish": {"hub": 50.0, "eventsourcing": 25.0}, "replay": {"hub": 9.0}},
        ]
    }
    rows = report.path_rows(peers)
    redis = next(r for r in rows if r.startswith("| Redis"))
    assert "90/s (**0.90x** (≥ 0.8x met) raw; **1.12x** (≥ 1x met) FastStream)" in redis
    assert "70/s (**0.70x** (≥ 0.8x NOT met) raw; **0.70x** (≥ 1x NOT met) FastStream)" in redis
    assert "10/s (0.50x raw; 2.00x FastStream)" in redis  # one per call: shown, no target
    assert "pipelined stream publishes" in redis
    sqlite = next(r for r in rows if r.startswith("| SQLite"))
    assert "**2.00x** (≥ 1x met) eventsourcing" in sqlite and "| 9/s |" in sqlite
    section = report.render({"peers": peers}, META)
    assert "The hub's public path" in section and "bench/bench_peers.py" in section
    assert report.path_rows({}) == []


@pytest.mark.parametrize(("unsigned", "mark"), [(2.41, "≤ 3 µs met"), (3.2, "≤ 3 µs NOT met")])
def test_the_hub_layer_line_says_whether_its_target_is_met(unsigned: float, mark: str) -> None:
    layer = {
        "unsigned_us": unsigned,
        "unsigned_cpu_us": unsigned - 0.01,
        "unsigned_per_call_us": 3.9,
        "unsigned_one_call_us": 2.9,
        "batch": 500,
        "signed_us": 24.0,
        "sign_only_us": 21.0,
        "target_us": 3.0,
        "events": 20000,
    }
    section = report.render({"hub_layer": layer}, META)
    assert f"**{unsigned:.2f} µs** per unsigned event at 500 a call" in section and mark in section
    assert "2.90 µs with all 20,000 in one call" in section
    assert "bench/results/hub_layer.log" in section
    assert "`.venv/bin/python bench/bench_hub_layer.py --rounds 5 --profile`" in section
