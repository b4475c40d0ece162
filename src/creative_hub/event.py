"""The event: a CloudEvents 1.0 event in structured JSON mode.

Any CloudEvents reader can parse what the hub writes, and the hub reads what
any CloudEvents writer produces (with the attributes below).  Extensions the
hub understands (all strings):

==============  ================================================================
creator         the principal that made it (the hub sets it from the publisher)
partitionkey    events with the same key keep their order (default: creator)
hub             ``shared`` or the peer id whose hub it belongs to
visibility      ``public`` or ``private`` (drafts)
causationid     the event that caused this one
correlationid   the conversation / workflow it belongs to
supersedes      the earlier revision this one replaces
forkedfrom      the event this one was forked from
traceparent     W3C trace context
model           the model that made it (``claude-x``, ``echo-1``): provenance of AI work
modelprovider   who serves that model (``anthropic``, a host name) or ``offline``
confighash      sha256 (hex) of the agent's prompt and configuration
inputs          the ids of the events it was made from, space-separated
signature       the creator's signature (Ed25519, base64)
==============  ================================================================

The agent runtime fills in the four provenance attributes on everything an
agent publishes (``creative_hub.agents.context``); a person may declare them
too (work made with a model's help).  Like every attribute but
``signature`` they are covered by the signature, so a claim about a model
is bound to the principal who made it.

**Other extensions** are kept and passed on unchanged, as the CloudEvents
spec asks of intermediaries: ``tracestate`` (the companion of
``traceparent`` in the distributed-tracing extension) or any producer's own.
A name is 1-20 characters of ``a-z0-9``; a value is a string, an integer
(32-bit) or a boolean -- the JSON forms of the CloudEvents type system
(URI, timestamp and binary travel as strings).  At most ``MAX_EXTENSIONS``
of them and ``MAX_EXTENSION_BYTES`` encoded in all; the signature and the
digest cover them like every attribute.  A misspelt known attribute cannot
pass as an extension when the slip breaks the name rule (``Creator``,
``partition_key``: refused, naming the attribute).  ``Event.extensions``
holds them (``{"tracestate": "congo=t61rcWkgMzE"}``).

The payload stays strict: ``data`` is checked against its type's schema and
unknown payload fields are refused.  ``data_base64`` (binary data) is
refused: payloads are JSON.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from .errors import PayloadTooLarge, ValidationError
from .jsonlimits import decode_json
from .schemas import AREAS, PAYLOADS, Payload
from .uuids import NAMESPACE, derive_id, new_id

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "EXTENSIONS",
    "MAX_EXTENSIONS",
    "MAX_EXTENSION_BYTES",
    "NAMESPACE",
    "PROVENANCE",
    "WRITTEN_SPECVERSION",
    "Event",
    "check_extensions",
    "decode_event",
    "derive_id",
    "digest",
    "encode_event",
    "encode_stamped",
    "encode_stamped_many",
    "fill_new_event",
    "is_json_media",
    "new_id",
    "parse_event",
    "parse_new_event",
    "time_json",
    "validate_event",
    "validate_provenance",
]

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024  # 1 MiB: under NATS' and Kafka's default message limits
MAX_ID_LENGTH = 256

EXTENSIONS = (
    "creator",
    "partitionkey",
    "hub",
    "visibility",
    "causationid",
    "correlationid",
    "supersedes",
    "forkedfrom",
    "traceparent",
    "model",
    "modelprovider",
    "confighash",
    "inputs",
    "signature",
)
PROVENANCE = ("model", "modelprovider", "confighash", "inputs")  # who made it and how (AI work)
REQUIRED = ("specversion", "id", "source", "type")
_REQUIRED_SET = frozenset(REQUIRED)
_PEER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_MODEL = re.compile(r"^[!-~]{1,200}$")  # visible ASCII: gpt-4o-mini, llama3.2:3b, meta-llama/Llama-3-8B
_PROVIDER = re.compile(r"^[a-z0-9._:-]{1,100}$")  # a label or a host name, never a '/'
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_INPUTS = 256  # input ids one event may name
MAX_EXTENSIONS = 32  # other extension attributes one event may carry
MAX_EXTENSION_BYTES = 8 * 1024  # their names and values, JSON-encoded, in all
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")  # CloudEvents 1.0 attribute names
_INT32 = (-(2**31), 2**31 - 1)  # the CloudEvents Integer type
_EXT_KEY = "_extensions"  # the field's key inside msgspec: with '_' it is no valid attribute name

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


# gc=False: the collector does not track events (their fields are JSON values, in
# no cycle); every tracked object alive per event cost publish and consume time.
class Event(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """One event.  Build it with keywords; the hub fills in what is missing.

    Event(type="creative.narrative.fragment", subject="story:hansel",
          data={"story": "hansel", "title": "The wood", "text": "..."})
    """

    specversion: str = "1.0"
    id: str = ""
    source: str = ""
    type: str
    subject: str | None = None
    time: AwareDatetime | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None
    creator: str | None = None
    partitionkey: str | None = None
    hub: str | None = None
    visibility: str | None = None
    causationid: str | None = None
    correlationid: str | None = None
    supersedes: str | None = None
    forkedfrom: str | None = None
    traceparent: str | None = None
    model: str | None = None
    modelprovider: str | None = None
    confighash: str | None = None
    inputs: str | None = None
    signature: str | None = None
    #: other extension attributes, kept and passed on unchanged (written at the top level)
    extensions: dict[str, str | int | bool] | None = msgspec.field(default=None, name=_EXT_KEY)

    @property
    def input_ids(self) -> list[str]:
        """``inputs`` as a list of event ids (empty without it)."""
        return self.inputs.split(" ") if self.inputs else []

    @property
    def area(self) -> str:
        """``narrative`` for ``creative.narrative.fragment``."""
        return self.type.split(".")[1]

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON-ready values (the structured-mode object)."""
        d: dict[str, Any] = msgspec.json.decode(encode_event(self))
        return d

    def to_json(self) -> bytes:
        return encode_event(self)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)
_KNOWN = frozenset(f.encode_name for f in msgspec.structs.fields(Event) if f.encode_name != _EXT_KEY)
_SPEC_PREFIX = b'{"specversion":"1.0",'
#: "1.0" as an object of its own, to set on a new event: the encoder omits the
#: class default (the same object) but writes this one, so the body needs no
#: second copy to add it.
WRITTEN_SPECVERSION = "".join(("1", ".0"))


def encode_event(event: Event) -> bytes:
    """Structured-mode JSON.  ``specversion`` is always written first; other
    extensions follow the known attributes, sorted by name (one encoding per event)."""
    try:
        if event.extensions:
            base = _encoder.encode(msgspec.structs.replace(event, extensions=None))
            more = _encoder.encode(dict(sorted(event.extensions.items())))
            body = base[:-1] + b"," + more[1:]
        else:
            body = _encoder.encode(event)
    except UnicodeEncodeError as e:  # a lone surrogate, from a "\ud800" escape in JSON a caller decoded
        raise ValidationError("event", f"text that is not valid Unicode: {e.reason}") from None
    # omit_defaults drops specversion when it is the default object itself (an
    # Event built in code); one decoded or converted from JSON keeps it.  It
    # is the first field, so one prefix test tells which.
    if body.startswith(b'{"specversion"'):
        return body
    return _SPEC_PREFIX + body[1:]


def encode_stamped(event: Event, time_json: bytes) -> tuple[bytes, str]:
    """Encode an event whose ``time`` is None with ``time_json`` (a JSON string)
    as its time, and return the body with the event's digest.

    The digest is taken over the encoding without the time, so one encode
    serves both (the hot path of publish)."""
    try:
        body = _encoder.encode(event) if event.extensions is None else b""
    except UnicodeEncodeError:
        body = b""  # encode_event says what is wrong
    if not body.startswith(_SPEC_PREFIX):  # extensions, specversion left to the default, bad text
        body = encode_event(event)
    h = _BLAKE2B_16.copy()  # cheaper than parsing digest_size for a new hasher each time
    h.update(body)
    last = _last_time  # one read: another thread may replace it, never half of it
    prefix = last[2] if last[1] is time_json else _STAMPED_PREFIX + time_json + b","
    return prefix + body[len(_SPEC_PREFIX) :], h.hexdigest()


def encode_stamped_many(events: Sequence[Event], time_json: bytes) -> tuple[list[bytes], list[str]]:
    """``encode_stamped`` of every event (their ``time`` None), one ``time_json``
    for all: the same bodies and digests, the encoding done in one C loop."""
    if any(map(_EXTENSIONS_OF, events)):  # each its own way, sorted extensions and all
        pairs = [encode_stamped(e, time_json) for e in events]
        return [b for b, _ in pairs], [d for _, d in pairs]
    try:
        bodies = list(map(_encoder.encode, events))
    except UnicodeEncodeError:
        bodies = list(map(encode_event, events))  # raises the ValidationError, naming the rule
    n = len(_SPEC_PREFIX)
    if not all(map(_STARTS_WITH_SPEC, bodies)):  # specversion left to the default: add it
        bodies = [b if b.startswith(b'{"specversion"') else _SPEC_PREFIX + b[1:] for b in bodies]
    digests = []
    for body in bodies:
        h = _BLAKE2B_16.copy()
        h.update(body)
        digests.append(h.hexdigest())
    prefix = _STAMPED_PREFIX + time_json + b","
    return [prefix + b[n:] for b in bodies], digests


_BLAKE2B_16 = hashlib.blake2b(digest_size=16)  # never updated: a template to copy
_STAMPED_PREFIX = _SPEC_PREFIX + b'"time":'
_EXTENSIONS_OF = operator.attrgetter("extensions")
_STARTS_WITH_SPEC = operator.methodcaller("startswith", b'{"specversion"')  # as encode_event tests
#: the last stamp, its JSON, and the body's start with it (``time_json``)
_last_time: tuple[datetime | None, bytes, bytes] = (None, b"", b"")


def time_json(stamp: datetime) -> bytes:
    """``stamp`` as JSON for ``encode_stamped``.  The events of one publish
    share their stamp, so the last one is kept and encoded once."""
    global _last_time
    last = _last_time  # one read: another thread may replace it, never half of it
    if last[0] is stamp:
        return last[1]
    encoded = _encoder.encode(stamp)
    _last_time = (stamp, encoded, _STAMPED_PREFIX + encoded + b",")
    return encoded


def decode_event(body: bytes) -> Event:
    """Decode a body this hub wrote (trusted: typed decode, no payload check)."""
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError:
        # Other extensions at the top level (rare): split them off and keep them as they are.
        obj = msgspec.json.decode(body)
        if type(obj) is not dict:
            raise
        known, other = _split_extensions(obj)
        if not other:
            raise
        return msgspec.convert({**known, _EXT_KEY: other}, Event)


def _split_extensions(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """(known attributes, other extensions) of a structured-mode object."""
    if _KNOWN.issuperset(obj):  # the usual case, one C-level pass over the keys
        return obj, {}
    return {k: v for k, v in obj.items() if k in _KNOWN}, {k: v for k, v in obj.items() if k not in _KNOWN}


def check_extensions(other: Mapping[str, Any]) -> dict[str, str | int | bool]:
    """Check extension attributes the hub does not know; returns them as given.

    Errors name the attribute and the rule (the name, the value's type, the bounds).
    """
    if len(other) > MAX_EXTENSIONS:
        raise ValidationError(
            "extensions", f"at most {MAX_EXTENSIONS} extension attributes, got {len(other)}"
        )
    out: dict[str, str | int | bool] = {}
    for name, value in other.items():
        if not isinstance(name, str) or not _EXTENSION_NAME.fullmatch(name):
            raise ValidationError(
                str(name)[:40] or "extensions",
                "unknown attribute: an extension's name is 1-20 characters of a-z and 0-9 "
                "(CloudEvents 1.0); check the spelling of known ones (creator, partitionkey, ...)",
            )
        if isinstance(value, bool):
            pass
        elif isinstance(value, int):
            if not _INT32[0] <= value <= _INT32[1]:
                raise ValidationError(name, "an Integer extension is 32-bit (CloudEvents type system)")
        elif isinstance(value, str):
            if not value:
                raise ValidationError(name, "must not be empty when present (leave it out instead)")
        else:
            raise ValidationError(
                name, f"an extension's value is a string, an integer or a boolean, got {type(value).__name__}"
            )
        out[name] = value
    if out and len(_encoder.encode(out)) > MAX_EXTENSION_BYTES:
        raise ValidationError("extensions", f"at most {MAX_EXTENSION_BYTES} bytes of extension attributes")
    return out


def digest(event: Event) -> str:
    """Hash of what makes the event *this* event: a retry with the same id and
    digest is a duplicate; the same id with another digest is a conflict.
    ``time`` and ``signature`` are left out, since a retry may restamp them."""
    if event.time is None and event.signature is None:
        return hashlib.blake2b(encode_event(event), digest_size=16).hexdigest()
    bare = msgspec.structs.replace(event, time=None, signature=None)
    return hashlib.blake2b(encode_event(bare), digest_size=16).hexdigest()


def _msgspec_error(e: msgspec.ValidationError, prefix: str = "") -> ValidationError:
    """``Expected `str`, got `int` - at `$.data.title``` -> field data.title."""
    text = str(e)
    rule, _, where = text.partition(" - at `$")
    path = where.rstrip("`").lstrip(".")
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    # Greedy to the closing quote: a name may itself hold a backtick ("0`").
    m = re.match(r"Object missing required field `(.+)`$", rule)
    if m:
        path = f"{path}.{m.group(1)}" if path else m.group(1)
        rule = "required"
    m = re.match(r"Object contains unknown field `(.+)`$", rule)
    if m:
        path = f"{path}.{m.group(1)}" if path else m.group(1)
        rule = "unknown field (not in the schema)"
    m = re.match(r"^([a-z_][a-z0-9_]*): (.+)$", rule)
    if m:  # a __post_init__ check names its own field
        path = f"{path}.{m.group(1)}" if path else m.group(1)
        rule = m.group(2)
    rule = rule.replace("`", "")
    field = ".".join(p for p in (prefix, path) if p) or (prefix or "event")
    return ValidationError(field, rule)


def validate_payload(type_: str, data: Any) -> Any:
    """Check ``data`` against the schema of ``type_``; returns it unchanged if valid."""
    schema = PAYLOADS.get(type_)
    if schema is None:
        raise ValidationError("type", _unknown_type(type_))
    if type(data) is dict:
        pass
    elif isinstance(data, Payload):
        if not isinstance(data, schema):
            raise ValidationError(
                "data", f"{type(data).__name__} is not the payload of {type_} (expected {schema.__name__})"
            )
        return data
    elif not isinstance(data, Mapping):
        raise ValidationError("data", f"must be a JSON object for {type_}, got {type(data).__name__}")
    _convert_payload(data, schema)
    return data


def _convert_payload(data: Mapping[str, Any], schema: type[Payload]) -> None:
    """Check a JSON object against ``schema``; errors name the field under ``data``."""
    try:
        msgspec.convert(data, schema)
    except (ValueError, TypeError) as e:  # msgspec.ValidationError is a ValueError
        raise _payload_error(e) from None


def _payload_error(e: ValueError | TypeError) -> ValidationError:
    if isinstance(e, msgspec.ValidationError):
        return _msgspec_error(e, "data")
    text = str(e)  # a __post_init__ check: "field: rule"
    field, sep, rule = text.partition(": ")
    return ValidationError(f"data.{field}" if sep else "data", rule if sep else text)


def _unknown_type(type_: str) -> str:
    parts = type_.split(".") if isinstance(type_, str) else []
    if len(parts) != 3 or parts[0] != "creative":
        return f"{type_!r} is not creative.<area>.<kind> (areas: {', '.join(AREAS)})"
    kinds = sorted(t for t in PAYLOADS if t.split(".")[1] == parts[1])
    if not kinds:
        return f"unknown area {parts[1]!r} in {type_!r}; areas are {', '.join(AREAS)}"
    return f"unknown type {type_!r}; {parts[1]} has {', '.join(kinds)}"


def is_json_media(media: str) -> bool:
    """``application/json`` or a ``+json`` type, in any case, with or without parameters
    (``application/json; charset=utf-8``, as SDKs and frameworks write it)."""
    base = media.split(";", 1)[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


def validate_event(event: Event) -> Event:
    """Check the attributes and payload of a complete event (id and source set)."""
    if event.specversion != "1.0":
        raise ValidationError("specversion", f"must be '1.0', got {event.specversion!r}")
    if not event.id:
        raise ValidationError("id", "required, a non-empty string")
    if not event.source:
        raise ValidationError("source", "required, a non-empty string")
    if len(event.id) > MAX_ID_LENGTH:
        raise ValidationError("id", f"at most {MAX_ID_LENGTH} characters, got {len(event.id)}")
    schema = PAYLOADS.get(event.type)
    if schema is None:
        raise ValidationError("type", _unknown_type(event.type))
    if event.datacontenttype is not None and not is_json_media(event.datacontenttype):
        raise ValidationError(
            "datacontenttype", f"must be application/json or a +json type, got {event.datacontenttype!r}"
        )
    if event.visibility is not None and event.visibility not in ("public", "private"):
        raise ValidationError("visibility", f"must be 'public' or 'private', got {event.visibility!r}")
    if event.hub is not None and event.hub != "shared" and not _PEER_ID.fullmatch(event.hub):
        raise ValidationError("hub", f"must be 'shared' or a peer id (a-z, 0-9, _ -), got {event.hub!r}")
    if event.traceparent is not None and not _TRACEPARENT.fullmatch(event.traceparent):
        raise ValidationError("traceparent", "must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)")
    if event.partitionkey is not None and not event.partitionkey:
        raise ValidationError("partitionkey", "must not be empty")
    # CloudEvents: present means non-empty (SDKs refuse "" for these).
    if event.subject is not None and not event.subject:
        raise ValidationError("subject", "must not be empty when present (leave it out instead)")
    if event.dataschema is not None and not event.dataschema:
        raise ValidationError("dataschema", "must not be empty when present (a URI, or leave it out)")
    if (
        event.model is not None
        or event.modelprovider is not None
        or event.confighash is not None
        or event.inputs is not None
    ):
        validate_provenance(event)
    if type(event.data) is dict:  # the usual case: straight to the schema
        try:
            msgspec.convert(event.data, schema)
        except (ValueError, TypeError) as e:
            raise _payload_error(e) from None
    else:
        validate_payload(event.type, event.data)
    return event


def validate_provenance(event: Event) -> None:
    """Check ``model``, ``modelprovider``, ``confighash`` and ``inputs``."""
    if event.model is not None:
        if not _MODEL.fullmatch(event.model):
            raise ValidationError("model", "1-200 visible ASCII characters, no spaces (e.g. 'gpt-4o-mini')")
        if event.modelprovider is None:
            raise ValidationError("model", "needs modelprovider too (who serves the model, or 'offline')")
    if event.modelprovider is not None and not _PROVIDER.fullmatch(event.modelprovider):
        raise ValidationError(
            "modelprovider", "1-100 characters of a-z, 0-9, '.', '_', ':', '-' (e.g. 'anthropic', 'offline')"
        )
    if event.confighash is not None and not _SHA256.fullmatch(event.confighash):
        raise ValidationError("confighash", "must be a sha256 in hex: 64 characters of 0-9, a-f")
    if event.inputs is not None:
        ids = event.inputs.split(" ")
        if not all(ids):
            raise ValidationError(
                "inputs", "event ids separated by single spaces (no leading, trailing or double spaces)"
            )
        if len(ids) > MAX_INPUTS:
            raise ValidationError("inputs", f"at most {MAX_INPUTS} event ids, got {len(ids)}")
        for i in ids:
            if len(i) > MAX_ID_LENGTH or not i.isprintable():
                raise ValidationError(
                    "inputs", f"each id at most {MAX_ID_LENGTH} printable characters, got {i[:40]!r}"
                )


def parse_event(raw: bytes | str | Mapping[str, Any]) -> Event:
    """An event from untrusted input (JSON text or an object), fully checked.

    Errors name the attribute (``data.title``, ``time``, ``type`` ...) and the rule.
    """
    if type(raw) is dict:
        obj: Any = raw
    elif isinstance(raw, (bytes, str)):
        obj = decode_json(raw, "event")
    else:
        obj = raw
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise ValidationError("event", f"must be a JSON object, got {type(obj).__name__}")
    if "data_base64" in obj:
        raise ValidationError("data_base64", "binary data is not supported; send JSON in data")
    if not obj.keys() >= _REQUIRED_SET:  # one C-level test; the loop names the first missing
        for name in REQUIRED:
            if name not in obj:
                raise ValidationError(name, "required CloudEvents attribute is missing")
    known = obj
    if not _KNOWN.issuperset(obj):  # other extensions (rare): checked, then kept beside the known
        known, other = _split_extensions(obj)
        known = {**known, _EXT_KEY: check_extensions(other)}
    try:
        event = msgspec.convert(known, Event)
    except msgspec.ValidationError as e:
        raise _msgspec_error(e) from None
    return validate_event(event)


def parse_new_event(obj: Mapping[str, Any], creator: str, *, keep_creator: bool = False) -> Event:
    """A new event from a publisher's object, fully checked as by ``parse_event``,
    with what the hub fills in when it is missing: ``specversion``, a new ``id``,
    ``creator`` (``creator``; with ``keep_creator`` the object's own if it names
    one) and ``source`` (``/peers/<creator>``).  ``obj`` is not changed.
    """
    mine = obj.get("creator") if type(obj) is dict else None
    if (
        type(obj) is not dict
        or "type" not in obj
        or "data_base64" in obj
        or not _KNOWN.issuperset(obj)
        or (mine is not None and not (keep_creator and type(mine) is str))
    ):
        # Anything unusual: a filled-in copy through parse_event (its errors, its order).
        full = dict(obj)
        full.setdefault("specversion", "1.0")
        if "id" not in full:
            full["id"] = new_id()
        full["creator"] = (full.get("creator") if keep_creator else None) or creator
        full.setdefault("source", f"/peers/{full['creator']}")
        return parse_event(full)
    # The usual object: converted as it is, the missing attributes set on the event
    # (no copy of the object: a third of what parsing cost).
    try:
        event = msgspec.convert(obj, Event)
    except msgspec.ValidationError as e:
        raise _msgspec_error(e) from None
    return validate_event(fill_new_event(event, obj, creator))


def fill_new_event(event: Event, obj: Mapping[str, Any], creator: str) -> Event:
    """Set on ``event``, converted from the usual ``obj`` (see ``parse_new_event``),
    what the hub fills in; not checked yet (``validate_event``)."""
    if "specversion" not in obj:
        event.specversion = WRITTEN_SPECVERSION
    if "id" not in obj:
        event.id = new_id()
    event.creator = event.creator or creator
    if "source" not in obj:
        event.source = f"/peers/{event.creator}"
    return event


def now() -> datetime:
    return datetime.now(UTC)


def check_size(body: bytes, limit: int) -> None:
    if len(body) > limit:
        raise PayloadTooLarge(len(body), limit)
