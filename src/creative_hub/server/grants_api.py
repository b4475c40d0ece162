"""Grant and audit routes: give, list and revoke grants on your drafts; read your audit stream.

Each acts as the token's principal, the owner; without a token they are
refused (403).  The rules (only the owner gives or revokes; the audit stream
is the owner's alone) are the hub's own (``creative_hub.access``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ..errors import AccessDenied
from ..grants import audit_topic, grant_dict
from ..hub import Hub
from .api import MAX_PAGE, PageOut, stored_out
from .deps import hub_for

__all__ = ["router"]

router = APIRouter(tags=["grants"])
HubDep = Annotated[Hub, Depends(hub_for)]


class GrantIn(BaseModel):
    grantee: str = Field(description="The principal (an agent, usually) that may read")
    stream: Literal["drafts"] | None = Field(default=None, description="Every draft of yours ...")
    subject: str | None = Field(default=None, description="... or only the drafts about this subject")
    expires: str | None = Field(
        default=None,
        description="A duration (30m, 2h, 7d, 1w) or an ISO 8601 time with a timezone; default 24h",
    )
    reason: str | None = None


class RevokeIn(BaseModel):
    reason: str | None = None


class GrantOut(BaseModel):
    id: str
    owner: str
    grantee: str
    stream: str | None
    subject: str | None
    expires: datetime
    reason: str | None
    given: datetime | None
    revoked: datetime | None
    state: Literal["live", "expired", "revoked"]


class GrantsOut(BaseModel):
    given: list[GrantOut] = Field(description="Grants you gave")
    received: list[GrantOut] = Field(description="Grants given to you")


def _owner(hub: Hub) -> Hub:
    if not hub.authenticated:
        raise AccessDenied("grants and the audit stream need a token (sign in as the owner)")
    return hub


@router.post("/v1/grants", status_code=201, response_model=GrantOut)
async def give(body: GrantIn, hub: HubDep) -> GrantOut:
    """Let a principal read your drafts (the whole ``stream`` or one ``subject``'s) until ``expires``."""
    me = _owner(hub)
    await me.registry.refresh()
    known = [p.id for p in me.registry.principals.values() if not p.revoked]
    g = await me.grants.give(
        me.identity,
        body.grantee,
        stream=body.stream,
        subject=body.subject,
        expires=body.expires,
        reason=body.reason,
        known=known,
    )
    return GrantOut.model_validate(grant_dict(g))


@router.get("/v1/grants", response_model=GrantsOut)
async def list_grants(
    hub: HubDep,
    all: Annotated[bool, Query(description="Also revoked and expired grants")] = False,
) -> GrantsOut:
    """The grants you gave and those given to you (live ones unless ``all``)."""
    me = _owner(hub)
    await me.grants.refresh(force=True)
    given = [g for g in me.grants.given_by(me.principal) if all or g.live()]
    received = [g for g in me.grants.given_to(me.principal) if all or g.live()]
    return GrantsOut(
        given=[GrantOut.model_validate(grant_dict(g)) for g in given],
        received=[GrantOut.model_validate(grant_dict(g)) for g in received],
    )


@router.post("/v1/grants/{grant_id}/revoke", response_model=GrantOut)
async def revoke(grant_id: str, body: RevokeIn, hub: HubDep) -> GrantOut:
    """End one of your grants now; every hub process stops honouring it within a second."""
    me = _owner(hub)
    g = await me.grants.revoke(me.identity, grant_id, body.reason)
    return GrantOut.model_validate(grant_dict(g))


@router.get("/v1/audit", response_model=PageOut)
async def audit(
    hub: HubDep,
    after: Annotated[str | None, Query(description="Position to continue after")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> PageOut:
    """Your audit stream (``peer.<you>.audit``): each read of your drafts through a grant --
    who, which ids, how, with which grant -- oldest first; pass ``next`` as ``after``."""
    me = _owner(hub)
    topic = audit_topic(me.principal)
    events = [s async for s in me.replay(topic, after=after, limit=limit)]
    nxt = events[-1].position if len(events) == limit else None
    return PageOut(topic=topic, events=[stored_out(s) for s in events], next=nxt)
