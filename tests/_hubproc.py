"""A hub server process for tests that need one from outside (a kernel, a git hook).

with HubProcess(tmp_path) as hub:      # principals alice and bob, a token each
    hub.url, hub.tokens["alice"]
    hub.stop(); hub.start()            # same log, same port: the hub goes away and comes back
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from creative_hub.hub import Hub

PRINCIPALS = ("alice", "bob")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _principals(log_url: str) -> dict[str, str]:
    async with Hub.connect(log_url) as hub:
        tokens = {}
        for name in PRINCIPALS:
            await hub.registry.add(name)
            tokens[name] = await hub.registry.issue_token(name)
        return tokens


class HubProcess:
    """``python -m creative_hub.server`` on a free loopback port with a fresh SQLite log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.log_url = f"sqlite:///{root / 'hub.db'}"
        self.tokens = asyncio.run(_principals(self.log_url))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "creative_hub.server", "--port", str(self.port), "--log", self.log_url]
        env = {**os.environ, "COLUMNS": "120", "TERM": "dumb"}
        env.pop("PYTHONTRACEMALLOC", None)
        out = open(self.root / "server.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.root, env=env)
        out.close()
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.root / 'server.log').read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer: {(self.root / 'server.log').read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def client(self, who: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def __enter__(self) -> HubProcess:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
