"""redis-server for tests: Debian's binary on a free loopback port, AOF on.

``scripts/install-redis.sh`` installs the package when ``redis-server`` is
missing (the Debian service is not used; each test session runs its own).
Persistence is what the engine documents for production: the append-only
file, fsynced every second, no RDB snapshots.  A restart (``stop()`` or
``kill()``, then ``start()``) reuses the directory and the port, so the data
and the URL survive.

    server = start(tmp_path)
    log = open_log(server.url)          # redis://127.0.0.1:<port>/0
    server.pause(); ...; server.resume()
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from . import STARTUP_TIMEOUT, Server, ServerError, free_port, wait_for_port

__all__ = ["RedisServer", "redis_server_binary", "start"]


def redis_server_binary() -> str:
    """The path of ``redis-server``, or ServerError saying how to get it."""
    found = shutil.which("redis-server")
    if found is None:
        raise ServerError(
            "redis-server not found: run scripts/install-redis.sh (apt-get install redis-server)"
        )
    return found


class RedisServer(Server):
    """One redis-server child process with its own directory and port."""

    name = "redis"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir)
        self.binary = redis_server_binary()
        self.port = port or free_port()  # kept across restarts, so the URL stays valid

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> Sequence[str]:
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--daemonize", "no",
            "--logfile", "",  # stdout, which start() sends to redis.out
            # Durability as documented for the engine: AOF, fsync every second
            # (a process kill loses nothing acked; an OS crash at most ~1 s).
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",  # no RDB snapshots: the AOF is the only copy
            # DEBUG SLEEP / CLIENT PAUSE are in the fault toolkit (RELIABILITY.md).
            "--enable-debug-command", "local",
        ]  # fmt: skip

    def wait_ready(self) -> None:
        """Listening, and past loading the AOF (a restart answers LOADING until then)."""
        wait_for_port(self.port, proc=self.proc)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        reply = b""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(f"redis-server exited with {self.proc.returncode}")
            try:
                reply = _ping(self.port)
            except OSError as e:
                reply = str(e).encode()
            if reply.startswith(b"+PONG"):
                return
            time.sleep(0.05)
        raise ServerError(f"redis-server on {self.port} never answered PING: {reply!r}")


def _ping(port: int) -> bytes:
    # Plain RESP over a socket: the harness needs no Redis client.
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
        s.sendall(b"PING\r\n")
        return s.recv(256)


def start(workdir: Path) -> Server:
    """Start a redis-server in ``workdir`` and return it once it answers."""
    return RedisServer(workdir).start()
