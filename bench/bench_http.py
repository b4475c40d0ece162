"""HTTP + SSE fan-out vs the hub API in-process, in one run.

    .venv/bin/python bench/bench_http.py [--subscribers 100] [--rate 500] [--seconds 10]

HTTP: a real server process (``python -m creative_hub.server``, embedded
SQLite log) on loopback; ``--subscribers`` Server-Sent Events clients in a
second process (raw asyncio sockets, so the client's parsing costs little);
one publisher POSTing single events to /v1/events at ``--rate`` events/s with
a bearer token.  Each event carries its send time (``subject``), so every
subscriber measures publish -> delivery latency on the same clock.

In-process: the same number of subscribers as consumer groups of one hub
(``hub.subscribe``, each group gets every event), the same publisher pacing
with ``hub.publish``, the same events.

Reports delivered events/s (all subscribers together), p50 / p99 / max
delivery latency, and whether every subscriber received every event.
Target (issue 7): 100 SSE subscribers all receive every event, p99 <= 250 ms
at 500 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from creative_hub.hub import Hub
from creative_hub.log import Start

TOPIC = "creative.narrative"
MARK = b'"subject":"t:'  # the send time rides in the subject: t:<ns>


def event(i: int, sent_ns: int) -> dict[str, Any]:
    # ~200-byte payloads, as in FACTS.md's baselines
    return {
        "type": "creative.narrative.fragment",
        "subject": f"t:{sent_ns}",
        "data": {"story": "bench", "title": f"Scene {i}", "text": "x" * 120},
    }


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def summary(latencies_ms: list[float], delivered: int, seconds: float, complete: bool) -> dict[str, Any]:
    return {
        "delivered_per_s": delivered / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(latencies_ms, 50),
        "p99_ms": percentile(latencies_ms, 99),
        "max_ms": max(latencies_ms) if latencies_ms else float("nan"),
        "mean_ms": statistics.fmean(latencies_ms) if latencies_ms else float("nan"),
        "all_received": complete,
    }


# -- the SSE subscribers (a child process) -----------------------------------------------------
async def sse_subscriber(host: str, port: int, expect: int, ready: asyncio.Event, lat: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /v1/topics/{TOPIC}/stream?tail=0 HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    await writer.drain()
    buf = b""
    while b": connected" not in buf:
        buf += await reader.read(65536)
    ready.set()
    got = 0
    buf = b""
    while got < expect:
        chunk = await reader.read(1 << 20)
        if not chunk:
            break
        now = time.time_ns()
        buf += chunk
        start = 0
        while True:
            i = buf.find(MARK, start)
            if i < 0:
                break
            j = buf.find(b'"', i + len(MARK))
            if j < 0:
                break
            lat.append((now - int(buf[i + len(MARK) : j])) / 1e6)
            got += 1
            start = j
        buf = buf[start:]
    writer.close()
    return got


async def subscribers_main(args: argparse.Namespace) -> None:
    readies = [asyncio.Event() for _ in range(args.subscribers)]
    lats: list[list[float]] = [[] for _ in range(args.subscribers)]
    tasks = [
        asyncio.create_task(sse_subscriber(args.host, args.port, args.expect, readies[i], lats[i]))
        for i in range(args.subscribers)
    ]
    await asyncio.gather(*(r.wait() for r in readies))
    print("ready", flush=True)
    counts = await asyncio.wait_for(asyncio.gather(*tasks), args.seconds * 4 + 60)
    t_end = time.time()
    Path(args.out).write_text(
        json.dumps({"counts": counts, "lat": [x for xs in lats for x in xs], "end": t_end})
    )


# -- the HTTP run -------------------------------------------------------------------------------
PUBLISH_CONNECTIONS = 8  # keep-alive connections the publisher spreads its POSTs over


class RawClient:
    """A minimal HTTP/1.1 keep-alive client: httpx's pool costs more CPU than the server
    at 500 requests/s on two cores, and this bench measures the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str) -> None:
        self.reader = reader
        self.writer = writer
        self.head = (
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {{length}}\r\n\r\n"
        )

    @classmethod
    async def connect(cls, host: str, port: int, token: str) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, token)

    async def post(self, path: str, body: bytes) -> int:
        self.writer.write(self.head.format(path=path, length=len(body)).encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def make_token(log_url: str) -> str:
    async with Hub.connect(log_url) as hub:
        await hub.registry.add("bench", kind="agent")
        return await hub.registry.issue_token("bench")


async def pace(n: int, rate: float, send: Any, concurrency: int = 64) -> float:
    """Call ``send(i)`` for i in 0..n-1 at ``rate`` per second; returns the start time."""
    sem = asyncio.Semaphore(concurrency)
    t0 = time.time()
    tasks = []

    async def one(i: int) -> None:
        async with sem:
            await send(i)

    for i in range(n):
        delay = t0 + i / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return t0


async def http_run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    log_url = f"sqlite:///{root / 'http.db'}"
    token = await make_token(log_url)
    port = free_port()
    server = subprocess.Popen(
        # No rate limit and room for every SSE client: the bench measures the server, not its limits.
        [sys.executable, *("-m", "creative_hub.server", "--log", log_url, "--port", str(port))]
        + ["--rate-limit", "0", "--max-connections", "0"],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "server.log", "wb"),
    )
    url = f"http://127.0.0.1:{port}"
    n = int(args.rate * args.seconds)
    subs: subprocess.Popen[str] | None = None
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as probe:
            for _ in range(300):
                try:
                    if (await probe.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        out = root / "subs.json"
        subs = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--role",
                "subscribers",
                "--port",
                str(port),
                "--subscribers",
                str(args.subscribers),
                "--expect",
                str(n),
                "--seconds",
                str(args.seconds),
                "--out",
                str(out),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert subs.stdout is not None
        assert subs.stdout.readline().strip() == "ready"
        conns = [await RawClient.connect("127.0.0.1", port, token) for _ in range(PUBLISH_CONNECTIONS)]
        free: asyncio.Queue[RawClient] = asyncio.Queue()
        for c in conns:
            free.put_nowait(c)
        failures = 0

        async def send(i: int) -> None:
            nonlocal failures
            c = await free.get()
            try:
                failures += await c.post("/v1/events", json.dumps(event(i, time.time_ns())).encode()) != 201
            finally:
                free.put_nowait(c)

        t0 = await pace(n, args.rate, send)
        for c in conns:
            c.close()
        subs.wait(args.seconds * 4 + 90)
        result = json.loads(out.read_text())
        complete = all(c == n for c in result["counts"]) and failures == 0
        s = summary(result["lat"], sum(result["counts"]), result["end"] - t0, complete)
        s["min_received"] = min(result["counts"])
        s["publish_failures"] = failures
        return s
    finally:
        if subs is not None and subs.poll() is None:
            subs.kill()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


# -- the in-process run -------------------------------------------------------------------------
async def hub_run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    n = int(args.rate * args.seconds)
    async with Hub.connect(f"sqlite:///{root / 'hub.db'}") as hub:
        await hub.publish(event(-1, time.time_ns()))  # the topic exists before the groups join
        lats: list[float] = []
        counts = [0] * args.subscribers
        ready = [asyncio.Event() for _ in range(args.subscribers)]

        async def member(k: int) -> None:
            async with hub.subscribe(TOPIC, f"bench-{k}", start=Start.LATEST) as sub:
                ready[k].set()
                while counts[k] < n:
                    d = await sub.next(timeout=args.seconds * 4 + 60)
                    now = time.time_ns()
                    sent = int((d.event.subject or "t:0")[2:])
                    lats.append((now - sent) / 1e6)
                    counts[k] += 1
                    await d.ack()

        members = [asyncio.create_task(member(k)) for k in range(args.subscribers)]
        await asyncio.gather(*(r.wait() for r in ready))

        async def send(i: int) -> None:
            await hub.publish(event(i, time.time_ns()))

        t0 = await pace(n, args.rate, send)
        await asyncio.wait_for(asyncio.gather(*members), args.seconds * 4 + 60)
        return summary(lats, sum(counts), time.time() - t0, all(c == n for c in counts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--rate", type=float, default=500.0, help="events published per second")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--role", default="main", help=argparse.SUPPRESS)
    p.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "subscribers":
        asyncio.run(subscribers_main(args))
        return
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        root = Path(tmp)
        http = asyncio.run(http_run(args, root))
        inproc = asyncio.run(hub_run(args, root))
    figures = {
        "subscribers": args.subscribers,
        "rate": args.rate,
        "seconds": args.seconds,
        "http_sse": http,
        "hub_in_process": inproc,
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"{args.subscribers} subscribers, {args.rate:g} events/s for {args.seconds:g} s "
        f"({int(args.rate * args.seconds)} events each), {os.cpu_count()} CPUs"
    )
    print(f"{'':22} {'delivered/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  all received")
    for name, r in (("HTTP + SSE (loopback)", http), ("hub API in-process", inproc)):
        print(
            f"{name:22} {r['delivered_per_s']:12,.0f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
            f"{r['max_ms']:8.1f}  {'yes' if r['all_received'] else 'NO'}"
        )
    ok = http["all_received"] and http["p99_ms"] <= 250
    print(f"target (all receive, p99 <= 250 ms): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
