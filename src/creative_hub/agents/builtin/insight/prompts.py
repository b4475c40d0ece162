"""Prompts, JSON schemas and answer parsing of the insight agents.

A prompt shows the story as numbered plot points (``P1``, ``P2`` ...: who
did what, in the story's own words); the schema asks for short fields and
point numbers, so even a 135M model's constrained answer parses, and every
claim maps back to plot point events.  Numbers outside the list, strings
with no word in them and repeats are dropped here, never trusted.

    shown = pick(points, 24)                     # evenly over the story, first and last kept
    prompt = morals_prompt(line, shown)
    findings = parse_morals(reply.data, shown)   # Finding structs with plot point ids and evidence
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ....schemas import Finding
from ....storyline import Point, Storyline

__all__ = [
    "CAUSAL_SCHEMA",
    "CONTINUITY_SCHEMA",
    "MORALS_SCHEMA",
    "causal_prompt",
    "continuity_prompt",
    "morals_prompt",
    "numbered",
    "parse_causal",
    "parse_continuity",
    "parse_morals",
    "pick",
]

MAX_LINE = 160  # characters of one plot point in a prompt
MAX_FRAGMENT = 1500  # characters of a new fragment shown to the continuity check


def _text(max_len: int) -> dict[str, Any]:
    # Short strings: a reply cut at max_tokens is not JSON, so the fields must fit with room to spare.
    return {"type": "string", "minLength": 2, "maxLength": max_len}


def _point() -> dict[str, Any]:
    return {"type": "integer", "minimum": 0}


def _array(items: dict[str, Any], max_items: int, min_items: int = 0) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items, "maxItems": max_items}


def _object(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


MORALS_SCHEMA = _object(
    morals=_array(
        _object(lesson=_text(90), values=_array(_text(20), 3, 1), points=_array(_point(), 3, 1)), 2, 1
    )
)
CAUSAL_SCHEMA = _object(
    checks=_array(_object(point=_point(), needs=_text(70), established_by=_point()), 3, 1),
    setups=_array(_object(point=_point(), note=_text(70)), 2),
)
CONTINUITY_SCHEMA = _object(
    issues=_array(
        _object(
            kind={"type": "string", "enum": ["acts_after_exit", "name_clash", "other"]},
            character=_text(30),
            point=_point(),
            note=_text(80),
        ),
        2,
    )
)


def pick(points: Sequence[Point], limit: int) -> list[Point]:
    """At most ``limit`` plot points spread evenly over the story (first and last always in)."""
    if len(points) <= limit:
        return list(points)
    if limit <= 1:
        return list(points[-1:])
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def _line(p: Point) -> tuple[str, str]:
    who = f" ({p.actor})" if p.actor else ""
    text = " ".join(p.evidence.split())
    return (text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"), who


def numbered(points: Sequence[Point]) -> str:
    """``P1 (Hansel): ...`` one per line."""
    out = []
    for n, p in enumerate(points, 1):
        text, who = _line(p)
        out.append(f"P{n}{who}: {text}")
    return "\n".join(out)


def _cast(line: Storyline) -> str:
    names = [
        c.name + (f" (also {', '.join(c.aliases[:4])})" if c.aliases else "") for c in line.characters[:20]
    ]
    return "; ".join(names) or "not known"


def morals_prompt(line: Storyline, shown: Sequence[Point]) -> str:
    return (
        f"Story: {line.title}\nCharacters: {_cast(line)}\nWhat happens, in order:\n{numbered(shown)}\n\n"
        "What lesson does this story teach? Give one or two morals. For each: the lesson in one short "
        "sentence, up to three values it holds up (single words like courage, honesty, kindness), and "
        "the numbers of the plot points (P numbers) that carry it."
    )


def causal_prompt(line: Storyline, shown: Sequence[Point]) -> str:
    return (
        f"Story: {line.title}\nWhat happens, in order:\n{numbered(shown)}\n\n"
        "Check the causes. Pick up to three key plot points. For each: its number, what must already be "
        "true for it to happen (one short phrase), and the number of the EARLIER plot point that "
        "establishes it, or 0 if nothing earlier does. Then list setups that are never paid off "
        "(plot point number and a short note), if any."
    )


def continuity_prompt(line: Storyline, shown: Sequence[Point], fragment: str) -> str:
    text = " ".join(fragment.split())[:MAX_FRAGMENT]
    return (
        f"Story so far: {line.title}\nCharacters: {_cast(line)}\nWhat happened, in order:\n"
        f"{numbered(shown) or '(nothing yet)'}\n\nNew passage:\n{text}\n\n"
        "Does the new passage contradict the story so far? Look for a character who acts after they "
        "left or died (acts_after_exit), or one name used for two different characters (name_clash). "
        "For each problem: its kind, the character, the number of the earlier plot point it "
        "contradicts (0 if none) and a short note. An empty list if there is no problem."
    )


def _items(data: Any, key: str) -> list[dict[str, Any]]:
    found = data.get(key) if isinstance(data, dict) else None
    return [x for x in found if isinstance(x, dict)] if isinstance(found, list) else []


_WORD = re.compile(r"[^\W\d_]{2}")  # two letters in a row, in any script
_LIST_MARK = re.compile(r"^\W*(?:\d+\W*)?|\W+$")  # "#1. " before a value, "," after it


def _str(x: Any, limit: int = 200) -> str:
    """A reply's text field, spaces folded; "" when it holds no word ("[{", "20", "--"):
    the schema makes a small model's reply parse, not its strings mean something."""
    text = " ".join(x.split())[:limit] if isinstance(x, str) else ""
    return text if _WORD.search(text) else ""


def _values(raw: Any) -> list[str]:
    """Single values from a reply's list ("#1. courage, honesty" -> courage, honesty)."""
    out: list[str] = []
    for x in raw if isinstance(raw, list) else []:
        for part in _str(x, 120).split(","):
            v = _str(_LIST_MARK.sub("", part.strip()), 40).lower()
            if v and v not in out:
                out.append(v)
    return out


def _pt(n: Any, shown: Sequence[Point]) -> Point | None:
    return shown[n - 1] if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= len(shown) else None


def parse_morals(data: Any, shown: Sequence[Point]) -> list[Finding]:
    out: list[Finding] = []
    for m in _items(data, "morals"):
        lesson = _str(m.get("lesson"))
        pts = [p for p in (_pt(n, shown) for n in m.get("points") or []) if p is not None]
        pts = list({p.id: p for p in pts}.values())
        if not lesson or any(f.statement == lesson for f in out):
            continue
        values = _values(m.get("values"))
        out.append(
            Finding(
                statement=lesson,
                plot_points=[p.id for p in pts],
                evidence=[p.evidence for p in pts],
                values=values[:5],
            )
        )
    return out


def parse_causal(data: Any, shown: Sequence[Point]) -> list[Finding]:
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for c in _items(data, "checks"):
        p, needs = _pt(c.get("point"), shown), _str(c.get("needs"))
        if p is None or not needs or (p.id, needs) in seen:
            continue
        seen.add((p.id, needs))
        by = _pt(c.get("established_by"), shown)
        earlier = by is not None and by.order < p.order
        pts = [p, by] if earlier and by is not None else [p]
        out.append(
            Finding(
                statement=f"P{shown.index(p) + 1} needs: {needs}",
                plot_points=[x.id for x in pts],
                evidence=[x.evidence for x in pts],
                established=earlier,
                flag=None if earlier else "unexplained_turn",
                character=p.actor,
            )
        )
    for s in _items(data, "setups"):
        p, note = _pt(s.get("point"), shown), _str(s.get("note"))
        if p is None or not note:
            continue
        out.append(
            Finding(
                statement=f"P{shown.index(p) + 1} sets up something never paid off: {note}",
                plot_points=[p.id],
                evidence=[p.evidence],
                flag="unresolved_setup",
                character=p.actor,
            )
        )
    return out


def parse_continuity(data: Any, shown: Sequence[Point], fragment_excerpt: str) -> list[Finding]:
    out: list[Finding] = []
    for i in _items(data, "issues"):
        kind, who, note = _str(i.get("kind"), 40), _str(i.get("character"), 80), _str(i.get("note"))
        if kind not in ("acts_after_exit", "name_clash", "other") or not (note or who):
            continue
        p = _pt(i.get("point"), shown)
        evidence = [fragment_excerpt] + ([p.evidence] if p else [])
        out.append(
            Finding(
                statement=note or f"{kind.replace('_', ' ')}: {who}",
                plot_points=[p.id] if p else [],
                evidence=[e for e in evidence if e],
                flag=kind,
                character=who or None,
            )
        )
    return out
