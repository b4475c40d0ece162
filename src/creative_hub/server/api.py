"""REST and Server-Sent Events routes for events, topics, principals and activity.

Every route reads and writes through the caller's view of the hub
(``hub.acting(principal)``), so the access rules are the hub's own.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, Field

from ..access import ANONYMOUS, Identity, can_list
from ..bindings import HTTP_PREFIX, is_binary, to_structured
from ..errors import NotFound, ValidationError
from ..event import _MODEL, _PROVIDER, _SHA256, MAX_ID_LENGTH, MAX_INPUTS
from ..hub import Hub, Receipt, StoredEvent
from ..jsonlimits import decode_json
from ..log.base import check_topic
from ..topics import CREATIVE_PREFIX
from .deps import hub_for
from .problems import problem
from .stream import Stream

__all__ = ["ReceiptOut", "StoredOut", "receipt_out", "router", "stored_out"]

router = APIRouter()
HubDep = Annotated[Hub, Depends(hub_for)]

MAX_PAGE = 1000
MAX_ACTIVITY_HOURS = 24 * 14  # two weeks of hourly buckets
TOP_CREATORS = 8  # creators shown by name in activity; the rest are summed as "others"
JSON_TYPES = ("application/json", "application/cloudevents+json", "application/cloudevents-batch+json")


class ReceiptOut(BaseModel):
    id: str
    topic: str
    position: str
    duplicate: bool = Field(description="True if the id was already stored (a safe retry)")


class StoredOut(BaseModel):
    topic: str
    position: str
    time_ms: int = Field(description="When the log stored it, in ms since the epoch")
    event: dict[str, Any] = Field(description="The CloudEvent, structured mode")


class PageOut(BaseModel):
    topic: str
    events: list[StoredOut]
    next: str | None = Field(description="Pass as ?after= for the next page; null at the end")


class TopicOut(BaseModel):
    name: str
    count: int
    first: str | None
    last: str | None


class GroupOut(BaseModel):
    group: str
    lag: int
    pending: int
    members: int


class StatsOut(BaseModel):
    topic: str
    count: int
    groups: list[GroupOut]


class PrincipalOut(BaseModel):
    id: str
    kind: str
    name: str
    public_key: str


class MeOut(BaseModel):
    principal: str = Field(description="Who the token names ('anonymous' without one)")
    authenticated: bool


class ActivityOut(BaseModel):
    hours: list[str] = Field(description="Start of each hourly bucket (RFC 3339, UTC), oldest first")
    by_area: dict[str, list[int]] = Field(description="Events per hour in each area (creative.<area>)")
    by_creator: dict[str, list[int]] = Field(description="Events per hour by the busiest creators")
    total: int


# The publish body, described for OpenAPI (the route parses it itself, with msgspec).
_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A CloudEvent in structured JSON mode; the hub fills in id, source, time, creator",
    "required": ["type"],
    "properties": {
        "specversion": {"type": "string", "enum": ["1.0"]},
        "id": {"type": "string"},
        "source": {"type": "string"},
        "type": {"type": "string", "description": "creative.<area>.<kind>"},
        "subject": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
        "data": {"type": "object", "description": "Checked against the type's schema (/asyncapi.json)"},
        "partitionkey": {"type": "string"},
        "causationid": {"type": "string"},
        "correlationid": {"type": "string"},
        # Provenance of AI work (event.py's validate_provenance); signed like every attribute.
        "model": {
            "type": "string",
            "pattern": _MODEL.pattern,
            "description": "The model that made it (gpt-4o-mini, llama3.2:3b): "
            "1-200 visible ASCII characters, no spaces; needs modelprovider",
        },
        "modelprovider": {
            "type": "string",
            "pattern": _PROVIDER.pattern,
            "description": "Who served the model (anthropic, a host name) or 'offline': "
            "1-100 characters of a-z, 0-9, '.', '_', ':', '-'",
        },
        "confighash": {
            "type": "string",
            "pattern": _SHA256.pattern,
            "description": "sha256 (hex) of the agent's prompt and configuration",
        },
        "inputs": {
            "type": "string",
            "pattern": rf"^\S{{1,{MAX_ID_LENGTH}}}( \S{{1,{MAX_ID_LENGTH}}}){{0,{MAX_INPUTS - 1}}}$",
            "description": "Ids of the events it was made from, separated by single spaces: "
            f"at most {MAX_INPUTS}, each at most {MAX_ID_LENGTH} printable characters",
        },
    },
    "dependentRequired": {"model": ["modelprovider"]},
}
_PUBLISH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            t: {
                "schema": {"oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA, "minItems": 1}]}
            }
            for t in JSON_TYPES
        },
    }
}


def receipt_out(r: Receipt) -> ReceiptOut:
    return ReceiptOut(id=r.id, topic=r.topic, position=r.position, duplicate=r.duplicate)


def stored_out(s: StoredEvent) -> StoredOut:
    return StoredOut(topic=s.topic, position=s.position, time_ms=s.time_ms, event=s.event.to_dict())


def _json_body(raw: bytes) -> Any:
    if not raw.strip():
        raise ValidationError("body", "empty; send a CloudEvent object or an array of them")
    return decode_json(raw, "body")  # depth-checked first: a deep body is a 422, not a RecursionError


# -- events -------------------------------------------------------------------------
@router.post(
    "/v1/events",
    status_code=201,
    tags=["events"],
    response_model=list[ReceiptOut],
    openapi_extra=_PUBLISH_BODY,
)
async def publish(request: Request, hub: HubDep) -> Any:
    """Publish one event or a batch: all are validated first; a bad one means none is stored.

    Publishing an id again with the same content is a safe retry (``duplicate: true``); the
    same id with other content is a 409.  The body limit is checked before anything is read.
    """
    if is_binary(request.headers.items(), HTTP_PREFIX):  # CloudEvents binary mode: ce-* headers, data as body
        items: list[Any] = [to_structured(request.headers.items(), await request.body(), prefix=HTTP_PREFIX)]
    else:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in (*JSON_TYPES, ""):
            return problem(
                415, "Unsupported media type", "send application/json or application/cloudevents+json"
            )
        payload = _json_body(await request.body())  # bounded: the Guard enforced max_body
        items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise ValidationError("body", "an empty batch")
    receipts = await hub.publish(items)
    published = request.app.state.metrics.published
    for r in receipts:
        if not r.duplicate and can_list(Identity(ANONYMOUS), r.topic):  # /metrics is open: public only
            published.labels(r.topic).inc()
    return [receipt_out(r) for r in receipts]


@router.get("/v1/events/{event_id}", tags=["events"], response_model=StoredOut)
async def get_event(event_id: str, hub: HubDep) -> StoredOut:
    """One event by id, from any topic the caller may read (404 otherwise, saying nothing more)."""
    return stored_out(await hub.get(event_id))


# -- topics -------------------------------------------------------------------------
@router.get("/v1/topics", tags=["topics"], response_model=list[TopicOut])
async def topics(hub: HubDep) -> list[TopicOut]:
    """The topics the caller may read (others are not even named)."""
    return [TopicOut(name=t.name, count=t.count, first=t.first, last=t.last) for t in await hub.topics()]


@router.get("/v1/topics/{topic}/events", tags=["topics"], response_model=PageOut)
async def replay(
    topic: str,
    hub: HubDep,
    after: Annotated[str | None, Query(description="Position to continue after")] = None,
    since: Annotated[float | None, Query(description="Epoch seconds", ge=0, le=1e11)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> PageOut:
    """A page of a topic's events in log order; pass ``next`` as ``after`` for the rest.
    A position already removed by retention is a 410 naming the earliest one."""
    check_topic(topic)
    events = [s async for s in hub.replay(topic, after=after, since=since, limit=limit)]
    nxt = events[-1].position if len(events) == limit else None
    return PageOut(topic=topic, events=[stored_out(s) for s in events], next=nxt)


@router.get(
    "/v1/topics/{topic}/stream",
    tags=["topics"],
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def stream(
    topic: str,
    request: Request,
    hub: HubDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[str | None, Query(description="Start after this position (Last-Event-ID wins)")] = None,
    tail: Annotated[
        int | None, Query(ge=0, le=MAX_PAGE, description="Without a start: begin with the last N events")
    ] = None,
) -> Response:
    """Live events of a topic as Server-Sent Events, after its history.

    Each message has ``id:`` (its position), ``event:`` (its type) and ``data:`` (the CloudEvent).
    The stream starts after ``Last-Event-ID`` (what EventSource sends when it reconnects),
    else after ``?after=``, else with the last ``?tail=`` events, else at the beginning; it
    resumes without a gap or a duplicate.  A client more than ``stream_queue`` events behind
    (one that stopped reading) is disconnected, and resumes the same way.
    """
    check_topic(topic)
    start = last_event_id or after
    if start is None and tail is not None:
        start = await hub.tail_start(topic, tail)
    state = request.app.state
    s = await Stream.open(
        state.broadcaster, hub, topic, start, queue=state.settings.stream_queue, metrics=state.metrics
    )
    return _StreamResponse(s)


class _StreamResponse(Response):
    """Hands the ASGI call to the stream (FastAPI passes Response objects through)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.stream(scope, receive, send)


@router.get("/v1/stats", tags=["topics"], response_model=list[StatsOut])
async def stats(hub: HubDep) -> list[StatsOut]:
    """Per topic counts and per consumer group lag, pending and live members."""
    return [
        StatsOut(
            topic=info.name,
            count=info.count,
            groups=[GroupOut(group=g.group, lag=g.lag, pending=g.pending, members=g.members) for g in lags],
        )
        for info, lags in await hub.stats()
    ]


@router.get("/v1/activity", tags=["topics"], response_model=ActivityOut)
async def activity(
    hub: HubDep,
    hours: Annotated[int, Query(ge=1, le=MAX_ACTIVITY_HOURS, description="How many hours back")] = 24,
    clock: Annotated[
        Literal["appended", "event"],
        Query(
            description="Count an event at the hour the log stored it (appended), or at its own "
            "time, when it happened at the source (event: reads whole topics)"
        ),
    ] = "appended",
) -> ActivityOut:
    """Events per hour on the shared hub (``creative.<area>`` topics), by area and by creator,
    over the last ``hours`` hours: what the dashboard's activity plots draw."""
    now_h = int(time.time()) // 3600
    first_h = now_h - hours + 1
    by_area: dict[str, list[int]] = {}
    per_creator: dict[str, list[int]] = {}
    totals: Counter[str] = Counter()
    for info in await hub.topics():
        if not info.name.startswith(CREATIVE_PREFIX):
            continue
        area = info.name.split(".", 1)[1]
        counts = by_area.setdefault(area, [0] * hours)
        # Imported history is stored now but happened long ago: only its own time can place it.
        since = first_h * 3600.0 if clock == "appended" else None
        async for s in hub.replay(info.name, since=since):
            ms = s.time_ms if clock == "appended" or s.event.time is None else s.event.time.timestamp() * 1000
            i = int(ms // 3_600_000) - first_h
            if 0 <= i < hours:
                counts[i] += 1
                who = s.event.creator or "?"
                per_creator.setdefault(who, [0] * hours)[i] += 1
                totals[who] += 1
    top = [who for who, _ in totals.most_common(TOP_CREATORS)]
    by_creator = {who: per_creator[who] for who in top}
    rest = [who for who in per_creator if who not in by_creator]
    if rest:
        by_creator["others"] = [sum(per_creator[w][i] for w in rest) for i in range(hours)]
    stamps = [datetime.fromtimestamp((first_h + i) * 3600, UTC).isoformat() for i in range(hours)]
    return ActivityOut(hours=stamps, by_area=by_area, by_creator=by_creator, total=sum(totals.values()))


# -- principals -----------------------------------------------------------------------
@router.get("/v1/me", tags=["principals"], response_model=MeOut)
async def me(hub: HubDep) -> MeOut:
    """Who the request's token names (the dashboard shows owner controls from this)."""
    return MeOut(principal=hub.principal, authenticated=hub.authenticated)


@router.get("/v1/principals", tags=["principals"], response_model=list[PrincipalOut])
async def principals(hub: HubDep) -> list[PrincipalOut]:
    """Every principal with its public key (for verifying signatures); the peers one can follow."""
    await hub.registry.refresh()
    return [
        PrincipalOut(id=p.id, kind=p.kind, name=p.name, public_key=p.public_key)
        for p in sorted(hub.registry.principals.values(), key=lambda p: p.id)
        if not p.revoked
    ]


@router.get("/v1/principals/{principal}", tags=["principals"], response_model=PrincipalOut)
async def principal(principal: str, hub: HubDep) -> PrincipalOut:
    """One principal and its public key."""
    await hub.registry.refresh()
    p = hub.registry.principals.get(principal)
    if p is None:
        raise NotFound(f"no principal {principal!r}")
    return PrincipalOut(id=p.id, kind=p.kind, name=p.name, public_key=p.public_key)
