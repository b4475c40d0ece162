"""Peer-hub routes: draft, revise, publish, fork, contribute, accept / reject, feedback, lineage.

Each is one ``PeerHub`` operation as the token's principal; without a token
they are refused (403).  Accept and reject are the owner's alone (the hub's
access rules say so, not this module).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..errors import AccessDenied
from ..hub import Hub
from ..lineage import lineage
from ..peers import PeerHub
from .api import ReceiptOut, receipt_out
from .deps import hub_for

__all__ = ["router"]

router = APIRouter(tags=["peers"])
HubDep = Annotated[Hub, Depends(hub_for)]


class DraftIn(BaseModel):
    type: str = Field(description="creative.<area>.<kind>")
    subject: str = Field(description="The work it belongs to (revisions share it)")
    data: dict[str, Any]


class ChangesIn(BaseModel):
    data: dict[str, Any] = Field(description="Fields of the draft's data to replace")


class ForkIn(BaseModel):
    subject: str | None = None


class ContributionIn(BaseModel):
    on: str = Field(description="The published event it builds on")
    title: str
    changes: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None


class DecisionIn(BaseModel):
    reason: str | None = None


class FeedbackIn(BaseModel):
    text: str
    rating: int | None = Field(default=None, ge=1, le=5)


def _me(hub: Hub) -> PeerHub:
    if not hub.authenticated:
        raise AccessDenied("peer-hub operations need a token")
    return PeerHub(hub)


@router.post("/v1/peers/{peer}/drafts", status_code=201, response_model=ReceiptOut)
async def draft(peer: str, body: DraftIn, hub: HubDep) -> ReceiptOut:
    """A private draft in your own hub (``peer`` must be you)."""
    me = _me(hub)
    if peer != me.me:
        raise AccessDenied(f"drafts go to your own hub (peer.{me.me}.drafts)")
    return receipt_out(await me.draft(body.type, body.subject, body.data))


@router.post("/v1/drafts/{draft_id}/revisions", status_code=201, response_model=ReceiptOut)
async def revise(draft_id: str, body: ChangesIn, hub: HubDep) -> ReceiptOut:
    """A new revision of one of your drafts (it supersedes the one named)."""
    return receipt_out(await _me(hub).revise(draft_id, body.data))


@router.post("/v1/drafts/{draft_id}/publish", status_code=201, response_model=ReceiptOut)
async def publish_draft(draft_id: str, hub: HubDep) -> ReceiptOut:
    """Publish one of your drafts (mirrored to the shared topic of its area)."""
    return receipt_out(await _me(hub).publish(draft_id))


@router.post("/v1/events/{event_id}/fork", status_code=201, response_model=ReceiptOut)
async def fork(event_id: str, body: ForkIn, hub: HubDep) -> ReceiptOut:
    """Fork an event you may read into a draft of your own (``forkedfrom`` it)."""
    return receipt_out(await _me(hub).fork(event_id, subject=body.subject))


@router.post("/v1/peers/{peer}/contributions", status_code=201, response_model=ReceiptOut)
async def contribute(peer: str, body: ContributionIn, hub: HubDep) -> ReceiptOut:
    """Propose a change to a peer's published work; the peer accepts or rejects it."""
    r = await _me(hub).contribute(
        peer, body.on, body.title, changes=body.changes, description=body.description
    )
    return receipt_out(r)


@router.post("/v1/contributions/{contribution_id}/accept", status_code=201, response_model=list[ReceiptOut])
async def accept(contribution_id: str, body: DecisionIn, hub: HubDep) -> list[ReceiptOut]:
    """Accept a contribution to your hub: the decision and the new published revision."""
    return [receipt_out(r) for r in await _me(hub).accept(contribution_id, body.reason)]


@router.post("/v1/contributions/{contribution_id}/reject", status_code=201, response_model=ReceiptOut)
async def reject(contribution_id: str, body: DecisionIn, hub: HubDep) -> ReceiptOut:
    """Reject a contribution to your hub, with a reason."""
    return receipt_out(await _me(hub).reject(contribution_id, body.reason))


@router.post("/v1/events/{event_id}/feedback", status_code=201, response_model=ReceiptOut)
async def feedback(event_id: str, body: FeedbackIn, hub: HubDep) -> ReceiptOut:
    """Comment on an event you may read (it goes to its owner's feedback stream)."""
    return receipt_out(await _me(hub).feedback(event_id, body.text, rating=body.rating))


@router.get("/v1/lineage/{event_id}", response_model=dict[str, Any])
async def get_lineage(event_id: str, hub: HubDep) -> dict[str, Any]:
    """Where an event came from and who decided: a tree of ``root`` (with ``parents``:
    supersedes / forkedfrom / causation), ``decisions`` and ``feedback`` -- only what the
    caller may see (someone else's drafts leave no trace)."""
    return (await lineage(hub, event_id)).to_dict()
