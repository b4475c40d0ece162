"""Run every benchmark in one go and write the performance report.

    .venv/bin/python bench/report.py            # or: make bench-report
    .venv/bin/python bench/report.py --quick    # small runs, to check the machinery (minutes)

Each engine benchmark (``bench_<engine>.py``) runs in its own process with
``--json`` and ``--sweep``, then the HTTP fan-out, the index, the public
path against the peers, and the hub layer (with its profile in its log).
Written to ``--out`` (default ``bench/results``):

* ``report.md``      -- the tables: engine x metric, hub vs raw, with ratios
                        and targets, publish at each batch size, the others;
* ``report.json``    -- every figure the scripts wrote;
* ``throughput.png`` -- publish events/s against batch size, hub and raw;
* ``latency.png``    -- time of one publish call (p50, p99) against batch size;
* ``<bench>.log``    -- what each script printed.

The README's Performance section is the part between the
``<!-- bench-report:start -->`` and ``<!-- bench-report:end -->`` markers,
replaced with ``report.md`` unless ``--no-readme`` is given.  Run it on a
quiet machine: hub and raw share each run, so ratios hold up under load
better than absolute figures, but not perfectly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
START, END = "<!-- bench-report:start -->", "<!-- bench-report:end -->"
ENGINES = ("sqlite", "redis", "kafka", "nats")
NAMES = {"sqlite": "SQLite", "redis": "Redis", "kafka": "Kafka", "nats": "NATS"}
#: hub / raw targets of the engine issues: publish, consume, p99 latency (at most)
TARGETS = {
    "sqlite": (0.5, None, None),
    "redis": (0.8, 0.8, 2.0),
    "kafka": (0.8, 0.8, 2.0),
    "nats": (0.8, 0.8, 2.0),
}
#: the arguments of each run (full, quick); the commands are in the report
ARGS: dict[str, tuple[list[str], list[str]]] = {
    "sqlite": (["--events", "100000"], ["--events", "5000", "--latency-events", "200"]),
    "redis": (
        ["--events", "50000", "--rounds", "5"],
        ["--events", "5000", "--rounds", "2", "--pings", "200"],
    ),
    "kafka": (["--rounds", "3"], ["--events", "5000", "--rounds", "1", "--pings", "100"]),
    "nats": ([], ["--events", "5000", "--rounds", "1", "--latency", "200"]),
    "http": ([], ["--subscribers", "20", "--seconds", "3"]),
    "index": ([], ["--events", "50000", "--log-events", "5000", "--repeat", "3"]),
    "peers": ([], ["--events", "3000", "--single", "300", "--rounds", "1"]),
    "hub_layer": (["--rounds", "5", "--profile"], ["--events", "5000", "--rounds", "2", "--profile"]),
}
#: the hub's public path (bench_peers.py): hub / fair raw and hub / peer, at least
PATH_TARGETS = {"raw": 0.8, "peer": 1.0}
PEERS = {"sqlite": ("eventsourcing", "eventsourcing"), "redis": ("faststream", "FastStream"),
         "kafka": ("faststream", "FastStream"), "nats": ("faststream", "FastStream")}  # fmt: skip
SWEEP = ("1,10,100,1000", "1,10,100")


# -- rendering (pure: tested in tests/core/test_bench_report.py) ----------------------------------
def _rate(x: float) -> str:
    return f"{x:,.0f}"


def _ratio(x: float, target: float | None, at_most: bool = False) -> str:
    text = f"{x:.2f}x"
    if target is None:
        return text
    ok = x <= target if at_most else x >= target
    return f"**{text}** ({'≤' if at_most else '≥'} {target:g}x {'met' if ok else 'NOT met'})"


def engine_rows(results: dict[str, Any]) -> list[str]:
    out = [
        "| engine | publish, events/s: raw → hub | consume + ack, events/s: raw → hub "
        "| publish → handler p50 / p99 ms: raw → hub | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for e in ENGINES:
        f = results.get(e)
        if f is None:
            continue
        tp, tc, tl = TARGETS[e]
        pub, con, lat = f["publish"], f["consume"], f["latency_ms"]
        p99 = lat["hub"]["p99"] / lat["raw"]["p99"] if lat["raw"]["p99"] else float("nan")
        out.append(
            f"| {NAMES[e]} "
            f"| {_rate(pub['raw'])} → {_rate(pub['hub'])} ({_ratio(pub['hub'] / pub['raw'], tp)}) "
            f"| {_rate(con['raw'])} → {_rate(con['hub'])} ({_ratio(con['hub'] / con['raw'], tc)}) "
            f"| {lat['raw']['p50']:.2f} / {lat['raw']['p99']:.2f} → {lat['hub']['p50']:.2f} / "
            f"{lat['hub']['p99']:.2f} (p99 {_ratio(p99, tl, at_most=True)}) "
            f"| {f['peak_rss_mb']:.0f} MiB |"
        )
    return out


def sweep_rows(results: dict[str, Any]) -> list[str]:
    sizes = sorted({p["batch"] for e in ENGINES if e in results for p in results[e].get("sweep", [])})
    if not sizes:
        return []
    out = [
        "| engine | " + " | ".join(f"batch {b}" for b in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for e in ENGINES:
        points = {p["batch"]: p for p in results.get(e, {}).get("sweep", [])}
        if not points:
            continue
        cells = []
        for b in sizes:
            p = points.get(b)
            if p is None:
                cells.append("")
                continue
            raw, hub = p["publish"]["raw"], p["publish"]["hub"]
            cells.append(f"{_rate(hub)}/s ({hub / raw:.2f}x), p99 {p['call_ms']['hub']['p99']:.2f} ms")
        out.append(f"| {NAMES[e]} | " + " | ".join(cells) + " |")
    return out


def _path_cell(f: dict[str, float] | None, peer: str, peer_name: str, targets: bool) -> str:
    """``hub/s (x raw, x peer)`` with the targets marked where they apply."""
    if not f or "hub" not in f:
        return ""
    parts = []
    if "raw" in f:
        parts.append(f"{_ratio(f['hub'] / f['raw'], PATH_TARGETS['raw'] if targets else None)} raw")
    if peer in f:
        parts.append(f"{_ratio(f['hub'] / f[peer], PATH_TARGETS['peer'] if targets else None)} {peer_name}")
    return f"{_rate(f['hub'])}/s" + (f" ({'; '.join(parts)})" if parts else "")


def path_rows(peers: dict[str, Any]) -> list[str]:
    """The hub's public path against the fair raw client and the peers (bench_peers.py)."""
    by_engine = {f["engine"]: f for f in peers.get("results", [])}
    if not by_engine:
        return []
    out = [
        "| engine | `Hub.publish`, batched | `Hub.publish`, one per call | `hub.subscribe` consume + ack "
        "| `hub.subscribe` batches (`fetch` + one `ack`) | `Hub.replay` | peer's path |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in ENGINES:
        f = by_engine.get(e)
        if f is None:
            continue
        peer, name = PEERS[e]
        out.append(
            f"| {NAMES[e]} | {_path_cell(f.get('publish'), peer, name, True)} "
            f"| {_path_cell(f.get('publish_single'), peer, name, False)} "
            f"| {_path_cell(f.get('consume'), peer, name, True)} "
            f"| {_path_cell(f.get('consume_batches'), peer, name, True)} "
            f"| {_path_cell(f.get('replay'), peer, name, True)} "
            f"| {f.get('paths', {}).get(peer, '')} |"
        )
    return out


def render(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}, "
        f"{meta['cpus']} CPUs, Python {meta['python']}) in {meta['minutes']:.0f} min. "
        "Hub and raw client do the same work in the same run, rounds alternating, "
        "best round of each side; events of about 200 bytes. Ratios are hub / raw "
        "(higher is better for rates, lower for latency).",
        "",
        *engine_rows(results),
        "",
    ]
    paths = path_rows(results.get("peers", {}))
    if paths:
        lines += [
            "**The hub's public path** (`bench_peers.py`): what a user calls -- dict events through "
            "`Hub.publish` (validate, stamp, encode, route, dedup, a receipt each) and decoded events "
            "through `hub.subscribe` -- against the fair raw client (a receipt per event, commit after "
            "the handler; its consume does not parse the bodies, the hub decodes and checks every event) "
            "and the peers, on the same server in the same process. Targets: ≥ 0.8x fair "
            "raw, ≥ 1.0x the peer (FastStream's best path on each broker, eventsourcing on SQLite).",
            "",
            *paths,
            "",
        ]
    sweep = sweep_rows(results)
    if sweep:
        lines += [
            "Publish one batch at a time, waiting for each (hub `append` vs the raw client's "
            "batch with its acks): hub events/s, hub / raw, and the hub's p99 time per call.",
            "",
            *sweep,
            "",
            "![publish throughput against batch size](bench/results/throughput.png)",
            "![publish call latency against batch size](bench/results/latency.png)",
            "",
        ]
    kafka = results.get("kafka")
    if kafka and "raw_with_reports" in kafka["publish"]:
        rr, hub = kafka["publish"]["raw_with_reports"], kafka["publish"]["hub"]
        lines += [
            f"Kafka publish against raw confluent-kafka that keeps each record's partition and "
            f"offset (a delivery callback per record, as the hub's receipts need): raw "
            f"{_rate(rr)} events/s, hub {_rate(hub)} ({_ratio(hub / rr, 0.9)}).",
            "",
        ]
    layer = results.get("hub_layer")
    if layer:
        met = "met" if layer["unsigned_us"] <= layer["target_us"] else "NOT met"
        lines += [
            f"The hub layer (`bench_hub_layer.py`: `Hub.publish` less the append -- dicts in, "
            f"log entries out, no engine; best of the rounds): **{layer['unsigned_us']:.2f} µs** per "
            f"unsigned event at {layer['batch']} a call (CPU {layer['unsigned_cpu_us']:.2f}; "
            f"≤ {layer['target_us']:g} µs {met}); {layer['unsigned_one_call_us']:.2f} µs with all "
            f"{layer['events']:,} in one call, {layer['unsigned_per_call_us']:.2f} µs one event per "
            f"call, {layer['signed_us']:.2f} µs signed (Ed25519 signing alone "
            f"{layer['sign_only_us']:.2f} µs). Its profile: `bench/results/hub_layer.log`.",
            "",
        ]
    http, index = results.get("http"), results.get("index")
    if http:
        h = http["http_sse"]
        lines.append(
            f"HTTP: {http['subscribers']} SSE clients at {http['rate']:g} events/s for "
            f"{http['seconds']:g} s: {'all' if h['all_received'] else 'NOT all'} received every event, "
            f"p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms (target: all, p99 ≤ 250 ms)."
        )
    if index:
        lines.append(
            f"Index: {index['events']:,} generated events indexed at {_rate(index['indexed_per_s'])} "
            f"events/s (target ≥ 20,000); search p50 {index['search_p50_ms']:.1f} ms, "
            f"p95 {index['search_p95_ms']:.1f} ms over {index['queries']} queries (target p95 ≤ 50 ms)"
            + (
                f"; from a SQLite log {_rate(index['from_log_per_s'])} events/s."
                if "from_log_per_s" in index
                else "."
            )  # fmt: skip
        )
    lines += ["", "Each engine's own command (the report passes `--json` and `--sweep` to it):", ""]
    for name in [*ENGINES, "http", "index", "peers", "hub_layer"]:
        if name in results:
            args = " ".join(ARGS[name][0])
            lines.append(f"- `.venv/bin/python bench/bench_{name}.py{' ' + args if args else ''}`")
    return "\n".join(lines) + "\n"


def splice(readme: str, section: str) -> str:
    """``readme`` with the text between the report markers replaced by ``section``."""
    try:
        a = readme.index(START) + len(START)
        b = readme.index(END, a)
    except ValueError:
        raise SystemExit(f"README has no {START} ... {END} markers to put the report between") from None
    return readme[:a] + "\n" + section + readme[b:]


# -- plots ------------------------------------------------------------------------------------------
def plot(results: dict[str, Any], out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the dev extra has it; a report without plots is still a report
        return []
    written = []
    colors = {"sqlite": "tab:blue", "redis": "tab:red", "kafka": "tab:gray", "nats": "tab:green"}
    for kind in ("throughput", "latency"):
        fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
        for e in ENGINES:
            pts = sorted(results.get(e, {}).get("sweep", []), key=lambda p: p["batch"])
            if not pts:
                continue
            xs = [p["batch"] for p in pts]
            if kind == "throughput":
                ax.plot(
                    xs, [p["publish"]["hub"] for p in pts], "-o", color=colors[e], label=f"{NAMES[e]} hub"
                )
                ax.plot(xs, [p["publish"]["raw"] for p in pts], "--", color=colors[e], alpha=0.6,
                        label=f"{NAMES[e]} raw")  # fmt: skip
            else:
                ax.plot(xs, [p["call_ms"]["hub"]["p50"] for p in pts], "-o", color=colors[e],
                        label=f"{NAMES[e]} hub p50")  # fmt: skip
                ax.plot(xs, [p["call_ms"]["hub"]["p99"] for p in pts], ":^", color=colors[e],
                        label=f"{NAMES[e]} hub p99")  # fmt: skip
                ax.plot(xs, [p["call_ms"]["raw"]["p50"] for p in pts], "--", color=colors[e], alpha=0.6,
                        label=f"{NAMES[e]} raw p50")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("events per publish call (batch size)")
        if kind == "throughput":
            ax.set_ylabel("events/s")
            ax.set_title("Publish throughput against batch size (solid: hub, dashed: raw client)")
        else:
            ax.set_ylabel("ms per call")
            ax.set_title("Time of one publish call against batch size")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = out / f"{kind}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


# -- running ----------------------------------------------------------------------------------------
def run_one(name: str, quick: bool, out: Path, sweep: str) -> dict[str, Any] | None:
    args = list(ARGS[name][1 if quick else 0])
    target = out / f"{name}.json"
    target.unlink(missing_ok=True)
    cmd = [sys.executable, str(HERE / f"bench_{name}.py"), *args]
    if name in ENGINES:
        cmd += ["--json", str(target)]
        if sweep:
            cmd += ["--sweep", sweep]
    elif name in ("index", "peers", "hub_layer"):
        cmd += ["--json", str(target)]
    else:  # http prints its JSON
        cmd += ["--json"]
    env = {**os.environ, "COLUMNS": "120", "PYTHONPATH": str(HERE)}
    with (out / f"{name}.log").open("w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        log.write(proc.stdout)
    if proc.returncode != 0:
        return None
    if name == "http":
        return dict(json.loads(proc.stdout))
    return dict(json.loads(target.read_text())) if target.exists() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small runs: checks the machinery, not the speed")
    ap.add_argument(
        "--only",
        default="",
        help=f"comma-separated subset of {', '.join([*ENGINES, 'http', 'index', 'peers', 'hub_layer'])}",
    )
    ap.add_argument("--out", type=Path, default=HERE / "results", help="where the report goes")
    ap.add_argument(
        "--no-readme", action="store_true", help="do not rewrite the README's Performance section"
    )
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    names = [*ENGINES, "http", "index", "peers", "hub_layer"]
    if a.only:
        wanted = [n.strip() for n in a.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            ap.error(f"--only: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}")
        names = [n for n in names if n in wanted]
    a.out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    results: dict[str, Any] = {}
    failed: list[str] = []
    started = time.monotonic()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("benchmarks", total=len(names))
        for name in names:
            progress.update(task, description=f"bench_{name}.py")
            got = run_one(name, a.quick, a.out, SWEEP[1 if a.quick else 0])
            if got is None:
                failed.append(name)
                console.print(f"[red]bench_{name}.py failed[/]: see {a.out / (name + '.log')}")
            else:
                results[name] = got
            progress.advance(task)
    meta = {
        "command": "make bench-report" + (" ARGS=--quick" if a.quick else ""),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "minutes": (time.monotonic() - started) / 60,
        "quick": a.quick,
    }
    (a.out / "report.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    plot(results, a.out)
    section = render(results, meta)
    (a.out / "report.md").write_text(section)
    console.print(section)
    if not a.no_readme and not failed and not a.only:
        a.readme.write_text(splice(a.readme.read_text(), section))
        console.print(f"[green]README performance section rewritten[/] from {a.out / 'report.md'}")
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/] (README left as it was)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
