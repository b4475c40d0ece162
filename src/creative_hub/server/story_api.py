"""HTTP routes of the storyline view: GET /v1/stories and GET /v1/stories/{story}.

    app.include_router(router)          # in server/app.py's create_app

A story is every ``creative.narrative.*`` event with that ``data.story``
the caller may read (the index answers as the caller, so someone's drafts
appear in their own storyline and nobody else's).  The story view is the
storyline (``creative_hub.storyline``: parts, characters with aliases,
scenes with who is in them, plot points with evidence), the insights agents
published about it (with their model and inputs), and its revisions and
forks from the events' lineage (who changed what, when).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from ..errors import NotFound, ValidationError
from ..event import Event
from ..hub import Hub
from ..index import HubIndex
from ..log.base import check_topic
from ..storyline import build
from ..topics import peer as peer_topic
from .deps import hub_for, index_for

__all__ = ["router"]

router = APIRouter(tags=["stories"])
HubDep = Annotated[Hub, Depends(hub_for)]
STORY = "json_extract(CAST(d.body AS TEXT), '$.data.story')"
MAX_EVENTS = 5000  # events of one story considered (the newest kept)
MAX_STORIES = 50_000  # narrative events scanned to list the stories
StoryId = Annotated[str, Path(min_length=1, max_length=200, description="The story id (data.story)")]


async def _index(request: Request) -> HubIndex:
    root: Hub = request.app.state.hub
    ix = index_for(request.app, root)
    # Forced: a page that follows a story live asks right after an event arrives.  No embedding
    # here: the storyline needs the events, and a busy machine embeds at ~10 documents a second.
    await ix.refresh(root, force=True, embed=False)
    return ix


IndexDep = Annotated[HubIndex, Depends(_index)]


def _feedback_of(writer: str) -> str | None:
    """``peer.<writer>.feedback``, if the writer's id makes a topic name."""
    try:
        return check_topic(peer_topic(writer, "feedback"))
    except ValidationError:
        return None


def _time(e: Event) -> str | None:
    return e.time.isoformat().replace("+00:00", "Z") if e.time else None


def _insight(e: Event) -> dict[str, Any]:
    d = e.data if isinstance(e.data, dict) else {}
    return {
        "id": e.id,
        "kind": d.get("kind"),
        "summary": d.get("summary"),
        "findings": d.get("findings") or [],
        "on": d.get("on"),
        "creator": e.creator,
        "model": e.model,
        "modelprovider": e.modelprovider,
        "inputs": e.input_ids,
        "time": _time(e),
    }


def _changes(events: list[Event]) -> list[dict[str, Any]]:
    """Who changed what: forks (``forkedfrom``, a published fork included), revisions of an event
    the caller sees, drafts that went out (``published``, for the owner who sees the draft).
    A publication whose draft the caller may not read is the work itself, not a change."""
    by_id = {e.id: e for e in events}
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        before = by_id.get(e.supersedes or "")
        if e.forkedfrom:
            relation, of = "fork", e.forkedfrom
        elif before is None:
            continue
        elif before.visibility == "private" and e.visibility != "private":
            relation, of = "published", before.id
        else:
            relation, of = "revision", before.id
        d = e.data if isinstance(e.data, dict) else {}
        out[e.id] = {
            "id": e.id,
            "type": e.type,
            "relation": relation,
            "of": of,
            "creator": e.creator,
            "time": _time(e),
            "title": d.get("title") or d.get("summary") or e.subject,
        }
    return list(out.values())


@router.get("/v1/stories")
async def stories(hub: HubDep, ix: IndexDep) -> list[dict[str, Any]]:
    """Every story the caller may read: title, counts, last change."""
    found = await ix.events(hub.identity, "d.area = 'narrative'", limit=MAX_STORIES)
    by: dict[str, list[Event]] = {}
    for _, e in found:
        s = e.data.get("story") if isinstance(e.data, dict) else None
        if isinstance(s, str) and s:
            by.setdefault(s, []).append(e)
    out = []
    for story, events in sorted(by.items()):
        line = build(story, events)
        times = [t for t in (_time(e) for e in events) if t]
        out.append(
            {
                "story": story,
                "title": line.title,
                "scenes": len(line.scenes),
                "characters": len(line.characters),
                "plot_points": len(line.points),
                "insights": sum(1 for e in events if e.type == "creative.narrative.insight"),
                "updated": max(times) if times else None,
            }
        )
    return out


@router.get("/v1/stories/{story}")
async def story(
    story: StoryId,
    hub: HubDep,
    ix: IndexDep,
    missing: Annotated[
        Literal["404", "empty"],
        Query(
            description="A story with no event you may read: 404, "
            "or an empty storyline (for a page waiting for it)"
        ),
    ] = "404",
) -> dict[str, Any]:
    """The storyline of one story, its insights, revisions and forks."""
    found = await ix.events(
        hub.identity, f"d.area = 'narrative' AND {STORY} = ?", (story,), limit=MAX_EVENTS, newest=True
    )
    if not found and missing == "404":
        raise NotFound(f"no story {story!r} (GET /v1/stories lists the ones you may read)")
    events = [e for _, e in reversed(found)]
    view = build(story, events).to_dict()
    view["insights"] = [_insight(e) for e in events if e.type == "creative.narrative.insight"]
    view["revisions"] = _changes(events)
    view["topics"] = sorted({t for t, _ in found})
    # What a page following the story listens to: where its events are, and the feedback streams of
    # its writers, where the continuity check posts (before the first such insight exists).
    writers = {e.creator for e in events if e.creator and e.type != "creative.narrative.insight"}
    feedback = {t for t in map(_feedback_of, writers) if t}
    view["follow"] = sorted({*view["topics"], *feedback})
    view["events"] = len(events)
    return view
