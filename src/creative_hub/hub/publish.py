"""The publish pipeline: validate, stamp, sign, route, check, append.

The functions take the ``Hub`` first and are the hub's methods of the same
name (``Hub.prepare``, ``Hub.publish``, ...), kept here so the pipeline reads
in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from .. import topics
from ..access import Identity, check_write
from ..derived import check_inputs, confine, confined_copy
from ..errors import PayloadTooLarge, ValidationError
from ..event import (
    Event,
    digest,
    encode_event,
    encode_stamped,
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
from ..schemas import DeadLetter
from ..topics import PRIVATE, PUBLIC

if TYPE_CHECKING:
    from .core import Hub

__all__ = ["Receipt", "append", "dead_letter", "prepare", "prepare_many", "publish"]

logger = logging.getLogger("creative_hub.hub")


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where a published event went."""

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

    The publisher's dicts are converted in one msgspec call
    (``convert_new_events``); an object that does not fit takes
    ``prepare`` alone, so every error is the one it gives."""
    stamp = stamp or now()  # one publish, one time
    stamp_json = time_json(stamp)
    converted = (
        convert_new_events(items, hub.principal, keep_creator=hub.trusted) if len(items) > 1 else None
    )
    prepared: list[tuple[str, Event, Entry]] = []
    for i, item in enumerate(items):
        try:
            event = converted[i] if converted is not None else None
            if event is None:
                routed, event, entry = hub.prepare(item, stamp)
            else:
                validate_event(event)
                routed, entry = _stamp(hub, event, stamp, stamp_json)
            target = routed if topic is None else topic
            if first is not None:
                first(target, entry)  # the entry object this call's append starts with
                first = None
            if event.visibility == PRIVATE and not target.endswith(".drafts"):
                raise ValidationError(
                    "visibility",
                    f"'private' would be stored in {target!r}, which others read: "
                    "private work goes to your drafts ('hub' set to you, or POST /v1/peers/<you>/drafts)",
                )
            prepared.append((target, event, entry))
        except ValidationError as e:
            raise (e.at(i) if len(items) > 1 else e) from None
    return prepared


_EVENTS = list[Event]


def convert_new_events(
    items: Sequence[Any], creator: str, *, keep_creator: bool = False
) -> list[Event | None] | None:
    """``event.parse_new_event`` for a whole publish, its conversion in one msgspec
    call (a call per object cost more than the conversion itself).

    Each usual object (a dict of known attributes, no creator the hub
    replaces) becomes its event filled in as ``parse_new_event`` fills it,
    *not yet checked*: ``validate_event`` it, in order, for the same errors.
    None in the list: take that object alone through ``parse_new_event``
    (other extensions, a creator the hub replaces, not a dict).  None for
    the list: some object does not convert; take each alone, so the error
    is the one ``parse_new_event`` gives, naming the field.
    """
    try:
        events = msgspec.convert(items, _EVENTS)
    except (ValueError, TypeError):  # msgspec.ValidationError is a ValueError
        return None
    return [
        None
        if type(obj) is not dict
        or event.extensions is not None  # an "_extensions" key: parse_new_event refuses it
        or (event.creator is not None and not keep_creator)
        else fill_new_event(event, obj, creator)
        for obj, event in zip(items, events, strict=True)
    ]


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
    prepared = hub.prepare_many(items, stamp, topic=topic, first=hint)
    by_topic: dict[str, list[int]] = {}
    who = hub.identity
    for i, (target, event, _) in enumerate(prepared):
        check_write(who, target, event.type)
        linked = event.inputs or event.causationid or event.supersedes or event.forkedfrom
        if linked and not who.trusted:
            prepared[i] = await _confined(hub, who, target, event, prepared[i], stamp)
        by_topic.setdefault(prepared[i][0], []).append(i)
    receipts: list[Receipt | None] = [None] * len(prepared)
    for topic, indexes in by_topic.items():
        appended = await hub.log.append(topic, [prepared[i][2] for i in indexes])
        for i, a in zip(indexes, appended, strict=True):
            receipts[i] = Receipt(prepared[i][1].id, topic, a.position, a.duplicate)
    return [r for r in receipts if r is not None]


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
