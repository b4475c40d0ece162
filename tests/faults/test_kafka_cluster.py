"""A 3-broker Kafka cluster loses a broker mid-run: nothing acknowledged is lost.

Three KRaft nodes (each broker and controller), every topic with replication
factor 3 and ``min.insync.replicas=2`` (``creative_hub.testing.servers.kafka.
start_cluster``).  A publisher process appends while a consumer group reads;
one broker is SIGKILLed mid-run.  What this proves, on Apache Kafka 4.4:

* every append the engine acknowledged (``acks=all`` with two in-sync
  replicas) is in the log after the failover, stored once (the writer's
  dedup and the idempotent producer keep retried batches single);
* per-key order holds in the log and in what the group handled;
* the group goes on past the failure (it handles what was published after the
  kill) and nothing it handled is missing;
* the broker comes back on its data and rejoins every partition's ISR.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _faults import History
from _publisher import entry
from creative_hub.log import open_log
from creative_hub.testing.contract import WAIT, new_topic
from creative_hub.testing.servers.kafka import KafkaCluster, start_cluster

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(600)]

PUBLISHER = str(Path(__file__).resolve().parents[1] / "_publisher.py")  # run as a script
COUNT = 3000  # events the publisher appends, 50 per batch
KILL_AFTER = 600  # acknowledged events before a broker is killed


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KafkaCluster]:
    c = start_cluster(tmp_path / "cluster")
    try:
        yield c
    finally:
        c.stop()


def acked(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line] if path.exists() else []


def in_sync(bootstrap: str, topic: str) -> list[int]:
    """The ISR size of each partition of ``topic`` (admin client, 10 s)."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.describe_topics(TopicCollection([topic]), request_timeout=10)
    description = futures[topic].result(timeout=15)
    return [len(p.isr) for p in description.partitions]


async def test_a_broker_killed_mid_run_loses_no_acknowledged_event(
    cluster: KafkaCluster, tmp_path: Path
) -> None:
    url = f"{cluster.url}&partitions=3"
    topic, group = new_topic("cluster"), "survivors"
    acks = tmp_path / "acks"
    handled: list[str] = []
    stop = asyncio.Event()

    async def consume() -> None:
        log = open_log(url)
        await log.open()
        try:
            async with log.subscribe(topic, group, ack_timeout=15, batch=500) as sub:
                while not stop.is_set():
                    try:
                        batch = await sub.next_batch(500, timeout=0.5)
                    except TimeoutError:  # nothing new within 0.5 s
                        continue
                    handled.extend(d.id for d in batch)
                    if batch:
                        await sub.ack_many(batch)
        finally:
            await log.close()

    # The topic exists before the consumer joins (a subscription to a
    # topic nobody created yet waits for it; creating it here is simpler).
    log = open_log(url)
    await log.open()
    await log.append(topic, [entry("warm", 0)])
    consumer = asyncio.create_task(consume())
    publisher = subprocess.Popen(
        [sys.executable, PUBLISHER, url, topic, str(acks),
         "--count", str(COUNT), "--batch", "50", "--pause", "0.01", "--timeout", "20",
         "--give-up", "180"],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + WAIT * 2
        while len(acked(acks)) < KILL_AFTER:
            assert publisher.poll() is None, f"publisher exited with {publisher.returncode} before the kill"
            assert time.monotonic() < deadline, "the publisher did not get going"
            await asyncio.sleep(0.1)
        victim = cluster.nodes[1]
        victim.kill()  # SIGKILL: no controlled shutdown, no leader hand-over
        handled_at_kill = len(handled)

        rc = await asyncio.to_thread(publisher.wait, 300)
        assert rc == 0, f"publisher failed with {rc} after the broker was killed"
        ids = set(acked(acks))
        assert len(ids) == COUNT

        # The group goes on: everything acknowledged reaches it, also what came after the kill.
        deadline = time.monotonic() + WAIT * 2
        while not ids <= set(handled):
            assert not consumer.done(), f"the consumer stopped: {consumer.exception()!r}"
            assert time.monotonic() < deadline, (
                f"the group handled {len(ids & set(handled))} of {COUNT} after the kill "
                f"({handled_at_kill} before it)"
            )
            await asyncio.sleep(0.2)
        assert len(handled) > handled_at_kill
        stop.set()
        await asyncio.wait_for(consumer, WAIT)

        # The log: every acknowledged event once, per-key order kept.
        history = History()
        for n in range(COUNT):
            e = entry("e", n)
            history.attempt(e.id, e.key, n // 5)
        history.ack(ids)
        history.read = [r.id async for r in log.read(topic) if r.id.startswith("e-")]
        report = history.check()
        assert report.ok, f"log: {report}"

        # What the group handled: nothing missing or unexpected, per-key order
        # in first handling (a redelivery after the failover is allowed).
        handled_history = History(
            attempted=history.attempted, acked=ids, read=[i for i in handled if i.startswith("e-")]
        )
        report = handled_history.check(allow_duplicate_reads=True)
        assert report.ok, f"group: {report}"

        # The broker comes back on its own data and catches up into every ISR.
        await asyncio.to_thread(victim.start)
        await asyncio.to_thread(cluster.wait_brokers, 3)
        deadline = time.monotonic() + WAIT * 2
        while True:
            with contextlib.suppress(Exception):  # metadata may lag right after the restart
                if in_sync(cluster.bootstrap, topic) == [3, 3, 3]:
                    break
            assert time.monotonic() < deadline, f"ISR still {in_sync(cluster.bootstrap, topic)}"
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        if not consumer.done():
            consumer.cancel()
            with contextlib.suppress(BaseException):
                await consumer
        await log.close()
