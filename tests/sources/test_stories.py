"""Stories: Hansel and Gretel (plain text), Markdown parts, Fountain acts; scenes, aliases, evidence, ids."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from creative_hub.hub import Hub
from creative_hub.sources.base import commit_id
from creative_hub.sources.ingest import ingest
from creative_hub.sources.stories import StorySource

pytestmark = pytest.mark.sqlite

LIGHTHOUSE = """---
author: Ada Lovelace
---
# The Lighthouse

## Chapter One

### Arrival

Mara climbed the stairs. Mara found the lamp broken. The keeper watched her from the door.

### Night

The keeper lit a candle. Mara waited by the window, and the keeper slept.

## Chapter Two

### Storm

Mara repaired the lamp. "You did well," said the keeper. The keeper thanked her.
"""

BRICK = """Title: Brick & Steel
Author: Stu Maschwitz

# ACT ONE

EXT. BRICK'S PATIO - DAY

A gorgeous day. Brick is fighting with a grill.

STEEL
(loudly)
Beer's ready!

BRICK
Are they cold?

Steel arrived with two beers.

# ACT TWO

INT. GARAGE - NIGHT

Brick opened the door. Steel followed.
"""


def by_type(events: list, kind: str) -> list:
    return [e for e in events if e.type == f"creative.narrative.{kind}"]


def flat(text: str) -> str:
    return " ".join(text.split())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:['’-][a-z]+)*", text.lower())


async def test_hansel_and_gretel(hub: Hub, stored, fixtures_dir: Path, tmp_path: Path) -> None:
    s = await ingest(hub, StorySource([fixtures_dir / "stories"], owner="grimm"))
    assert not s.skipped
    events = await stored("creative.narrative")
    scenes, points, arcs = (by_type(events, k) for k in ("fragment", "plot_point", "character_arc"))
    # Paragraphs are scenes; the witch's verse goes with the paragraph it belongs to.
    assert len(scenes) == 17 and s.ingested == len(events)
    first = scenes[0]
    # The story's identity is its title, as the text gives it (not the file name).
    assert first.data["story"] == "hansel-and-gretel" and first.subject == "story:hansel-and-gretel"
    assert first.data["extra"]["story_title"] == "Hansel And Gretel"
    assert first.data["part"] == "Hansel And Gretel" and first.data["part_order"] == 0
    assert first.data["text"].startswith("Hard by a great forest dwelt a poor wood-cutter")
    assert first.creator == "stories" and first.data["extra"]["author"] == "grimm"
    assert [sc.data["order"] for sc in scenes] == list(range(17))
    # Plot points in story order, each quoting its sentence verbatim, summarised in its words.
    source = flat((fixtures_dir / "stories" / "grimm_hansel-and-gretel.txt").read_text())
    assert [p.data["order"] for p in points] == list(range(len(points))) and len(points) > 60
    for p in points:
        assert flat(p.data["evidence"]) in source
        assert {w for w in words(p.data["summary"]) if len(w) >= 4} <= set(words(p.data["evidence"]))
        assert len(p.data["summary"].split()) <= 30 and p.data.get("generated", False) is False
    pebbles = next(
        i for i, p in enumerate(points) if p.data["actor"] == "Hansel" and "pocket" in p.data["summary"]
    )
    oven = next(
        i for i, p in enumerate(points) if p.data["actor"] == "Gretel" and "oven" in p.data["evidence"]
    )
    assert pebbles < oven
    # Speech is attributed to its speaker, the whole sentence as evidence.
    said = next(p for p in points if p.data.get("speech") and "Now all is over with us" in p.data["evidence"])
    assert said.data["actor"] == "Gretel" and "Now all is over with us" in said.data["summary"]
    for before, after in zip(points, points[1:], strict=False):
        assert {"rel": "after", "id": before.id, "ref": f"plot point {before.data['order']}"} in after.data[
            "extra"
        ]["links"]
    # Characters and their arcs, with every name they go by.
    arc = {a.data["character"]: a.data for a in arcs}
    assert {"Hansel", "Gretel"} <= set(arc)
    assert "sister" in {n.split()[-1] for n in arc["Gretel"]["aliases"]}
    assert arc["Gretel"]["steps"][-1]["scene"] == "17"
    # A re-run adds nothing; nor does the same file moved and renamed.
    again = await ingest(hub, StorySource([fixtures_dir / "stories"], owner="grimm"))
    assert (again.ingested, again.already) == (0, len(events))
    moved = tmp_path / "elsewhere" / "h_and_g.txt"
    moved.parent.mkdir()
    shutil.copy(fixtures_dir / "stories" / "grimm_hansel-and-gretel.txt", moved)
    renamed = await ingest(hub, StorySource([moved], owner="grimm"))
    assert (renamed.ingested, renamed.already) == (0, len(events))


async def test_markdown_parts_and_scenes(hub: Hub, stored, tmp_path: Path) -> None:
    (tmp_path / "lighthouse.md").write_text(LIGHTHOUSE)
    await ingest(hub, StorySource([tmp_path / "lighthouse.md"]))
    events = await stored("creative.narrative")
    scenes = by_type(events, "fragment")
    assert [(e.data["part"], e.data["title"]) for e in scenes] == [
        ("Chapter One", "Arrival"),
        ("Chapter One", "Night"),
        ("Chapter Two", "Storm"),
    ]
    assert scenes[0].data["extra"]["story_title"] == "The Lighthouse" and scenes[0].creator == "stories"
    assert scenes[0].data["extra"]["author"] == "Ada Lovelace"
    points = by_type(events, "plot_point")
    assert [(p.data["actor"], p.data["action"]) for p in points] == [
        ("Mara", "climb"),
        ("Mara", "find"),
        ("keeper", "watch"),
        ("keeper", "light"),
        ("Mara", "wait"),
        ("keeper", "sleep"),
        ("Mara", "repair"),
        ("keeper", "say"),
        ("keeper", "thank"),
    ]
    assert (
        points[0].data["evidence"] == "Mara climbed the stairs." and points[0].data["part"] == "Chapter One"
    )
    assert points[-2].data["speech"] and points[-2].data["evidence"] == '"You did well," said the keeper.'
    arcs = {a.data["character"]: a.data for a in by_type(events, "character_arc")}
    assert [st["state"] for st in arcs["Mara"]["steps"]] == [
        "Mara climbed the stairs",
        "Mara waited by the window",
        "Mara repaired the lamp",
    ]


async def test_fountain_acts_scenes_and_dialogue(hub: Hub, stored, tmp_path: Path) -> None:
    (tmp_path / "brick.fountain").write_text(BRICK)
    await ingest(hub, StorySource([tmp_path / "brick.fountain"]))
    events = await stored("creative.narrative")
    scenes = by_type(events, "fragment")
    assert [(e.data["part"], e.data["title"]) for e in scenes] == [
        ("ACT ONE", "EXT. BRICK'S PATIO - DAY"),
        ("ACT TWO", "INT. GARAGE - NIGHT"),
    ]
    assert scenes[0].data["characters"][:2] == ["Brick", "Steel"] and scenes[0].creator == "stories"
    assert scenes[0].data["extra"]["author"] == "Stu Maschwitz"
    assert scenes[0].data["extra"]["story_title"] == "Brick & Steel"
    points = by_type(events, "plot_point")
    assert [(p.data["actor"], p.data["evidence"]) for p in points] == [
        ("Brick", "Brick is fighting with a grill."),
        ("Steel", "Beer's ready!"),
        ("Brick", "Are they cold?"),
        ("Steel", "Steel arrived with two beers."),
        ("Brick", "Brick opened the door."),
        ("Steel", "Steel followed."),
    ]
    assert [p.data.get("speech", False) for p in points] == [False, True, True, False, False, False]


async def test_binary_and_non_utf8_files_are_skipped(
    hub: Hub, stored, fixtures_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "stories"
    folder.mkdir()
    shutil.copy(fixtures_dir / "stories" / "grimm_hansel-and-gretel.txt", folder)
    (folder / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    (folder / "latin1.txt").write_bytes("Un conte: la sorcière et Gretel.\n".encode("latin-1"))
    (folder / "empty.md").write_text("")
    s = await ingest(hub, StorySource([folder]))
    reasons = {Path(e.ref).name: e.reason for e in s.skipped}
    assert reasons["cover.png"] == "binary file (NUL bytes), not a story"
    assert reasons["latin1.txt"].startswith("not UTF-8 text at byte")
    assert reasons["empty.md"].startswith("no scenes found")
    assert len(by_type(await stored("creative.narrative"), "fragment")) == 17


async def test_story_in_a_git_repo_links_to_its_commit(hub: Hub, stored, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "lighthouse.md").write_text(LIGHTHOUSE)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q")
    git("-c", "user.name=A", "-c", "user.email=a@example.org", "add", ".")
    git("-c", "user.name=A", "-c", "user.email=a@example.org", "commit", "-q", "-m", "Draft")
    sha = git("rev-parse", "HEAD").strip()
    await ingest(hub, StorySource([repo / "lighthouse.md"]))
    scene = by_type(await stored("creative.narrative"), "fragment")[0]
    assert scene.data["extra"]["links"] == [{"rel": "committed-in", "id": commit_id(sha), "ref": sha}]
