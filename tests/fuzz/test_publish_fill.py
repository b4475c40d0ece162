"""What the hub fills in when a publisher's object lacks it (``event.parse_new_event``,
and ``Hub.prepare_many`` for a whole publish at once, with its short way for usual objects).

The hub converts the usual object as it is and sets the missing attributes
on the event (no copy: publish's hot path).  It must give exactly what the
plain way gives -- a filled-in copy through ``parse_event`` -- for every
object: the same event, or the same error naming the same field, and the
publisher's object unchanged.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

import pytest
from _fuzz_strategies import event_objects, examples, json_values, payloads
from hypothesis import given, settings
from hypothesis import strategies as st

from creative_hub.errors import ValidationError
from creative_hub.event import (
    DEFAULT_MAX_EVENT_BYTES,
    PAYLOADS,
    Event,
    decode_event,
    digest,
    encode_event,
    new_id,
    now,
    parse_event,
    parse_new_event,
)
from creative_hub.hub import Hub
from creative_hub.hub.publish import _checked
from creative_hub.log import Log
from creative_hub.principals import Keystore

pytestmark = [pytest.mark.sqlite, pytest.mark.fuzz]

PRINCIPAL = "alice"


def filled_copy(obj: dict[str, Any], keep_creator: bool) -> Event:
    """The plain way: what Hub.prepare did before parse_new_event."""
    full = dict(obj)
    if "specversion" not in full:
        full["specversion"] = "1.0"
    if "id" not in full:
        full["id"] = new_id()
    creator = (full.get("creator") if keep_creator else None) or PRINCIPAL
    full["creator"] = creator
    if "source" not in full:
        full["source"] = f"/peers/{creator}"
    return parse_event(full)


def outcome(obj: dict[str, Any], keep_creator: bool, fast: bool) -> tuple[str, Any]:
    try:
        if fast:
            event = parse_new_event(obj, PRINCIPAL, keep_creator=keep_creator)
        else:
            event = filled_copy(obj, keep_creator)
    except ValidationError as e:
        return "error", (e.field, e.rule)
    if "id" not in obj:
        event.id = "generated"  # the only difference allowed: a fresh id each time
    return "event", encode_event(event)


LEFT_OUT = ["specversion", "id", "source", "type", "creator", "data"]


@st.composite
def publisher_objects(draw: st.DrawFn) -> dict[str, Any]:
    """Valid objects with attributes left out, and some with one value changed."""
    obj = draw(event_objects())
    for name in draw(st.lists(st.sampled_from(LEFT_OUT), unique=True, max_size=3)):
        obj.pop(name, None)
    if draw(st.booleans()):
        name = draw(st.sampled_from([*LEFT_OUT, "subject", "hub", "data_base64", "Creator", "ext1"]))
        obj[name] = draw(json_values | st.sampled_from(["", "1.0", "shared", 0, None]))
    return obj


@settings(max_examples=examples(300), deadline=None)
@given(publisher_objects(), st.booleans())
def test_the_hot_path_fills_in_what_the_plain_way_does(obj: dict[str, Any], keep_creator: bool) -> None:
    before = copy.deepcopy(obj)
    fast = outcome(obj, keep_creator, fast=True)
    assert obj == before  # the publisher's object is not changed
    assert fast == outcome(obj, keep_creator, fast=False)


@pytest.mark.parametrize(
    ("obj", "keep_creator", "field"),
    [
        ({"data": {}}, True, "type"),
        ({"type": "creative.narrative.fragment", "data_base64": "AA"}, True, "data_base64"),
        ({"type": "creative.narrative.fragment", "id": None, "data": {}}, True, "id"),
        ({"type": "creative.narrative.fragment", "id": "", "data": {}}, True, "id"),
        ({"type": "creative.narrative.fragment", "creator": 5, "data": {}}, True, "creator"),
        ({"type": "creative.narrative.fragment", "Creator": "bob", "data": {}}, True, "Creator"),
        ({"type": "creative.narrative.fragment", "data": {"story": "s"}}, True, "data.title"),
    ],
)
def test_errors_name_the_field(obj: dict[str, Any], keep_creator: bool, field: str) -> None:
    with pytest.raises(ValidationError) as e:
        parse_new_event(obj, PRINCIPAL, keep_creator=keep_creator)
    assert e.value.field == field
    assert outcome(obj, keep_creator, fast=True) == outcome(obj, keep_creator, fast=False)


def test_the_publisher_s_creator_counts_only_when_kept() -> None:
    obj = {
        "type": "creative.narrative.fragment",
        "creator": "bob",
        "data": {"story": "s", "title": "t", "text": ""},
    }
    assert parse_new_event(obj, PRINCIPAL, keep_creator=True).creator == "bob"
    event = parse_new_event(obj, PRINCIPAL, keep_creator=False)
    assert event.creator == PRINCIPAL and event.source == f"/peers/{PRINCIPAL}"
    body = encode_event(parse_new_event({k: v for k, v in obj.items() if k != "creator"}, PRINCIPAL))
    assert body.startswith(b'{"specversion":"1.0","id":"')


@pytest.mark.parametrize("creator", [0, False, "", None, [], "bob", 5])
@pytest.mark.parametrize("keep_creator", [True, False])
def test_odd_creators_are_treated_as_the_plain_way_does(creator: object, keep_creator: bool) -> None:
    """A falsy creator of the wrong type is replaced, not refused, by the plain way."""
    obj = {
        "type": "creative.narrative.fragment",
        "creator": creator,
        "data": {"story": "s", "title": "t", "text": ""},
    }
    assert outcome(obj, keep_creator, fast=True) == outcome(obj, keep_creator, fast=False)


def hub_for(keep_creator: bool, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> Hub:
    """A hub whose prepare_many and prepare need no log: trusted keeps the
    publisher's creator, a principal's view replaces it."""
    return Hub(cast(Log, None), principal=PRINCIPAL, trusted=keep_creator, max_event_bytes=max_event_bytes)


def prepared(hub: Hub, objs: list[dict[str, Any]], batch: bool) -> tuple[str, Any]:
    """``Hub.prepare_many`` of the whole list (``batch``), or each object alone
    through ``Hub.prepare`` (the general way: ``parse_new_event``, ``_stamp``);
    the outcome with generated ids made equal."""
    stamp = STAMP
    try:
        if batch:
            out = hub.prepare_many(objs, stamp)
        else:
            out = []
            for i, obj in enumerate(objs):
                try:
                    out.append(_checked(*hub.prepare(obj, stamp)))
                except ValidationError as e:
                    raise e.at(i) if len(objs) > 1 else e from None
    except ValidationError as e:
        return "error", (type(e).__name__, e.field, e.rule, e.index)
    result = []
    for (topic, event, entry), obj in zip(out, objs, strict=True):
        assert entry.digest == digest(event) and decode_event(entry.body) == event
        assert entry.id == event.id and entry.key == event.partitionkey and entry.creator == event.creator
        body = entry.body
        if "id" not in obj:  # the only difference allowed: a fresh id each time
            body = body.replace(event.id.encode(), b"generated")
            event.id = "generated"
        result.append((topic, encode_event(event), body))
    return "events", result


STAMP = now()  # one time for every publish here, so that the bodies compare

SHORT = ["subject", "partitionkey", "causationid", "correlationid", "supersedes", "forkedfrom"]


@st.composite
def usual_objects(draw: st.DrawFn) -> dict[str, Any]:
    """What most publishers send: a type, its data and a few plain attributes (the
    short way), some with one value broken, some with an attribute from elsewhere."""
    type_ = draw(st.sampled_from(sorted(PAYLOADS)))
    obj: dict[str, Any] = {"type": type_, "data": draw(payloads(type_))}
    for name in draw(st.lists(st.sampled_from([*SHORT, "id", "source", "creator"]), unique=True, max_size=4)):
        obj[name] = draw(
            st.text(min_size=1, max_size=12) | st.sampled_from(["", "x" * 300, "bob~1", "/hub/x"])
        )
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from([*SHORT, "type", "data", "id", "source", "creator", "hub", "visibility"]))
        obj[name] = draw(json_values | st.sampled_from(["", "private", "shared", "creative.nope.x", None, 0]))
    return obj


@settings(max_examples=examples(400), deadline=None)
@given(
    st.lists(usual_objects() | publisher_objects(), min_size=1, max_size=4),
    st.booleans(),
    st.sampled_from([DEFAULT_MAX_EVENT_BYTES, 400]),
)
def test_prepare_many_gives_what_each_gives_alone(
    objs: list[dict[str, Any]], keep_creator: bool, max_event_bytes: int
) -> None:
    """Hub.prepare_many's one conversion and short way against Hub.prepare of
    each object alone: the same events, bodies and digests, or the same first
    error at the same index; the publisher's objects unchanged."""
    hub = hub_for(keep_creator, max_event_bytes)
    before = copy.deepcopy(objs)
    batch = prepared(hub, objs, batch=True)
    assert objs == before
    assert batch == prepared(hub, objs, batch=False)


GOOD = {"type": "creative.narrative.fragment", "data": {"story": "s", "title": "t", "text": ""}}


@pytest.mark.parametrize(
    "odd",
    [
        {**GOOD, "id": ""},  # converts; the check refuses it, as alone
        {**GOOD, "id": "x" * 300},
        {**GOOD, "source": ""},
        {**GOOD, "subject": ""},
        {**GOOD, "partitionkey": ""},
        {**GOOD, "specversion": "0.3"},
        {**GOOD, "_extensions": {"ext": "x"}},  # the struct's own key: no attribute name
        {**GOOD, "creator": "bob"},  # replaced unless kept
        {**GOOD, "creator": ""},
        {**GOOD, "creator": None},
        {**GOOD, "ext1": "x"},  # another extension: taken alone
        {**GOOD, "data": {"story": "s"}},
        {**GOOD, "data": {"story": "s", "title": "t", "text": "", "nope": 1}},
        {**GOOD, "data": None},
        {**GOOD, "data": [1]},
        {**GOOD, "type": "creative.narrative.nope"},
        {**GOOD, "visibility": "private"},  # not to a drafts stream: refused
        {**GOOD, "hub": PRINCIPAL, "visibility": "private"},  # to alice's drafts
        {**GOOD, "id": "bob~1"},  # another principal's namespace: a client may not
        {**GOOD, "source": "/peers/bob"},
        {**GOOD, "data": {"story": "s", "title": "t", "text": "\ud800"}},  # not valid Unicode
        {**GOOD, "data": {"story": "s", "title": "t", "text": "x" * 2000}},  # too large for 1,000 bytes
    ],
)
@pytest.mark.parametrize("keep_creator", [True, False])
@pytest.mark.parametrize("alone", [True, False])
def test_odd_objects_in_a_batch_end_as_they_do_alone(
    odd: dict[str, Any], keep_creator: bool, alone: bool
) -> None:
    objs = [odd] if alone else [dict(GOOD), odd, dict(GOOD)]
    hub = hub_for(keep_creator, 1000)
    assert prepared(hub, objs, batch=True) == prepared(hub, objs, batch=False)


def test_a_creator_with_a_key_is_signed_on_either_way(tmp_path: Path) -> None:
    """The short way is for unsigned events: a creator with a key takes the general
    way in a batch too, and each event is signed."""
    keys = Keystore(tmp_path / "keys")
    keys.create(PRINCIPAL)
    hub = hub_for(True)
    hub.keystore = keys
    out = hub.prepare_many([dict(GOOD), {**GOOD, "creator": "bob"}, dict(GOOD)])
    assert [e.signature is not None for _, e, _ in out] == [True, False, True]
    assert all(decode_event(entry.body) == e and entry.digest == digest(e) for _, e, entry in out)


@pytest.mark.parametrize("bad_at", [None, 0, 511, 512, 1099])
def test_a_long_call_is_prepared_in_chunks_as_each_alone(bad_at: int | None) -> None:
    """More events than one pass of the short way takes: the same events in the
    same order, or the first bad one's error at its own index."""
    objs = [{**GOOD, "subject": f"story:{i}"} for i in range(1100)]
    if bad_at is not None:
        objs[bad_at] = {**GOOD, "data": {"story": "s"}}
    hub = hub_for(True)
    assert prepared(hub, objs, batch=True) == prepared(hub, objs, batch=False)


@pytest.mark.parametrize("count", [2, 600])
def test_the_hint_names_the_first_entry_the_append_starts_with(count: int) -> None:
    """``first`` (the Kafka engine's early catch-up) gets, once, the very entry
    object the call's append starts with (the engine matches it by identity)."""
    hub = hub_for(True)
    seen: list[tuple[str, object]] = []
    objs = [{**GOOD, "subject": f"story:{i}"} for i in range(count)]
    out = hub.prepare_many(objs, first=lambda topic, entry: seen.append((topic, entry)))
    assert len(seen) == 1
    topic, entry = seen[0]
    assert topic == out[0][0] and entry is out[0][2]
