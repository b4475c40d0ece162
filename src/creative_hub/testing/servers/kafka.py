"""Apache Kafka 4.x for tests: one KRaft node (broker + controller) on loopback.

The jars come from Maven Central (``scripts/install-kafka.sh`` puts them in
``.tools/kafka/libs``; ``CREATIVE_HUB_KAFKA_LIBS`` points elsewhere).  The
first start formats the data directory with a random cluster id; a restart
reuses the directory, the ports and the cluster id, so data survives
``stop()``/``kill()`` + ``start()``.

The broker is tuned for fast tests, not for production: consumer groups
rebalance at once (no initial delay, short minimum session timeout), internal
topics have one replica, retention is checked every second.

    server = start(tmp_path)
    log = open_log(server.url)          # kafka://127.0.0.1:<port>?min_session=0.5
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

from . import Server, ServerError, free_port, wait_for_port

__all__ = ["KafkaServer", "kafka_libs", "start"]

ROOT = Path(__file__).resolve().parents[4]  # the repository (src/creative_hub/testing/servers/..)
HEAP = "512m"  # broker JVM heap; plenty for tests on a 2-core box
MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


def kafka_libs() -> Path:
    """The directory of Kafka jars, or ServerError saying how to get them."""
    libs = Path(os.environ.get("CREATIVE_HUB_KAFKA_LIBS", ROOT / ".tools" / "kafka" / "libs"))
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise ServerError(
            f"Kafka jars not found in {libs}: run scripts/install-kafka.sh "
            "(needs Java 17+ and Maven; fetches from Maven Central)"
        )
    if shutil.which("java") is None:
        raise ServerError("java not found: install Java 17+ (apt-get install -y openjdk-17-jre-headless)")
    return libs


def _cluster_id() -> str:
    # Kafka cluster ids are 16 random bytes in URL-safe base64 without padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaServer(Server):
    """A single-node KRaft cluster (process.roles=broker,controller)."""

    name = "kafka"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.libs = kafka_libs()
        self.data = self.workdir / "data"
        self.config = self.workdir / "server.properties"
        ports = self.workdir / "ports"
        if ports.exists():  # a restart keeps its ports (clients and metadata know them)
            self.port, self.controller_port = map(int, ports.read_text().split())
        else:
            self.port, self.controller_port = free_port(), free_port()
            while self.controller_port == self.port:
                self.controller_port = free_port()
            ports.write_text(f"{self.port} {self.controller_port}\n")
        self._write_config()
        if not (self.data / "meta.properties").exists():
            self._format()

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
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",  # fewer partitions: faster start on 2 cores
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "2",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
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

    def _format(self) -> None:
        import subprocess

        # "--cluster-id=X", not "-t X": a random id may start with "-" (argparse
        # would take it for an option).
        cluster = f"--cluster-id={_cluster_id()}"
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
            if _has_broker(self.port):
                return
            time.sleep(0.1)
        raise ServerError(f"kafka on {self.port} listens but serves no metadata after 60s")


def _has_broker(port: int) -> bool:
    """A raw Kafka Metadata v1 request: does the broker list itself yet?"""
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
        return False
    # correlation id (4) then the brokers array length (4)
    return len(reply) >= 8 and int.from_bytes(reply[4:8], "big", signed=True) > 0


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
