"""What only the NATS engine has to show: faults on real nats-servers, auth, interop, naming.

The contract suite (tests/contract) proves the shared behaviour; these tests
kill and restart servers they own (private ``NatsServer`` / ``NatsCluster`` in
``tmp_path``), or use the session's shared server for the rest.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path

import nats
import pytest
from nats.js import api

from creative_hub.errors import EngineUnavailable, IdConflict
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger
from creative_hub.log import Entry, Log, open_log, redact
from creative_hub.log.nats import NatsLog
from creative_hub.log.nats.names import escape, parse_url, stream_name, subject_of, token
from creative_hub.testing.contract import WAIT, make_entries, new_topic
from creative_hub.testing.servers.nats import NatsCluster, NatsServer
from creative_hub.testing.worker import assert_effects_once, hung_on, spawn, survive

pytestmark = pytest.mark.nats


@pytest.fixture
def nats_url(servers: object) -> str:
    return servers.get("nats").url  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
async def nlog(nats_url: str) -> object:
    lg = open_log(nats_url)
    await lg.open()
    yield lg
    await lg.close()


async def read_ids(log: Log, topic: str) -> list[str]:
    return [r.id async for r in log.read(topic)]


# -- naming (pure) --------------------------------------------------------------
def test_names_are_injective_and_valid() -> None:
    assert stream_name("creative.narrative") == "hub_creative_narrative"
    assert stream_name("a_b.c") != stream_name("a.b_c")
    assert escape("alice") == "alice" and escape("/peers/alice") == "_2fpeers_2falice"
    assert token("") == "_" and token("a.b") != token("a_b")
    assert subject_of("creative.narrative", "github:o/r", 3) == "creative.narrative.github_3ao_2fr.3"
    long = token("x" * 500)
    assert len(long) <= 128 and long != token("x" * 499)


def test_url_options_and_redaction() -> None:
    o = parse_url("nats://hub:p%40ss@n1:4222,n2:4223?replicas=3&partitions=16&timeout=2")
    assert o.servers == ["nats://n1:4222", "nats://n2:4223"]
    assert (o.user, o.password, o.replicas, o.partitions, o.timeout) == ("hub", "p@ss", 3, 16, 2.0)
    assert parse_url("nats://tok3n@h").token == "tok3n"
    assert (
        redact("nats://hub:secret@n1:4222,n2:4222?replicas=3")
        == "nats://hub:***@n1:4222,n2:4222?replicas=3"
    )
    assert redact("nats://tok3n@h:4222") == "nats://***@h:4222"


# -- faults -----------------------------------------------------------------------
async def test_consumer_sigkilled_mid_batch_is_redelivered_and_handled_once(
    nats_url: str, nlog: Log, tmp_path: Path
) -> None:
    # The worker pulls a whole batch, acks 5, does the effect of the 6th and is
    # SIGKILLed before acking it.  After the ack wait (2 s) the group hands
    # every un-acked record to the survivor; the ledger keeps effects single.
    topic, group = new_topic("nats"), "killed"
    entries = make_entries(60, keys=["a", "b", "c", "d"])
    await nlog.append(topic, entries)
    ledger_path, marker = tmp_path / "ledger.db", tmp_path / "marker"
    ledger = EffectLedger(ledger_path)
    proc = spawn(nats_url, topic, group, ledger_path, marker, hang_after=5)
    try:
        hung = await hung_on(proc, marker, WAIT)
        lag = await nlog.lag(topic, group)
        assert lag.pending > 1, "the worker should hold a batch of un-acked deliveries"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    async with nlog.subscribe(topic, group, consumer="survivor", ack_timeout=2) as sub:
        redelivered = await survive(sub, ledger, group, len(entries), timeout=WAIT)
    assert_effects_once(ledger, (e.id for e in entries))
    assert redelivered.get(hung, 0) >= 2, "the un-acked event came back as a redelivery"
    assert (await nlog.lag(topic, group)).lag == 0
    ledger.close()


async def test_server_restart_on_same_store_keeps_every_acked_event(tmp_path: Path) -> None:
    # Appends acked before a SIGKILL of nats-server are all there after it
    # restarts on the same store directory; publishing while it is down fails
    # with EngineUnavailable (never a false receipt); the group resumes.
    server = NatsServer(tmp_path / "nats").start()
    log = open_log(server.url + "?timeout=2")
    await log.open()
    try:
        topic = new_topic("nats")
        acked: list[str] = []
        for i in range(10):
            batch = make_entries(50, keys=["x", "y"], tag=f"b{i}")
            await log.append(topic, batch)
            acked += [e.id for e in batch]
        handled: set[str] = set()
        async with log.subscribe(topic, "g", ack_timeout=5) as sub:
            for _ in range(100):
                d = await sub.next(timeout=WAIT)
                handled.add(d.id)
                await d.ack()
        server.kill()
        with pytest.raises(EngineUnavailable) as e:
            await log.append(topic, make_entries(1))
        assert server.url.split("@")[-1].split("//")[-1] in str(e.value)
        server.start()
        # The same log object reconnects on its own.
        await asyncio.sleep(1.0)
        for _ in range(50):
            try:
                later = make_entries(5)
                await log.append(topic, later)
                acked += [e.id for e in later]
                break
            except EngineUnavailable:
                await asyncio.sleep(0.2)
        ids = await read_ids(log, topic)
        assert ids[: len(acked) - 5] == acked[:-5] and set(acked) <= set(ids)
        # The group resumes: everything it had not acked comes (at least once).
        async with log.subscribe(topic, "g", ack_timeout=5) as sub:
            while not set(ids) <= handled:
                d = await sub.next(timeout=WAIT)
                handled.add(d.id)
                await d.ack()
    finally:
        await log.close()
        server.stop()


@pytest.mark.slow
@pytest.mark.faults
async def test_cluster_node_sigkilled_while_publishing_loses_no_acked_event(tmp_path: Path) -> None:
    # Three nodes, streams at replicas=3.  Publishing and consuming go on while
    # the stream's leader is SIGKILLed: every acked append is stored, and the
    # group (its consumers replicated too) hands every one to the handler.
    cluster = NatsCluster(tmp_path / "cluster", size=3).start()
    log = open_log(cluster.url + "?replicas=3")
    await log.open()
    topic, group = new_topic("nats"), "survivors"
    acked: list[str] = []
    handled: set[str] = set()
    stop = asyncio.Event()
    joined = asyncio.Event()
    failures = 0

    async def publish() -> None:
        nonlocal failures
        i = 0
        while not stop.is_set():
            batch = make_entries(20, keys=["k1", "k2", "k3"], tag=str(i))
            for _ in range(100):  # retry the same ids: dedup makes it safe
                try:
                    await log.append(topic, batch)
                    break
                except EngineUnavailable:
                    failures += 1
                    await asyncio.sleep(0.2)
            else:
                raise AssertionError("appends never recovered after the node was killed")
            acked.extend(e.id for e in batch)
            i += 1
            await asyncio.sleep(0.01)

    async def consume() -> None:
        async with log.subscribe(topic, group, ack_timeout=3) as sub:
            joined.set()
            # Until the publisher has finished (its last append may still be on its way
            # when ``stop`` is set) and everything it had acked was handled.
            while not (pub.done() and handled >= set(acked)):
                try:
                    d = await sub.next(timeout=1.0)
                except TimeoutError:
                    continue
                except EngineUnavailable:
                    await asyncio.sleep(0.2)
                    continue
                handled.add(d.id)
                try:
                    await d.ack()
                except EngineUnavailable:
                    pass  # redelivered later: handled is a set

    try:
        await log.append(topic, make_entries(1))  # create the R3 stream first
        pub = asyncio.create_task(publish())
        con = asyncio.create_task(consume())
        while len(acked) < 400:
            await asyncio.sleep(0.05)
        # The node dies while the member consumes, not while it joins (on a loaded
        # machine joining took longer than 400 appends, and a join that loses the
        # leader half-way is an EngineUnavailable from ``async with``, not this test).
        while not joined.is_set():
            assert not con.done(), con.exception()
            await asyncio.sleep(0.05)
        nc = await nats.connect(servers=cluster.servers)
        info = await nc.jetstream().stream_info(stream_name(topic))
        await nc.close()
        assert info.config.num_replicas == 3
        leader = next(n for n in cluster.nodes if n.server_name == info.cluster.leader)  # type: ignore[union-attr]
        os.kill(leader.pid, signal.SIGKILL)
        leader.proc.wait()  # type: ignore[union-attr]
        leader.proc = None
        before = len(acked)
        while len(acked) < before + 400:
            assert not pub.done(), pub.exception()
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(pub, WAIT)
        await asyncio.wait_for(con, 2 * WAIT)
        stored = set(await read_ids(log, topic))
        assert set(acked) <= stored, f"{len(set(acked) - stored)} acked events lost"
        assert set(acked) <= handled
    finally:
        stop.set()
        await log.close()
        cluster.stop()


async def test_wrong_password_is_a_clear_error(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "auth", user="hub", password="right-one").start()
    try:
        bad = f"nats://hub:wrong-one@127.0.0.1:{server.port}?timeout=30"  # a loaded CI box answers late
        log = open_log(bad)
        with pytest.raises(EngineUnavailable) as e:
            await log.open()
        message = str(e.value)
        assert "wrong user or password" in message
        assert "wrong-one" not in message and "hub:***@" in message
        good = open_log(server.url)
        await good.open()
        assert (await good.health()).ok
        assert "right-one" not in good.url
        await good.close()
    finally:
        server.stop()


async def test_nothing_listening_is_engine_unavailable() -> None:
    from creative_hub.testing.servers import free_port

    log = open_log(f"nats://127.0.0.1:{free_port()}")
    with pytest.raises(EngineUnavailable) as e:
        await log.open()
    assert "no nats-server answers" in str(e.value)


# -- appends ------------------------------------------------------------------------
async def test_conflict_in_a_batch_over_1000_stores_nothing(nlog: Log) -> None:
    topic = new_topic("nats")
    original = make_entries(1)[0]
    await nlog.append(topic, [original])
    forged = Entry(original.id, original.key, b"{}", "f" * 32, creator=original.creator)
    big = make_entries(1500)
    with pytest.raises(IdConflict):
        await nlog.append(topic, [*big[:1200], forged, *big[1200:]])
    assert await read_ids(nlog, topic) == [original.id]
    receipts = await nlog.append(topic, [*big, original])
    assert [a.duplicate for a in receipts] == [False] * 1500 + [True]
    assert len(await read_ids(nlog, topic)) == 1501


# -- interop --------------------------------------------------------------------------
async def test_hub_event_is_a_cloudevent_for_a_plain_nats_client(nlog: Log, nats_url: str) -> None:
    hub = Hub(nlog, principal="alice")
    peer = f"p{uuid.uuid4().hex[:8]}"
    (receipt,) = await hub.publish(
        {
            "type": "creative.narrative.fragment",
            "hub": peer,
            "data": {"story": "s1", "title": "Opening", "text": "It was a dark night."},
        }
    )
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        # A plain subscriber filters by creator with a wildcard on the subject.
        sub = await js.subscribe(f"{receipt.topic}.alice.*", ordered_consumer=True)
        msg = await sub.next_msg(timeout=WAIT)
        assert msg.headers is not None
        assert msg.headers["Content-Type"] == "application/cloudevents+json"
        assert msg.headers["Nats-Msg-Id"] == receipt.id
        event = json.loads(msg.data)
        assert event["specversion"] == "1.0" and event["id"] == receipt.id
        assert event["type"] == "creative.narrative.fragment" and event["creator"] == "alice"
        assert event["data"]["title"] == "Opening"
        assert msg.metadata.sequence.stream == int(receipt.position)
        await sub.unsubscribe()
    finally:
        await nc.close()


async def test_malformed_message_published_by_hand_goes_to_the_dead_letter_topic(
    nlog: Log, nats_url: str
) -> None:
    hub = Hub(nlog, principal="alice")
    topic = new_topic("creative")
    good = hub.prepare(
        {"type": "creative.narrative.fragment", "data": {"story": "s", "title": "fine", "text": "."}}
    )[2]
    await nlog.append(topic, [good])  # creates the stream
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        # No hub headers at all: a foreign producer's bytes.
        ack = await js.publish(f"{topic}.mallory.0", b"\xff not json {")
        assert isinstance(ack, api.PubAck)
    finally:
        await nc.close()
    records = [r async for r in nlog.read(topic)]
    assert records[-1].id == str(ack.seq) and records[-1].body == b"\xff not json {"
    async with hub.subscribe(topic, "readers", ack_timeout=30) as sub:
        d = await sub.next(timeout=WAIT)
        assert d.event.id == good.id
        await d.ack()
        with pytest.raises(TimeoutError):
            await sub.next(timeout=1.0)
        assert sub.dead_letters == 1
    letters = [s.event async for s in hub.replay("deadletter." + topic)]
    assert len(letters) == 1
    assert letters[0].data["record_id"] == str(ack.seq)
    assert "not a valid event" in letters[0].data["reason"]


async def test_log_is_a_nats_log(nlog: Log) -> None:
    assert isinstance(nlog, NatsLog)
    assert (await nlog.health()).ok
