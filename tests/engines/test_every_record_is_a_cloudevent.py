"""Every record on every topic a hub writes is a CloudEvent, on every engine.

A hub with principals and tokens, a grant and a granted read (its audit
record), events, a draft and its revision, a dead letter, a compaction
archive, a retention setting and a GitHub webhook delivery (its GUID kept)
runs on a broker of its own; then a plain
client of that broker (sqlite3, redis-py, confluent-kafka, nats-py) reads
every record of every topic, and the CNCF SDK parses each as a CloudEvent.
Nothing in them lets a broker reader use a token: the registry keeps a
keyed MAC, never the secret nor a bare hash of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from creative_hub.access import Identity
from creative_hub.hub import Hub
from creative_hub.log import Record, Retention
from creative_hub.peers import PeerHub
from creative_hub.testing.servers import Server, start_server

ENGINES = [
    pytest.param("sqlite", marks=pytest.mark.sqlite),
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("kafka", marks=pytest.mark.kafka),
    pytest.param("nats", marks=pytest.mark.nats),
]


@pytest.fixture(params=ENGINES)
def private(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, Server | None]]:
    """(engine, url, server): a log of this test alone, so "every topic" is this hub's."""
    engine = request.param
    if engine == "sqlite":
        yield engine, f"sqlite:///{tmp_path / 'hub.db'}", None
        return
    server = start_server(engine, tmp_path / engine)
    try:
        yield engine, server.url, server
    finally:
        server.stop()


async def populate(url: str, keys: Path) -> dict[str, str]:
    """A hub's every kind of record; returns the tokens it issued."""
    async with Hub.connect(url, keys=str(keys)) as hub:
        for who, kind in (("alice", "person"), ("bob", "person"), ("analyst", "agent")):
            await hub.registry.add(who, kind=kind)  # type: ignore[arg-type]
        tokens = {who: await hub.registry.issue_token(who) for who in ("alice", "bob", "analyst")}
        await hub.registry.revoke("bob")
        alice = hub.acting("alice", authenticated=True)
        mine = PeerHub(alice)
        draft = await mine.draft(
            "creative.narrative.fragment", "story:wood", {"story": "wood", "title": "Wood", "text": "a draft"}
        )
        revision = await mine.revise(draft.id, {"text": "a better draft"})
        await mine.publish(revision.id)
        await hub.grants.give(
            Identity("alice", authenticated=True), "analyst", subject="story:wood", expires="1h"
        )
        analyst = hub.acting("analyst", authenticated=True)
        assert [s async for s in analyst.replay("peer.alice.drafts")]  # a granted read: audited
        await alice.publish({"type": "creative.feedback.comment", "data": {"on": "story:wood", "text": "ok"}})
        junk = Record("creative.feedback", "0", "junk-1", "k", b"not an event", 0)
        await hub.dead_letter(junk, "not a valid event: a test", group="readers")
        await hub.set_retention("creative.feedback", Retention(max_count=1000))
        from creative_hub.lineage import compact

        await compact(hub, "peer.alice.drafts")  # the archive of what it folds
        await github_delivery(hub)  # its GUID, kept so a redelivery stores nothing
        return tokens


async def github_delivery(hub: Hub) -> None:
    import httpx

    from creative_hub.sources.github import sign, webhook_app

    body = (Path(__file__).parents[1] / "sources" / "data" / "github" / "delete.payload.json").read_bytes()
    headers = {
        "X-GitHub-Event": "delete",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign("s3cret", body),
    }
    transport = httpx.ASGITransport(app=webhook_app(hub, "s3cret"))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
        r = await c.post("/webhooks/github", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text


def sqlite_records(url: str) -> dict[str, list[bytes]]:
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        topics = db.execute("SELECT id, name FROM topics").fetchall()
        return {name: [row[0] for row in db.execute(f"SELECT body FROM ev_{tid}")] for tid, name in topics}
    finally:
        db.close()


async def redis_records(url: str) -> dict[str, list[bytes]]:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(url)
    try:
        out: dict[str, list[bytes]] = {}
        async for key in r.scan_iter(match="*", _type="stream"):
            out[key.decode()] = [fields[b"event"] for _, fields in await r.xrange(key)]
        return out
    finally:
        await r.aclose()


def kafka_records(bootstrap: str) -> dict[str, list[bytes]]:
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient

    topics = [t for t in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics]
    topics = [t for t in topics if not t.startswith("__")]  # Kafka's own (__consumer_offsets)
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "plain-reader", "enable.auto.commit": False})
    out: dict[str, list[bytes]] = {}
    try:
        for t in topics:
            md = c.list_topics(t, timeout=30).topics[t]
            values: list[bytes] = []
            for p in md.partitions:
                lo, hi = c.get_watermark_offsets(ck.TopicPartition(t, p), timeout=30)
                if hi <= lo:
                    continue
                c.assign([ck.TopicPartition(t, p, lo)])
                got = 0
                while got < hi - lo:
                    for m in c.consume(500, timeout=10):
                        assert m.error() is None, m.error()
                        values.append(m.value())
                        got += 1
            out[t] = values
    finally:
        c.close()
    return out


async def nats_records(url: str) -> dict[str, list[bytes]]:
    import nats

    nc = await nats.connect(url.split("?", 1)[0])
    out: dict[str, list[bytes]] = {}
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            name = info.config.name
            if name.startswith(("KV_", "OBJ_")):  # JetStream's own key-value and object stores
                continue
            state = info.state
            out[name] = [
                (await js.get_msg(name, seq)).data or b""
                for seq in range(state.first_seq, state.last_seq + 1)
                if state.messages
            ]
    finally:
        await nc.close()
    return out


async def test_every_record_of_every_topic_parses_with_the_sdk(
    private: tuple[str, str, Server | None], tmp_path: Path
) -> None:
    engine, url, server = private
    tokens = await populate(url, tmp_path / "keys")
    if engine == "sqlite":
        records = sqlite_records(url)
    elif engine == "redis":
        records = await redis_records(url)
    elif engine == "kafka":
        records = await asyncio.to_thread(kafka_records, server.bootstrap)  # type: ignore[union-attr]
    else:
        records = await nats_records(url)
    assert sum(len(v) for v in records.values()) >= 15, records.keys()
    types: set[str] = set()
    for topic, bodies in records.items():
        for body in bodies:
            try:
                ce = JSONFormat().read(CloudEvent, body)
            except Exception as e:
                raise AssertionError(
                    f"{engine}: a record of {topic} is not a CloudEvent: {body[:200]!r}"
                ) from e
            types.add(ce.get_type())
            text = body.decode()
            for token in tokens.values():
                secret = token.split("_", 2)[2]  # chub_<id>_<secret>; secrets may hold "_"
                assert len(secret) >= 40, token
                assert secret not in text, f"a token's secret in {topic}"
                assert hashlib.sha256(secret.encode()).hexdigest() not in text, (
                    f"a bare token hash in {topic}"
                )
    expected = {
        "creative.system.principal",
        "creative.system.token",
        "creative.system.token_revoked",
        "creative.system.grant",
        "creative.system.draft_read",
        "creative.system.deadletter",
        "creative.system.compaction",
        "creative.narrative.fragment",
        "creative.feedback.comment",
        "creative.engineering.ref",
        "creative.system.webhook_delivery",
    }
    if engine == "kafka":
        expected.add("creative.system.retention")  # Kafka keeps retention settings in a topic
    assert expected <= types, expected - types
