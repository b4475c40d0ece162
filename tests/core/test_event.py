"""The event envelope: validation rules, encoding, CloudEvents interop."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from creative_hub import schemas
from creative_hub.errors import ValidationError
from creative_hub.event import Event, decode_event, derive_id, digest, encode_event, parse_event

pytestmark = pytest.mark.sqlite

FRAGMENT = {"story": "hansel", "title": "Into the wood", "text": "The father led them deep..."}


def good(**over: object) -> dict[str, object]:
    e: dict[str, object] = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/peers/alice",
        "type": "creative.narrative.fragment",
        "data": dict(FRAGMENT),
    }
    e.update(over)
    return e


def test_a_valid_event_round_trips() -> None:
    ev = parse_event(good(subject="story:hansel", time="2026-11-24T10:00:00Z", creator="alice"))
    assert ev.area == "narrative"
    again = decode_event(encode_event(ev))
    assert again == ev
    assert json.loads(encode_event(ev))["specversion"] == "1.0"
    # Each attribute once, however the event was made (code, JSON, a decode).
    for e in (ev, again, Event(type="creative.narrative.fragment", id="x", source="/s", data=FRAGMENT)):
        assert encode_event(e).count(b'"specversion"') == 1


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"type": "creative.narrative.nope"}, "type", "unknown type"),
        ({"type": "creative.cooking.recipe"}, "type", "unknown area"),
        ({"type": "narrative"}, "type", "creative.<area>.<kind>"),
        ({"specversion": "0.3"}, "specversion", "1.0"),
        ({"id": ""}, "id", "non-empty"),
        ({"id": "x" * 300}, "id", "at most 256"),
        ({"visibility": "secret"}, "visibility", "public"),
        ({"time": "yesterday"}, "time", "datetime"),
        ({"time": "2026-11-24T10:00:00"}, "time", "timezone"),
        ({"hub": "Bad Hub"}, "hub", "peer id"),
        ({"creator": 5}, "creator", "Expected str"),
        ({"Colour": "red"}, "Colour", "1-20 characters of a-z and 0-9"),
        ({"partition_key": "k"}, "partition_key", "unknown attribute"),
        ({"colour": {"r": 1}}, "colour", "a string, an integer or a boolean"),
        ({"colour": 2**40}, "colour", "32-bit"),
        ({"colour": ""}, "colour", "must not be empty"),
        ({"_extensions": {"a": "b"}}, "_extensions", "unknown attribute"),
        ({f"x{i}": "v" for i in range(33)}, "extensions", "at most 32"),
        ({"big": "x" * 9000}, "extensions", "at most 8192 bytes"),
        ({"data": {"story": "s", "text": "t"}}, "data.title", "required"),
        ({"data": {**FRAGMENT, "title": 7}}, "data.title", "Expected str"),
        ({"data": {**FRAGMENT, "order": -1}}, "data.order", ">= 0"),
        ({"data": {**FRAGMENT, "mood": "dark"}}, "data.mood", "unknown field"),
        ({"data": "text"}, "data", "JSON object"),
        ({"data_base64": "AAAA"}, "data_base64", "binary"),
        ({"datacontenttype": "text/plain"}, "datacontenttype", "application/json"),
        ({"traceparent": "nope"}, "traceparent", "W3C"),
    ],
)
def test_bad_attributes_name_the_field_and_rule(change: dict[str, object], field: str, rule: str) -> None:
    with pytest.raises(ValidationError) as e:
        parse_event(good(**change))
    assert e.value.field == field
    assert rule in e.value.rule


@pytest.mark.parametrize("missing", ["specversion", "id", "source", "type"])
def test_missing_required_attribute(missing: str) -> None:
    raw = good()
    del raw[missing]
    with pytest.raises(ValidationError) as e:
        parse_event(raw)
    assert e.value.field == missing and "required" in e.value.rule


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        parse_event(b"{nope")
    with pytest.raises(ValidationError, match="JSON object"):
        parse_event(b"[1, 2]")


def test_ceremony_end_before_start_is_refused() -> None:
    data = {"title": "Standup", "start": "2026-11-24T10:00:00Z", "end": "2026-11-24T09:00:00Z"}
    with pytest.raises(ValidationError) as e:
        parse_event(good(type="creative.ceremony.session", data=data))
    assert e.value.field == "data.end"


def test_nested_payload_errors_have_paths() -> None:
    data = {"title": "Retro", "start": "2026-11-24T10:00:00Z", "phases": [{"name": "open"}, {"minutes": 5}]}
    with pytest.raises(ValidationError) as e:
        parse_event(good(type="creative.ceremony.session", data=data))
    assert e.value.field == "data.phases.1.name"


def test_every_type_has_a_json_schema() -> None:
    all_schemas = schemas.json_schema()
    assert set(all_schemas) == set(schemas.PAYLOADS)
    for t in (
        "creative.engineering.commit",
        "creative.narrative.plot_point",
        "creative.ceremony.session",
        "creative.feedback.comment",
        "creative.contributions.proposed",
        "creative.metadata.paper",
    ):
        assert t in all_schemas


def test_derived_ids_are_stable() -> None:
    a = derive_id("github", "octo/repo", "commit", "abc123")
    assert a == derive_id("github", "octo/repo", "commit", "abc123")
    assert a != derive_id("github", "octo/repo", "commit", "abc124")


def test_digest_ignores_restamped_time_but_not_content() -> None:
    e1 = parse_event(good(time="2026-11-24T10:00:00Z"))
    e2 = parse_event(good(time="2026-11-24T11:00:00Z"))
    e3 = parse_event(good(data={**FRAGMENT, "text": "other"}))
    assert digest(e1) == digest(e2) != digest(e3)


def test_cloudevents_sdk_reads_what_we_write() -> None:
    ev = parse_event(
        good(
            subject="story:hansel",
            time="2026-11-24T10:00:00Z",
            creator="alice",
            partitionkey="alice",
            visibility="public",
            correlationid="c1",
        )
    )
    ce = JSONFormat().read(CloudEvent, encode_event(ev))
    assert ce.get_id() == "e1"
    assert ce.get_type() == "creative.narrative.fragment"
    assert ce.get_source() == "/peers/alice"
    assert ce.get_subject() == "story:hansel"
    assert ce.get_time() == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert ce.get_extension("creator") == "alice"
    assert ce.get_extension("correlationid") == "c1"
    assert ce.get_data() == FRAGMENT


def test_we_read_what_the_cloudevents_sdk_writes() -> None:
    ce = CloudEvent(
        {
            "id": "sdk-1",
            "source": "https://example.org/feeds",
            "type": "creative.metadata.webpage",
            "subject": "https://example.org/post",
            "time": datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
            "datacontenttype": "application/json",
            "creator": "feedbot",
        },
        {"url": "https://example.org/post", "title": "A post"},
    )
    ev = parse_event(JSONFormat().write(ce))
    assert isinstance(ev, Event)
    assert ev.id == "sdk-1" and ev.creator == "feedbot"
    assert ev.time == datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    assert ev.data == {"url": "https://example.org/post", "title": "A post"}


def test_unknown_extensions_are_kept_signed_over_and_passed_on_unchanged() -> None:
    # tracestate (distributed tracing's companion of traceparent) and a
    # producer's own extensions: stored and forwarded as they came.
    ev = parse_event(good(tracestate="congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", priority=3, urgent=True))
    assert ev.extensions == {
        "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        "priority": 3,
        "urgent": True,
    }
    body = encode_event(ev)
    top = json.loads(body)
    assert top["tracestate"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" and top["priority"] == 3
    assert "_extensions" not in top and "extensions" not in top
    again = decode_event(body)
    assert again == ev and encode_event(again) == body
    # Part of what the event is: another value is another digest (a conflict on the same id).
    assert digest(parse_event(good(tracestate="congo=other", priority=3, urgent=True))) != digest(ev)
    # Any CloudEvents reader sees them as extensions.
    ce = JSONFormat().read(CloudEvent, body)
    assert ce.get_extension("tracestate") == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert ce.get_extension("priority") == 3


def test_the_sdk_s_extensions_round_trip_through_the_hub() -> None:
    ce = CloudEvent(
        {
            "id": "sdk-2",
            "source": "https://example.org/tracer",
            "type": "creative.feedback.comment",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tracestate": "vendor=opaque",
            "myextension": "kept",
        },
        {"on": "story:1", "text": "kept as it was"},
    )
    ev = parse_event(JSONFormat().write(ce))
    back = JSONFormat().read(CloudEvent, encode_event(ev))
    for name in ("traceparent", "tracestate", "myextension"):
        assert back.get_extension(name) == ce.get_extension(name)
    assert back.get_data() == ce.get_data()


def test_the_readme_names_the_content_types_the_brokers_really_carry() -> None:
    # The README once left out the "; charset=utf-8" the Kafka header carries.
    from pathlib import Path

    from creative_hub.log.kafka.names import CONTENT_TYPE as KAFKA
    from creative_hub.log.nats.engine import CONTENT_TYPE as NATS

    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    assert f"`content-type: {KAFKA.decode()}`" in readme
    assert f"`Content-Type: {NATS}`" in readme


@pytest.mark.parametrize(
    "media",
    ["application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json; charset=UTF-8"],
)
def test_a_json_media_type_with_parameters_is_json_and_kept_as_sent(media: str) -> None:
    # SDKs and frameworks write "application/json; charset=utf-8" (RFC 2046 parameters):
    # it was refused as "must be application/json".
    from creative_hub.bindings import HTTP_PREFIX, to_structured

    ev = parse_event(good(datacontenttype=media))
    assert ev.datacontenttype == media and json.loads(encode_event(ev))["datacontenttype"] == media
    headers = [("ce-specversion", "1.0"), ("ce-id", "b1"), ("ce-source", "/x"), ("Content-Type", media)]
    attrs = to_structured(headers, json.dumps(FRAGMENT).encode(), prefix=HTTP_PREFIX)
    assert attrs["datacontenttype"] == media  # binary mode: the same, as sent
