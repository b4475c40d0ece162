"""The story MCP server: stories, outline, scenes, timeline, character arcs, neighbours.

Built from ``creative.narrative.*`` events (fragments, plot points,
character arcs) read from the index as the caller -- so a writer's private
drafts appear in their own outline and nobody else's.  Story order is the
payload's ``order`` where given, else the event time; a revision hides the
event it ``supersedes``.

The narrative pipeline's tools (``ingest story``): ``story_outline`` (parts,
characters with aliases, plot points with evidence), ``character_journey``
(one character's plot points in order, by any name they go by),
``around_plot_point`` (what happened before and after one), ``scene_text``
(a scene's text with its characters and their aliases).
"""

# No ``from __future__ import annotations``: the SDK reads the tools' type hints.

from typing import Annotated

from mcp.server import MCPServer
from pydantic import BaseModel, Field

from ..errors import NotFound
from ..event import Event
from .common import EventOut, HubState, event_out, title_of, tool_errors

__all__ = ["build_story_server"]

Story = Annotated[str, Field(min_length=1, description="The story id (data.story), e.g. hansel")]
STORY = "json_extract(CAST(d.body AS TEXT), '$.data.story')"
MAX_EVENTS = 5000  # events of one story considered


class StoryOut(BaseModel):
    story: str
    title: str = Field(description="Title of its first fragment")
    fragments: int
    plot_points: int
    character_arcs: int
    characters: list[str]
    updated: str | None


class StoriesOut(BaseModel):
    stories: list[StoryOut]


class OutlineItem(BaseModel):
    id: str
    kind: str = Field(description="fragment, plot_point or character_arc")
    order: int | None
    chapter: str | None
    scene: str | None
    title: str
    characters: list[str]
    creator: str
    time: str | None


class OutlineOut(BaseModel):
    story: str
    items: list[OutlineItem]


class SceneOut(BaseModel):
    story: str
    scene: str
    events: list[EventOut]


class ArcStepOut(BaseModel):
    scene: str
    state: str
    order: int | None = None


class ArcOut(BaseModel):
    story: str
    character: str
    summary: str | None
    steps: list[ArcStepOut]
    plot_points: list[OutlineItem] = Field(
        description="Plot points the character takes part in, in story order"
    )


class CharacterEventsOut(BaseModel):
    character: str
    events: list[EventOut]


class NeighbourOut(BaseModel):
    of: str
    story: str
    index: int = Field(description="0-based place of 'of' in story order")
    total: int
    event: EventOut | None = Field(description="The neighbour; null at either end of the story")


class PartOut(BaseModel):
    title: str
    scenes: list[str] = Field(description="Scene numbers (data.scene) in the part, in order")


class CharacterOut(BaseModel):
    name: str
    aliases: list[str]


class PlotPointOut(BaseModel):
    id: str
    order: int | None
    actor: str | None
    summary: str
    evidence: str | None = Field(description="The verbatim sentence the summary is made of")
    generated: bool = Field(description="True when a model paraphrased the summary")
    scene: str | None
    part: str | None


class StoryOutlineOut(BaseModel):
    story: str
    title: str
    parts: list[PartOut]
    characters: list[CharacterOut]
    plot_points: list[PlotPointOut]


class JourneyOut(BaseModel):
    story: str
    character: CharacterOut
    plot_points: list[PlotPointOut] = Field(description="What they did, in story order")


class AroundOut(BaseModel):
    story: str
    plot_point: PlotPointOut
    before: list[PlotPointOut] = Field(description="The plot points just before, in story order")
    after: list[PlotPointOut] = Field(description="The plot points just after, in story order")


class SceneTextOut(BaseModel):
    story: str
    scene: str
    title: str
    part: str | None
    text: str
    characters: list[CharacterOut] = Field(description="Who is in the scene, with every name they go by")


def _point(e: Event) -> PlotPointOut:
    d = e.data if isinstance(e.data, dict) else {}
    return PlotPointOut(
        id=e.id,
        order=d.get("order"),
        actor=d.get("actor"),
        summary=d.get("summary", ""),
        evidence=d.get("evidence"),
        generated=bool(d.get("generated", False)),
        scene=d.get("scene"),
        part=d.get("part"),
    )


def _cast(events: list[tuple[str, Event]]) -> list[CharacterOut]:
    return [
        CharacterOut(name=e.data["character"], aliases=list(e.data.get("aliases") or []))
        for _, e in events
        if e.type.endswith(".character_arc")
    ]


def _named(cast: list[CharacterOut], name: str) -> CharacterOut | None:
    def norm(n: str) -> str:
        n = n.lower().strip()
        return n[4:] if n.startswith("the ") else n

    want = norm(name)
    return next((c for c in cast if want in {norm(n) for n in [c.name, *c.aliases]}), None)


def _characters(e: Event) -> list[str]:
    d = e.data if isinstance(e.data, dict) else {}
    names = list(d.get("characters") or [])
    for key in ("actor", "character"):
        if isinstance(d.get(key), str) and d[key] not in names:
            names.append(d[key])
    return names


def _key(e: Event) -> tuple[bool, int, str, str]:
    order = e.data.get("order") if isinstance(e.data, dict) else None
    when = e.time.isoformat() if e.time else ""
    return (order is None, order if isinstance(order, int) else 0, when, e.id)


def _item(e: Event) -> OutlineItem:
    d = e.data if isinstance(e.data, dict) else {}
    return OutlineItem(
        id=e.id,
        kind=e.type.rsplit(".", 1)[-1],
        order=d.get("order"),
        chapter=d.get("chapter"),
        scene=d.get("scene"),
        title=title_of(e),
        characters=_characters(e),
        creator=e.creator or "",
        time=e.time.isoformat().replace("+00:00", "Z") if e.time else None,
    )


def _current(found: list[tuple[str, Event]]) -> list[tuple[str, Event]]:
    """Drop revisions that a later one supersedes; story order."""
    replaced = {e.supersedes for _, e in found if e.supersedes}
    return sorted(((t, e) for t, e in found if e.id not in replaced), key=lambda te: _key(te[1]))


def build_story_server(state: HubState) -> MCPServer:
    """The ``creative-hub-story`` MCP server over ``state``."""
    server = state.server(
        "creative-hub-story",
        "Stories in the hub: list them, outline one, read a scene, follow a timeline or a character.",
    )

    async def story_events(story: str) -> list[tuple[str, Event]]:
        ix = await state.fresh()
        found = await ix.events(
            state.caller().identity, f"d.area = 'narrative' AND {STORY} = ?", (story,), limit=MAX_EVENTS
        )
        if not found:
            raise NotFound(f"no story {story!r} (list_stories shows the ones you may read)")
        return _current(found)

    @server.tool()
    @tool_errors
    async def list_stories() -> StoriesOut:
        """Every story you may read, with its counts and characters."""
        ix = await state.fresh()
        found = await ix.events(state.caller().identity, "d.area = 'narrative'", limit=50_000)
        stories: dict[str, list[Event]] = {}
        for _, e in _current(found):
            if isinstance(e.data, dict) and isinstance(e.data.get("story"), str):
                stories.setdefault(e.data["story"], []).append(e)
        out = []
        for story, events in sorted(stories.items()):
            kinds = [e.type.rsplit(".", 1)[-1] for e in events]
            chars = sorted({c for e in events for c in _characters(e)})
            first = next((e for e in events if e.type.endswith(".fragment")), events[0])
            times = [e.time for e in events if e.time]
            out.append(
                StoryOut(
                    story=story,
                    title=title_of(first),
                    fragments=kinds.count("fragment"),
                    plot_points=kinds.count("plot_point"),
                    character_arcs=kinds.count("character_arc"),
                    characters=chars,
                    updated=max(times).isoformat().replace("+00:00", "Z") if times else None,
                )
            )
        return StoriesOut(stories=out)

    @server.tool()
    @tool_errors
    async def outline(story: Story) -> OutlineOut:
        """A story's fragments and plot points in story order (titles, chapters, scenes, characters)."""
        return OutlineOut(story=story, items=[_item(e) for _, e in await story_events(story)])

    @server.tool()
    @tool_errors
    async def scene(story: Story, scene: Annotated[str, Field(min_length=1)]) -> SceneOut:
        """Everything in one scene of a story, with full text, in story order."""
        events = [(t, e) for t, e in await story_events(story) if e.data.get("scene") == scene]
        if not events:
            raise NotFound(f"no scene {scene!r} in story {story!r} (outline lists the scenes)")
        return SceneOut(story=story, scene=scene, events=[event_out(t, e) for t, e in events])

    @server.tool()
    @tool_errors
    async def timeline(story: Story) -> OutlineOut:
        """What happens in a story: its plot points in story order."""
        items = [_item(e) for _, e in await story_events(story) if e.type.endswith(".plot_point")]
        return OutlineOut(story=story, items=items)

    @server.tool()
    @tool_errors
    async def character_arc(story: Story, character: Annotated[str, Field(min_length=1)]) -> ArcOut:
        """A character's arc in a story: the arc's steps and the plot points they take part in."""
        events = await story_events(story)
        name = character.lower()
        arc = next(
            (
                e
                for _, e in reversed(events)
                if e.type.endswith(".character_arc") and e.data["character"].lower() == name
            ),
            None,
        )
        points = [
            _item(e)
            for _, e in events
            if e.type.endswith(".plot_point") and name in {c.lower() for c in _characters(e)}
        ]
        if arc is None and not points:
            raise NotFound(f"no character {character!r} in story {story!r}")
        steps = [ArcStepOut(**s) for s in (arc.data.get("steps", []) if arc else [])]
        return ArcOut(
            story=story,
            character=arc.data["character"] if arc else character,
            summary=arc.data.get("summary") if arc else None,
            steps=steps,
            plot_points=points,
        )

    @server.tool()
    @tool_errors
    async def events_with_character(
        character: Annotated[str, Field(min_length=1)],
        story: Annotated[str | None, Field(description="Only this story")] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 100,
    ) -> CharacterEventsOut:
        """Narrative events involving a character (listed, acting, or the subject of an arc)."""
        ix = await state.fresh()
        where, args = "d.area = 'narrative' AND d.text LIKE ?", ["%" + character + "%"]
        if story:
            where, args = f"{where} AND {STORY} = ?", [*args, story]
        found = await ix.events(state.caller().identity, where, tuple(args), limit=MAX_EVENTS)
        name = character.lower()
        hits = [(t, e) for t, e in _current(found) if name in {c.lower() for c in _characters(e)}]
        return CharacterEventsOut(
            character=character, events=[event_out(t, e, full=False) for t, e in hits[:limit]]
        )

    async def neighbour(event_id: str, step: int) -> NeighbourOut:
        ix = await state.fresh()
        _, _, me = await ix.get(state.caller().identity, event_id)
        story = (
            me.data.get("story")
            if isinstance(me.data, dict) and me.type.startswith("creative.narrative.")
            else None
        )
        if not isinstance(story, str):
            raise NotFound(f"event {event_id!r} is not part of a story")
        events = await story_events(story)
        ids = [e.id for _, e in events]
        if event_id not in ids:
            raise NotFound(f"event {event_id!r} was revised: ask about its newest revision")
        i = ids.index(event_id)
        j = i + step
        other = event_out(*events[j]) if 0 <= j < len(events) else None
        return NeighbourOut(of=event_id, story=story, index=i, total=len(events), event=other)

    @server.tool()
    @tool_errors
    async def next_event(id: Annotated[str, Field(min_length=1)]) -> NeighbourOut:
        """The event after this one in its story (null at the end)."""
        return await neighbour(id, +1)

    @server.tool()
    @tool_errors
    async def previous_event(id: Annotated[str, Field(min_length=1)]) -> NeighbourOut:
        """The event before this one in its story (null at the start)."""
        return await neighbour(id, -1)

    @server.tool()
    @tool_errors
    async def story_outline(story: Story) -> StoryOutlineOut:
        """A story as the narrative pipeline read it: parts, characters + aliases, plot points + evidence."""
        events = await story_events(story)
        parts: list[PartOut] = []
        title = story
        for _, e in events:
            if not e.type.endswith(".fragment"):
                continue
            title = e.data.get("extra", {}).get("story_title", title) if title == story else title
            name = e.data.get("part") or e.data.get("chapter") or title
            if not parts or parts[-1].title != name:
                parts.append(PartOut(title=name, scenes=[]))
            parts[-1].scenes.append(e.data.get("scene") or str(len(parts[-1].scenes) + 1))
        points = [_point(e) for _, e in events if e.type.endswith(".plot_point")]
        return StoryOutlineOut(
            story=story, title=title, parts=parts, characters=_cast(events), plot_points=points
        )

    @server.tool()
    @tool_errors
    async def character_journey(
        story: Story, character: Annotated[str, Field(min_length=1, description="Any name they go by")]
    ) -> JourneyOut:
        """One character's journey: what they did, in story order, found by any of their names."""
        events = await story_events(story)
        who = _named(_cast(events), character)
        if who is None:
            raise NotFound(f"no character {character!r} in story {story!r} (story_outline lists them)")
        points = [
            _point(e)
            for _, e in events
            if e.type.endswith(".plot_point")
            and (e.data.get("actor") == who.name or who.name in str(e.data.get("actor") or "").split(" and "))
        ]
        return JourneyOut(story=story, character=who, plot_points=points)

    @server.tool()
    @tool_errors
    async def around_plot_point(
        id: Annotated[str, Field(min_length=1, description="A plot point's event id")],
        before: Annotated[int, Field(ge=0, le=50)] = 3,
        after: Annotated[int, Field(ge=0, le=50)] = 3,
    ) -> AroundOut:
        """What happened just before and just after a plot point, in story order."""
        ix = await state.fresh()
        _, _, me = await ix.get(state.caller().identity, id)
        story = me.data.get("story") if isinstance(me.data, dict) else None
        if not me.type.endswith(".plot_point") or not isinstance(story, str):
            raise NotFound(f"event {id!r} is not a plot point of a story")
        points = [e for _, e in await story_events(story) if e.type.endswith(".plot_point")]
        ids = [e.id for e in points]
        if id not in ids:
            raise NotFound(f"plot point {id!r} was revised: ask about its newest revision")
        i = ids.index(id)
        return AroundOut(
            story=story,
            plot_point=_point(points[i]),
            before=[_point(e) for e in points[max(0, i - before) : i]],
            after=[_point(e) for e in points[i + 1 : i + 1 + after]],
        )

    @server.tool()
    @tool_errors
    async def scene_text(
        story: Story, scene: Annotated[str, Field(min_length=1, description="The scene number (data.scene)")]
    ) -> SceneTextOut:
        """A scene's text with the characters in it and every name they go by."""
        events = await story_events(story)
        frag = next(
            (e for _, e in events if e.type.endswith(".fragment") and e.data.get("scene") == scene), None
        )
        if frag is None:
            raise NotFound(f"no scene {scene!r} in story {story!r} (story_outline lists the scenes)")
        cast = _cast(events)
        present = []
        for name in frag.data.get("characters") or []:
            present.append(_named(cast, name) or CharacterOut(name=name, aliases=[]))
        return SceneTextOut(
            story=story,
            scene=scene,
            title=frag.data["title"],
            part=frag.data.get("part") or frag.data.get("chapter"),
            text=frag.data.get("text", ""),
            characters=present,
        )

    from .story_insight import register_insights  # morals and flagged gaps (the insight agents)

    register_insights(server, state)
    return server
