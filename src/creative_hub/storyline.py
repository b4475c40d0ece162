"""A story as the storyline view and the insight agents see it: parts, characters, scenes, plot points.

Built from the ``creative.narrative.*`` events of one story that a reader may
see (fragments, plot points, character arcs, insights), revisions resolved::

    line = build("hansel", events)          # events: current or not; superseded ones drop out
    line.characters[0].name, line.scenes[3].characters, line.points[0].evidence
    line.to_dict()                          # the JSON the dashboard draws

The events are read through an adapter so both shapes of narrative events
work: today's (``chapter``, ``summary``) and the outline's extended fields
(``part``, ``evidence``, ``aliases``, ``generated``) when an event carries
them.  ``from_outline`` reads the outline JSON of ``creative-hub story
outline --json`` (``{"parts", "characters", "plot_points"}``) directly.

A *scene* is where characters meet: a fragment (its ``scene`` or its place),
or, for a story told in plot points alone, each plot point's ``scene``.  The
storyline chart draws one line per character through the scenes it is in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .event import Event

__all__ = ["Character", "Point", "Scene", "Storyline", "build", "current", "from_outline"]

MAX_EVIDENCE = 600  # characters of a plot point's evidence kept in the view
MAX_EXCERPT = 400  # characters of a scene's text kept in the view


@dataclass
class Character:
    name: str
    aliases: list[str] = field(default_factory=list)


@dataclass
class Scene:
    key: str  #: the scene's id within the story ("3", or a fragment id)
    title: str
    order: int
    part: str | None = None
    characters: list[str] = field(default_factory=list)
    event: str | None = None  #: the fragment event, if the scene has one
    excerpt: str = ""


@dataclass
class Point:
    id: str  #: the plot point event (or ``outline:<order>`` from an outline)
    order: int
    summary: str
    evidence: str
    actor: str | None = None
    characters: list[str] = field(default_factory=list)
    scene: str | None = None
    part: str | None = None
    generated: bool = False


@dataclass
class Storyline:
    story: str
    title: str
    parts: list[str] = field(default_factory=list)
    characters: list[Character] = field(default_factory=list)
    scenes: list[Scene] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    fragments: dict[str, str] = field(default_factory=dict)  #: fragment id -> its text

    def to_dict(self) -> dict[str, Any]:
        return {
            "story": self.story,
            "title": self.title,
            "parts": [{"title": p} for p in self.parts],
            "characters": [asdict(c) for c in self.characters],
            "scenes": [asdict(s) for s in self.scenes],
            "plot_points": [asdict(p) for p in self.points],
        }

    def canonical(self, name: str | None) -> str | None:
        """The character ``name`` (or one of its aliases) refers to, if any."""
        if not name:
            return None
        low = name.lower()
        for c in self.characters:
            if c.name.lower() == low or low in (a.lower() for a in c.aliases):
                return c.name
        return None


def _data(e: Event) -> Mapping[str, Any]:
    return e.data if isinstance(e.data, Mapping) else {}


def _order(e: Event) -> tuple[bool, int, str, str]:
    o = _data(e).get("order")
    return (
        not isinstance(o, int),
        o if isinstance(o, int) else 0,
        e.time.isoformat() if e.time else "",
        e.id,
    )


def current(events: Iterable[Event]) -> list[Event]:
    """The events no other one supersedes, in story order."""
    found = list(events)
    replaced = {e.supersedes for e in found if e.supersedes}
    return sorted((e for e in found if e.id not in replaced), key=_order)


def _names(value: Any) -> list[str]:
    return [v.strip() for v in value if isinstance(v, str) and v.strip()] if isinstance(value, list) else []


def _extra(d: Mapping[str, Any], key: str) -> Any:
    # The extended schema carries the field itself; older producers put it in ``extra``.
    if key in d:
        return d[key]
    extra = d.get("extra")
    return extra.get(key) if isinstance(extra, Mapping) else None


class _Cast:
    """Characters in first-seen order, aliases merged into one character."""

    def __init__(self) -> None:
        self.chars: list[Character] = []
        self.by_name: dict[str, Character] = {}

    def add(self, name: str, aliases: Iterable[str] = ()) -> str:
        names = [name, *aliases]
        found = next((self.by_name[n.lower()] for n in names if n.lower() in self.by_name), None)
        if found is None:
            found = Character(name)
            self.chars.append(found)
            self.by_name[name.lower()] = found
        for n in names:
            if n.lower() not in self.by_name:
                self.by_name[n.lower()] = found
            if n != found.name and n not in found.aliases:
                found.aliases.append(n)
        return found.name

    def name(self, n: str) -> str:
        c = self.by_name.get(n.lower())
        return c.name if c else self.add(n)

    def find(self, n: str) -> str | None:
        c = self.by_name.get(n.lower())
        return c.name if c else None

    @property
    def known(self) -> set[str]:
        return {c.name for c in self.chars}


def _actor(cast: _Cast, actor: str | None, listed: list[str]) -> str | None:
    """A plot point's actor as a character of the story.

    With the point's ``characters`` given, the actor names one only if the
    cast knows that name or alias: otherwise it is how the sentence put its
    subject ("Hansel and Gretel", "the two of them"), kept as written, never a
    new character.  Without them (a person publishing ``{"actor": "Ida"}``),
    the actor is the character."""
    if not actor:
        return None
    if not listed:
        return cast.name(actor)
    return cast.find(actor) or actor


def build(story: str, events: Iterable[Event]) -> Storyline:
    """The storyline of ``story`` from its narrative events (any order, revisions resolved)."""
    evs = [e for e in current(events) if e.type.startswith("creative.narrative.")]
    cast = _Cast()
    # Declared characters first (arcs, the outline's aliases), so names used later merge into them.
    for e in evs:
        d = _data(e)
        if e.type.endswith(".character_arc") and isinstance(d.get("character"), str):
            cast.add(d["character"], _names(_extra(d, "aliases")))
        for c in d.get("cast") or []:
            if isinstance(c, Mapping) and isinstance(c.get("name"), str):
                cast.add(c["name"], _names(c.get("aliases")))
    line = Storyline(story=story, title=story)
    scenes: dict[str, Scene] = {}

    def scene_for(key: str, title: str | None, part: str | None) -> Scene:
        if key not in scenes:
            scenes[key] = Scene(key=key, title=title or f"Scene {key}", order=len(scenes), part=part)
        sc = scenes[key]
        if part and not sc.part:
            sc.part = part
        return sc

    for e in evs:
        d = _data(e)
        if not e.type.endswith(".fragment"):
            continue
        part = _extra(d, "part") or d.get("chapter")
        key = str(d.get("scene") or (d["order"] + 1 if isinstance(d.get("order"), int) else e.id))
        sc = scene_for(key, d.get("title"), part if isinstance(part, str) else None)
        sc.event = sc.event or e.id
        raw_text = d.get("text")
        text = raw_text if isinstance(raw_text, str) else ""
        sc.excerpt = sc.excerpt or " ".join(text.split())[:MAX_EXCERPT]
        line.fragments[e.id] = text
        for n in _names(d.get("characters")):
            sc.characters.append(cast.name(n))
        title = _extra(d, "story_title")  # a fragment's own title names its scene, not the story
        if isinstance(title, str) and title:
            line.title = title
    for e in evs:
        d = _data(e)
        if not e.type.endswith(".plot_point"):
            continue
        raw_actor = d.get("actor") if isinstance(d.get("actor"), str) and d.get("actor") else None
        listed = [cast.name(n) for n in _names(d.get("characters"))]
        actor = _actor(cast, raw_actor, listed)
        chars = [actor] if actor and actor in cast.known else []
        chars += listed
        part = _extra(d, "part")
        at = d.get("scene")
        pt_scene = scene_for(str(at), None, part if isinstance(part, str) else None) if at else None
        summary = str(d.get("summary") or "")
        evidence = _extra(d, "evidence")
        point = Point(
            id=e.id,
            order=len(line.points),
            summary=summary,
            evidence=(evidence if isinstance(evidence, str) and evidence else summary)[:MAX_EVIDENCE],
            actor=actor,
            characters=list(dict.fromkeys(chars)),
            scene=pt_scene.key if pt_scene else None,
            part=(part if isinstance(part, str) else None) or (pt_scene.part if pt_scene else None),
            generated=bool(_extra(d, "generated")),
        )
        line.points.append(point)
        if pt_scene is not None:
            pt_scene.characters.extend(point.characters)
    for sc in scenes.values():
        sc.characters = list(dict.fromkeys(sc.characters))
    line.scenes = sorted(scenes.values(), key=lambda s: s.order)
    line.parts = list(dict.fromkeys(s.part for s in line.scenes if s.part))
    line.characters = cast.chars
    return line


def from_outline(story: str, outline: Mapping[str, Any], title: str | None = None) -> Storyline:
    """The storyline of an outline (``creative-hub story outline --json``): parts, cast, plot points.

    With no scenes in the outline, each plot point is a scene of its part, so
    the chart still shows who meets whom, point by point."""
    cast = _Cast()
    for c in outline.get("characters") or []:
        if isinstance(c, Mapping) and isinstance(c.get("name"), str):
            cast.add(c["name"], _names(c.get("aliases")))
    parts = [str(p.get("title")) for p in outline.get("parts") or [] if isinstance(p, Mapping)]
    line = Storyline(story=story, title=title or story, parts=parts)
    raw = [p for p in outline.get("plot_points") or [] if isinstance(p, Mapping)]
    raw.sort(key=lambda p: int(p["order"]) if isinstance(p.get("order"), int) else 0)
    for n, p in enumerate(raw):
        raw_actor = p.get("actor") if isinstance(p.get("actor"), str) and p.get("actor") else None
        listed = [cast.name(x) for x in _names(p.get("characters"))]
        actor = _actor(cast, raw_actor, listed)
        chars = ([actor] if actor and actor in cast.known else []) + listed
        part = p.get("part")
        part_title = parts[part] if isinstance(part, int) and 0 <= part < len(parts) else part
        key = str(p.get("scene") or n + 1)
        summary = str(p.get("summary") or "")
        line.points.append(
            Point(
                id=f"outline:{p.get('order', n)}",
                order=n,
                summary=summary,
                evidence=str(p.get("evidence") or summary)[:MAX_EVIDENCE],
                actor=actor,
                characters=list(dict.fromkeys(chars)),
                scene=key,
                part=part_title if isinstance(part_title, str) else None,
                generated=bool(p.get("generated")),
            )
        )
    scenes: dict[str, Scene] = {}
    for pt in line.points:
        sc = scenes.setdefault(
            pt.scene or "", Scene(key=pt.scene or "", title=pt.summary[:60], order=len(scenes))
        )
        sc.part = sc.part or pt.part
        sc.characters = list(dict.fromkeys([*sc.characters, *pt.characters]))
    line.scenes = list(scenes.values())
    line.characters = cast.chars
    return line
