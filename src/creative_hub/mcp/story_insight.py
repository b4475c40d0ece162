"""The story MCP server's insight tools and resources: morals and flagged gaps, as the agents found them.

Registered on the story server (``story.build_story_server``)::

    story_insights(story, kind=None)   every insight about a story (morals, causal, continuity)
    story_morals(story)                the lessons and values, each with the plot points carrying it
    flagged_gaps(story)                unexplained turns, unresolved setups, continuity problems
    story://{story}/insights           the same as a resource (JSON)

The insights are ``creative.narrative.insight`` events read from the index
as the caller, so an insight is seen by whoever may read the stream it was
published to; each comes with its model, provider and inputs (provenance).
"""

# No ``from __future__ import annotations``: the SDK reads the tools' type hints.

from typing import Annotated, Literal

from mcp.server import MCPServer
from pydantic import BaseModel, Field

from ..errors import NotFound
from ..event import Event
from .common import HubState, resource_errors, to_json, tool_errors

__all__ = ["register_insights"]

STORY = "json_extract(CAST(d.body AS TEXT), '$.data.story')"
MAX_INSIGHTS = 500  # newest insights of one story considered
Story = Annotated[str, Field(min_length=1, description="The story id (data.story), e.g. hansel")]


class FindingOut(BaseModel):
    statement: str
    plot_points: list[str] = Field([], description="Ids of the plot point events it rests on")
    evidence: list[str] = Field([], description="The story's own words for it")
    values: list[str] = []
    established: bool | None = None
    flag: str | None = Field(
        None, description="unexplained_turn, unresolved_setup, acts_after_exit, name_clash"
    )
    character: str | None = None


class InsightOut(BaseModel):
    id: str
    kind: str = Field(description="morals, causal or continuity")
    summary: str
    on: str | None = Field(None, description="The fragment checked (continuity)")
    findings: list[FindingOut]
    creator: str
    model: str | None
    modelprovider: str | None
    inputs: list[str] = Field(description="The plot points and fragments the insight was made from")
    time: str | None


class InsightsOut(BaseModel):
    story: str
    insights: list[InsightOut]


class GapsOut(BaseModel):
    story: str
    gaps: list[FindingOut] = Field(description="Flagged findings, newest insight first")
    insights: list[str] = Field(description="Ids of the insights the gaps come from")


def _out(e: Event) -> InsightOut:
    d = e.data if isinstance(e.data, dict) else {}
    return InsightOut(
        id=e.id,
        kind=str(d.get("kind", "")),
        summary=str(d.get("summary", "")),
        on=d.get("on"),
        findings=[FindingOut(**f) for f in d.get("findings") or [] if isinstance(f, dict)],
        creator=e.creator or "",
        model=e.model,
        modelprovider=e.modelprovider,
        inputs=e.input_ids,
        time=e.time.isoformat().replace("+00:00", "Z") if e.time else None,
    )


def register_insights(server: MCPServer, state: HubState) -> None:
    """Add the insight tools and the ``story://{story}/insights`` resource to the story server."""

    async def insights(story: str, kind: str | None = None) -> list[InsightOut]:
        ix = await state.fresh()
        found = await ix.events(
            state.caller().identity,
            f"d.type = 'creative.narrative.insight' AND {STORY} = ?",
            (story,),
            limit=MAX_INSIGHTS,
            newest=True,
        )
        out = [_out(e) for _, e in found]
        return [i for i in out if kind is None or i.kind == kind]

    @server.tool()
    @tool_errors
    async def story_insights(
        story: Story, kind: Literal["morals", "causal", "continuity"] | None = None
    ) -> InsightsOut:
        """What the insight agents found in a story (newest first), with each one's model and inputs."""
        return InsightsOut(story=story, insights=await insights(story, kind))

    @server.tool()
    @tool_errors
    async def story_morals(story: Story) -> InsightsOut:
        """The lessons and values a story encodes, each with the plot points that carry it."""
        found = await insights(story, "morals")
        if not found:
            raise NotFound(f"no morals for {story!r} yet: run creative-hub agent run "
                           "creative_hub.agents.builtin:morals")  # fmt: skip
        return InsightsOut(story=story, insights=found)

    @server.tool()
    @tool_errors
    async def flagged_gaps(story: Story) -> GapsOut:
        """Unexplained turns, setups never paid off, continuity problems in a story (with evidence)."""
        found = [i for i in await insights(story) if i.kind in ("causal", "continuity")]
        gaps = [f for i in found for f in i.findings if f.flag]
        return GapsOut(story=story, gaps=gaps, insights=[i.id for i in found])

    @server.resource("story://{story}/insights", name="story_insights", mime_type="application/json")
    @resource_errors
    async def insights_resource(story: str) -> str:
        """Every insight about a story: morals, causal checks, continuity checks."""
        return to_json({"story": story, "insights": [i.model_dump() for i in await insights(story)]})
