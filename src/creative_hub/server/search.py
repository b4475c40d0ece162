"""HTTP routes over the index: GET /v1/search and the analytics under /v1/analytics.

    app.include_router(router)          # in server/app.py's create_app

Every route asks as the caller (``hub_for``: the bearer token's principal,
or anonymous), so the access rules are the same as on every other face.
The index lives on the app (``deps.index_for``): one per app, beside the log,
caught up with the log before a query at most once a second.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from ..hub import Hub
from ..index import HubIndex, SearchQuery
from .deps import hub_for, index_for

__all__ = ["router"]

router = APIRouter(tags=["search and analytics"])
HubDep = Annotated[Hub, Depends(hub_for)]


async def _index(request: Request) -> HubIndex:
    root: Hub = request.app.state.hub
    ix = index_for(request.app, root)
    await ix.refresh(root)
    return ix


IndexDep = Annotated[HubIndex, Depends(_index)]


@router.get("/v1/search")
async def search_route(
    hub: HubDep,
    ix: IndexDep,
    q: Annotated[str, Query(description='Words (ANDed), "phrases", prefix*, -excluded, OR')] = "",
    topic: str | None = None,
    area: str | None = None,
    type: str | None = None,
    creator: str | None = None,
    source: str | None = None,
    subject: str | None = None,
    agent: Annotated[str | None, Query(description="Made by this agent principal")] = None,
    model: Annotated[
        str | None, Query(description="Made with this model: name, provider (offline) or provider/name")
    ] = None,
    made_by: Annotated[Literal["agent", "person"] | None, Query(description="The creator's kind")] = None,
    since: Annotated[str | None, Query(description="ISO 8601 time or epoch seconds")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 time or epoch seconds")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Full-text search (bm25, snippets) over what the caller may read, with filters."""
    return (await ix.search(hub.identity, SearchQuery.from_params(q, locals()))).to_dict()


@router.get("/v1/search/related/{event_id}")
async def related_route(
    hub: HubDep, ix: IndexDep, event_id: str, limit: Annotated[int, Query(ge=1, le=200)] = 10
) -> dict[str, Any]:
    """Events related to one: linked, same subject, similar text (and meaning, with the extra)."""
    found = await ix.related(hub.identity, event_id, limit)
    return {"id": event_id, "related": [r.to_dict() for r in found], "semantic": ix.embedder is not None}


@router.get("/v1/analytics/activity")
async def activity_route(
    hub: HubDep,
    ix: IndexDep,
    by: Literal["area", "creator", "type", "topic", "source"] = "area",
    bucket: Literal["hour", "day", "week", "month", "year"] = "day",
    area: str | None = None,
    creator: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> list[dict[str, Any]]:
    """Events per time bucket and per area / creator / type / topic / source."""
    rows = await ix.activity(
        hub.identity, by=by, bucket=bucket, area=area, creator=creator, since=since, until=until
    )
    return [r.to_dict() for r in rows]


@router.get("/v1/analytics/collaborators")
async def collaborators_route(
    hub: HubDep, ix: IndexDep, principal: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """Who works with whom: shared subjects, forks, contributions, feedback."""
    return [p.to_dict() for p in await ix.collaborators(hub.identity, principal=principal, limit=limit)]


@router.get("/v1/analytics/links")
async def links_route(
    hub: HubDep,
    ix: IndexDep,
    id: str | None = None,
    rel: str | None = None,
    cross_source: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Links between events (commit -> paper, story -> commit, forks, feedback)."""
    found = await ix.links(hub.identity, id=id, rel=rel, cross_source=cross_source, limit=limit)
    return [x.to_dict() for x in found]


@router.get("/v1/analytics/contributions")
async def contributions_route(hub: HubDep, ix: IndexDep, to: str | None = None) -> list[dict[str, Any]]:
    """Open contributions: proposals still waiting for a decision."""
    return [c.to_dict() for c in await ix.open_contributions(hub.identity, to=to)]
