"""REST and Server-Sent Events routes (all through the caller's view of the hub)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ..errors import AccessDenied, PayloadTooLarge, ValidationError
from ..event import encode_event
from ..hub import Hub, Receipt, StoredEvent
from ..lineage import lineage
from ..log.base import check_topic
from ..peers import PeerHub
from .app import hub_for

__all__ = ["router"]

router = APIRouter()
HubDep = Annotated[Hub, Depends(hub_for)]

MAX_PAGE = 1000
HEARTBEAT = 15.0  # seconds between SSE comments that keep proxies from closing the stream


class ReceiptOut(BaseModel):
    id: str
    topic: str
    position: str
    duplicate: bool


class StoredOut(BaseModel):
    topic: str
    position: str
    time_ms: int
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


class DraftIn(BaseModel):
    type: str
    subject: str
    data: dict[str, Any]


class ChangesIn(BaseModel):
    data: dict[str, Any]


class ForkIn(BaseModel):
    subject: str | None = None


class ContributionIn(BaseModel):
    on: str
    title: str
    changes: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None


class DecisionIn(BaseModel):
    reason: str | None = None


class FeedbackIn(BaseModel):
    text: str
    rating: int | None = Field(default=None, ge=1, le=5)


def _receipt(r: Receipt) -> ReceiptOut:
    return ReceiptOut(id=r.id, topic=r.topic, position=r.position, duplicate=r.duplicate)


def _stored(s: StoredEvent) -> StoredOut:
    return StoredOut(topic=s.topic, position=s.position, time_ms=s.time_ms, event=s.event.to_dict())


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes the limit (chunked bodies too)."""
    limit: int = request.app.state.settings.max_body
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _json_body(raw: bytes) -> Any:
    if not raw.strip():
        raise ValidationError("body", "empty; send a CloudEvent object or an array of them")
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise ValidationError("body", f"not valid JSON: {e}") from None


# -- health and metrics ------------------------------------------------------------
@router.get("/healthz", tags=["ops"])
async def healthz() -> dict[str, bool]:
    """The process answers."""
    return {"ok": True}


@router.get("/readyz", tags=["ops"], responses={503: {"description": "The log does not answer"}})
async def readyz(hub: HubDep, response: Response) -> dict[str, Any]:
    """The log answers (a broker that is down is reported at once)."""
    try:
        health = await asyncio.wait_for(hub.log.health(), 5.0)
    except TimeoutError:
        response.status_code = 503
        return {"ok": False, "detail": "the log did not answer within 5 s"}
    if not health.ok:
        response.status_code = 503
    return {"ok": health.ok, "engine": health.engine, "detail": health.detail}


@router.get("/metrics", tags=["ops"], response_class=Response)
async def metrics(request: Request, hub: HubDep) -> Response:
    """Prometheus metrics: requests, publishes, stream clients, consumer lag, dead letters."""
    m = request.app.state.metrics
    for info, lags in await request.app.state.hub.stats():
        for g in lags:
            m.lag.labels(info.name, g.group).set(g.lag)
        if info.name.startswith("deadletter."):
            m.dead_letters.labels(info.name).set(info.count)
    return Response(m.render(), media_type="text/plain; version=0.0.4")


# -- events -------------------------------------------------------------------------
@router.post("/v1/events", status_code=201, tags=["events"], response_model=list[ReceiptOut])
async def publish(
    request: Request,
    hub: HubDep,
    body: Annotated[Any, Body(description="A CloudEvent (structured JSON) or an array of them")] = None,
) -> list[ReceiptOut]:
    """Publish one event or a batch: all are validated first; a bad one means none is stored."""
    raw = await read_body(request)
    if request.headers.get("content-type", "").split(";")[0].strip() not in (
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
        "",
    ):
        raise ValidationError("content-type", "send application/json or application/cloudevents+json")
    payload = _json_body(raw)
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise ValidationError("body", "an empty batch")
    receipts = await hub.publish(items)
    for r in receipts:
        request.app.state.metrics.published.labels(r.topic).inc()
    return [_receipt(r) for r in receipts]


@router.get("/v1/events/{event_id}", tags=["events"], response_model=StoredOut)
async def get_event(event_id: str, hub: HubDep) -> StoredOut:
    """One event by id, from any topic the caller may read (404 otherwise, saying nothing more)."""
    return _stored(await hub.get(event_id))


@router.get("/v1/topics", tags=["topics"], response_model=list[TopicOut])
async def topics(hub: HubDep) -> list[TopicOut]:
    """The topics the caller may read."""
    return [TopicOut(name=t.name, count=t.count, first=t.first, last=t.last) for t in await hub.topics()]


@router.get("/v1/topics/{topic}/events", tags=["topics"], response_model=PageOut)
async def replay(
    topic: str,
    hub: HubDep,
    after: Annotated[str | None, Query(description="Position to continue after")] = None,
    since: Annotated[float | None, Query(description="Epoch seconds")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> PageOut:
    """A page of a topic's events in order; follow ``next`` for the rest."""
    check_topic(topic)
    events = [s async for s in hub.replay(topic, after=after, since=since, limit=limit)]
    nxt = events[-1].position if len(events) == limit else None
    return PageOut(topic=topic, events=[_stored(s) for s in events], next=nxt)


@router.get(
    "/v1/topics/{topic}/stream",
    tags=["topics"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def stream(
    topic: str,
    request: Request,
    hub: HubDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[str | None, Query(description="Start after this position (Last-Event-ID wins)")] = None,
) -> StreamingResponse:
    """Live events of a topic as Server-Sent Events; ``Last-Event-ID`` resumes without a gap."""
    check_topic(topic)
    start = last_event_id or after
    events = hub.replay(topic, after=start, follow=True)
    first = await _first_or_error(events)
    gauge = request.app.state.metrics.stream_clients

    async def gen() -> AsyncIterator[bytes]:
        gauge.inc()
        try:
            yield b": connected\n\n"
            pending = first
            while True:
                if pending is not None:
                    yield _sse(pending)
                    pending = None
                try:
                    pending = await asyncio.wait_for(anext(events), HEARTBEAT)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b": keep-alive\n\n"
                except StopAsyncIteration:
                    return
        finally:
            gauge.dec()

    return StreamingResponse(gen(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


async def _first_or_error(events: AsyncIterator[StoredEvent]) -> StoredEvent | None:
    """Start the stream before answering, so a refused read is a 403 and not a broken stream."""
    try:
        return await asyncio.wait_for(anext(events), 0.05)
    except (TimeoutError, StopAsyncIteration):
        return None


def _sse(s: StoredEvent) -> bytes:
    return (
        b"id: "
        + s.position.encode()
        + b"\nevent: "
        + s.event.type.encode()
        + b"\ndata: "
        + encode_event(s.event)
        + b"\n\n"
    )


@router.get("/v1/stats", tags=["topics"], response_model=list[StatsOut])
async def stats(hub: HubDep) -> list[StatsOut]:
    """Per topic counts and per consumer group lag."""
    return [
        StatsOut(
            topic=info.name,
            count=info.count,
            groups=[GroupOut(group=g.group, lag=g.lag, pending=g.pending, members=g.members) for g in lags],
        )
        for info, lags in await hub.stats()
    ]


# -- principals -----------------------------------------------------------------------
@router.get("/v1/principals", tags=["principals"], response_model=list[PrincipalOut])
async def principals(hub: HubDep) -> list[PrincipalOut]:
    """Every principal with its public key (for verifying signatures)."""
    await hub.registry.refresh()
    return [
        PrincipalOut(id=p.id, kind=p.kind, name=p.name, public_key=p.public_key)
        for p in sorted(hub.registry.principals.values(), key=lambda p: p.id)
        if not p.revoked
    ]


@router.get("/v1/principals/{principal}", tags=["principals"], response_model=PrincipalOut)
async def principal(principal: str, hub: HubDep) -> PrincipalOut:
    await hub.registry.refresh()
    p = hub.registry.principals.get(principal)
    if p is None:
        from ..errors import NotFound

        raise NotFound(f"no principal {principal!r}")
    return PrincipalOut(id=p.id, kind=p.kind, name=p.name, public_key=p.public_key)


# -- peer hubs ---------------------------------------------------------------------------
def _me(hub: Hub) -> PeerHub:
    if not hub.authenticated:
        raise AccessDenied("peer-hub operations need a token")
    return PeerHub(hub)


@router.post("/v1/peers/{peer}/drafts", status_code=201, tags=["peers"], response_model=ReceiptOut)
async def draft(peer: str, body: DraftIn, hub: HubDep) -> ReceiptOut:
    """A private draft in your own hub."""
    me = _me(hub)
    if peer != me.me:
        raise AccessDenied(f"drafts go to your own hub (peer.{me.me}.drafts)")
    return _receipt(await me.draft(body.type, body.subject, body.data))


@router.post("/v1/drafts/{draft_id}/revisions", status_code=201, tags=["peers"], response_model=ReceiptOut)
async def revise(draft_id: str, body: ChangesIn, hub: HubDep) -> ReceiptOut:
    """A new revision of one of your drafts."""
    return _receipt(await _me(hub).revise(draft_id, body.data))


@router.post("/v1/drafts/{draft_id}/publish", status_code=201, tags=["peers"], response_model=ReceiptOut)
async def publish_draft(draft_id: str, hub: HubDep) -> ReceiptOut:
    """Publish one of your drafts (mirrored to the shared topic)."""
    return _receipt(await _me(hub).publish(draft_id))


@router.post("/v1/events/{event_id}/fork", status_code=201, tags=["peers"], response_model=ReceiptOut)
async def fork(event_id: str, body: ForkIn, hub: HubDep) -> ReceiptOut:
    """Fork an event you may read into a draft of your own."""
    return _receipt(await _me(hub).fork(event_id, subject=body.subject))


@router.post("/v1/peers/{peer}/contributions", status_code=201, tags=["peers"], response_model=ReceiptOut)
async def contribute(peer: str, body: ContributionIn, hub: HubDep) -> ReceiptOut:
    """Propose a change to a peer's published work."""
    r = await _me(hub).contribute(
        peer, body.on, body.title, changes=body.changes, description=body.description
    )
    return _receipt(r)


@router.post(
    "/v1/contributions/{contribution_id}/accept",
    status_code=201,
    tags=["peers"],
    response_model=list[ReceiptOut],
)
async def accept(contribution_id: str, body: DecisionIn, hub: HubDep) -> list[ReceiptOut]:
    """Accept a contribution to your hub: the decision and the new published revision."""
    return [_receipt(r) for r in await _me(hub).accept(contribution_id, body.reason)]


@router.post(
    "/v1/contributions/{contribution_id}/reject", status_code=201, tags=["peers"], response_model=ReceiptOut
)
async def reject(contribution_id: str, body: DecisionIn, hub: HubDep) -> ReceiptOut:
    """Reject a contribution to your hub."""
    return _receipt(await _me(hub).reject(contribution_id, body.reason))


@router.post("/v1/events/{event_id}/feedback", status_code=201, tags=["peers"], response_model=ReceiptOut)
async def feedback(event_id: str, body: FeedbackIn, hub: HubDep) -> ReceiptOut:
    """Comment on an event you may read."""
    return _receipt(await _me(hub).feedback(event_id, body.text, rating=body.rating))


@router.get("/v1/lineage/{event_id}", tags=["peers"])
async def get_lineage(event_id: str, hub: HubDep) -> dict[str, Any]:
    """Where an event came from and who decided (what the caller may see of it)."""
    return (await lineage(hub, event_id)).to_dict()
