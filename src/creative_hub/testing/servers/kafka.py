"""Apache Kafka 4.x for tests: KRaft nodes (broker + controller) on loopback.

``start(workdir)`` runs one node; ``start_cluster(workdir)`` runs three, each
both broker and controller (a quorum of 3 voters survives one node down),
with replication factor 3 and ``min.insync.replicas=2`` for every topic and
the internal ones, so an acknowledged write is on at least two brokers.

The jars come from Maven Central (``scripts/install-kafka.sh`` puts them in
``.tools/kafka/libs``); ``kafka_libs()`` looks in ``CREATIVE_HUB_KAFKA_LIBS``,
then ``./.tools/kafka/libs``, then the source checkout, so it works from a wheel.  The
first start formats the data directory with a random cluster id; a restart
reuses the directory, the ports and the cluster id, so data survives
``stop()``/``kill()`` + ``start()``.

The broker is tuned for fast tests, not for production: consumer groups
rebalance at once (no initial delay, short minimum session timeout), internal
topics have one replica, retention is checked every second.

    server = start(tmp_path)
    log = open_log(server.url)          # kafka://127.0.0.1:<port>?min_session=0.5

    cluster = start_cluster(tmp_path)   # three nodes
    log = open_log(cluster.url)         # kafka://h1,h2,h3?min_session=0.5&replication=3
    cluster.nodes[1].kill()             # SIGKILL one broker; cluster.nodes[1].start() brings it back
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from . import Cluster, Server, ServerError, free_port, wait_for_port

__all__ = ["KafkaCluster", "KafkaServer", "kafka_libs", "start", "start_cluster"]

HEAP = "512m"  # broker JVM heap; plenty for tests on a 2-core box
MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


def _checkout() -> Path | None:
    """The source checkout this module runs from, or None when installed from a wheel."""
    root = Path(__file__).resolve().parents[4]  # src/creative_hub/testing/servers/kafka.py
    if (root / "pyproject.toml").is_file() and (root / "src" / "creative_hub").is_dir():
        return root
    return None


def _jars(libs: Path) -> bool:
    return any(libs.glob("kafka_2.13-*.jar"))


def kafka_libs() -> Path:
    """The directory of Kafka jars, or ServerError saying how to get them.

    ``CREATIVE_HUB_KAFKA_LIBS`` when set (and then only it), else
    ``.tools/kafka/libs`` under the current directory, else under the source
    checkout when running from one -- so an installed wheel finds the jars too.
    """
    env = os.environ.get("CREATIVE_HUB_KAFKA_LIBS")
    if env:
        candidates = [Path(env)]
    else:
        candidates = [Path.cwd() / ".tools" / "kafka" / "libs"]
        checkout = _checkout()
        if checkout is not None:
            candidates.append(checkout / ".tools" / "kafka" / "libs")
    libs = next((c for c in candidates if _jars(c)), None)
    if libs is None:
        looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
        raise ServerError(
            f"Kafka jars (kafka_2.13-*.jar) not found in {looked}: run scripts/install-kafka.sh from a "
            "creative-hub checkout (needs Java 17+ and Maven; fetches from Maven Central into "
            ".tools/kafka/libs), or point CREATIVE_HUB_KAFKA_LIBS at a directory holding them"
        )
    if shutil.which("java") is None:
        raise ServerError("java not found: install Java 17+ (apt-get install -y openjdk-17-jre-headless)")
    return libs


def _cluster_id() -> str:
    # Kafka cluster ids are 16 random bytes in URL-safe base64 without padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _ports(workdir: Path) -> tuple[int, int]:
    """A node's (broker, controller) ports, chosen once and kept in ``workdir/ports``."""
    ports = workdir / "ports"
    if ports.exists():  # a restart keeps its ports (clients and metadata know them)
        broker, controller = map(int, ports.read_text().split())
        return broker, controller
    workdir.mkdir(parents=True, exist_ok=True)
    broker, controller = free_port(), free_port()
    while controller == broker:
        controller = free_port()
    ports.write_text(f"{broker} {controller}\n")
    return broker, controller


class KafkaServer(Server):
    """One KRaft node (process.roles=broker,controller); alone, a single-node cluster.

    In a cluster each node gets its ``node_id``, the quorum's ``voters``
    (``id@host:port,...``), the shared ``cluster_id`` and ``replication``
    (3: every topic, internal ones included, on three brokers with
    ``min.insync.replicas=2``).
    """

    name = "kafka"

    def __init__(
        self,
        workdir: Path,
        *,
        node_id: int = 1,
        voters: str | None = None,
        cluster_id: str | None = None,
        replication: int = 1,
    ) -> None:
        super().__init__(workdir)
        self.libs = kafka_libs()
        self.node_id = node_id
        self.replication = replication
        self.data = self.workdir / "data"
        self.config = self.workdir / "server.properties"
        self.port, self.controller_port = _ports(self.workdir)
        self.voters = voters or f"{node_id}@127.0.0.1:{self.controller_port}"
        self._write_config()
        if not (self.data / "meta.properties").exists():
            self._format(cluster_id or _cluster_id())

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        # The broker allows 0.5 s sessions (group.min.session.timeout.ms), so
        # tests with short ack timeouts see dead members leave quickly.
        return f"kafka://{self.bootstrap}?min_session=0.5"

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{HEAP}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def _write_config(self) -> None:
        rf = str(self.replication)
        min_isr = str(min(2, self.replication))  # an acknowledged write is on two brokers
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "1",
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "4",  # fewer partitions: faster start on 2 cores
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": "2",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
            "auto.create.topics.enable": "false",  # the engine creates topics explicitly
            "delete.topic.enable": "true",
            # Fast consumer groups: no initial delay, short sessions allowed.
            "group.initial.rebalance.delay.ms": "0",
            "group.min.session.timeout.ms": "500",
            "group.consumer.min.session.timeout.ms": "1000",
            "group.consumer.min.heartbeat.interval.ms": "500",
            "group.consumer.heartbeat.interval.ms": "1000",
            # Retention is checked every second rather than every 5 minutes.
            "log.retention.check.interval.ms": "1000",
            "log.segment.delete.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.flush.interval.messages": str(2**62),  # fsync left to the OS, as Kafka defaults
        }
        self.config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _format(self, cluster_id: str) -> None:
        import subprocess

        # "--cluster-id=X", not "-t X": a random id may start with "-" (argparse
        # would take it for an option).
        cluster = f"--cluster-id={cluster_id}"
        cmd = self._java(STORAGE_TOOL, "format", cluster, "--config", str(self.config))
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.workdir, timeout=120)
        if result.returncode != 0:
            raise ServerError(
                f"kafka storage format failed ({result.returncode}): {result.stdout}{result.stderr}"
            )

    def command(self) -> Sequence[str]:
        return self._java(MAIN, str(self.config))

    def wait_ready(self) -> None:
        assert self.proc is not None
        wait_for_port(self.port, proc=self.proc)
        # The port opens before the broker has registered with its controller
        # and can serve metadata; wait for a metadata answer naming a broker.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"kafka exited with {self.proc.returncode}")
            if _broker_count(self.port) > 0:
                return
            time.sleep(0.1)
        raise ServerError(f"kafka on {self.port} listens but serves no metadata after 60s")


class KafkaCluster(Cluster):
    """Three KRaft nodes, each broker and controller, replication 3 and min ISR 2.

    ``nodes[i]`` is a :class:`KafkaServer`: ``kill()`` one (SIGKILL) and the
    other two keep the controller quorum and every in-sync write; ``start()``
    brings it back on the same ports and data, and it catches up.
    """

    name = "kafka-cluster"

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = Path(workdir)
        cluster_id = _cluster_id()
        dirs = [self.workdir / f"node{i + 1}" for i in range(size)]
        controller_ports = [_ports(d)[1] for d in dirs]
        voters = ",".join(f"{i + 1}@127.0.0.1:{port}" for i, port in enumerate(controller_ports))
        self.nodes: list[KafkaServer] = [
            KafkaServer(d, node_id=i + 1, voters=voters, cluster_id=cluster_id, replication=size)
            for i, d in enumerate(dirs)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}?min_session=0.5&replication={len(self.nodes)}"

    def start(self) -> KafkaCluster:
        """Start every node that is not running; returns when each lists all brokers."""
        # A controller quorum needs a majority before any node can register:
        # launch every process first, then wait for them together.
        waiting = [node for node in self.nodes if not node.running]
        for node in waiting:
            node.launch()
        try:
            for node in waiting:
                node.wait_ready()
            self.wait_brokers(len(self.nodes))
        except Exception:
            self.stop()
            raise
        return self

    def wait_brokers(self, count: int, timeout: float = 120.0) -> None:
        """Block until every running node's metadata lists ``count`` brokers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.running]
            if live and all(_broker_count(n.port) >= count for n in live):
                return
            time.sleep(0.2)
        raise ServerError(f"kafka cluster: fewer than {count} brokers registered after {timeout}s")



def _broker_count(port: int) -> int:
    """A raw Kafka Metadata v1 request: how many brokers does this node list?"""
    # Hand-rolled so the harness does not depend on a Kafka client: request
    # header (api key 3 = Metadata, version 1, correlation 1, client id) and
    # a topics array of -1 (null = all topics... v1 uses -1 for all).
    client = b"ch-harness"
    body = (
        (3).to_bytes(2, "big")
        + (1).to_bytes(2, "big")
        + (1).to_bytes(4, "big")
        + len(client).to_bytes(2, "big")
        + client
        + (0).to_bytes(4, "big", signed=True)  # no topics: brokers only
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(len(body).to_bytes(4, "big") + body)
            size = int.from_bytes(_recv(s, 4), "big")
            reply = _recv(s, size)
    except OSError:
        return 0
    # correlation id (4) then the brokers array length (4)
    return int.from_bytes(reply[4:8], "big", signed=True) if len(reply) >= 8 else 0


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def start(workdir: Path) -> Server:
    """Start a Kafka node in ``workdir`` (formatting it on first use)."""
    return KafkaServer(workdir).start()


def start_cluster(workdir: Path, size: int = 3) -> KafkaCluster:
    """Start a ``size``-node Kafka cluster in ``workdir`` (node1, node2, ...)."""
    return KafkaCluster(workdir, size).start()
