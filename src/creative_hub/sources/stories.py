"""Stories: plain text, Markdown and Fountain files turned into narrative events, offline.

The narrative pipeline (:mod:`creative_hub.narrative`, on spaCy) reads each
file into an outline -- parts and scenes, characters with every name they go
by, plot points quoting the sentence they come from -- and this source
publishes it:

- ``creative.narrative.fragment``: each scene, with its part and characters;
- ``creative.narrative.plot_point``: who did what, in story order, with its
  verbatim ``evidence``, linked to its scene and to the point before it;
- ``creative.narrative.character_arc``: per character, their ``aliases``
  and the scenes they are in with what they do there.

Ids come from the story's content hash and the position (never its path, file
name or commit): a re-run adds nothing, a moved, renamed or copied file (out of
its repository too) adds nothing, an edit adds a new revision.  A file in a git
repository, unchanged since its last commit, links to that commit.  Events are
written by ``stories`` (or the person who ran the ingest); the author
(``owner``, else the file's own) is a claim, kept in ``data.extra.author``.

    StorySource([Path("stories/")], owner="alice")
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from ..event import Event
from ..narrative import Outline, outline
from ..origins import source_id
from ..schemas import ArcStep, CharacterArc, Fragment, Payload, PlotPoint
from ._files import files_under, read_bounded
from .base import Item, ItemError, Principals, commit_id, link, make_event, slug, with_mapped

__all__ = ["STORIES", "StorySource", "story_events"]

STORIES = "stories"  # the source principal that writes (and signs) story events

MAX_TEXT = 50_000  # characters of a scene kept in its fragment event
MAX_FILE = 5_000_000  # bytes: a bigger file is skipped with a reason


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
    if len(raw) > MAX_FILE:
        return [ItemError(str(path), f"{len(raw)} bytes, more than the {MAX_FILE} a story file may have")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return [ItemError(str(path), f"not UTF-8 text at byte {e.start}: not a story file")]
    story = outline(text, suffix=path.suffix.lower(), title=path.stem.replace("_", " "))
    if not story.scenes:
        return [ItemError(str(path), "no scenes found (empty file, or headings with no text)")]
    story_id = slug(story.title) if story.titled else slug(path.stem)
    return _events(
        story, story_id, hashlib.sha256(raw).hexdigest()[:16], path, story.author, creator, principals
    )


def _events(
    story: Outline,
    story_id: str,
    content: str,
    path: Path,
    author: str | None,
    creator: str | None,
    principals: Principals,
) -> list[Item]:
    sha = _git_commit(path)
    claimed = creator or author  # ``--owner``, else the file's own: a claim, never the writer
    # Neither the path nor the file name: a moved or renamed file gives the very same events.
    subject = source = f"story:{story_id}"

    def event(type_: str, key: list[str], data: Payload) -> Event:
        if claimed:
            data.extra["author"] = claimed
            with_mapped(data.extra, principals, claimed)
        # The content's: the same text under another name is already there (content_ids).
        return make_event(
            type_,
            id=source_id("stories", content, *key),
            source=source,
            subject=subject,
            data=data,
            creator=STORIES,
        )

    out: list[Item] = []
    scene_ids: list[str] = []
    for sc in story.scenes:
        part = story.parts[sc.part]
        extra: dict[str, object] = {"story_title": story.title}
        if sha:
            extra["links"] = [link("committed-in", commit_id(sha), sha)]
        frag = Fragment(
            story=story_id,
            title=sc.title,
            text=sc.text[:MAX_TEXT],
            order=sc.order,
            chapter=part.title,
            scene=str(sc.order + 1),
            characters=sc.characters,
            part=part.title,
            part_order=part.order,
            extra=extra,
        )
        ev = event("creative.narrative.fragment", ["scene", str(sc.order)], frag)
        scene_ids.append(ev.id)
        out.append(ev)
    prev: str | None = None
    for p in story.plot_points:
        links = [link("in-scene", scene_ids[p.scene], story.scenes[p.scene].title)]
        if prev:
            links.append(link("after", prev, f"plot point {p.order - 1}"))
        pp = PlotPoint(
            story=story_id,
            summary=p.summary,
            order=p.order,
            characters=p.characters,
            actor=p.actor,
            action=p.action,
            scene=str(p.scene + 1),
            evidence=p.evidence,
            generated=p.generated,
            speech=p.speech,
            part=story.parts[p.part].title,
            part_order=p.part,
            extra={"links": links},
        )
        ev = event("creative.narrative.plot_point", ["plot", str(p.order)], pp)
        prev = ev.id
        out.append(ev)
    for ch in story.characters:
        steps = []
        for sc in story.scenes:
            if ch.name in sc.characters:
                act = next(
                    (p.summary for p in story.plot_points if p.scene == sc.order and p.actor == ch.name), None
                )
                steps.append(ArcStep(scene=str(sc.order + 1), state=act or "present", order=sc.order))
        if not steps:
            continue
        acts = sum(1 for s in steps if s.state != "present")
        span = f"{steps[0].scene}–{steps[-1].scene}"
        summary = f"{ch.name}: in {len(steps)} of {len(story.scenes)} scenes ({span}), acts in {acts}"
        arc = CharacterArc(
            story=story_id, character=ch.name, aliases=ch.aliases, steps=steps, summary=summary
        )
        out.append(event("creative.narrative.character_arc", ["arc", ch.name], arc))
    return out


class StorySource:
    """Story files, or folders of them."""

    name = "story"
    #: ids are the file content's: the same text at another path, or out of its
    #: repository (no commit to link), is already there, not "changed at the source"
    content_ids = True

    def __init__(
        self, paths: Iterable[Path], *, owner: str | None = None, principals: Principals | None = None
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.principals = principals or Principals()
        self.owner = owner

    def _files(self) -> Iterable[Path | ItemError]:
        for p in self.paths:
            if p.is_dir():
                yield from files_under(p)
            else:
                yield p

    async def iter_items(self) -> AsyncIterator[Item]:
        """Per file, its scenes, then plot points, then character arcs."""
        for path in self._files():
            if isinstance(path, ItemError):
                yield path
                continue
            try:
                raw = read_bounded(path, MAX_FILE)
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
