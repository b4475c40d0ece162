"""Real broker servers for tests, started on free loopback ports.

Never the default port, never a shared instance: each ``Server`` owns a temp
directory and a child process that it starts, stops, kills, pauses and
restarts on the same data directory (for fault tests).  Each engine has one
module here (``redis``, ``nats``, ``kafka``) with a ``Server`` subclass and a
``start(workdir) -> Server`` factory.

    server = start_server("redis", tmp_path)
    try:
        log = open_log(server.url)
        ...
    finally:
        server.stop()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Self

from ...processes import stop_process

__all__ = ["SERVER_MODULES", "Cluster", "Server", "ServerError", "free_port", "start_server", "wait_for_port"]

SERVER_MODULES = {
    "redis": "creative_hub.testing.servers.redis",
    "nats": "creative_hub.testing.servers.nats",
    "kafka": "creative_hub.testing.servers.kafka",
    "llm": "creative_hub.testing.servers.llm",  # the local model (not an engine)
}

STARTUP_TIMEOUT = 60.0  # seconds a server gets to start listening


class ServerError(RuntimeError):
    """A test server could not be started; the message says what to install."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float = STARTUP_TIMEOUT, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until 127.0.0.1:``port`` accepts connections, or raise ServerError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class Server:
    """A broker child process on loopback.  Subclasses set ``command()`` and ``url``."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir).resolve()  # the child runs in it: a relative path would break
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / f"{self.name}.out"

    # -- to override -------------------------------------------------------
    @property
    def url(self) -> str:
        raise NotImplementedError

    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def wait_ready(self) -> None:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None

    # -- lifecycle ---------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Server:
        """Start (or restart) on the same data directory; returns when it serves."""
        if self.running:
            return self
        self.launch()
        try:
            self.wait_ready()
        except Exception as e:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            self.kill()
            raise ServerError(f"{self.name} did not start: {e}\n--- {self.log_path} ---\n{tail}") from e
        return self

    def launch(self) -> None:
        """Start the process, its output to ``log_path``, without waiting for it to serve
        (``start()`` waits; a cluster launches every node before it waits for any)."""
        out = open(self.log_path, "ab")  # handed to the child
        try:
            self.proc = subprocess.Popen(
                list(self.command()),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=self.env(),
                start_new_session=True,  # a Ctrl-C in the test run does not hit it first
            )
        finally:
            out.close()

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not exit in time."""
        if self.proc is None:
            return
        self.resume()  # a paused (SIGSTOP) one would act on SIGTERM only once resumed
        stop_process(self.proc, timeout)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the process stays, answering nothing."""
        if self.running:
            os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause()``."""
        if self.running:
            os.kill(self.pid, signal.SIGCONT)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Cluster:
    """Several ``Server`` nodes started and stopped together (``with cluster:``)."""

    nodes: Sequence[Server]

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(engine: str, workdir: Path) -> Server:
    """Start the test server for ``engine`` ("redis", "nats", "kafka") in ``workdir``."""
    module = import_module(SERVER_MODULES[engine])
    server: Server = module.start(Path(workdir))
    return server
