"""Hub behaviour on every engine: publish, routing, atomic batches, dead letters, migrate."""

from __future__ import annotations

import gc
import json
import uuid
from pathlib import Path

import pytest

from creative_hub.errors import PayloadTooLarge, ValidationError
from creative_hub.hub import Hub, migrate, route
from creative_hub.log import Entry, Log, open_log
from creative_hub.testing.contract import WAIT, new_topic


def fragment(title: str, story: str = "s1", **extra: object) -> dict[str, object]:
    return {
        "type": "creative.narrative.fragment",
        "subject": f"story:{story}",
        "data": {"story": story, "title": title, "text": "..."},
        **extra,
    }


def unique_peer() -> str:
    return f"p{uuid.uuid4().hex[:10]}"


async def replay_ids(hub: Hub, topic: str) -> list[str]:
    return [s.event.id async for s in hub.replay(topic)]


async def test_publish_stamps_and_routes(log: Log) -> None:
    peer = unique_peer()
    hub = Hub(log, principal=peer)
    receipts = await hub.publish([fragment("One", hub=peer), fragment("Two", hub=peer, visibility="private")])
    assert [r.topic for r in receipts] == [f"peer.{peer}.published", f"peer.{peer}.drafts"]
    (stored,) = [s async for s in hub.replay(f"peer.{peer}.published")]
    e = stored.event
    assert e.creator == peer and e.partitionkey == peer and e.source == f"/peers/{peer}"
    assert e.time is not None and e.visibility == "public" and e.id == receipts[0].id
    assert route(e) == f"peer.{peer}.published"


async def test_shared_hub_routes_by_area(log: Log) -> None:
    hub = Hub(log, principal="alice")
    ev = {"type": "creative.feedback.comment", "data": {"on": "e1", "text": "Lovely"}, "id": uuid.uuid4().hex}
    (r,) = await hub.publish(ev)
    assert r.topic == "creative.feedback"
    again = await hub.publish(ev)
    assert again[0].duplicate and again[0].position == r.position


async def test_a_bad_event_in_a_batch_stores_none(log: Log) -> None:
    peer = unique_peer()
    hub = Hub(log, principal=peer)
    batch = [
        fragment("ok", hub=peer),
        fragment("ok too", hub=peer),
        {"type": "creative.narrative.fragment", "hub": peer, "data": {"story": "s1"}},
    ]
    with pytest.raises(ValidationError) as e:
        await hub.publish(batch)
    assert e.value.index == 2 and e.value.field == "data.title"
    assert await replay_ids(hub, f"peer.{peer}.published") == []


async def test_oversized_event_is_refused_before_the_log(log: Log) -> None:
    peer = unique_peer()
    hub = Hub(log, principal=peer)
    big = {
        "type": "creative.narrative.fragment",
        "hub": peer,
        "data": {"story": "s", "title": "big", "text": "x" * (10 * 1024 * 1024)},
    }
    with pytest.raises(PayloadTooLarge) as e:
        await hub.publish([fragment("small", hub=peer), big])
    assert e.value.limit == 1024 * 1024 and e.value.size > 10 * 1024 * 1024 and e.value.index == 1
    assert await replay_ids(hub, f"peer.{peer}.published") == []


async def test_junk_records_go_to_the_dead_letter_topic(log: Log) -> None:
    # A record nobody validated (written by hand, or by a foreign producer)
    # must not stop the subscriber: it is kept in deadletter.<topic> with the reason.
    hub = Hub(log, principal="alice")
    topic = new_topic("creative")
    await log.append(topic, [Entry("junk-1", "k", b"this is not json", "d1")])
    await log.append(topic, [Entry("junk-2", "k", json.dumps({"type": "creative.x.y"}).encode(), "d2")])
    good = hub.prepare(fragment("fine"))[2]
    await log.append(topic, [good])
    async with hub.subscribe(topic, "readers", ack_timeout=30) as sub:
        d = await sub.next(timeout=WAIT)  # junk and the good one have other keys: any order
        assert d.event.id == good.id
        await d.ack()
        while sub.dead_letters < 2:
            with pytest.raises(TimeoutError):
                await sub.next(timeout=0.5)
    letters = {s.event.data["record_id"]: s.event async for s in hub.replay("deadletter." + topic)}
    assert sorted(letters) == ["junk-1", "junk-2"]
    assert "not a valid event" in letters["junk-1"].data["reason"]
    assert letters["junk-1"].data["body"] == "this is not json"


async def test_hub_batch_decodes_lazily_dead_letters_junk_and_acks_a_prefix(log: Log) -> None:
    # One key, so the batch is in append order: good, good, junk, good.  A handler
    # that stops after the first event and nacks the rest never decodes the junk;
    # going through the redelivered rest dead-letters it, and ack(upto=n) acks
    # through the n-th event handed over (the junk between them included).
    hub = Hub(log, principal="alice")
    topic = new_topic("creative")
    good = [hub.prepare(fragment(f"fine {i}"))[2] for i in range(3)]
    for e in good:
        e.key = "k"
    junk = Entry("junk-1", "k", b"this is not json", "d1")
    await log.append(topic, [good[0], good[1], junk, good[2]])
    async with hub.subscribe(topic, "batched", ack_timeout=30) as sub:
        batch = await sub.fetch(10, timeout=WAIT)
        first = next(iter(batch))
        assert first.event.id == good[0].id
        await batch.ack(upto=1)
        await batch.nack()
        assert sub.dead_letters == 0  # the rest went back undecoded
        got: list[str] = []
        while len(got) < 2:
            batch = await sub.fetch(10, timeout=WAIT)
            events = list(batch)
            assert [id(hd) for hd in events] == [id(hd) for hd in batch]  # decoded once
            got += [hd.event.id for hd in events]
            await batch.ack(upto=len(events))
            assert batch.pending == 0
        assert got == [good[1].id, good[2].id]
        assert sub.dead_letters == 1
        with pytest.raises(ValidationError) as e:
            await batch.ack(upto=len(events) + 1)
        assert e.value.field == "upto"
        with pytest.raises(TimeoutError):
            await sub.fetch(timeout=1.0)
    letters = [s.event.data["record_id"] async for s in hub.replay("deadletter." + topic)]
    assert letters == ["junk-1"]


async def test_what_a_subscription_hands_over_is_not_tracked_by_the_garbage_collector(log: Log) -> None:
    # Each object the collector tracks per event in flight brings its full
    # passes over the whole heap sooner.  The HubDelivery, its Event and the
    # delivery's Record hold strings, bytes, JSON values and the engine's
    # delivery -- in no cycle -- so they are left out of it.
    hub = Hub(log, principal="alice")
    topic = new_topic("creative")
    await log.append(topic, [hub.prepare(fragment("untracked"))[2]])
    async with hub.subscribe(topic, "gc", ack_timeout=30) as sub:
        d = await sub.next(timeout=WAIT)
        assert not gc.is_tracked(d)
        assert not gc.is_tracked(d.event)
        assert not gc.is_tracked(d.delivery.record)
        await d.ack()


async def test_migrate_keeps_ids_and_order_and_adds_nothing_twice(log: Log, tmp_path: Path) -> None:
    source = open_log(f"sqlite:///{tmp_path / 'source.db'}")
    await source.open()
    try:
        src_hub = Hub(source, principal="alice")
        topic_peer = unique_peer()
        events = [fragment(f"part {i}", hub=topic_peer) for i in range(30)]
        await src_hub.publish(events)
        topic = f"peer.{topic_peer}.published"
        first = await migrate(source, log, topics=[topic])
        assert first == {topic: (30, 0)}
        second = await migrate(source, log, topics=[topic])
        assert second == {topic: (0, 30)}
        src_ids = await replay_ids(src_hub, topic)
        assert await replay_ids(Hub(log), topic) == src_ids
    finally:
        await source.close()


async def test_stored_bodies_name_each_attribute_once(log: Log) -> None:
    hub = Hub(log, principal="alice")
    topic_peer = unique_peer()
    await hub.publish(
        [
            fragment("from a dict", hub=topic_peer),
            {**fragment("explicit", hub=topic_peer), "specversion": "1.0"},
        ]
    )
    async for r in log.read(f"peer.{topic_peer}.published"):
        for attr in (b'"specversion"', b'"time"', b'"id"'):
            assert r.body.count(attr) == 1, r.body


async def test_extensions_are_stored_signed_and_read_back_unchanged(log: Log, tmp_path: Path) -> None:
    from creative_hub.principals import Keystore, public_key_b64, verify_signature

    peer = unique_peer()
    keys = Keystore(tmp_path / "keys")
    key = keys.create(peer)
    hub = Hub(log, principal=peer, keystore=keys)
    (r,) = await hub.publish(fragment("Traced", hub=peer, tracestate="vendor=opaque", retries=2))
    stored = await hub.get(r.id, r.topic)
    assert stored.event.extensions == {"tracestate": "vendor=opaque", "retries": 2}
    assert verify_signature(stored.event, public_key_b64(key))
    stored.event.extensions = {"tracestate": "vendor=forged", "retries": 2}
    assert not verify_signature(stored.event, public_key_b64(key))  # covered by the signature
