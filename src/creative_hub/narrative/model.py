"""The outline of a story as typed objects: parts, scenes, characters, plot points.

``Outline.to_dict()`` is the JSON that ``creative-hub story outline --json``
prints and that ``ingest story`` publishes piece by piece:

    {"title", "parts": [{"title", "scenes": [{"title", "order", "characters"}]}],
     "characters": [{"name", "aliases", "mentions", "speaks", "gender"}],
     "plot_points": [{"order", "actor", "summary", "evidence", "generated",
                      "part", "scene", "action", "speech", "characters"}]}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Character", "Outline", "Part", "PlotPoint", "Scene"]


@dataclass
class Scene:
    """A scene: a paragraph of prose, a Markdown ``###`` section or a Fountain scene."""

    order: int  #: 0-based, across the whole story
    part: int  #: index of its part
    title: str
    text: str  #: verbatim
    start: int  #: offset of ``text`` in the story's text
    characters: list[str] = field(default_factory=list)  #: canonical names, in order of appearance


@dataclass
class Part:
    """A sub-story ("1. HOW THEY WENT ...", "FIRST STORY", a Markdown ``##``, a Fountain act)."""

    order: int
    title: str
    scenes: list[Scene] = field(default_factory=list)


@dataclass
class Character:
    """Someone who acts, speaks or is addressed, with every name they go by."""

    name: str  #: the name used most (a proper name when they have one)
    aliases: list[str]  #: the other names, most used first
    mentions: int = 0  #: times named or referred to by a pronoun, outside quoted speech
    speaks: int = 0  #: quoted turns attributed to them
    gender: str | None = None  #: "he", "she" or "they" by the pronouns the text uses

    def names(self) -> list[str]:
        return [self.name, *self.aliases]


@dataclass
class PlotPoint:
    """Who did what, in story order, with the sentence it comes from."""

    order: int
    actor: str | None  #: canonical name of who acts or speaks (None: nobody known)
    summary: str  #: the evidence's own words (unless ``generated``), at most 30
    evidence: str  #: the verbatim sentence or clause
    part: int
    scene: int  #: scene order
    action: str | None = None  #: the verb's lemma
    speech: bool = False  #: a quoted turn, attributed to ``actor``
    characters: list[str] = field(default_factory=list)  #: everyone named in the evidence
    generated: bool = False  #: a model's paraphrase (never, for the rule-based pipeline)


@dataclass
class Outline:
    title: str
    parts: list[Part]
    characters: list[Character]
    plot_points: list[PlotPoint]
    author: str | None = None  #: from Markdown front matter or a Fountain title page
    titled: bool = False  #: the title comes from the text itself, not from the file name

    @property
    def scenes(self) -> list[Scene]:
        return [sc for p in self.parts for sc in p.scenes]

    def character(self, name: str) -> Character | None:
        """The character going by ``name`` (any alias, any case, with or without "the")."""
        want = _norm(name)
        return next((c for c in self.characters if want in {_norm(n) for n in c.names()}), None)

    def journey(self, name: str) -> list[PlotPoint]:
        """What one character did, in story order (their event chain)."""
        ch = self.character(name)
        return [p for p in self.plot_points if ch and p.actor == ch.name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "parts": [
                {
                    "title": p.title,
                    "order": p.order,
                    "scenes": [
                        {"title": s.title, "order": s.order, "characters": s.characters} for s in p.scenes
                    ],
                }
                for p in self.parts
            ],
            "characters": [asdict(c) for c in self.characters],
            "plot_points": [asdict(p) for p in self.plot_points],
        }


def _norm(name: str) -> str:
    s = name.replace("’", "'").lower().strip(" .,;:!?'\"")
    for article in ("the ", "a ", "an "):
        if s.startswith(article):
            s = s[len(article) :]
    return " ".join(s.split())
