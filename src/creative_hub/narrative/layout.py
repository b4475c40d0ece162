"""Layout of a story file: its title, parts and scenes, before any language processing.

Parts are the sub-stories a tale is told in:

- plain text: numbered headings (``1. HOW THEY WENT TO THE MOUNTAINS``),
  ordinal ones (``FIRST STORY``, ``PART TWO``, ``CHAPTER III``) and short
  capitalised lines standing alone between paragraphs; the first such line
  of the file is its title, not a part;
- Markdown: ``##`` headings (``#`` is the title when there is one); ``###``
  under them are scenes;
- Fountain: acts (``# ACT ONE`` sections); scene headings
  (``INT.`` / ``EXT.`` / ``.FORCED``) are scenes.

A part's scenes are its paragraphs (prose) or its scene headings.  Every
scene keeps ``start``/``end`` offsets into the text, so what the pipeline
quotes as evidence is always the file's own words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Layout", "PartLayout", "SceneLayout", "lay_out"]

MAX_HEADING = 120  # characters: a longer line is prose, not a heading
ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "one two three four five six seven eight nine ten eleven twelve"
).split()
_NUMBERED = re.compile(r"^\s*(?:\d{1,3}|[IVXLC]{1,6})[.)]\s+\S")
_ORDINAL = re.compile(
    r"^\s*(?:(?:" + "|".join(ORDINALS) + r")\s+(?:story|part|tale|book|chapter)"
    r"|(?:part|book|chapter|story)\s+(?:\d{1,3}|[IVXLC]{1,6}|" + "|".join(ORDINALS) + r"))\b",
    re.I,
)
_SCENE_HEADING = re.compile(r"^(?:\.(?!\.)|(?:INT|EXT|EST|INT\./EXT|INT/EXT|I/E)[. ])", re.I)
_PARA = re.compile(r"\n[ \t]*\n")


@dataclass
class SceneLayout:
    """One scene: a paragraph of prose, a Markdown ``###`` section, a Fountain scene."""

    title: str
    start: int  #: offset of its text in the story's text
    end: int
    cues: list[str] = field(default_factory=list)  #: Fountain character cues, in order


@dataclass
class PartLayout:
    title: str
    scenes: list[SceneLayout] = field(default_factory=list)


@dataclass
class Layout:
    title: str
    text: str  #: the text the offsets point into (line ends normalised)
    parts: list[PartLayout]
    author: str | None = None
    titled: bool = False  #: the title comes from the text itself, not from the file name
    kind: str = "prose"  #: prose, markdown or fountain
    #: Fountain only: (start, end, speaker) of each dialogue block
    dialogue: list[tuple[int, int, str]] = field(default_factory=list)


def lay_out(text: str, suffix: str, fallback_title: str) -> Layout:
    """The layout of a story file by its kind (``.md``, ``.fountain``, anything else: plain text)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if suffix in (".md", ".markdown"):
        return _markdown(text, fallback_title)
    if suffix in (".fountain", ".spmd"):
        return _fountain(text, fallback_title)
    return _plain(text, fallback_title)


def _paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) of each paragraph in text[start:end], trimmed of blank space."""
    out: list[tuple[int, int]] = []
    pos = start
    for m in _PARA.finditer(text, start, end):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, end))
    trimmed = []
    for a, b in out:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            trimmed.append((a, b))
    return trimmed


def _is_heading(line: str) -> bool:
    """A short line standing alone that names a part: numbered, ordinal, or in capitals."""
    s = line.strip()
    if "\n" in s or len(s) > MAX_HEADING or not s or s[-1] in ",;:" or any(q in s for q in '‘’“”"'):
        return False
    if _NUMBERED.match(s) or _ORDINAL.match(s):
        return True
    letters = [c for c in s if c.isalpha()]
    return len(letters) >= 4 and all(c.isupper() for c in letters) and s[-1] not in ".!?"


def _scenes_of(text: str, start: int, end: int) -> list[SceneLayout]:
    """Paragraphs as scenes; an indented verse or a paragraph going on in lower case joins the one before."""
    scenes: list[SceneLayout] = []
    for a, b in _paragraphs(text, start, end):
        line_start = text.rfind("\n", 0, a) + 1
        indented = a > line_start and text[line_start:a].strip() == ""
        if scenes and (indented or text[a].islower()):
            scenes[-1].end = b
            continue
        scenes.append(SceneLayout(title="", start=a, end=b))
    return scenes


def _plain(text: str, fallback: str) -> Layout:
    paras = _paragraphs(text, 0, len(text))
    title, titled = fallback, False
    if (
        paras
        and _is_heading(text[paras[0][0] : paras[0][1]])
        or (
            paras
            and len(text[paras[0][0] : paras[0][1]]) < 100
            and "\n" not in text[paras[0][0] : paras[0][1]]
            and not text[paras[0][0] : paras[0][1]].rstrip().endswith((".", "!", "?", "’", "”", '"'))
        )
    ):
        first = text[paras[0][0] : paras[0][1]].strip()
        title, titled = (first.title() if first.isupper() else first), True
        paras = paras[1:]
    body_start = paras[0][0] if paras else len(text)
    heads = [(a, b) for a, b in paras if _is_heading(text[a:b])]
    parts: list[PartLayout] = []
    if not heads:
        parts.append(PartLayout(title, _scenes_of(text, body_start, len(text))))
    else:
        if heads[0][0] > body_start:  # a prologue before the first numbered part
            parts.append(PartLayout(title, _scenes_of(text, body_start, heads[0][0])))
        for i, (a, b) in enumerate(heads):
            nxt = heads[i + 1][0] if i + 1 < len(heads) else len(text)
            scenes = _scenes_of(text, b, nxt)
            if scenes:
                parts.append(PartLayout(re.sub(r"\s+", " ", text[a:b]).strip(), scenes))
    _name_scenes(parts)
    return Layout(title, text, [p for p in parts if p.scenes], titled=titled)


def _name_scenes(parts: list[PartLayout]) -> None:
    n = 0
    for p in parts:
        for sc in p.scenes:
            n += 1
            if not sc.title:
                sc.title = f"{p.title} ({n})"


def _markdown(text: str, fallback: str) -> Layout:
    author = None
    title, titled = fallback, False
    body = 0
    m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    if m:  # YAML-ish front matter: only title and author are read
        for line in m.group(1).splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "author":
                author = value.strip().strip("\"'")
            if key.strip().lower() == "title":
                title, titled = value.strip().strip("\"'"), True
        body = m.end()
    heads = [
        (len(h.group(1)), h.group(2).strip(), h.start(), h.end())
        for h in re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M).finditer(text, body)
    ]
    if not heads:
        lay = _plain(text[body:], title)
        return _shifted(lay, text, body, author, titled or lay.titled, "markdown")
    levels = sorted({lvl for lvl, *_ in heads})
    top = None
    if levels[0] == 1 and sum(1 for h in heads if h[0] == 1) == 1:
        top = next(h for h in heads if h[0] == 1)
        title, titled = top[1], True
        levels = levels[1:]
        heads = [h for h in heads if h is not top]
    part_level = levels[0] if levels else None
    scene_level = levels[1] if len(levels) >= 2 else None
    parts: list[PartLayout] = []
    first_part = next((h[2] for h in heads if h[0] == part_level), len(text))
    start = top[3] if top and top[2] < first_part else body
    if text[start:first_part].strip():  # a prologue before the first part
        parts.append(PartLayout(title, _scenes_of(text, start, first_part)))
    for i, (lvl, name, _, end) in enumerate(heads):
        if lvl != part_level:
            continue
        stop = next((h[2] for h in heads[i + 1 :] if h[0] <= lvl), len(text))
        part = PartLayout(name)
        inner = [h for h in heads[i + 1 :] if h[2] < stop and h[0] == scene_level]
        lead = inner[0][2] if inner else stop
        if text[end:lead].strip():
            a, b = _trim(text, end, lead)
            part.scenes.append(SceneLayout(title=name, start=a, end=b))
            if not inner:  # no scene headings: the part's paragraphs are its scenes
                part.scenes = _scenes_of(text, end, stop)
        for j, (_, sname, _, send) in enumerate(inner):
            snext = inner[j + 1][2] if j + 1 < len(inner) else stop
            a, b = _trim(text, send, snext)
            if a < b:
                part.scenes.append(SceneLayout(title=sname, start=a, end=b))
        parts.append(part)
    _name_scenes(parts)
    return Layout(title, text, [p for p in parts if p.scenes], author, titled, "markdown")


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _shifted(lay: Layout, text: str, by: int, author: str | None, titled: bool, kind: str) -> Layout:
    for p in lay.parts:
        for sc in p.scenes:
            sc.start += by
            sc.end += by
    return Layout(lay.title, text, lay.parts, author, titled, kind)


def _fountain(text: str, fallback: str) -> Layout:
    title, author, titled = fallback, None, False
    pos = 0
    if re.match(r"^[A-Za-z ]+:", text):  # title page, up to the first blank line
        end = text.find("\n\n")
        end = len(text) if end < 0 else end
        for line in text[:end].split("\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "title" and value.strip():
                title, titled = value.strip(), True
            elif key.strip().lower() in ("author", "authors") and value.strip():
                author = value.strip()
        pos = end
    parts: list[PartLayout] = []
    dialogue: list[tuple[int, int, str]] = []
    lines: list[tuple[int, str]] = []
    for m in re.finditer(r"[^\n]*", text[pos:]):
        if m.start() == 0 or text[pos + m.start() - 1] == "\n":
            lines.append((pos + m.start(), m.group(0)))
    prev_blank = True
    scene: SceneLayout | None = None
    speaker: str | None = None
    for i, (at, line) in enumerate(lines):
        s = line.strip()
        if prev_blank and re.match(r"^#(?!#)\s*\S", s):  # an act
            parts.append(PartLayout(s.lstrip("#").strip()))
            scene, speaker = None, None
        elif prev_blank and _SCENE_HEADING.match(s):
            if not parts:
                parts.append(PartLayout(title))
            scene = SceneLayout(title=s.lstrip(".").strip(), start=at + len(line), end=at + len(line))
            parts[-1].scenes.append(scene)
            speaker = None
        elif scene is not None and s:
            nxt = lines[i + 1][1].strip() if i + 1 < len(lines) else ""
            cue = re.sub(r"\s*\(.*?\)\s*$", "", s).lstrip("@").rstrip("^").strip()
            if prev_blank and nxt and (s.isupper() or s.startswith("@")) and not s.endswith(":") and cue:
                speaker = cue.title()
                if speaker not in scene.cues:
                    scene.cues.append(speaker)
            elif speaker is not None and not (s.startswith("(") and s.endswith(")")):
                if dialogue and dialogue[-1][2] == speaker and dialogue[-1][1] >= at - 1:
                    dialogue[-1] = (dialogue[-1][0], at + len(line), speaker)
                else:
                    dialogue.append((at + line.index(s[0]), at + len(line.rstrip()), speaker))
            scene.end = at + len(line)
        if not s:
            speaker = None
        prev_blank = not s
    for p in parts:
        for sc in p.scenes:
            sc.start, sc.end = _trim(text, sc.start, sc.end)
    parts = [p for p in parts if any(sc.end > sc.start for sc in p.scenes)]
    for p in parts:
        p.scenes = [sc for sc in p.scenes if sc.end > sc.start]
    return Layout(title, text, parts, author, titled, "fountain", dialogue)
