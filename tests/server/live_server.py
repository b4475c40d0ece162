"""Real server processes for the HTTP tests (started by the fixtures in conftest.py).

``live`` is the server as users start it (``python -m creative_hub up``);
``limited`` runs ``python -m creative_hub.server`` with small limits, CORS and
a short SSE queue; ``throttled`` has a per-token rate limit.  Each gets a
fresh SQLite log and principals alice, bob and carol with a token each.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from creative_hub.hub import Hub

PRINCIPALS = ("alice", "bob", "carol")
LIMITED_MAX_BODY = 1024 * 1024  # bytes; the size-limit tests go around it
LIMITED_QUEUE = 16  # SSE events a client may lag on the limited server
CORS_ORIGIN = "https://studio.example"
STRICT_TIMEOUT = 3  # seconds: header, body and idle timeouts of the strict server
STRICT_CONNECTIONS = 4  # open connections per address on the strict server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """A server process and what the tests need to talk to it."""

    url: str
    log_url: str
    proc: subprocess.Popen[bytes]
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def metric(self, name: str) -> float:
        """A metric's value (summed over its labels) from /metrics."""
        text = httpx.get(self.url + "/metrics", timeout=30).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


async def _add_principals(log_url: str) -> dict[str, str]:
    async with Hub.connect(log_url) as hub:
        tokens = {}
        for name in PRINCIPALS:
            await hub.registry.add(name)
            tokens[name] = await hub.registry.issue_token(name)
        return tokens


def start_server(root: Path, args: list[str], *, module: str = "creative_hub") -> Iterator[LiveServer]:
    """Start a server process on a free port, wait for /healthz, stop it after."""
    root.mkdir(parents=True, exist_ok=True)
    log_url = f"sqlite:///{root / 'hub.db'}"
    tokens = asyncio.run(_add_principals(log_url))
    port = free_port()
    cmd = [sys.executable, "-m", module, *args, "--port", str(port), "--log", log_url]
    env = {**os.environ, "COLUMNS": "120", "TERM": "dumb"}
    env.pop("PYTHONTRACEMALLOC", None)  # a traced server is too slow to answer in time
    out = open(root / "server.log", "wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=root, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(root / 'server.log').read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer: {(root / 'server.log').read_text()}")
            time.sleep(0.1)
        yield LiveServer(url, log_url, proc, tokens)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


@dataclass
class SSEMessage:
    id: str | None
    event: str | None
    data: str


class SSEReader:
    """Reads an SSE response message by message (comments and retry lines skipped)."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()

    def next(self, n: int) -> list[SSEMessage]:
        """The next ``n`` messages."""
        out: list[SSEMessage] = []
        fields: dict[str, str] = {}
        for line in self.lines:
            if line == "":
                if "data" in fields:
                    out.append(SSEMessage(fields.get("id"), fields.get("event"), fields["data"]))
                    if len(out) == n:
                        return out
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        return out
