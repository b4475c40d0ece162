"""One fault suite, every engine: processes killed, paused and restarted, a
network partition, duplicate publishes, a slow consumer behind retention.  Each scenario ends with a ledger
check (tests/_faults.py, History): every acknowledged event is
there, nothing unexpected, each effect exactly once, per-key order kept.

Scenarios an engine cannot honour are skipped with the reason in
``CANNOT`` (and in the README's scenario x engine table).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _faults import History
from _publisher import entry
from creative_hub.ledger import EffectLedger
from creative_hub.log import Feature, Log, open_log
from creative_hub.testing.contract import WAIT, new_topic
from creative_hub.testing.servers import start_server
from creative_hub.testing.worker import assert_effects_once, record_effect, survive

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BROKERS = ("redis", "kafka", "nats")
PUBLISHER = str(Path(__file__).resolve().parents[1] / "_publisher.py")  # run as a script
CANNOT: dict[tuple[str, str], str] = {
    (
        "sqlite",
        "broker",
    ): "no broker: the log is a file in the hub's own process (see the publisher-kill scenario)",
}


def skip_unless(engine: str, scenario: str) -> None:
    reason = CANNOT.get((engine, scenario))
    if reason:
        pytest.skip(f"{engine} cannot run {scenario}: {reason}")


def spawn(*args: str) -> subprocess.Popen[bytes]:
    """``python -m`` a module, or ``python`` a script (a path ending in .py: the tests' own publisher)."""
    return subprocess.Popen([sys.executable, *(args if args[0].endswith(".py") else ("-m", *args))])


async def wait_for_file(path: Path, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not path.exists() or not path.read_text().strip():
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{what} did not get going"
        await asyncio.sleep(0.05)


def acked_ids(path: Path) -> set[str]:
    return {line for line in path.read_text().splitlines() if line} if path.exists() else set()


async def read_ids(log: Log, topic: str) -> list[str]:
    return [r.id async for r in log.read(topic)]


def history_of(count: int, acked: set[str]) -> History:
    h = History()
    for n in range(count):
        e = entry("e", n)
        h.attempt(e.id, e.key, n // 5)
    h.ack(acked)
    return h


def storm(url: str, topic: str, acks: Path, count: int, timeout: str) -> subprocess.Popen[bytes]:
    """A publisher process: ``count`` events in batches of 50, ``timeout`` s per append."""
    return spawn(
        PUBLISHER, url, topic, str(acks), "--count", str(count),
        "--batch", "50", "--pause", "0.01", "--timeout", timeout,
    )  # fmt: skip


async def check_log(url: str, topic: str, count: int, acks: Path) -> None:
    """Ledger check of what the publisher acked against what the log holds."""
    log = open_log(url)
    await log.open()
    try:
        h = history_of(count, acked_ids(acks))
        h.read = await read_ids(log, topic)
    finally:
        await log.close()
    report = h.check()
    assert report.ok, str(report)
    assert len(h.read) == count


async def test_consumer_paused_past_its_lease_acks_late_harmlessly(
    log: Log, log_url: str, tmp_path: Path
) -> None:
    # A member does the effect of its 4th event and is SIGSTOPped before its
    # ack, longer than the ack timeout.  Another member takes over; then the
    # first is resumed and acks late.  Every effect still happens exactly once.
    topic, group = new_topic("faults"), "stopped"
    entries = [entry("e", n) for n in range(40)]
    await log.append(topic, entries)
    ledger_path, marker = tmp_path / "ledger.db", tmp_path / "marker"
    ledger = EffectLedger(ledger_path)
    worker = spawn(
        "creative_hub.testing.worker",
        log_url,
        topic,
        group,
        str(ledger_path),
        str(marker),
        "--ack-timeout",
        "2",
        "--hang-after",
        "3",
        "--hang-seconds",
        "1",
        "--idle-exit",
        "3",
    )
    try:
        await wait_for_file(marker, worker, "worker")
        os.kill(worker.pid, signal.SIGSTOP)
        async with log.subscribe(topic, group, consumer="survivor", ack_timeout=2) as sub:
            await survive(sub, ledger, group, len(entries), timeout=WAIT)
            os.kill(worker.pid, signal.SIGCONT)  # it wakes, acks late, goes on
            deadline = time.monotonic() + WAIT
            while worker.poll() is None and time.monotonic() < deadline:
                try:
                    d = await sub.next(timeout=0.2)
                except TimeoutError:
                    continue
                record_effect(ledger, group, d.id, "survivor")
                await d.ack()
        assert worker.wait(WAIT) == 0
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGCONT)
            worker.kill()
            worker.wait()
    assert_effects_once(ledger, (e.id for e in entries))


async def test_publisher_killed_mid_batch_loses_no_acked_event(
    log: Log, log_url: str, tmp_path: Path
) -> None:
    topic, acks = new_topic("faults"), tmp_path / "acks"
    pub = spawn(
        PUBLISHER, log_url, topic, str(acks), "--count", "100000", "--batch", "200"
    )
    try:
        await wait_for_file(acks, pub, "publisher")
        await asyncio.sleep(0.5)
        os.kill(pub.pid, signal.SIGKILL)
        pub.wait()
    finally:
        if pub.poll() is None:
            pub.kill()
            pub.wait()
    acked = acked_ids(acks)
    assert acked
    h = history_of(100_000, acked)
    h.read = await read_ids(log, topic)
    report = h.check()
    assert report.ok, str(report)
    if Feature.ATOMIC_APPEND in log.FEATURES:
        stored = {int(i.split("-")[1]) for i in h.read}
        batches = {n // 200 for n in stored}
        partial = [b for b in batches if not all(b * 200 + k in stored for k in range(200))]
        assert not partial, f"batches stored in part: {partial}"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
async def test_broker_restart_keeps_every_acked_event(engine: str, tmp_path: Path, how: str) -> None:
    skip_unless(engine, "broker")
    server = start_server(engine, tmp_path / "server")
    try:
        topic, acks = new_topic("faults"), tmp_path / "acks"
        pub = storm(server.url, topic, acks, 3000, "5")
        try:
            await wait_for_file(acks, pub, "publisher")
            if how == "SIGKILL":
                server.kill()
            else:
                server.stop()
            await asyncio.sleep(1.0)
            server.start()
            assert pub.wait(240) == 0, "the publisher did not finish after the restart"
        finally:
            if pub.poll() is None:
                pub.kill()
                pub.wait()
        await check_log(server.url, topic, 3000, acks)
    finally:
        server.stop()


async def test_broker_paused_publisher_retries_into_one_copy(engine: str, tmp_path: Path) -> None:
    skip_unless(engine, "broker")
    server = start_server(engine, tmp_path / "server")
    try:
        topic, acks = new_topic("faults"), tmp_path / "acks"
        pub = storm(server.url, topic, acks, 2000, "3")
        try:
            await wait_for_file(acks, pub, "publisher")
            server.pause()
            await asyncio.sleep(6.0)  # longer than the publisher's timeout: indefinite outcomes
            server.resume()
            assert pub.wait(240) == 0, "the publisher did not finish after the pause"
        finally:
            server.resume()
            if pub.poll() is None:
                pub.kill()
                pub.wait()
        await check_log(server.url, topic, 2000, acks)
    finally:
        server.stop()


CANNOT[("sqlite", "partition")] = "no network between the hub and its log"
CANNOT[("kafka", "partition")] = (
    "clients reconnect to the broker's advertised address, not through a proxy; "
    "the SIGSTOP scenario covers a broker that stops answering"
)


def through(url: str, port: int) -> str:
    """``url`` with its host:port replaced by 127.0.0.1:``port``."""
    scheme, _, rest = url.partition("://")
    userinfo, at, hostpart = rest.partition("@") if "@" in rest.split("/")[0] else ("", "", rest)
    _, slash, tail = hostpart.partition("/")
    return f"{scheme}://{userinfo}{at}127.0.0.1:{port}{slash}{tail}"


async def test_network_partition_then_heal(engine: str, tmp_path: Path) -> None:
    # Through a loopback proxy: the link goes silent (a partition), then every
    # connection is reset when it heals.  Publishes in between time out and are
    # retried with the same ids; nothing acked is lost and nothing is doubled.
    skip_unless(engine, "partition")
    from urllib.parse import urlsplit

    from _faults import FaultProxy, Mode

    server = start_server(engine, tmp_path / "server")
    try:
        port = urlsplit(server.url.split(",")[0]).port
        assert port is not None
        async with FaultProxy(port) as proxy:
            url = through(server.url, proxy.port)
            topic, acks = new_topic("faults"), tmp_path / "acks"
            pub = storm(url, topic, acks, 2000, "3")
            try:
                await wait_for_file(acks, pub, "publisher")
                proxy.mode = Mode.BLACKHOLE
                await asyncio.sleep(5.0)
                proxy.reset_all()
                proxy.heal()
                assert await asyncio.to_thread(pub.wait, 240) == 0, (
                    "the publisher did not finish after healing"
                )
            finally:
                if pub.poll() is None:
                    pub.kill()
                    pub.wait()
            await check_log(url, topic, 2000, acks)
    finally:
        server.stop()


async def test_slow_consumer_behind_retention_reports_the_gap(log: Log, log_url: str, tmp_path: Path) -> None:
    # A publisher process appends 12,000 events (more than a Kafka member
    # prefetches) while retention keeps the newest 150 (applied every 0.1 s)
    # and one slow member of a group handles
    # each event through the effect ledger, 2 ms apiece.  It falls behind
    # retention: what retention removed before the group got it must be
    # reported as a gap, never lost silently.  Ledger check: each acked event
    # is handled exactly once or lies in a reported gap, never both; the
    # counts add up (handled + skipped == published) on engines that count,
    # and the group's lag reports the same totals.
    from _faults import in_gap
    from creative_hub.log import Gap, Retention

    topic, group, count = new_topic("faults"), "slow", 12000
    acks, positions = tmp_path / "acks", tmp_path / "positions"
    await log.set_retention(topic, Retention(max_count=150))
    ledger = EffectLedger(tmp_path / "ledger.db")
    told: list[Gap] = []
    handled: list[str] = []

    async def retention() -> None:
        while True:
            await log.apply_retention(topic)
            await asyncio.sleep(0.1)

    sub = log.subscribe(topic, group, consumer="slow", ack_timeout=30)
    sub.on_gap = told.append
    async with sub:  # the group exists (from the start) before anything is published
        pub = spawn(
            PUBLISHER, log_url, topic, str(acks), "--count", str(count),
            "--batch", "50", "--pause", "0.02", "--positions", str(positions),
        )  # fmt: skip
        trimmer = asyncio.create_task(retention())
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                try:
                    d = await sub.next(timeout=2.0)
                except TimeoutError:
                    if pub.poll() is not None and (await log.lag(topic, group)).lag == 0:
                        break
                    continue
                record_effect(ledger, group, d.id, "slow")
                handled.append(d.id)
                await d.ack()
                await asyncio.sleep(0.002)
            else:
                pytest.fail("the slow consumer never caught up")
            assert pub.wait(WAIT) == 0, "the publisher failed"
        finally:
            trimmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trimmer
            if pub.poll() is None:
                pub.kill()
                pub.wait()

    published = acked_ids(acks)
    assert len(published) == count
    where = dict(line.split() for line in positions.read_text().splitlines())
    h = history_of(count, published)
    h.read = handled
    report = h.check()
    assert_effects_once(ledger, handled)
    assert not report.unexpected and not report.duplicates and not report.nonmonotonic, str(report)
    assert told, "the consumer fell behind retention but no gap was reported"
    missing = published - set(handled)
    assert missing, "retention removed nothing the consumer needed: the scenario did not happen"
    # Never silent: every event not handled lies in a reported gap's range (ranges are
    # per engine partition; checked here against all of them).
    silent = [i for i in missing if not any(in_gap(where[i], g) for g in told)]
    assert not silent, f"{len(silent)} events lost without a gap: {sorted(silent)[:5]}"
    lag = await log.lag(topic, group)
    assert lag.gaps >= len([g for g in told if g.count]), (lag, told)
    if all(g.count is not None for g in told):
        skipped = sum(g.count or 0 for g in told)
        assert len(handled) + skipped == count, f"handled {len(handled)} + skipped {skipped} != {count}"
        assert lag.skipped == skipped and sub.skipped == skipped
