"""CloudEvents on the brokers, with clients nobody here wrote: the CNCF SDK's Kafka
binding (binary and structured) and nats-py with ``ce-*`` headers as producers,
the SDK as the consumer of what the hub writes.  An unknown extension and
``tracestate`` go through unchanged."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from creative_hub.hub import Hub
from creative_hub.log import Log, open_log
from creative_hub.testing.contract import WAIT, new_topic

TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


def sdk_event(text: str) -> CloudEvent:
    return CloudEvent(
        {
            "id": f"sdk-{uuid.uuid4().hex}",
            "source": "https://example.org/producer",
            "type": "creative.feedback.comment",
            "datacontenttype": "application/json",
            "tracestate": TRACESTATE,
            "myextension": "kept as sent",
        },
        {"on": "story:wood", "text": text},
    )


@pytest.fixture
async def broker_log(request: pytest.FixtureRequest, servers: Any) -> AsyncIterator[tuple[str, Log]]:
    engine = request.param
    log = open_log(servers.get(engine).url)
    await log.open()
    try:
        yield engine, log
    finally:
        await log.close()


async def handled(hub: Hub, topic: str, count: int, dead: int) -> list[Any]:
    """The ``count`` events a new group gets from ``topic``, once ``dead`` records were dead-lettered."""
    got = []
    async with hub.subscribe(topic, f"g{uuid.uuid4().hex[:8]}", ack_timeout=30) as sub:
        while len(got) < count or sub.dead_letters < dead:
            try:
                d = await sub.next(timeout=WAIT if len(got) < count else 2.0)
            except TimeoutError:
                break
            got.append(d.event)
            await d.ack()
        assert sub.dead_letters == dead, f"{sub.dead_letters} dead letters, expected {dead}"
    assert len(got) == count
    return got


@pytest.mark.kafka
@pytest.mark.parametrize("broker_log", ["kafka"], indirect=True)
async def test_the_sdk_s_kafka_records_round_trip_through_the_hub(
    broker_log: tuple[str, Log], servers: Any
) -> None:
    import confluent_kafka as ck
    from cloudevents.core.bindings import kafka as ce_kafka

    _, log = broker_log
    hub = Hub(log, principal="relay")
    topic, onward = new_topic("creative"), new_topic("creative")
    first = hub.prepare({"type": "creative.feedback.comment", "data": {"on": "x", "text": "first"}})[2]
    await log.append(topic, [first])  # the hub creates the topic
    bootstrap = servers.get("kafka").bootstrap
    producer = ck.Producer({"bootstrap.servers": bootstrap})
    sent = {"binary": sdk_event("binary"), "structured": sdk_event("structured")}
    for mode, event in sent.items():
        convert = ce_kafka.to_binary if mode == "binary" else ce_kafka.to_structured
        msg = convert(event, JSONFormat())
        if mode == "binary":  # really binary mode: attributes in headers, the data alone as the value
            assert "ce_tracestate" in msg.headers and json.loads(msg.value) == event.get_data()
        producer.produce(topic, msg.value, msg.key, headers=list(msg.headers.items()))
    text = [("ce_specversion", b"1.0"), ("ce_id", b"t1"), ("content-type", b"text/plain")]
    producer.produce(topic, b"plain text", None, headers=text)
    assert producer.flush(WAIT) == 0

    events = await handled(hub, topic, 3, dead=1)  # the text/plain record: not a JSON event
    by_id = {e.id: e for e in events}
    for event in sent.values():
        got = by_id[event.get_id()]
        assert got.extensions == {"tracestate": TRACESTATE, "myextension": "kept as sent"}
        assert got.data == event.get_data() and got.source == event.get_source()

    # The hub passes them on (an intermediary): the SDK reads them back unchanged.
    for event in sent.values():
        stored = by_id[event.get_id()]
        await log.append(onward, [hub.prepare(stored)[2]])
    consumer = ck.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([onward])
    read: list[CloudEvent] = []
    try:
        while len(read) < 2:
            m = consumer.poll(WAIT)
            assert m is not None and m.error() is None
            kmsg = ce_kafka.KafkaMessage(headers=dict(m.headers() or []), key=m.key(), value=m.value())
            read.append(ce_kafka.from_kafka(kmsg, JSONFormat()))
    finally:
        consumer.close()
    for back in read:
        original = next(e for e in sent.values() if e.get_id() == back.get_id())
        assert back.get_extension("tracestate") == TRACESTATE
        assert back.get_extension("myextension") == "kept as sent"
        assert back.get_data() == original.get_data()


@pytest.mark.nats
@pytest.mark.parametrize("broker_log", ["nats"], indirect=True)
async def test_nats_messages_in_binary_mode_are_read_as_events(
    broker_log: tuple[str, Log], servers: Any
) -> None:
    import nats

    _, log = broker_log
    hub = Hub(log, principal="relay")
    topic = new_topic("creative")
    first = hub.prepare({"type": "creative.feedback.comment", "data": {"on": "x", "text": "first"}})[2]
    await log.append(topic, [first])  # creates the stream
    event = sdk_event("over NATS")
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event.get_id(),
        "ce-source": event.get_source(),
        "ce-type": event.get_type(),
        "ce-tracestate": TRACESTATE.replace(",", "%2C"),  # the binding percent-encodes
        "ce-myextension": "kept%20as%20sent",
        "Content-Type": "application/json",
    }
    nc = await nats.connect(servers.get("nats").url.split("?", 1)[0])
    try:
        js = nc.jetstream()
        await js.publish(f"{topic}.mallory.0", json.dumps(event.get_data()).encode(), headers=headers)
        await js.publish(
            f"{topic}.mallory.0", b"<p>html</p>", headers={**headers, "Content-Type": "text/html"}
        )
    finally:
        await nc.close()
    events = await handled(hub, topic, 2, dead=1)  # the text/html message: not a JSON event
    got = next(e for e in events if e.id == event.get_id())
    assert got.extensions == {"tracestate": TRACESTATE, "myextension": "kept as sent"}
    assert got.data == event.get_data() and got.type == event.get_type()
