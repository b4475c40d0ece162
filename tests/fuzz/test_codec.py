"""Property tests of the event codec: what we write we read back, and bad input is refused by name.

Valid events are drawn from every registered payload schema with every
extension attribute; broken ones are arbitrary bytes, arbitrary JSON, and
valid events with one thing changed.  ``parse_event`` must return an Event
or raise ValidationError naming a field -- nothing else, ever.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from _fuzz_strategies import EXTENSION_VALUES, event_objects, examples, json_objects, json_values, times
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from creative_hub.errors import PayloadTooLarge, ValidationError
from creative_hub.event import (
    EXTENSIONS,
    Event,
    decode_event,
    digest,
    encode_event,
    encode_stamped,
    parse_event,
)
from creative_hub.hub import Hub
from creative_hub.log import Log, open_log

pytestmark = [pytest.mark.sqlite, pytest.mark.fuzz]

FUZZ = settings(
    max_examples=examples(200),
    deadline=None,
    database=None,  # CI keeps no example database: every run starts clean
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# The hub fixture is one log for all examples of a test; each example uses fresh ids.
FUZZ_WITH_FIXTURE = settings(
    FUZZ,
    max_examples=examples(60),
    suppress_health_check=[*FUZZ.suppress_health_check, HealthCheck.function_scoped_fixture],
)


def test_every_extension_has_a_strategy() -> None:
    # A new extension attribute must be fuzzed too: add it to EXTENSION_VALUES.
    assert set(EXTENSIONS) <= set(EXTENSION_VALUES)


# -- valid events --------------------------------------------------------------
@FUZZ
@given(event_objects())
def test_encode_then_parse_is_identity(obj: dict[str, Any]) -> None:
    event = parse_event(obj)
    body = encode_event(event)
    again = parse_event(body)
    assert again == event
    assert encode_event(again) == body  # byte-stable: a re-encode changes nothing
    assert decode_event(body) == event  # the trusted decode agrees with the checked one
    # What a publisher sent is what is stored, attribute for attribute (time in UTC form).
    written = json.loads(body)
    assert next(iter(written)) == "specversion"
    assert set(written) == set(obj)
    for name, value in obj.items():
        if name == "time":
            assert datetime.fromisoformat(written[name]) == datetime.fromisoformat(value)
        else:
            assert written[name] == value, name
    # Text and bytes of the same JSON read the same.
    assert parse_event(json.dumps(obj)) == event
    assert parse_event(json.dumps(obj).encode()) == event


@FUZZ
@given(event_objects(), times, st.text(min_size=1, max_size=20))
def test_digest_is_stable_and_ignores_time_and_signature(
    obj: dict[str, Any], when: datetime, signature: str
) -> None:
    event = parse_event(obj)
    h = digest(event)
    assert digest(parse_event(encode_event(event))) == h
    restamped = msgspec.structs.replace(event, time=when, signature=signature)
    assert digest(restamped) == h
    bare = msgspec.structs.replace(event, time=None, signature=None)
    assert digest(bare) == h
    # The publish hot path: one encode gives the stamped body and the same digest.
    body, h2 = encode_stamped(bare, msgspec.json.encode(when))
    assert h2 == h
    assert parse_event(body) == msgspec.structs.replace(bare, time=when)
    # Content is covered: another subject is another digest.
    other = msgspec.structs.replace(event, subject=(event.subject or "") + "·")
    assert digest(other) != h


@FUZZ
@given(event_objects())
def test_cloudevents_sdk_reads_what_we_write(obj: dict[str, Any]) -> None:
    event = parse_event(obj)
    ce = JSONFormat().read(CloudEvent, encode_event(event))
    assert ce.get_id() == event.id
    assert ce.get_source() == event.source
    assert ce.get_type() == event.type
    assert ce.get_specversion() == "1.0"
    assert ce.get_subject() == event.subject
    if event.time is not None:  # without one, the SDK stamps its own
        assert ce.get_time() == event.time
    assert ce.get_datacontenttype() == event.datacontenttype
    assert ce.get_dataschema() == event.dataschema
    assert ce.get_data() == event.data
    for name in EXTENSIONS:
        assert ce.get_extension(name) == getattr(event, name), name


@FUZZ
@given(event_objects())
def test_we_read_what_the_cloudevents_sdk_writes(obj: dict[str, Any]) -> None:
    attributes = {k: v for k, v in obj.items() if k != "data"}
    if "time" in attributes:
        attributes["time"] = datetime.fromisoformat(attributes["time"])
    written = JSONFormat().write(CloudEvent(attributes, obj["data"]))
    expected = parse_event(obj)
    if expected.time is None:  # the SDK stamps the time when none is given
        expected.time = parse_event(written).time
    assert parse_event(written) == expected


# -- broken input ----------------------------------------------------------------
_GOOD = {"specversion": "1.0", "id": "x", "source": "s", "type": "creative.feedback.comment",
         "data": {"on": "a", "text": "b"}}  # fmt: skip


def _check_refusal(raw: Any) -> ValidationError | None:
    """Parse ``raw``: an Event, or a ValidationError that names a field and a rule."""
    try:
        parse_event(raw)
    except ValidationError as e:
        assert isinstance(e.field, str) and e.field, f"no field named: {e!r}"
        assert isinstance(e.rule, str) and e.rule, f"no rule given: {e!r}"
        assert str(e).startswith(e.field)
        return e
    return None


@FUZZ
@given(st.binary(max_size=300))
@example(b"")
@example(b"\xff\xfe{}")
@example(b'{"specversion": "1.0", "id": "\xc3\x28"}')
@example(b"[" * 100_000)
@example(b'{"a":' * 50_000)
@example(b'{"specversion":"1.0","id":"x","source":"s","type":"creative.feedback.comment","data":{"on":"a",'
         b'"text":"b","rating":1e999}}')  # fmt: skip
@example(b'{"specversion":"1.0","id":"x","source":"s","type":"creative.feedback.comment","data":{"on":"a",'
         b'"text":"b","rating":123456789012345678901234567890}}')  # fmt: skip
def test_arbitrary_bytes_are_refused_by_name(raw: bytes) -> None:
    _check_refusal(raw)


@FUZZ
@given(json_objects | json_values)
@example({"specversion": "1.0", "id": "x", "source": "s", "type": "creative.feedback.comment", "data": None})
@example({"specversion": None, "id": None, "source": None, "type": None})
@example({**_GOOD, "subject": ""})  # CloudEvents: present means non-empty
@example({**_GOOD, "dataschema": ""})
@example({"specversion": "1.0", "id": "x", "source": "s", "type": 7, "data": {}})
@example({"specversion": "1.0", "id": "x", "source": "s", "type": "creative.x", "data_base64": "AA=="})
def test_arbitrary_json_is_refused_by_name(value: Any) -> None:
    _check_refusal(value)
    _check_refusal(msgspec.json.encode(value))


_REQUIRED = ("specversion", "id", "source", "type")


@st.composite
def mutated(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid event object with one attribute (or one field of data) broken; and what was broken."""
    obj = draw(event_objects())
    kind = draw(st.sampled_from(["delete", "replace", "unknown", "data", "retype"]))
    if kind == "delete":
        name = draw(st.sampled_from(sorted(obj)))
        del obj[name]
        return obj, name
    if kind == "replace":
        name = draw(st.sampled_from(sorted(obj)))
        obj[name] = draw(json_values)
        return obj, name
    if kind == "unknown":
        name = draw(
            st.text(min_size=1, max_size=12).filter(
                lambda s: s not in obj and s not in Event.__struct_fields__
            )
        )
        obj[name] = draw(json_values)
        return obj, name
    if kind == "retype":  # another known type: data no longer fits
        obj["type"] = draw(st.sampled_from(sorted(_types())))
        return obj, "type"
    data = dict(obj["data"])
    drop, existing = draw(st.booleans()), draw(st.booleans())
    if data and drop:
        del data[draw(st.sampled_from(sorted(data)))]
    else:
        field = draw(st.sampled_from(sorted(data)) if data and existing else st.text(max_size=8))
        data[field] = draw(json_values)
    obj["data"] = data
    return obj, "data"


def _types() -> list[str]:
    from creative_hub.schemas import PAYLOADS

    return list(PAYLOADS)


@FUZZ
@given(mutated())
def test_a_broken_attribute_is_named(case: tuple[dict[str, Any], str]) -> None:
    obj, broken = case
    error = _check_refusal(obj)
    if error is None:
        return  # the change happened to be valid (a new string id, an optional field dropped)
    allowed = {broken, "event"}
    if broken == "type":
        allowed.add("data")  # data no longer fits the new type
    if broken in ("model", "modelprovider"):
        allowed |= {"model", "modelprovider"}  # a model needs its provider
    named = any(error.field == a or error.field.startswith(f"{a}.") for a in allowed)
    assert named, f"broke {broken!r}, error names {error.field!r}: {error}"


@FUZZ
@given(event_objects(), st.data())
def test_mutated_bytes_are_refused_by_name(obj: dict[str, Any], data: st.DataObject) -> None:
    body = bytearray(encode_event(parse_event(obj)))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        i = data.draw(st.integers(0, max(len(body) - 1, 0)))
        if op == "flip" and body:
            body[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "insert":
            body[i:i] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and body:
            del body[i]
        else:
            del body[i:]
    _check_refusal(bytes(body))


# Surrogates that do not pair: a high one followed by a low one is, once JSON-escaped
# ("\\ud800\\udc00"), a valid character (U+10000) that decoders rightly join.
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_lone_surrogates = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3).filter(
    lambda s: _PAIR.search(s) is None
)


@FUZZ
@given(
    event_objects(),
    st.sampled_from(["subject", "source", "creator", "data"]),
    _lone_surrogates,
    st.booleans(),
)
def test_lone_surrogates_are_refused_by_name(obj: dict[str, Any], name: str, bad: str, as_json: bool) -> None:
    # A "\ud800" escape decodes to a str UTF-8 cannot carry: refused by name, never a UnicodeEncodeError.
    if name == "data":
        obj["data"] = {**obj["data"], "extra": {"note": bad}}  # every payload may carry extra
    else:
        obj[name] = bad
    raw: Any = json.dumps(obj) if as_json else obj
    try:
        event = parse_event(raw)
    except ValidationError:
        return
    with pytest.raises(ValidationError) as e:
        encode_event(event)
    assert e.value.field == "event" and "surrogate" in e.value.rule


# -- the size limit -------------------------------------------------------------
LIMIT = 4096  # bytes; small so that examples cross it


@pytest.fixture
def hub_runner(tmp_path: Path) -> Iterator[tuple[asyncio.Runner, Hub]]:
    with asyncio.Runner() as runner:
        log: Log = open_log(f"sqlite:///{tmp_path / 'hub.db'}")
        runner.run(log.open())
        try:
            yield runner, Hub(log, principal="fuzzer", max_event_bytes=LIMIT)
        finally:
            runner.run(log.close())


@FUZZ_WITH_FIXTURE
@given(st.integers(0, 3 * LIMIT), st.text(alphabet="aé€😀", max_size=1))
def test_size_limit_is_enforced_before_anything_is_stored(
    hub_runner: tuple[asyncio.Runner, Hub], size: int, char: str
) -> None:
    runner, hub = hub_runner
    text = (char or "a") * (size // max(len((char or "a").encode()), 1))
    item = {
        "type": "creative.feedback.comment",
        "subject": "s",
        "data": {"on": "story:1", "text": text or "x"},
    }
    topic = "creative.feedback"

    async def count() -> int:
        return len([r async for r in hub.log.read(topic)])

    before = runner.run(count())
    try:
        [receipt] = runner.run(hub.publish(item))
    except PayloadTooLarge as e:
        assert e.size > LIMIT and e.limit == LIMIT and e.field == "event"
        assert runner.run(count()) == before, "a refused event was stored"
        return
    stored = runner.run(_read_body(hub.log, topic, receipt.position))
    assert len(stored) <= LIMIT


async def _read_body(log: Log, topic: str, position: str) -> bytes:
    async for record in log.read(topic):
        if record.position == position:
            return record.body
    raise AssertionError(f"{position} not found in {topic}")


def test_size_limit_boundary(hub_runner: tuple[asyncio.Runner, Hub]) -> None:
    # limit - 1 and limit pass, limit + 1 is refused: the stored body is what counts.
    runner, hub = hub_runner
    when = "2026-11-24T10:00:00Z"

    def item(k: int, n: int) -> dict[str, Any]:
        return {"id": f"b{k}", "type": "creative.feedback.comment", "time": when,
                "data": {"on": "x", "text": "a" * n}}  # fmt: skip

    [r] = runner.run(hub.publish(item(0, 100)))
    overhead = len(runner.run(_read_body(hub.log, "creative.feedback", r.position))) - 100
    for k, size in ((1, LIMIT - 1), (2, LIMIT)):
        [r] = runner.run(hub.publish(item(k, size - overhead)))
        assert len(runner.run(_read_body(hub.log, "creative.feedback", r.position))) == size
    with pytest.raises(PayloadTooLarge) as e:
        runner.run(hub.publish(item(3, LIMIT + 1 - overhead)))
    assert e.value.size == LIMIT + 1
