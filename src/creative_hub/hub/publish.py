"""The publish pipeline: validate, stamp, sign, route, check, append.

The functions take the ``Hub`` first and are the hub's methods of the same
name (``Hub.prepare``, ``Hub.publish``, ...), kept here so the pipeline reads
in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any, cast

import msgspec

from .. import topics
from ..access import Identity, check_write
from ..derived import check_inputs, confine, confined_copy
from ..errors import PayloadTooLarge, ValidationError
from ..event import (
    MAX_ID_LENGTH,
    WRITTEN_SPECVERSION,
    Event,
    digest,
    encode_event,
    encode_stamped,
    encode_stamped_many,
    fill_new_event,
    new_id,
    now,
    parse_new_event,
    time_json,
    validate_event,
)
from ..log import Entry, Feature, Record
from ..origins import check_client_event
from ..principals import sign_event
from ..schemas import PAYLOADS, DeadLetter
from ..topics import PRIVATE, PUBLIC

if TYPE_CHECKING:
    from .core import Hub

__all__ = ["Receipt", "append", "dead_letter", "plan", "prepare", "prepare_many", "publish"]

logger = logging.getLogger("creative_hub.hub")


class Receipt(msgspec.Struct, frozen=True, gc=False):
    """Where a published event went (a struct: one is made per event published,
    eight times cheaper than a frozen dataclass's ``__init__``)."""

    id: str
    topic: str
    position: str
    duplicate: bool  #: True if the id was already there (a safe retry)


def prepare(
    hub: Hub, item: Event | Mapping[str, Any], stamp: datetime | None = None
) -> tuple[str, Event, Entry]:
    """Validate and stamp one event; returns its topic, the event and the log entry."""
    if type(item) is dict or (not isinstance(item, Event) and isinstance(item, Mapping)):
        event = parse_new_event(item, hub.principal, keep_creator=hub.trusted)
    elif isinstance(item, Event):
        event = item
        if not hub.trusted:
            event.creator = hub.principal  # never a name from the payload
        if not event.id:
            event.id = new_id()
        if event.creator is None:
            event.creator = hub.principal
        if not event.source:
            event.source = f"/peers/{event.creator}"
        validate_event(event)
    else:
        raise ValidationError("event", f"must be an Event or a JSON object, got {type(item).__name__}")
    topic, entry = _stamp(hub, event, stamp)
    return topic, event, entry


def _stamp(
    hub: Hub, event: Event, stamp: datetime | None, stamp_json: bytes | None = None
) -> tuple[str, Entry]:
    """The rest of ``prepare`` for a checked event: the client's limits, the
    defaults, time, signature, encoding; returns its topic and log entry.
    ``stamp_json``: ``stamp`` encoded, when the caller stamps many events."""
    if not hub.trusted:
        check_client_event(event, hub.principal)  # sources' ids and `source` values are the hub's
    if event.partitionkey is None:
        event.partitionkey = event.creator
    if event.hub is None:
        event.hub = "shared"
    if event.visibility is None:
        event.visibility = PUBLIC
    key = hub.keystore.get(event.creator) if hub.keystore is not None and event.creator else None
    if key is not None:
        if event.time is None:
            event.time = stamp or now()
        event.signature = None
        event.signature = sign_event(event, key)
        body, dg = encode_event(event), digest(event)
    elif event.time is None and event.signature is None and event.specversion == "1.0":
        # Hot path: one encode gives the digest (without time) and the body.
        if stamp is None:
            stamp = now()
            stamp_json = None
        body, dg = encode_stamped(event, stamp_json or time_json(stamp))
        event.time = stamp
    else:
        if event.time is None:
            event.time = stamp or now()
        body, dg = encode_event(event), digest(event)
    if len(body) > hub.max_event_bytes:
        raise PayloadTooLarge(len(body), hub.max_event_bytes)
    assert event.partitionkey is not None and event.creator is not None
    return topics.route(event), Entry(event.id, event.partitionkey, body, dg, event.creator)


# A publisher's object with only these attributes is *usual*: the list's
# conversion checked their JSON types, and no rule of ``validate_event`` reads
# them but those ``_usual`` checks itself (an empty subject or partition key,
# the id's length, the payload's schema).  Anything else (time, hub,
# visibility, provenance, a media type ...) takes the general way.
_USUAL = frozenset(
    {"type", "data", "subject", "partitionkey", "causationid", "correlationid", "supersedes", "forkedfrom"}
)
_USUAL_TRUSTED = _USUAL | {"id", "source", "creator"}  # a client's ids and sources have rules of their own
# Events a pass of ``_usual`` takes at once: each pass then finds the events,
# bodies and digests of the last one still in the CPU's cache (in one pass
# over 20,000 events the layer cost 3.2 us an event, in passes of 500, 2.0).
_CHUNK = 512


def prepare_many(
    hub: Hub,
    items: Sequence[Event | Mapping[str, Any]],
    stamp: datetime | None = None,
    *,
    topic: str | None = None,
    first: Callable[[str, Entry], object] | None = None,
) -> list[tuple[str, Event, Entry]]:
    """``prepare`` every item, in order, with the topic each is stored in
    (``topic``: that one instead of the routed one); the first bad item
    raises, with its index when there are several.  ``first`` is called
    with the first item's topic and entry as soon as they are known.

    The publisher's dicts are converted in one msgspec call (a call per
    object cost more than the conversion itself).  When every object is
    usual (``_USUAL``) and none has a key to sign with, ``_usual`` checks,
    stamps and encodes the whole call at once.  Otherwise each converted
    object is filled in as ``event.parse_new_event`` fills it, checked and
    stamped; an object that does not fit (other extensions, a creator the
    hub replaces, not a dict), a list that does not convert, or a usual
    call with a bad object takes ``prepare`` alone, so every error is the
    one it gives (``tests/fuzz/test_publish_fill.py`` holds the ways equal)."""
    stamp = stamp or now()  # one publish, one time
    stamp_json = time_json(stamp)
    # Only a call of dicts is converted at once (a list of Events would be converted for nothing).
    converted = _convert(items) if len(items) > 1 and type(items[0]) is dict else None
    if converted is not None and set(map(type, items)) == {dict}:
        usual = _USUAL_TRUSTED if hub.trusted else _USUAL
        dicts = cast("list[dict[str, Any]]", items)
        if usual.issuperset(chain.from_iterable(dicts)):
            done: list[tuple[str, Event, Entry]] = []
            # With a hint to give, the first event is a pass of its own: the engine
            # hears of the call's first entry before the rest is prepared.
            starts = [*range(0, len(dicts), _CHUNK)] if first is None else [0, *range(1, len(dicts), _CHUNK)]
            for at, end in zip(starts, [*starts[1:], len(dicts)], strict=True):
                part = _usual(hub, dicts[at:end], converted[at:end], stamp, stamp_json, topic)
                if part is None:
                    converted = None  # one is bad: each alone says which, and why
                    break
                done += part
                if first is not None:
                    first(done[0][0], done[0][2])  # the entry object this call's append starts with
                    first = None
            else:  # every chunk prepared
                return done
    prepared = []
    for i, item in enumerate(items):
        try:
            event = converted[i] if converted is not None else None
            if (
                event is None
                or type(item) is not dict
                or event.extensions is not None  # an "_extensions" key: parse_new_event refuses it
                or (event.creator is not None and not hub.trusted)
            ):
                routed, event, entry = hub.prepare(item, stamp)
            else:
                validate_event(fill_new_event(event, item, hub.principal))
                routed, entry = _stamp(hub, event, stamp, stamp_json)
            target = routed if topic is None else topic
            if first is not None:
                first(target, entry)  # the entry object this call's append starts with
                first = None
            prepared.append(_checked(target, event, entry))
        except ValidationError as e:
            raise (e.at(i) if len(items) > 1 else e) from None
    return prepared


def _usual(
    hub: Hub,
    items: list[dict[str, Any]],
    events: list[Event],
    stamp: datetime,
    stamp_json: bytes,
    topic: str | None,
) -> list[tuple[str, Event, Entry]] | None:
    """``prepare_many`` of a call of usual objects (``_USUAL``), ``events`` their
    conversion: what ``parse_new_event`` fills in, what ``validate_event``
    checks of them, the defaults of ``_stamp``, one encoding pass.  None when
    one is bad or its creator has a key (the events are then spoilt: the caller
    prepares each object again, alone).  A client's id and source are the
    hub's own here, so ``check_client_event`` has nothing to refuse."""
    principal, keystore, payloads, convert = hub.principal, hub.keystore, PAYLOADS, msgspec.convert
    creator, source = "", ""
    routes: list[str] = []
    last_type, routed = "", ""
    try:
        for item, event in zip(items, events, strict=True):
            event.specversion = WRITTEN_SPECVERSION
            if "id" not in item:
                event.id = new_id()
            mine = event.creator or principal
            if mine != creator:  # one keystore lookup per creator, not per event (it looks for a file)
                creator = mine
                if keystore is not None and keystore.get(creator) is not None:
                    return None  # signed: the general way
                source = f"/peers/{creator}"
            event.creator = creator
            if "source" not in item:
                event.source = source
            schema = payloads.get(event.type)
            data = event.data
            if (
                schema is None
                or type(data) is not dict
                or not event.id
                or len(event.id) > MAX_ID_LENGTH
                or not event.source
                or event.subject == ""
                or event.partitionkey == ""
            ):
                return None
            convert(data, schema)
            if event.partitionkey is None:
                event.partitionkey = creator
            event.hub = "shared"
            event.visibility = PUBLIC
            if event.type != last_type:
                last_type, routed = event.type, topics.route(event)
            routes.append(routed)
        bodies, digests = encode_stamped_many(events, stamp_json)
    except (ValueError, TypeError, ValidationError):  # msgspec.ValidationError is a ValueError
        return None
    if max(map(len, bodies)) > hub.max_event_bytes:
        return None
    for event in events:
        event.time = stamp
    entries = list(map(Entry, map(_ID, events), map(_KEY, events), bodies, digests, map(_CREATOR, events)))
    return list(zip(routes if topic is None else [topic] * len(events), events, entries, strict=True))


_ID, _KEY, _CREATOR = attrgetter("id"), attrgetter("partitionkey"), attrgetter("creator")


def _checked(target: str, event: Event, entry: Entry) -> tuple[str, Event, Entry]:
    """The prepared event, unless it is private and ``target`` is read by others."""
    if event.visibility == PRIVATE and not target.endswith(".drafts"):
        raise ValidationError(
            "visibility",
            f"'private' would be stored in {target!r}, which others read: "
            "private work goes to your drafts ('hub' set to you, or POST /v1/peers/<you>/drafts)",
        )
    return target, event, entry


_EVENTS = list[Event]


def _convert(items: Sequence[Any]) -> list[Event] | None:
    """The publisher's objects converted to events in one msgspec call, not
    filled in nor checked; None when one of them does not convert (each then
    takes ``prepare`` alone, so the error is the one it gives, naming the field)."""
    try:
        return msgspec.convert(items, _EVENTS)
    except (ValueError, TypeError):  # msgspec.ValidationError is a ValueError
        return None


def plan(
    hub: Hub,
    items: Sequence[Event | Mapping[str, Any]],
    stamp: datetime,
    *,
    topic: str | None = None,
    first: Callable[[str, Entry], object] | None = None,
) -> tuple[list[tuple[str, Event, Entry]], list[int]]:
    """What ``publish`` does before it appends: ``prepare_many`` and the write
    rules of each event (``access.check_write``, once per topic and type);
    returns the prepared events and the indexes of those whose inputs or
    links must be checked (``_confined``: a principal's, not the hub's)."""
    prepared = hub.prepare_many(items, stamp, topic=topic, first=first)
    who = hub.identity
    checked: set[tuple[str, str]] = set()
    linked: list[int] = []
    for i, (target, event, _) in enumerate(prepared):
        if (target, event.type) not in checked:
            check_write(who, target, event.type)
            checked.add((target, event.type))
        if not who.trusted and (event.inputs or event.causationid or event.supersedes or event.forkedfrom):
            linked.append(i)
    return prepared, linked


async def publish(
    hub: Hub,
    events: Event | Mapping[str, Any] | Iterable[Event | Mapping[str, Any]],
    *,
    topic: str | None = None,
) -> list[Receipt]:
    """Validate every event, then append them; a bad one means none is appended.

    Events go to their topics in the given order (``topic``: all to that
    one instead, e.g. an agent's output queue).  Publishing the same id
    again (a retry) stores nothing and returns the original position.
    A ``private`` event goes to a drafts stream or nowhere.  What a
    principal made from drafts read through a grant is stored private to
    their owner, or refused (``creative_hub.derived``).
    """
    items = [events] if isinstance(events, (Event, Mapping)) else list(events)
    stamp = now()  # one publish, one time
    # An engine that can start work for an append early (Kafka: its dedup catch-up) declares
    # Feature.APPEND_HINT and is told the first event's topic, so that work overlaps
    # preparing the rest.
    hint = hub.log.will_append if Feature.APPEND_HINT in hub.log.FEATURES else None  # type: ignore[attr-defined]
    prepared, linked = plan(hub, items, stamp, topic=topic, first=hint)
    if linked:
        who = hub.identity
        for i in linked:
            prepared[i] = await _confined(hub, who, prepared[i][0], prepared[i][1], prepared[i], stamp)
    receipts: list[Receipt | None] = [None] * len(prepared)
    for topic, indexes in _by_topic(prepared).items():
        appended = await hub.log.append(topic, [prepared[i][2] for i in indexes])
        for i, a in zip(indexes, appended, strict=True):
            receipts[i] = Receipt(prepared[i][1].id, topic, a.position, a.duplicate)
    return [r for r in receipts if r is not None]


def _by_topic(prepared: Sequence[tuple[str, Event, Entry]]) -> Mapping[str, Sequence[int]]:
    """The indexes of the prepared events by topic, in order."""
    if not prepared:
        return {}
    first = prepared[0][0]
    if all(target == first for target, _, _ in prepared):  # the usual call: one topic
        return {first: range(len(prepared))}
    grouped: dict[str, list[int]] = {}
    for i, (target, _, _) in enumerate(prepared):
        grouped.setdefault(target, []).append(i)
    return grouped


async def _confined(
    hub: Hub, who: Identity, target: str, event: Event, item: tuple[str, Event, Entry], stamp: datetime
) -> tuple[str, Event, Entry]:
    """``item`` as it may be stored: checked inputs (agents); moved to the owner's
    drafts when made from drafts read through a grant (``derived.confine``)."""
    if who.agent and event.inputs:
        await check_inputs(hub, event)
    owner = await confine(hub, event)
    if owner is None:
        return item
    drafts = topics.drafts(owner)
    if target == drafts and event.hub == owner and event.visibility == PRIVATE:
        return item
    _, moved, entry = hub.prepare(confined_copy(event, owner), stamp)
    return drafts, moved, entry


async def append(hub: Hub, topic: str, prepared: Sequence[tuple[Event, Entry]]) -> list[Receipt]:
    """Append events already prepared (``Hub.prepare``: validated, stamped, signed)
    to ``topic`` as they are, through the write rules (``access.check_write``).

    For the very same record on a second topic (a peer's public work mirrored to
    the shared hub), work kept on a given queue (orchestrator, blackboard) and
    the hub's own books; an id already there stores nothing (``duplicate``)."""
    who = hub.identity
    for event, _ in prepared:
        check_write(who, topic, event.type)
    appended = await hub.log.append(topic, [entry for _, entry in prepared])
    return [
        Receipt(e.id, topic, a.position, a.duplicate) for (e, _), a in zip(prepared, appended, strict=True)
    ]


async def dead_letter(hub: Hub, record: Record, reason: str, *, group: str | None = None) -> Receipt:
    """Keep an unusable record in ``deadletter.<topic>``, with the reason."""
    letter = Event(
        type="creative.system.deadletter",
        id=f"dl-{record.topic}-{record.position}",
        source="/hub/deadletter",
        subject=record.topic,
        creator="hub",
        data=DeadLetter(
            topic=record.topic,
            position=record.position,
            reason=reason[:2000],
            group=group,
            record_id=record.id,
            body=record.body[:65536].decode("utf-8", errors="replace"),
        ),
    )
    letter.time = now()
    letter.partitionkey = record.topic
    letter.hub = "shared"
    letter.visibility = PUBLIC
    topic = topics.deadletter(record.topic)
    logger.warning("dead-lettered %s@%s to %s: %s", record.topic, record.position, topic, reason)
    body = encode_event(letter)
    (a,) = await hub.log.append(topic, [Entry(letter.id, record.topic, body, digest(letter), "hub")])
    return Receipt(letter.id, topic, a.position, a.duplicate)
