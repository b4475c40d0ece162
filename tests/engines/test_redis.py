"""Redis-only behaviour: faults on a real redis-server, and interop with redis-cli.

The shared server (``servers`` fixture) serves the tests that do not hurt
it; tests that stop, kill or pause a server start a private one in
``tmp_path``.  No mocks, no timing assertions: waits are bounded only so a
broken engine fails instead of hanging.  Every fault test ends with the
ledger check of RELIABILITY.md: nothing acked is lost, nothing is stored or
handled twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from cloudevents.core.formats.json import JSONFormat

from creative_hub.errors import EngineUnavailable, LogError
from creative_hub.hub import Hub, migrate
from creative_hub.ledger import EffectLedger
from creative_hub.log import Entry, Log, open_log
from creative_hub.log.redis import RedisLog
from creative_hub.testing.contract import WAIT, eventually, make_entries, new_topic
from creative_hub.testing.servers import free_port
from creative_hub.testing.servers.redis import RedisServer
from creative_hub.testing.worker import assert_effects_once, hung_on, record_effect, spawn, survive

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_server(servers: object) -> RedisServer:
    server = servers.get("redis")  # type: ignore[attr-defined]
    assert isinstance(server, RedisServer)
    return server


@pytest.fixture
async def rlog(redis_server: RedisServer) -> AsyncIterator[RedisLog]:
    log = open_log(redis_server.url)
    assert isinstance(log, RedisLog)
    await log.open()
    try:
        yield log
    finally:
        await log.close()


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, free to be stopped, killed and paused."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def cli(server: RedisServer, *args: str) -> str:
    """``redis-cli -p PORT ARGS...``: what an operator would type."""
    out = subprocess.run(
        ["redis-cli", "-p", str(server.port), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return out.stdout


async def read_all(log: Log, topic: str) -> list[str]:
    return [r.id async for r in log.read(topic)]


def order_of(entries: list[Entry]) -> dict[str, tuple[str, int]]:
    """id -> (key, publish sequence), for per-key order checks."""
    return {e.id: (e.key, i) for i, e in enumerate(entries)}


def assert_per_key_order(ids: list[str], order: dict[str, tuple[str, int]]) -> None:
    by_key: dict[str, list[int]] = defaultdict(list)
    for i in ids:
        key, n = order[i]
        by_key[key].append(n)
    for key, ns in by_key.items():
        assert ns == sorted(ns), f"key {key} out of publish order"


async def test_member_joins_again_when_its_group_is_destroyed(rlog: RedisLog) -> None:
    # The consumer group is destroyed under a live member (XGROUP DESTROY by an
    # operator, a restore without it): its next read answers NOGROUP, and the
    # member creates the group again and goes on -- it used to wait forever on
    # the lock its own next() held.
    topic = new_topic("redis")
    first, later = make_entries(1), make_entries(1)
    await rlog.append(topic, first)
    async with rlog.subscribe(topic, "again", ack_timeout=30) as sub:
        await (await sub.next(timeout=WAIT)).ack()
        for p in range(await rlog.partitions(topic) or 0):
            await rlog.client.xgroup_destroy(rlog.stream(topic, p), "again")
        await rlog.append(topic, later)
        got = await asyncio.wait_for(sub.next(timeout=WAIT), WAIT)
    # Joined again from the start (the group's acks went with it): the first comes back.
    assert got.id == first[0].id


async def test_the_next_fetch_goes_out_before_next_batch_returns(
    rlog: RedisLog, redis_server: RedisServer
) -> None:
    # A big fetch means a backlog: the member sends the next fetch as it hands
    # a batch out, so Redis works on it while the handler works through this
    # one.  A handler that does so without awaiting anything (the hub's
    # subscription decoding a batch) used to hold that request back until it
    # asked for more -- nothing overlapped.  Checked from a second, blocking
    # client while this loop does not run: the next batch is already pending.
    topic = new_topic("ahead")
    await rlog.append(topic, make_entries(400, keys=["k"]))
    stream = rlog.stream(topic, zlib.crc32(b"k") % 8)
    probe = redis.Redis.from_url(redis_server.url)  # sync: asks without running the event loop
    try:
        async with rlog.subscribe(topic, "ahead", ack_timeout=30, batch=100) as sub:
            await sub.ack_many(await sub.next_batch(100, timeout=WAIT))  # the first fetch splits over 8
            batch = await sub.next_batch(100, timeout=WAIT)
            assert len(batch) == 100
            pending, deadline = 0, time.monotonic() + 10
            while pending < 200 and time.monotonic() < deadline:
                pending = probe.xpending(stream, "ahead")["pending"]
                time.sleep(0.01)  # blocks the loop on purpose
            assert pending == 200  # this batch, and the next one fetched ahead
            await sub.ack_many(batch)
    finally:
        probe.close()


# -- faults ---------------------------------------------------------------------
@pytest.mark.faults
async def test_sigkilled_member_mid_batch_is_redelivered_to_another_member(
    rlog: RedisLog, redis_server: RedisServer, tmp_path: Path
) -> None:
    # Two members share a group.  One, in another process, does the effect of
    # its 4th event and is SIGKILLed before acking.  Its partitions (and what
    # it left pending in Redis) go to the other member, which handles every
    # un-acked event again; with the ledger each effect still happens once.
    topic, group = new_topic("redis"), "effects"
    entries = make_entries(60, keys=[f"k{i}" for i in range(8)])
    ledger_path, marker = tmp_path / "ledger.db", tmp_path / "marker"
    ledger = EffectLedger(ledger_path)
    survivor = rlog.subscribe(topic, group, consumer="survivor", ack_timeout=2)
    await survivor.__aenter__()
    proc = spawn(redis_server.url, topic, group, ledger_path, marker, hang_after=3)
    try:
        # The survivor is a member but does not fetch until the worker hangs,
        # so the worker surely owns partitions with events left.
        await rlog.append(topic, entries)
        hung = await hung_on(proc, marker, WAIT)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        redelivered = await survive(survivor, ledger, group, len(entries), timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await survivor.close()
    assert_effects_once(ledger, (e.id for e in entries))
    assert hung in redelivered, "the un-acked event was not redelivered"
    assert redelivered[hung] >= 2, "a redelivery must say so (delivery_count)"
    ledger.close()
    # Nothing is left pending in Redis: the dead member's entries were claimed.
    assert (await rlog.lag(topic, group)).lag == 0


@pytest.mark.faults
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_server_restart_keeps_every_acked_publish(private_server: RedisServer, how: str) -> None:
    # Publishers and a consumer run while redis-server is stopped (SIGTERM,
    # or SIGKILL as a crash) and started again on the same directory.
    # Publishes during the outage fail with EngineUnavailable (never a false
    # ack); afterwards both sides resume by themselves.  Every acked publish
    # is still there, stored once, in per-key order, and reaches the consumer.
    log = open_log(private_server.url + "?socket_timeout=2&attempts=2")
    await log.open()
    topic = new_topic("restart")
    keys = ["a", "b", "c", "d"]
    attempted: list[Entry] = []
    acked: list[str] = []
    failures: list[str] = []
    consumed: set[str] = set()
    stop, published = asyncio.Event(), asyncio.Event()

    async def publisher() -> None:
        while not stop.is_set():
            batch = make_entries(10, keys=keys)
            attempted.extend(batch)
            try:
                await log.append(topic, batch)
            except EngineUnavailable as e:
                failures.append(str(e))
                await asyncio.sleep(0.05)
            else:
                acked.extend(e.id for e in batch)
        published.set()

    async def consumer() -> None:
        async with log.subscribe(topic, "restart", ack_timeout=5) as sub:
            while not published.is_set() or not set(acked) <= consumed:
                try:
                    d = await sub.next(timeout=0.5)
                except (TimeoutError, EngineUnavailable):
                    continue
                consumed.add(d.id)
                await d.ack()

    tasks = [asyncio.create_task(publisher()), asyncio.create_task(consumer())]
    try:
        await eventually(lambda: _true(len(acked) >= 300), what="publishing before the restart")
        await asyncio.to_thread(private_server.stop if how == "sigterm" else private_server.kill)
        await eventually(lambda: _true(len(failures) >= 3), what="publishes fail while the server is down")
        acked_before = len(acked)
        await asyncio.to_thread(private_server.start)
        await eventually(lambda: _true(len(acked) >= acked_before + 300), what="publishers resume")
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await log.close()

    assert all(private_server.url.split("?")[0] in f for f in failures), "errors name the URL"
    log = open_log(private_server.url)
    await log.open()
    try:
        stored = await read_all(log, topic)
    finally:
        await log.close()
    assert set(acked) <= set(stored), f"lost {len(set(acked) - set(stored))} acked publishes"
    assert len(stored) == len(set(stored)), "a record is stored twice"
    assert set(stored) <= {e.id for e in attempted}, "a record nobody published"
    assert_per_key_order(stored, order_of(attempted))
    assert set(acked) <= consumed


@pytest.mark.faults
async def test_server_paused_publishers_and_consumers_resume_without_loss_or_duplicate_effects(
    private_server: RedisServer, tmp_path: Path
) -> None:
    # redis-server is SIGSTOPped for 3 s under load.  With a 1 s socket
    # timeout, publishes see indefinite outcomes and retry the same batch
    # (same ids), so the log holds one copy; the consumer sees at most
    # redeliveries, and the ledger keeps every effect to one.
    # The publisher's log does not retry by itself (attempts=1): it sees every
    # timeout and retries the batch itself, as a remote client would.
    pub_log = open_log(private_server.url + "?socket_timeout=1&attempts=1")
    con_log = open_log(private_server.url + "?socket_timeout=1")
    await pub_log.open()
    await con_log.open()
    topic, group = new_topic("pause"), "pause"
    ledger = EffectLedger(tmp_path / "ledger.db")
    published: list[Entry] = []
    acked: list[str] = []
    retries = 0
    done_publishing = asyncio.Event()

    async def publisher() -> None:
        nonlocal retries
        for _ in range(80):
            batch = make_entries(10, keys=["x", "y", "z"])
            published.extend(batch)
            while True:
                try:
                    await pub_log.append(topic, batch)
                    break
                except EngineUnavailable:
                    retries += 1  # indefinite: it may be stored; retry the same ids
            acked.extend(e.id for e in batch)
            await asyncio.sleep(0.02)
        done_publishing.set()

    async def consumer() -> None:
        async with con_log.subscribe(topic, group, ack_timeout=2) as sub:
            while not done_publishing.is_set() or len(ledger.handled(group)) < len(acked):
                try:
                    d = await sub.next(timeout=0.5)
                except (TimeoutError, EngineUnavailable):
                    continue
                record_effect(ledger, group, d.id, "consumer")
                await d.ack()

    tasks = [asyncio.create_task(publisher()), asyncio.create_task(consumer())]
    try:
        await eventually(lambda: _true(len(acked) >= 100), what="publishing before the pause")
        private_server.pause()
        await asyncio.sleep(3)
        private_server.resume()
        await asyncio.wait_for(asyncio.gather(*tasks), 2 * WAIT)
        stored = await read_all(pub_log, topic)
    finally:
        private_server.resume()
        for t in tasks:
            t.cancel()
        await pub_log.close()
        await con_log.close()
    assert sorted(stored) == sorted(acked), "every acked publish stored, once"
    assert_per_key_order(stored, order_of(published))
    assert_effects_once(ledger, acked)
    ledger.close()


async def test_connection_refused_at_open_is_a_clear_error_naming_the_url() -> None:
    port = free_port()  # nothing listens here
    log = open_log(f"redis://hub:s3cret@127.0.0.1:{port}/0")
    with pytest.raises(EngineUnavailable) as e:
        await log.open()
    message = str(e.value)
    assert f"redis://hub:***@127.0.0.1:{port}/0" in message
    assert "s3cret" not in message and "s3cret" not in e.value.url
    assert "refused" in message.lower() or "connect" in message.lower()
    health = await log.health()  # never raises: reports
    assert not health.ok


async def test_server_errors_are_translated(rlog: RedisLog, redis_server: RedisServer) -> None:
    # A key of the wrong type (someone wrote it by hand): a LogError saying
    # what Redis said, not a redis-py exception.
    topic = new_topic("wrongtype")
    cli(redis_server, "SET", f"hub:{topic}:meta", "not a hash")
    with pytest.raises(LogError) as e:
        await rlog.append(topic, make_entries(1))
    assert "WRONGTYPE" in str(e.value)
    assert not isinstance(e.value, EngineUnavailable)


# -- groups --------------------------------------------------------------------
async def test_members_joining_and_leaving_midstream_keep_key_order(rlog: RedisLog) -> None:
    # Partitions move between members as they join and leave; a key is never
    # handled by two members at once, never out of order, and (the handovers
    # being clean) never twice.
    topic, group = new_topic("rebalance"), "movers"
    entries = make_entries(400, keys=[f"key{i}" for i in range(12)])
    order = order_of(entries)
    handled: list[tuple[str, str]] = []  # (member, id)
    busy: set[str] = set()
    overlap: list[str] = []

    async def member(name: str, stop: asyncio.Event) -> None:
        async with rlog.subscribe(topic, group, consumer=name, ack_timeout=10, batch=16) as sub:
            while not stop.is_set() and len(handled) < len(entries):
                try:
                    d = await sub.next(timeout=0.2)
                except TimeoutError:
                    continue
                if d.key in busy:
                    overlap.append(d.key)
                busy.add(d.key)
                await asyncio.sleep(0.002)
                handled.append((name, d.id))
                busy.discard(d.key)
                await d.ack()

    stops = {n: asyncio.Event() for n in ("m1", "m2", "m3")}
    tasks = {"m1": asyncio.create_task(member("m1", stops["m1"]))}
    for i in range(0, len(entries), 50):
        await rlog.append(topic, entries[i : i + 50])
    await eventually(lambda: _true(len(handled) >= 60), what="m1 working")
    tasks["m2"] = asyncio.create_task(member("m2", stops["m2"]))
    tasks["m3"] = asyncio.create_task(member("m3", stops["m3"]))
    await eventually(lambda: _true(len({m for m, _ in handled}) >= 2), what="a second member working")
    stops["m1"].set()  # m1 leaves mid-stream
    await tasks["m1"]
    await eventually(lambda: _true(len(handled) >= len(entries)), what="all handled")
    for s in stops.values():
        s.set()
    await asyncio.gather(*tasks.values())
    ids = [i for _, i in handled]
    assert not overlap, f"keys handled by two members at once: {overlap}"
    assert sorted(ids) == sorted(e.id for e in entries), "lost or handled twice"
    assert_per_key_order(ids, order)


# -- interop ---------------------------------------------------------------------
async def test_migrate_from_and_back_to_redis_keeps_ids_and_order(rlog: RedisLog, tmp_path: Path) -> None:
    # redis -> sqlite -> a fresh prefix on the same redis: ids and order kept,
    # and a second run adds nothing.
    topic = new_topic("migrate")
    entries = make_entries(120, keys=["a", "b", "c"])
    await rlog.append(topic, entries)
    sqlite = open_log(f"sqlite:///{tmp_path / 'copy.db'}")
    back = open_log(rlog.url + f"?prefix=m{uuid.uuid4().hex[:8]}")
    await sqlite.open()
    await back.open()
    try:
        assert (await migrate(rlog, sqlite, topics=[topic]))[topic] == (120, 0)
        assert (await migrate(sqlite, back, topics=[topic]))[topic] == (120, 0)
        assert (await migrate(sqlite, back, topics=[topic]))[topic] == (0, 120)
        want = [e.id for e in entries]
        assert await read_all(sqlite, topic) == want
        assert await read_all(back, topic) == want
    finally:
        await sqlite.close()
        await back.close()


async def test_hub_events_are_readable_with_redis_cli_as_cloudevents(redis_server: RedisServer) -> None:
    # What the hub writes, plain redis-cli reads: one stream entry per event,
    # with the structured-mode CloudEvent in the `event` field, its id, key,
    # digest and creator beside it.  (One partition: the stream is hub:<topic>.)
    log = open_log(redis_server.url + "?partitions=1")
    await log.open()
    try:
        hub = Hub(log, principal="alice")
        peer = f"p{uuid.uuid4().hex[:10]}"
        receipts = await hub.publish(
            [
                {
                    "type": "creative.narrative.fragment",
                    "hub": peer,
                    "subject": "story:s1",
                    "data": {"story": "s1", "title": f"Part {i}", "text": "..."},
                }
                for i in range(3)
            ]
        )
    finally:
        await log.close()
    topic = receipts[0].topic
    entries = json.loads(cli(redis_server, "--json", "XRANGE", f"hub:{topic}", "-", "+"))
    assert [sid for sid, _ in entries] == [r.position for r in receipts]
    fields = [dict(zip(f[::2], f[1::2], strict=True)) for _, f in entries]
    assert [f["id"] for f in fields] == [r.id for r in receipts]
    assert all(f["key"] == "alice" and f["creator"] == "alice" for f in fields)
    events = [JSONFormat().read(None, f["event"]) for f in fields]
    assert [e.get_id() for e in events] == [r.id for r in receipts]
    assert all(e.get_type() == "creative.narrative.fragment" for e in events)
    assert all(e.get_source() == "/peers/alice" and e.get_specversion() == "1.0" for e in events)
    assert [e.get_data()["title"] for e in events] == ["Part 0", "Part 1", "Part 2"]


async def test_partitions_are_streams_named_after_the_topic(
    rlog: RedisLog, redis_server: RedisServer
) -> None:
    # With the default 8 partitions, a key's records are in stream
    # hub:<topic> (partition 0) or hub:<topic>:<n>, n = crc32(key) % 8.
    topic = new_topic("layout")
    entries = make_entries(16, keys=[f"k{i}" for i in range(8)])
    receipts = await rlog.append(topic, entries)
    for e, r in zip(entries, receipts, strict=True):
        p = zlib.crc32(e.key.encode()) % 8
        stream = f"hub:{topic}" if p == 0 else f"hub:{topic}:{p}"
        (found,) = json.loads(cli(redis_server, "--json", "XRANGE", stream, r.position, r.position))
        assert dict(zip(found[1][::2], found[1][1::2], strict=True))["id"] == e.id
    assert topic in cli(redis_server, "SMEMBERS", "hub::topics").split()
    assert cli(redis_server, "HGET", f"hub:{topic}:meta", "partitions").strip() == "8"


async def test_hand_added_junk_is_dead_lettered_and_the_consumer_goes_on(
    rlog: RedisLog, redis_server: RedisServer
) -> None:
    # An entry added with redis-cli XADD that is no event reaches the hub's
    # subscriber as a record it cannot decode: it lands in deadletter.<topic>
    # with the reason, and the next (valid) event is handled.
    hub = Hub(rlog, principal="alice")
    topic = new_topic("creative")
    sid = cli(redis_server, "XADD", f"hub:{topic}", "*", "note", "typed by hand").strip()
    fragment = {"story": "s", "title": "t", "text": "x"}
    good = hub.prepare({"type": "creative.narrative.fragment", "subject": "s", "data": fragment})[2]
    await rlog.append(topic, [good])
    async with hub.subscribe(topic, "readers", ack_timeout=30) as sub:
        d = await sub.next(timeout=WAIT)
        assert d.event.id == good.id
        await d.ack()
        assert sub.dead_letters == 1
    letters = [s.event async for s in hub.replay("deadletter." + topic)]
    assert len(letters) == 1
    data = letters[0].data
    assert data["position"] == sid and data["record_id"] == sid
    assert "not a valid event" in data["reason"]
    assert json.loads(data["body"]) == {"note": "typed by hand"}
    # The hand-made entry did not break the topic's clock: appends go on after it.
    more = await rlog.append(topic, make_entries(2, keys=["k"]))
    assert all(_key(a.position) > _key(sid) for a in more)


def _key(position: str) -> tuple[int, int]:
    ms, _, seq = position.partition("-")
    return int(ms), int(seq)


async def _true(value: bool) -> bool:
    return value
