"""The hub MCP server: search, events, replay, lineage, analytics, peers, publish.

    server = build_hub_server(HubState(hub, index))
    server.run()                       # stdio; or mounted over HTTP by http.py

Tools return typed, structured results (pydantic models); every read goes
through the caller's view of the hub or the index, so private drafts reach
their owner only.  ``publish_event`` needs a token (the caller must be an
authenticated principal); the event is attributed to that principal.

Resources: ``hub://topics``, ``hub://peers`` (lists), ``hub://events/{id}``,
and the live pages of live.py -- ``hub://topics/{topic}``,
``hub://peers/{peer}/{stream}``, ``hub://subjects/{subject}`` with
``?after=&limit=`` -- which clients may subscribe to.  ``why_changed`` tells
an event's lineage as a story (why.py).
"""

# No ``from __future__ import annotations``: the SDK reads the tools' type
# hints at registration time to build their input and output schemas.

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from ..errors import NotFound
from ..index import SearchQuery
from ..index.analytics import By
from ..lineage import lineage as lineage_of
from ..topics import peer as peer_topic
from ..topics import published as published_topic
from .common import EventOut, HubState, event_out, resource_errors, to_json, tool_errors
from .live import Live, LiveBus, install, page, parse_uri
from .why import WhyOut
from .why import why_changed as why_changed_of

__all__ = ["build_hub_server"]

Limit = Annotated[int, Field(ge=1, le=100, description="At most this many results")]
Stream = Literal["published", "contributions", "feedback", "drafts"]
View = Literal["timeline", "collaborators", "links", "open_contributions", "all"]


class HitOut(BaseModel):
    id: str
    topic: str
    type: str
    creator: str
    source: str
    subject: str
    time: str
    title: str
    snippet: str = Field(description="Matching text, matches in [brackets]")
    score: float
    madeby: str = Field(default="", description="The creator's kind: agent, person ('' if not registered)")
    model: str = Field(default="", description="The model that made it ('' if none declared)")
    modelprovider: str = Field(default="", description="Who served the model, or 'offline'")


class SearchOut(BaseModel):
    hits: list[HitOut]
    more: bool = Field(description="More hits exist: call again with offset + limit")
    mode: str = Field(description="fts (bm25), hybrid (bm25 + embeddings) or recent (no query text)")


class EventsOut(BaseModel):
    topic: str
    events: list[EventOut]
    next: str | None = Field(description="Pass as 'after' for the next page; null at the end")


class LineageNodeOut(BaseModel):
    id: str
    relation: str = Field(description="self, supersedes, forkedfrom, causation, folded, decision, feedback")
    type: str
    topic: str
    creator: str
    time: str
    subject: str
    title: str
    signature: str
    kind: str = Field(default="", description="The creator's kind: person, agent ('' if not registered)")
    model: str = Field(default="", description="The model that made it ('' if none declared)")
    modelprovider: str = Field(default="", description="Who served the model, or 'offline'")
    confighash: str = Field(default="", description="sha256 of the agent's prompt and configuration")
    inputs: list[str] = Field(default_factory=list, description="Ids of the input events you may read")
    made_with: str = Field(default="", description="provider/model, e.g. offline/echo-1")
    parents: list["LineageNodeOut"] = Field(default_factory=list)


class AgentEventOut(BaseModel):
    id: str
    type: str
    relation: str
    model: str = Field(description="provider/model ('' if none declared)")
    confighash: str
    inputs: list[str]


class AgentShapeOut(BaseModel):
    agent: str
    models: list[str] = Field(description="provider/model of each model it used")
    confighashes: list[str]
    inputs: list[str] = Field(description="Ids of the input events it used (those you may read)")
    events: list[AgentEventOut] = Field(description="What it made in this lineage")


class ShapedByOut(BaseModel):
    people: list[str]
    agents: list[AgentShapeOut]
    models: list[str] = Field(description="Every model named in the lineage (provider/model)")
    others: list[str] = Field(
        description="Creators that are neither person nor agent (sources, unregistered)"
    )


class LineageOut(BaseModel):
    root: LineageNodeOut
    decisions: list[LineageNodeOut]
    feedback: list[LineageNodeOut]
    creators: list[str]
    shaped_by: ShapedByOut = Field(description="Who shaped this work and how: people, agents, models, inputs")


class ActivityRowOut(BaseModel):
    bucket: str
    key: str
    count: int


class PairOut(BaseModel):
    a: str
    b: str
    weight: int
    subjects: int
    forks: int
    contributions: int
    feedback: int
    examples: list[str]


class LinkOut(BaseModel):
    from_id: str
    from_type: str
    from_title: str
    rel: str
    to_id: str
    ref: str
    to_type: str | None = None
    to_title: str | None = None


class OpenContributionOut(BaseModel):
    id: str
    creator: str
    to: str
    title: str
    on: str | None
    subject: str
    time: str


class ActivityOut(BaseModel):
    timeline: list[ActivityRowOut] = Field(default_factory=list)
    collaborators: list[PairOut] = Field(default_factory=list)
    links: list[LinkOut] = Field(default_factory=list)
    open_contributions: list[OpenContributionOut] = Field(default_factory=list)


class RelatedOut(BaseModel):
    id: str
    related: list[dict[str, Any]] = Field(
        description="id, title, type, creator, topic, score and why (reasons)"
    )
    semantic: bool = Field(description="Embeddings took part (the semantic extra is installed)")


class PeerOut(BaseModel):
    id: str
    kind: str
    name: str
    published: int = Field(description="Events in their published stream")


class PeersOut(BaseModel):
    peers: list[PeerOut]


class PublishOut(BaseModel):
    id: str
    topic: str
    position: str
    duplicate: bool


def _node(d: dict[str, Any]) -> LineageNodeOut:
    return LineageNodeOut(
        id=d["id"],
        relation=d["relation"],
        type=d["type"],
        topic=d["topic"],
        creator=d["creator"],
        time=d["time"],
        subject=d["subject"],
        title=d["title"],
        signature=d["signature"],
        kind=d["kind"],
        model=d["model"],
        modelprovider=d["modelprovider"],
        confighash=d["confighash"],
        inputs=d["inputs"],
        made_with=d["made_with"],
        parents=[_node(p) for p in d["parents"]],
    )


def build_hub_server(state: HubState) -> MCPServer:
    """The ``creative-hub`` MCP server over ``state`` (hub, index, caller)."""
    server = state.server(
        "creative-hub",
        (
            "An event hub of creative work: code, stories, ceremonies, feedback, contributions, papers. "
            "Search with search_events, open an event with get_event, trace it with lineage, see who does "
            "what with activity and related, ask why_changed for the decisions behind a revision. "
            "Resources hub://topics/{topic}, hub://peers/{peer}/{stream} and hub://subjects/{subject} are "
            "pages with a 'next' URI; subscribe to one and read 'next' when it is updated. "
            "Private drafts are visible to their owner only."
        ),
        subscriptions=LiveBus(),
    )
    install(server, state, Live(state.hub))

    async def peers() -> list[PeerOut]:
        hub = state.caller()
        await hub.registry.refresh()
        infos = {t.name: t.count for t in await hub.topics()}
        return [
            PeerOut(id=p.id, kind=p.kind, name=p.name, published=infos.get(published_topic(p.id), 0))
            for p in sorted(hub.registry.principals.values(), key=lambda p: p.id)
            if not p.revoked
        ]

    @server.tool()
    @tool_errors
    async def search_events(
        query: Annotated[str, Field(description='Words (ANDed), "phrases", prefix*, -excluded, OR')] = "",
        area: Annotated[str | None, Field(description="narrative, engineering, ceremony, ...")] = None,
        type: Annotated[
            str | None, Field(description="An event type, e.g. creative.engineering.commit")
        ] = None,
        creator: str | None = None,
        source: str | None = None,
        subject: str | None = None,
        topic: str | None = None,
        agent: Annotated[str | None, Field(description="Made by this agent principal")] = None,
        model: Annotated[
            str | None, Field(description="Made with this model: name, provider (offline) or provider/name")
        ] = None,
        made_by: Annotated[Literal["agent", "person"] | None, Field(description="The creator's kind")] = None,
        since: Annotated[str | None, Field(description="ISO 8601 time")] = None,
        until: Annotated[str | None, Field(description="ISO 8601 time")] = None,
        limit: Limit = 10,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> SearchOut:
        """Full-text search over every event you may read, ranked by bm25, with filters and snippets;
        agent, model and made_by find work by who made it and how."""
        ix = await state.fresh()
        r = await ix.search(state.caller().identity, SearchQuery.from_params(query, locals()))
        return SearchOut(hits=[HitOut(**h.to_dict()) for h in r.hits], more=r.more, mode=r.mode)

    @server.tool()
    @tool_errors
    async def get_event(id: Annotated[str, Field(min_length=1, description="The event id")]) -> EventOut:
        """One event by id, with its whole payload."""
        ix = await state.fresh()
        try:
            topic, _, event = await ix.get(state.caller().identity, id)
        except NotFound:  # newer than the index's last catch-up? ask the log (a scan)
            stored = await state.caller().get(id)
            topic, event = stored.topic, stored.event
        return event_out(topic, event)

    @server.tool()
    @tool_errors
    async def replay(
        topic: Annotated[
            str, Field(min_length=1, description="e.g. creative.narrative, peer.alice.published")
        ],
        after: Annotated[str | None, Field(description="Start after this position (from 'next')")] = None,
        limit: Limit = 20,
    ) -> EventsOut:
        """A topic's events in log order, a page at a time."""
        events: list[EventOut] = []
        last: str | None = None
        async for s in state.caller().replay(topic, after=after, limit=limit + 1):
            if len(events) == limit:
                return EventsOut(topic=topic, events=events, next=last)
            events.append(event_out(s.topic, s.event, full=False))
            last = s.position
        return EventsOut(topic=topic, events=events, next=None)

    @server.tool()
    @tool_errors
    async def lineage(id: Annotated[str, Field(min_length=1)]) -> LineageOut:
        """Where an event came from and who decided: revisions, forks, proposals, decisions, feedback;
        for agent work the model, configuration hash and inputs, summed up in shaped_by."""
        lin = await lineage_of(state.caller(), id)
        return LineageOut(
            root=_node(lin.root.to_dict()),
            decisions=[_node(n.to_dict()) for n in lin.decisions],
            feedback=[_node(n.to_dict()) for n in lin.feedback],
            creators=sorted(lin.creators),
            shaped_by=ShapedByOut.model_validate(lin.shaped_by),
        )

    @server.tool()
    @tool_errors
    async def why_changed(
        id: Annotated[str, Field(min_length=1, description="The event id (e.g. the latest revision)")],
    ) -> Annotated[CallToolResult, WhyOut]:
        """Why did this change? The chain behind an event, oldest first: revisions, forks, contributions
        proposed / accepted / rejected and who decided, feedback before a revision, agent outputs
        with their model and inputs."""
        why = await why_changed_of(state.caller(), id)
        return CallToolResult(
            content=[TextContent(type="text", text=why.summary)],
            structured_content=why.model_dump(mode="json"),
        )

    @server.tool()
    @tool_errors
    async def activity(
        view: Annotated[View, Field(description="What to compute")] = "timeline",
        by: Annotated[
            By, Field(description="Timeline rows per area, creator, type, topic or source")
        ] = "area",
        bucket: Literal["hour", "day", "week", "month", "year"] = "day",
        area: str | None = None,
        creator: str | None = None,
        since: Annotated[str | None, Field(description="ISO 8601 time")] = None,
        until: Annotated[str | None, Field(description="ISO 8601 time")] = None,
    ) -> ActivityOut:
        """Analytics: activity over time, who works with whom, cross-source links, open contributions."""
        ix = await state.fresh()
        who = state.caller().identity
        out = ActivityOut()
        if view in ("timeline", "all"):
            rows = await ix.activity(
                who, by=by, bucket=bucket, area=area, creator=creator, since=since, until=until
            )
            out.timeline = [ActivityRowOut(**r.to_dict()) for r in rows]
        if view in ("collaborators", "all"):
            pairs = await ix.collaborators(who, principal=creator, since=since, until=until)
            out.collaborators = [PairOut(**p.to_dict()) for p in pairs]
        if view in ("links", "all"):
            found = await ix.links(who, cross_source=True)
            out.links = [
                LinkOut(**{k: v for k, v in x.to_dict().items() if k in LinkOut.model_fields}) for x in found
            ]
        if view in ("open_contributions", "all"):
            out.open_contributions = [
                OpenContributionOut(**c.to_dict()) for c in await ix.open_contributions(who)
            ]
        return out

    @server.tool()
    @tool_errors
    async def related(id: Annotated[str, Field(min_length=1)], limit: Limit = 10) -> RelatedOut:
        """Work related to an event: linked either way, same subject, similar text (and meaning)."""
        ix = await state.fresh()
        found = await ix.related(state.caller().identity, id, limit)
        return RelatedOut(id=id, related=[r.to_dict() for r in found], semantic=ix.embedder is not None)

    @server.tool()
    @tool_errors
    async def list_peers() -> PeersOut:
        """The principals (people and agents) whose peer hubs you can follow."""
        return PeersOut(peers=await peers())

    @server.tool()
    @tool_errors
    async def peer_hub(
        peer: Annotated[str, Field(min_length=1, description="The principal id")],
        stream: Annotated[Stream, Field(description="drafts: your own only")] = "published",
        limit: Limit = 20,
    ) -> EventsOut:
        """The newest events of a peer's hub stream (published work, contributions, feedback)."""
        topic = peer_topic(peer, stream)
        events = [event_out(s.topic, s.event, full=False) async for s in state.caller().replay(topic)]
        return EventsOut(topic=topic, events=events[-limit:], next=None)

    @server.tool()
    @tool_errors
    async def publish_event(
        type: Annotated[str, Field(description="creative.<area>.<kind>, e.g. creative.feedback.comment")],
        data: Annotated[dict[str, Any], Field(description="The payload (see the type's JSON Schema)")],
        subject: str | None = None,
        causationid: str | None = None,
        correlationid: str | None = None,
        visibility: Annotated[
            str | None,
            Field(description="public (default); 'private' is refused: drafts are written with peer tools"),
        ] = None,
    ) -> PublishOut:
        """Publish one event to the shared hub as yourself (needs a token)."""
        hub = state.caller()
        if not hub.authenticated:
            raise ToolError("publishing needs a token: set CREATIVE_HUB_TOKEN (stdio) or send a bearer token")
        item: dict[str, Any] = {"type": type, "data": data}
        for k, v in (
            ("subject", subject),
            ("causationid", causationid),
            ("correlationid", correlationid),
            ("visibility", visibility),
        ):
            if v is not None:
                item[k] = v
        (r,) = await hub.publish(item)
        await state.index.refresh(state.hub, force=True)  # searchable at once
        return PublishOut(id=r.id, topic=r.topic, position=r.position, duplicate=r.duplicate)

    # -- resources -----------------------------------------------------------------
    @server.resource("hub://topics", name="topics", mime_type="application/json")
    @resource_errors
    async def topics_resource() -> str:
        """The topics you may read, with their event counts."""
        return to_json([{"name": t.name, "count": t.count} for t in await state.caller().topics()])

    @server.resource("hub://peers", name="peers", mime_type="application/json")
    @resource_errors
    async def peers_resource() -> str:
        """The principals and the size of their published streams."""
        return to_json(await peers())

    @server.resource("hub://events/{id}", name="event", mime_type="application/json")
    @resource_errors
    async def event_resource(id: str) -> str:
        """One event by id."""
        ix = await state.fresh()
        topic, _, event = await ix.get(state.caller().identity, id)
        return to_json(event_out(topic, event))

    # Live pages (live.py): {events, more, next}; subscribe to be told when to read 'next'.
    @server.resource("hub://topics/{topic}{?after,limit}", name="topic", mime_type="application/json")
    @resource_errors
    async def topic_resource(topic: str, after: str | None = None, limit: str | None = None) -> str:
        """A topic's events in log order, a page at a time (follow 'next'); subscribable."""
        target = parse_uri(f"hub://topics/{quote(topic, safe='')}")
        return to_json(await page(state.caller(), target, after, limit))

    @server.resource("hub://peers/{peer}", name="peer", mime_type="application/json")
    @resource_errors
    async def peer_resource(peer: str) -> str:
        """A peer's published work: the first page of hub://peers/{peer}/published."""
        target = parse_uri(f"hub://peers/{quote(peer, safe='')}/published")
        return to_json(await page(state.caller(), target, None, None))

    @server.resource(
        "hub://peers/{peer}/{stream}{?after,limit}", name="peer_stream", mime_type="application/json"
    )
    @resource_errors
    async def peer_stream_resource(
        peer: str, stream: str, after: str | None = None, limit: str | None = None
    ) -> str:
        """A peer's stream (published, contributions, feedback; drafts: the owner's), paged; subscribable."""
        target = parse_uri(f"hub://peers/{quote(peer, safe='')}/{quote(stream, safe='')}")
        return to_json(await page(state.caller(), target, after, limit))

    @server.resource("hub://subjects/{subject}{?after,limit}", name="subject", mime_type="application/json")
    @resource_errors
    async def subject_resource(subject: str, after: str | None = None, limit: str | None = None) -> str:
        """Events about a subject (story:wood, org/tales/pull/7 as org%2Ftales%2Fpull%2F7) in the
        peer hubs and shared topics you may read, oldest first, paged; subscribable."""
        target = parse_uri(f"hub://subjects/{quote(subject, safe=':@')}")
        return to_json(await page(state.caller(), target, after, limit))

    # -- prompts ---------------------------------------------------------------------
    @server.prompt(name="summarise_this_week", title="Summarise this week")
    async def summarise_this_week(area: str | None = None) -> str:
        """Summarise what happened on the hub in the last seven days."""
        ix = await state.fresh()
        since = (datetime.now(UTC) - timedelta(days=7)).isoformat()
        r = await ix.search(state.caller().identity, SearchQuery(area=area, since=since, limit=100))
        lines = [
            f"- {h.time[:10]} {h.type.removeprefix('creative.')} by {h.creator}: {h.title}" for h in r.hits
        ]
        what = f"the {area} area of the hub" if area else "the hub"
        return (
            f"Summarise this week on {what} for the people who work there: the main threads of work, "
            "who worked with whom, decisions taken, and what is waiting for a decision. "
            "Use the tools (get_event, lineage, activity) for detail.\n\nEvents of the last 7 days "
            f"(newest first, {len(lines)}{'+' if r.more else ''}):\n" + ("\n".join(lines) or "- (none)")
        )

    @server.prompt(name="suggest_forks", title="Suggest forks")
    async def suggest_forks(peer: str | None = None) -> str:
        """Suggest published work worth forking (and why), from a peer's hub or the whole hub."""
        hub = state.caller()
        if peer:
            items = [
                event_out(s.topic, s.event, full=False) async for s in hub.replay(published_topic(peer))
            ]
        else:
            ix = await state.fresh()
            r = await ix.search(hub.identity, SearchQuery(area="narrative", limit=30))
            items = [event_out(t, e, full=False) for t, e in [await _get(ix, hub, h.id) for h in r.hits]]
        listing = "\n".join(
            f"- {e.id}: {e.title} ({e.type.removeprefix('creative.')}, by {e.creator})" for e in items[-30:]
        )
        return (
            f"You are {hub.principal}. From the published work below, suggest up to three pieces "
            "worth forking, "
            "each with the id, what you would change in your fork, and why it would interest its author. "
            "Check related work with the related tool before suggesting.\n\n"
            + (listing or "- (nothing published yet)")
        )

    return server


async def _get(ix: Any, hub: Any, event_id: str) -> tuple[str, Any]:
    topic, _, event = await ix.get(hub.identity, event_id)
    return topic, event
