"""The storyline (``creative_hub.storyline``) built from narrative events: who gets a line.

The chart draws one line per character of the storyline, so its cast must be
the story's characters: the ones declared (arcs with their aliases), the ones
fragments list, and a plot point's actor only when it names one of them or the
point lists no characters at all (a person publishing ``{"actor": "Ida"}``).
"""

from __future__ import annotations

from typing import Any

from creative_hub.event import Event
from creative_hub.storyline import build, from_outline

STORY = "frog-king"


def ev(kind: str, **data: Any) -> Event:
    return Event(type=f"creative.narrative.{kind}", subject=f"story:{STORY}", data={"story": STORY, **data})


def names(line: Any) -> list[str]:
    return [c.name for c in line.characters]


def test_a_group_actor_is_not_one_more_character() -> None:
    events = [
        ev("character_arc", character="Ida", aliases=["princess"]),
        ev("character_arc", character="Frog", aliases=["frog"]),
        ev("fragment", title="At the well", text="...", order=0, scene="1", characters=["Ida", "Frog"]),
        # The outline's actor is the sentence's subject; its characters are who that is.
        ev("plot_point", summary="Ida and the frog went home", actor="Ida and the frog",
           characters=["Ida", "Frog"], scene="1"),
        ev("plot_point", summary="the princess wept", actor="princess", characters=["Ida"], scene="1"),
    ]  # fmt: skip
    line = build(STORY, events)
    assert names(line) == ["Ida", "Frog"]
    group, alias = line.points
    assert group.actor == "Ida and the frog" and group.characters == ["Ida", "Frog"]
    assert alias.actor == "Ida" and alias.characters == ["Ida"]
    assert all(set(s.characters) <= {"Ida", "Frog"} for s in line.scenes)


def test_an_actor_alone_is_a_character() -> None:
    """A live story: plot points that name an actor and nothing else still put it on the chart."""
    line = build(STORY, [ev("plot_point", summary="The king spoke.", actor="King", scene="2")])
    assert names(line) == ["King"]
    assert line.points[0].characters == ["King"] and line.scenes[0].characters == ["King"]


def test_revisions_resolved_and_characters_merged_by_alias() -> None:
    first = ev("fragment", title="At the well", text="old", order=0, scene="1", characters=["Ida"])
    second = Event(
        type=first.type, subject=first.subject, supersedes=first.id,
        data={**first.data, "text": "new", "characters": ["Ida", "frog"]},
    )  # fmt: skip
    line = build(STORY, [ev("character_arc", character="Frog", aliases=["frog"]), second, first])
    assert [s.excerpt for s in line.scenes] == ["new"]
    assert names(line) == ["Frog", "Ida"] and line.scenes[0].characters == ["Ida", "Frog"]


def test_from_outline_keeps_the_outlines_cast() -> None:
    outline = {
        "parts": [{"title": "One"}],
        "characters": [{"name": "Hansel", "aliases": ["boy"]}, {"name": "Gretel", "aliases": []}],
        "plot_points": [
            {"order": 0, "actor": "Hansel and Gretel", "summary": "They sat by the fire",
             "characters": ["Hansel", "Gretel"], "part": 0, "scene": 1},
            {"order": 1, "actor": "boy", "summary": "The boy slept", "characters": ["Hansel"], "part": 0},
        ],
    }  # fmt: skip
    line = from_outline("hg", outline)
    assert names(line) == ["Hansel", "Gretel"]
    assert [p.actor for p in line.points] == ["Hansel and Gretel", "Hansel"]
    assert line.points[0].part == "One"
