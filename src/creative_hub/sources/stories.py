"""Stories: plain text, Markdown and Fountain files turned into narrative events, offline.

A deterministic extractor (no model, same output every run):

- **scenes**: Markdown headings (``#`` title, ``##`` chapters, ``###`` scenes;
  with no ``###`` the ``##`` headings are the scenes), Fountain scene headings
  (``INT.`` / ``EXT.`` / ``.FORCED``), paragraphs of plain text;
- **characters**: Fountain character cues; in prose, capitalised names seen at
  least twice (capitalised mid-sentence, or never written in lower case) and
  role nouns ("the witch") seen at least twice;
- **plot points**: "who did what" clauses — a character followed by a verb in
  the past tense, outside quoted speech — in story order, each linked to the
  one before (a narrative chain) and to its scene;
- **character arcs**: per character, the scenes they are in, with what they do there.

Each scene is a ``fragment``; then ``plot_point`` and ``character_arc`` events.
Ids come from the story id, the position and the file's content hash, so a
re-run adds nothing and an edit adds a new revision.  A file in a git
repository, unchanged since its last commit, links to that commit.

    StorySource([Path("stories/")], owner="alice")
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..event import Event, derive_id
from ..schemas import ArcStep, CharacterArc, Fragment, PlotPoint
from .base import Item, ItemError, Principals, commit_id, link, make_event, slug

__all__ = ["Scene", "StorySource", "extract", "parse_story"]

MAX_POINTS_PER_SCENE = 4  # the first few actions carry a scene; the rest is texture
MAX_TEXT = 50_000  # characters of a scene kept in its fragment event
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".fountain", ".spmd", ""}

ROLES = (
    "old woman",
    "wood-cutter",
    "woodcutter",
    "stepmother",
    "witch",
    "wife",
    "husband",
    "father",
    "mother",
    "woman",
    "man",
    "king",
    "queen",
    "prince",
    "princess",
    "huntsman",
    "hunter",
    "wolf",
    "giant",
    "dwarf",
    "miller",
    "soldier",
    "fisherman",
    "duck",
    "fox",
    "bird",
    "keeper",
    "captain",
    "doctor",
    "stranger",
    "servant",
    "maid",
    "cook",
    "priest",
    "knight",
    "dragon",
)
NOT_NAMES = {
    "I",
    "The",
    "A",
    "An",
    "And",
    "But",
    "Then",
    "When",
    "Now",
    "O",
    "Oh",
    "Ah",
    "He",
    "She",
    "It",
    "They",
    "We",
    "You",
    "His",
    "Her",
    "Their",
    "There",
    "This",
    "That",
    "What",
    "How",
    "Why",
    "Where",
    "God",
    "Lord",
    "Heaven",
    "Mr",
    "Mrs",
    "Miss",
    "Sir",
    "Madam",
    "So",
    "No",
    "Yes",
    "If",
    "As",
    "At",
    "In",
    "On",
    "Of",
    "To",
    "For",
    "With",
    "Not",
    "All",
    "One",
    "Two",
    "Come",
    "Get",
    "Be",
    "Do",
    "Let",
}
IRREGULAR = set(
    "said went came took gave ran saw began fell got made put found thought stood sat ate drank brought "
    "led left told lay threw knew held struck spoke heard kept caught rose slept woke awoke crept wept "
    "stole shut sprang flew swam met sent built bought sought fought taught felt hid bit broke chose "
    "drew drove forgot froze grew hung let lit lost meant paid read rode rang sang sank shook shot shone "
    "slid spun spread stuck stung swept swore swung tore understood won wound wrote was were had did "
    "became".split()
)
SPEECH = {"said", "answered", "replied", "cried", "asked", "called", "whispered", "shouted", "exclaimed"}
_QUOTE = re.compile(r"‘[^‘]*?’(?![a-z])|“[^“]*?”|\"[^\"]*?\"", re.S)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+")


@dataclass
class Scene:
    """One scene as the parser found it."""

    title: str
    text: str
    chapter: str | None = None
    cues: list[str] = field(default_factory=list)  #: Fountain character cues


@dataclass
class Story:
    title: str
    scenes: list[Scene]
    author: str | None = None


# -- parsing -------------------------------------------------------------------
def parse_story(text: str, suffix: str, fallback_title: str) -> Story:
    """Scenes of a story file by its kind (``.md``, ``.fountain``, anything else: plain text)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if suffix in (".md", ".markdown"):
        return _markdown(text, fallback_title)
    if suffix in (".fountain", ".spmd"):
        return _fountain(text, fallback_title)
    return _plain(text, fallback_title)


def _plain(text: str, fallback: str) -> Story:
    paras = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    title = fallback
    if paras and len(paras[0]) < 100 and not paras[0].endswith((".", "!", "?")):
        first = paras.pop(0)
        title = first.title() if first.isupper() else first
    scenes = [Scene(title=f"{title} ({i})", text=p) for i, p in enumerate(paras, 1)]
    return Story(title, scenes)


def _markdown(text: str, fallback: str) -> Story:
    author = None
    m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    if m:  # YAML-ish front matter: only title and author are read
        for line in m.group(1).splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "author":
                author = value.strip().strip("\"'")
            if key.strip().lower() == "title":
                fallback = value.strip().strip("\"'")
        text = text[m.end() :]
    heads = [
        (len(h.group(1)), h.group(2).strip(), h.start(), h.end())
        for h in re.finditer(r"^(#{1,6})\s+(.+?)\s*#*\s*$", text, re.M)
    ]
    title = fallback
    levels = sorted({lvl for lvl, *_ in heads})
    if levels and levels[0] == 1 and sum(1 for h in heads if h[0] == 1) == 1:
        title = next(h[1] for h in heads if h[0] == 1)
        levels = levels[1:]
    scene_level = levels[1] if len(levels) >= 2 else levels[0] if levels else 0
    chapter_level = levels[0] if len(levels) >= 2 else None
    scenes: list[Scene] = []
    chapter = None
    for i, (lvl, name, _, end) in enumerate(heads):
        nxt = heads[i + 1][2] if i + 1 < len(heads) else len(text)
        if lvl == chapter_level:
            chapter = name
        body = text[end:nxt].strip()
        if lvl == scene_level and body:
            scenes.append(Scene(title=name, text=_squash(body), chapter=chapter))
        elif lvl == chapter_level and body and scene_level != chapter_level:
            # Text under a chapter heading before its first scene is a scene of its own.
            scenes.append(Scene(title=name, text=_squash(body), chapter=chapter))
    if not heads and text.strip():
        return _plain(text, title)
    return Story(title, scenes, author)


def _squash(body: str) -> str:
    return "\n\n".join(re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", body) if p.strip())


_SCENE_HEADING = re.compile(r"^(?:\.(?!\.)|(?:INT|EXT|EST|INT\./EXT|INT/EXT|I/E)[. ])", re.I)


def _fountain(text: str, fallback: str) -> Story:
    title, author = fallback, None
    lines = text.split("\n")
    if lines and re.match(r"^[A-Za-z ]+:", lines[0]):  # title page, up to the first blank line
        while lines and lines[0].strip():
            key, _, value = lines.pop(0).partition(":")
            if key.strip().lower() == "title" and value.strip():
                title = value.strip()
            elif key.strip().lower() in ("author", "authors") and value.strip():
                author = value.strip()
    scenes: list[Scene] = []
    current: Scene | None = None
    prev_blank = True
    for i, line in enumerate(lines):
        s = line.strip()
        if prev_blank and _SCENE_HEADING.match(s):
            current = Scene(title=s.lstrip(".").strip(), text="")
            scenes.append(current)
        elif current is not None and s:
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            cue = re.sub(r"\s*\(.*?\)\s*$", "", s).lstrip("@").strip()
            if prev_blank and nxt and (s.isupper() or s.startswith("@")) and not s.endswith(":") and cue:
                if cue not in current.cues:
                    current.cues.append(cue.title())
                current.text += f"\n\n{cue.title()}:"
            else:
                current.text += (" " if current.text and not prev_blank else "\n\n") + s
        prev_blank = not s
    for sc in scenes:
        sc.text = sc.text.strip()
    return Story(title, [sc for sc in scenes if sc.text], author)


# -- extraction ----------------------------------------------------------------
@dataclass
class Point:
    scene: int
    actor: str
    action: str
    summary: str
    characters: list[str]


def _characters(story: Story) -> list[str]:
    text = "\n".join(sc.text for sc in story.scenes)
    found: dict[str, int] = {}
    for sc in story.scenes:
        for cue in sc.cues:
            found[cue] = found.get(cue, 0) + 2
    mid_sentence: set[str] = set()
    for m in re.finditer(r"\b([A-Z][a-z]{2,})\b", text):
        name = m.group(1)
        if name in NOT_NAMES:
            continue
        found[name] = found.get(name, 0) + 1
        before = text[max(0, m.start() - 3) : m.start()]
        if not re.search(r"[.!?‘’“”\"\n]\s*$|^\s*$", before):
            mid_sentence.add(name)
    cued = {c for sc in story.scenes for c in sc.cues}
    # A name is capitalised mid-sentence, or never written in lower case ("Early" is, "Mara" is not).
    names = [
        n
        for n, c in found.items()
        if c >= 2 and (n in mid_sentence or n in cued or not re.search(rf"\b{n.lower()}\b", text))
    ]
    low = text.lower()
    for role in ROLES:
        hits = len(re.findall(rf"\b(?:the|his|her|their) {re.escape(role)}\b", low))
        taken = any(role in other and role != other and f"the {other}" in low for other in ROLES)
        if hits >= 2 and not (taken and hits <= 2):
            names.append(f"the {role}")
    return names


def _mentions(text: str, names: list[str]) -> list[str]:
    low = text.lower()
    out = []
    for n in names:
        pat = rf"\b{re.escape(n.lower())}\b" if n.startswith("the ") else rf"\b{re.escape(n)}\b"
        hay = low if n.startswith("the ") else text
        if re.search(pat, hay) and not any(
            n != o
            and n in o
            and re.search(rf"\b{re.escape(o.lower())}\b", low)
            and low.count(n.lower()) == low.count(o.lower())
            for o in names
        ):
            out.append(n)
    return out


def _is_verb(word: str) -> bool:
    w = word.lower()
    return w in IRREGULAR or (w.endswith("ed") and len(w) > 3)


def extract(story: Story) -> tuple[list[str], list[list[str]], list[Point]]:
    """(characters, characters per scene, plot points in story order)."""
    names = _characters(story)
    present = [_mentions(sc.text, names) for sc in story.scenes]
    points: list[Point] = []
    alternatives = "|".join(
        (rf"[Tt]he {re.escape(n[4:])}" if n.startswith("the ") else re.escape(n))
        for n in sorted(names, key=len, reverse=True)
    )
    if not alternatives:
        return names, present, points
    actor_re = re.compile(rf"\b({alternatives})\b(?:\s+(?:and\s+\w+|\w+ly|also|then|now|at once))?\s+(\w+)")
    for i, sc in enumerate(story.scenes):
        narration = _QUOTE.sub(" ", sc.text)
        found = 0
        for sentence in _SENTENCE.split(narration):
            for m in actor_re.finditer(sentence):
                verb = m.group(2)
                if not _is_verb(verb) or verb.lower() in SPEECH:
                    continue
                actor = m.group(1)
                actor = actor if actor in names else "the " + actor[4:].lower()
                clause = re.split(r"[.;:!?]", sentence[m.start() :])[0]
                clause = re.sub(r"\s+", " ", clause).strip(" ,")[:200]
                points.append(Point(i, actor, verb.lower(), clause, _mentions(clause, names) or [actor]))
                found += 1
                break  # one point per sentence: its first actor
            if found >= MAX_POINTS_PER_SCENE:
                break
    return names, present, points


# -- events --------------------------------------------------------------------
def _git_commit(path: Path) -> str | None:
    """The last commit that touched ``path``, if the file is tracked and unchanged since."""

    def run(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(path.parent), *args], capture_output=True, check=False)
        except FileNotFoundError:
            return None
        return r.stdout.decode().strip() if r.returncode == 0 else None

    sha = run("log", "-1", "--format=%H", "--", path.name)
    if not sha or run("status", "--porcelain", "--", path.name) != "":
        return None
    return sha


def story_events(path: Path, raw: bytes, creator: str | None, principals: Principals) -> list[Item]:
    """Every event of one story file, in story order."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return [ItemError(str(path), f"not UTF-8 text at byte {e.start}: not a story file")]
    story_id = slug(path.stem)
    parsed = parse_story(text, path.suffix.lower(), path.stem.replace("_", " "))
    if not parsed.scenes:
        return [ItemError(str(path), "no scenes found (empty file, or headings with no text)")]
    names, present, points = extract(parsed)
    content = hashlib.sha256(raw).hexdigest()[:16]
    sha = _git_commit(path)
    version = [content, sha or ""]
    who = creator or principals.principal(parsed.author) if (creator or parsed.author) else "storyteller"
    subject, source = f"story:{story_id}", f"story:{path.name}"

    def event(type_: str, key: list[str], data: object) -> Event:
        return make_event(
            type_,
            id=derive_id("story", story_id, *key, *version),
            source=source,
            subject=subject,
            data=data,
            creator=who,
        )

    out: list[Item] = []
    scene_ids: list[str] = []
    for i, (sc, chars) in enumerate(zip(parsed.scenes, present, strict=True)):
        extra: dict[str, object] = {"story_title": parsed.title}
        if sha:
            extra["links"] = [link("committed-in", commit_id(sha), sha)]
        frag = Fragment(
            story=story_id,
            title=sc.title,
            text=sc.text[:MAX_TEXT],
            order=i,
            chapter=sc.chapter,
            scene=str(i + 1),
            characters=chars,
            extra=extra,
        )
        ev = event("creative.narrative.fragment", ["scene", str(i)], frag)
        scene_ids.append(ev.id)
        out.append(ev)
    prev: str | None = None
    for n, p in enumerate(points):
        links = [link("in-scene", scene_ids[p.scene], parsed.scenes[p.scene].title)]
        if prev:
            links.append(link("after", prev, f"plot point {n - 1}"))
        pp = PlotPoint(
            story=story_id,
            summary=p.summary,
            order=n,
            characters=p.characters,
            actor=p.actor,
            action=p.action,
            scene=str(p.scene + 1),
            extra={"links": links},
        )
        ev = event("creative.narrative.plot_point", ["plot", str(n)], pp)
        prev = ev.id
        out.append(ev)
    for name in names:
        steps = []
        for i, chars in enumerate(present):
            if name in chars:
                act = next((p.summary for p in points if p.scene == i and p.actor == name), None)
                steps.append(ArcStep(scene=str(i + 1), state=act or "present", order=i))
        if not steps:
            continue
        acts = sum(1 for s in steps if s.state != "present")
        span = f"{steps[0].scene}–{steps[-1].scene}"
        summary = f"{name}: in {len(steps)} of {len(parsed.scenes)} scenes ({span}), acts in {acts}"
        arc = CharacterArc(story=story_id, character=name, steps=steps, summary=summary)
        out.append(event("creative.narrative.character_arc", ["arc", name], arc))
    return out


class StorySource:
    """Story files, or folders of them."""

    name = "story"

    def __init__(
        self, paths: Iterable[Path], *, owner: str | None = None, principals: Principals | None = None
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.principals = principals or Principals()
        self.owner = self.principals.principal(owner) if owner else None

    def _files(self) -> Iterable[Path]:
        for p in self.paths:
            if p.is_dir():
                yield from sorted(
                    f for f in p.rglob("*") if f.is_file() and not any(x.startswith(".") for x in f.parts)
                )
            else:
                yield p

    async def iter_items(self) -> AsyncIterator[Item]:
        """Per file, its scenes, then plot points, then character arcs."""
        for path in self._files():
            try:
                raw = path.read_bytes()
            except OSError as e:
                yield ItemError(str(path), f"cannot read: {e.strerror}")
                continue
            if b"\x00" in raw[:8192]:
                yield ItemError(str(path), "binary file (NUL bytes), not a story")
                continue
            for item in story_events(path, raw, self.owner, self.principals):
                yield item

    def checkpoint(self) -> None:
        """Stateless: ids make re-runs safe."""
