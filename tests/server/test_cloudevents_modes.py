"""CloudEvents producers and consumers nobody here wrote: the CNCF SDK (both its
APIs) over HTTP, structured and binary content mode, extensions kept."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from live_server import LiveServer

pytestmark = pytest.mark.sqlite

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


def sdk_event(**extra: Any) -> CloudEvent:
    return CloudEvent(
        {
            "id": f"sdk-{uuid.uuid4().hex}",
            "source": "https://example.org/sdk",
            "type": "creative.feedback.comment",
            "subject": "story:wood",
            "datacontenttype": "application/json",
            "traceparent": TRACEPARENT,
            "tracestate": TRACESTATE,
            "myextension": "kept as sent",
            **extra,
        },
        {"on": "story:wood", "text": "The ending lands."},
    )


def stored(c: httpx.Client, event_id: str) -> dict[str, Any]:
    r = c.get(f"/v1/events/{event_id}")
    assert r.status_code == 200, r.text
    event: dict[str, Any] = r.json()["event"]
    return event


def test_the_sdk_posts_in_binary_mode_and_reads_back_every_attribute(live: LiveServer) -> None:
    sent = sdk_event()
    msg = ce_http.to_binary(sent, JSONFormat())
    assert "ce-specversion" in msg.headers and "ce-tracestate" in msg.headers  # really binary mode
    with live.client("alice") as c:
        r = c.post("/v1/events", headers=msg.headers, content=msg.body)
        assert r.status_code == 201, r.text
        (receipt,) = r.json()
        assert receipt["id"] == sent.get_id() and receipt["topic"] == "creative.feedback"
        # The SDK reads what the hub serves (structured), every attribute as sent.
        got = JSONFormat().read(CloudEvent, httpx.Response(200, json=stored(c, sent.get_id())).content)
    assert got.get_type() == sent.get_type() and got.get_subject() == sent.get_subject()
    assert got.get_source() == sent.get_source()
    for name in ("traceparent", "tracestate", "myextension"):
        assert got.get_extension(name) == sent.get_extension(name)
    assert got.get_data() == sent.get_data()
    assert got.get_extension("creator") == "alice"  # the token's principal, stamped by the hub


def test_the_sdk_posts_in_structured_mode_with_its_extensions(live: LiveServer) -> None:
    sent = sdk_event(priority=3)
    msg = ce_http.to_structured(sent, JSONFormat())
    assert msg.headers["content-type"].startswith("application/cloudevents+json")
    with live.client("alice") as c:
        assert c.post("/v1/events", headers=msg.headers, content=msg.body).status_code == 201
        event = stored(c, sent.get_id())
    assert (
        event["tracestate"] == TRACESTATE
        and event["priority"] == 3
        and event["myextension"] == "kept as sent"
    )


def test_the_v1_sdk_api_binary_and_structured(live: LiveServer) -> None:
    from cloudevents.v1.conversion import from_dict, to_binary, to_structured
    from cloudevents.v1.http import CloudEvent as V1Event

    with live.client("alice") as c:
        for convert in (to_binary, to_structured):
            ev = V1Event(
                {
                    "id": f"v1-{uuid.uuid4().hex}",
                    "source": "/v1-sdk",
                    "type": "creative.feedback.comment",
                    "tracestate": TRACESTATE,
                    "vendorext": "v1",
                },
                {"on": "story:wood", "text": f"via {convert.__name__}"},
            )
            headers, body = convert(ev)
            r = c.post("/v1/events", headers=headers, content=body)
            assert r.status_code == 201, (convert.__name__, r.text)
            back = from_dict(V1Event, stored(c, ev["id"]))
            assert back["tracestate"] == TRACESTATE and back["vendorext"] == "v1"
            assert back.data == ev.data


def test_binary_mode_refuses_what_is_not_a_json_event_naming_the_attribute(live: LiveServer) -> None:
    base = {"ce-specversion": "1.0", "ce-id": f"b-{uuid.uuid4().hex}", "ce-source": "/x"}
    comment = {**base, "ce-type": "creative.feedback.comment"}
    cases: list[tuple[dict[str, str], bytes, str]] = [
        ({**comment, "content-type": "text/plain"}, b"hello", "datacontenttype"),
        ({**comment, "content-type": "application/json"}, b"{nope", "data"),
        ({**base, "content-type": "application/json"}, b'{"on": "x", "text": "y"}', "type"),
        ({**comment, "content-type": "application/json"}, b'{"on": "x"}', "data.text"),
        ({**comment, "ce-Bad_Name": "x"}, b'{"on": "x", "text": "y"}', "bad_name"),
    ]  # fmt: skip
    with live.client("alice") as c:
        for headers, body, field in cases:
            r = c.post("/v1/events", headers=headers, content=body)
            assert r.status_code == 422, (headers, r.text)
            assert r.json()["field"] == field, r.json()
            assert c.get(f"/v1/events/{base['ce-id']}").status_code == 404  # nothing written


def test_json_with_a_charset_parameter_round_trips_in_both_modes(live: LiveServer) -> None:
    media = "application/json; charset=utf-8"  # as many SDKs and frameworks write it
    with live.client("alice") as c:
        for convert in (ce_http.to_binary, ce_http.to_structured):
            sent = sdk_event(datacontenttype=media)
            msg = convert(sent, JSONFormat())
            r = c.post("/v1/events", headers=msg.headers, content=msg.body)
            assert r.status_code == 201, (convert.__name__, r.text)
            got = JSONFormat().read(CloudEvent, httpx.Response(200, json=stored(c, sent.get_id())).content)
            assert got.get_datacontenttype() == media and got.get_data() == sent.get_data()
