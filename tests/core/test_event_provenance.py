"""The provenance attributes of an event (model, modelprovider, confighash,
inputs): validation, signing, CloudEvents interop."""

from __future__ import annotations

import hashlib

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from creative_hub.errors import ValidationError
from creative_hub.event import (
    EXTENSIONS,
    PROVENANCE,
    Event,
    digest,
    encode_event,
    parse_event,
    validate_event,
)
from creative_hub.principals import canonical, public_key_b64, sign_event, verify_signature

pytestmark = pytest.mark.sqlite

HASH = hashlib.sha256(b"prompt and settings").hexdigest()


def event(**over: object) -> dict[str, object]:
    e: dict[str, object] = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/peers/critic",
        "type": "creative.feedback.comment",
        "creator": "critic",
        "data": {"on": "w1", "text": "The ending comes too fast."},
        "model": "claude-x",
        "modelprovider": "anthropic",
        "confighash": HASH,
        "inputs": "w1 w0",
    }
    e.update(over)
    return {k: v for k, v in e.items() if v is not None}


def test_provenance_attributes_are_extensions_and_round_trip() -> None:
    assert set(PROVENANCE) <= set(EXTENSIONS)
    assert all(name.isalnum() and name.islower() and len(name) <= 20 for name in EXTENSIONS)
    ev = parse_event(event())
    assert (ev.model, ev.modelprovider, ev.confighash) == ("claude-x", "anthropic", HASH)
    assert ev.input_ids == ["w1", "w0"]
    assert parse_event(encode_event(ev)) == ev
    assert parse_event(event(model=None, modelprovider="offline", inputs=None)).input_ids == []


@pytest.mark.parametrize(
    ("over", "field", "rule"),
    [
        ({"model": "claude x"}, "model", "no spaces"),
        ({"model": ""}, "model", "1-200 visible ASCII"),
        ({"model": "m" * 201}, "model", "1-200 visible ASCII"),
        ({"modelprovider": None}, "model", "needs modelprovider"),
        ({"modelprovider": "Anthropic"}, "modelprovider", "a-z, 0-9"),
        ({"modelprovider": "anthropic/claude"}, "modelprovider", "a-z, 0-9"),
        ({"confighash": "abc"}, "confighash", "sha256 in hex"),
        ({"confighash": HASH.upper()}, "confighash", "sha256 in hex"),
        ({"inputs": "w1  w0"}, "inputs", "single spaces"),
        ({"inputs": " w1"}, "inputs", "single spaces"),
        ({"inputs": ""}, "inputs", "single spaces"),
        ({"inputs": " ".join(f"e{i}" for i in range(257))}, "inputs", "at most 256 event ids"),
        ({"inputs": "x" * 257}, "inputs", "at most 256 printable"),
        ({"model": 7}, "model", "str"),
    ],
)
def test_bad_provenance_is_refused_naming_the_field_and_rule(
    over: dict[str, object], field: str, rule: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_event(event(**over))
    assert caught.value.field == field
    assert rule in caught.value.rule


def test_the_signature_covers_the_provenance() -> None:
    key = Ed25519PrivateKey.generate()
    ev = parse_event(event())
    ev.signature = sign_event(ev, key)
    public = public_key_b64(key)
    assert verify_signature(ev, public)
    assert b'"model":"claude-x"' in canonical(ev) and b'"inputs":"w1 w0"' in canonical(ev)
    for name, value in (
        ("model", "gpt-5"),
        ("modelprovider", "openai"),
        ("confighash", "0" * 64),
        ("inputs", "w1"),
    ):
        tampered = parse_event({**ev.to_dict(), name: value})
        assert not verify_signature(tampered, public), f"{name} changed, signature still valid"
        assert digest(tampered) != digest(ev), f"{name} is not part of the digest"


def test_an_event_without_provenance_encodes_as_before() -> None:
    # omit_defaults: events (and their signatures) from before these attributes are unchanged.
    body = encode_event(
        Event(type="creative.feedback.comment", id="x", source="/s", data={"on": "a", "text": "b"})
    )
    assert not any(f'"{name}"'.encode() in body for name in PROVENANCE)


def test_cloudevents_sdk_reads_and_writes_the_provenance() -> None:
    ev = parse_event(event(time="2026-11-24T10:00:00Z"))
    ce = JSONFormat().read(CloudEvent, encode_event(ev))
    assert ce.get_extension("model") == "claude-x"
    assert ce.get_extension("modelprovider") == "anthropic"
    assert ce.get_extension("confighash") == HASH
    assert ce.get_extension("inputs") == "w1 w0"
    again = parse_event(JSONFormat().write(ce))
    assert (again.model, again.modelprovider, again.confighash, again.inputs) == (
        "claude-x",
        "anthropic",
        HASH,
        "w1 w0",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "gpt-4o\n"),
        ("modelprovider", "offline\n"),
        ("confighash", "a" * 64 + "\n"),
        ("hub", "alice\n"),
        ("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-01\n"),
    ],
)
def test_a_trailing_newline_is_not_a_valid_value(field: str, value: str) -> None:
    # `$` matches before a final newline: the whole value must match the rule.
    fields: dict[str, str] = {"model": "critic-1", "modelprovider": "offline"} if field == "model" else {}
    if field == "modelprovider":
        fields = {"modelprovider": value}
    else:
        fields[field] = value
    with pytest.raises(ValidationError) as err:
        validate_event(Event(id="x", source="/s", type="creative.narrative.fragment", **fields))
    assert err.value.field == field
