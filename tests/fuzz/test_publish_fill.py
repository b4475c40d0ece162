"""What the hub fills in when a publisher's object lacks it (``event.parse_new_event``,
and ``hub.publish.convert_new_events`` for a whole publish at once).

The hub converts the usual object as it is and sets the missing attributes
on the event (no copy: publish's hot path).  It must give exactly what the
plain way gives -- a filled-in copy through ``parse_event`` -- for every
object: the same event, or the same error naming the same field, and the
publisher's object unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from _fuzz_strategies import event_objects, examples, json_values
from hypothesis import given, settings
from hypothesis import strategies as st

from creative_hub.errors import ValidationError
from creative_hub.event import (
    Event,
    encode_event,
    new_id,
    parse_event,
    parse_new_event,
    validate_event,
)
from creative_hub.hub.publish import convert_new_events

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


def batch_outcomes(objs: list[dict[str, Any]], keep_creator: bool) -> list[tuple[str, Any]]:
    """What Hub.prepare_many does: the list converted at once, each converted event
    validated; an object it leaves out (None) goes alone through parse_new_event."""
    converted = convert_new_events(objs, PRINCIPAL, keep_creator=keep_creator)
    out = []
    for i, obj in enumerate(objs):
        event = converted[i] if converted is not None else None
        if event is None:
            out.append(outcome(obj, keep_creator, fast=True))
            continue
        try:
            validate_event(event)
        except ValidationError as e:
            out.append(("error", (e.field, e.rule)))
            continue
        if "id" not in obj:
            event.id = "generated"
        out.append(("event", encode_event(event)))
    return out


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(publisher_objects(), min_size=2, max_size=4), st.booleans())
def test_a_whole_publish_converted_at_once_gives_what_each_gives_alone(
    objs: list[dict[str, Any]], keep_creator: bool
) -> None:
    before = copy.deepcopy(objs)
    batch = batch_outcomes(objs, keep_creator)
    assert objs == before  # the publisher's objects are not changed
    assert batch == [outcome(obj, keep_creator, fast=False) for obj in objs]


GOOD = {"type": "creative.narrative.fragment", "data": {"story": "s", "title": "t", "text": ""}}


@pytest.mark.parametrize(
    "odd",
    [
        {**GOOD, "id": ""},  # converts; the check refuses it, as alone
        {**GOOD, "source": ""},
        {**GOOD, "specversion": "0.3"},
        {**GOOD, "_extensions": {"ext": "x"}},  # the struct's own key: no attribute name
        {**GOOD, "creator": "bob"},  # replaced unless kept
        {**GOOD, "creator": ""},
        {**GOOD, "creator": None},
        {**GOOD, "ext1": "x"},  # another extension: taken alone
        {**GOOD, "data": {"story": "s"}},
        {**GOOD, "data": None},
    ],
)
@pytest.mark.parametrize("keep_creator", [True, False])
def test_odd_objects_in_a_batch_end_as_they_do_alone(odd: dict[str, Any], keep_creator: bool) -> None:
    objs = [dict(GOOD), odd, dict(GOOD)]
    assert batch_outcomes(objs, keep_creator) == [outcome(o, keep_creator, fast=False) for o in objs]
