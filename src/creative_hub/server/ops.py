"""Operations endpoints: liveness, readiness, Prometheus metrics (no token needed).

Metrics are open to any scraper, so they name only what anyone may read:
per-topic series (lag, pending, gaps, dead letters, published counts) exist
for topics an anonymous reader may list, never for drafts, audit streams,
agent work queues or system topics -- not even under another name, since a
count alone tells that someone is drafting.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..access import ANONYMOUS, Identity, can_list
from ..errors import HubError
from ..hub import Hub
from ..topics import DEADLETTER_PREFIX
from .deps import hub_for

__all__ = ["router"]

router = APIRouter(tags=["ops"])
HubDep = Annotated[Hub, Depends(hub_for)]


class Health(BaseModel):
    ok: bool


class Ready(BaseModel):
    ok: bool
    engine: str
    detail: str


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process answers (it does not ask the log)."""
    return Health(ok=True)


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "The log does not answer, or answers that it is down"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the log answers within ``ready_timeout`` (2 s by default); 503 at once when it
    reports itself down, 503 after the timeout when it hangs -- never a wait without end."""
    hub: Hub = request.app.state.hub
    timeout: float = request.app.state.settings.ready_timeout
    engine = hub.engine
    try:
        health = await asyncio.wait_for(hub.health(), timeout)
    except TimeoutError:
        ready = Ready(ok=False, engine=engine, detail=f"the log did not answer within {timeout:g} s")
        return JSONResponse(ready.model_dump(), status_code=503)
    except (HubError, OSError) as e:
        return JSONResponse(Ready(ok=False, engine=engine, detail=str(e)).model_dump(), status_code=503)
    ready = Ready(ok=health.ok, engine=health.engine, detail=health.detail)
    return JSONResponse(ready.model_dump(), status_code=200 if health.ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, published events (rate with ``rate()``), SSE clients, sent
    and dropped, rate-limited requests, and per consumer group lag, pending, events skipped by
    retention and gaps, dead letters -- for public topics only."""
    m = request.app.state.metrics
    hub: Hub = request.app.state.hub
    try:
        stats = await asyncio.wait_for(hub.stats(), request.app.state.settings.ready_timeout)
    except (TimeoutError, HubError):
        stats = []  # the counters still answer when the log does not
    public = Identity(ANONYMOUS)
    for info, lags in stats:
        if not can_list(public, info.name):
            continue  # a private topic: its name, size and groups are nobody's business here
        for g in lags:
            m.lag.labels(info.name, g.group).set(g.lag)
            m.pending.labels(info.name, g.group).set(g.pending)
            m.skipped.labels(info.name, g.group).set(g.skipped)
            m.gaps.labels(info.name, g.group).set(g.gaps)
        if info.name.startswith(DEADLETTER_PREFIX):
            m.dead_letters.labels(info.name).set(info.count)
    return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
