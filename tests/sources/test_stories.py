"""Stories: Hansel and Gretel (plain text), Markdown by headings, Fountain; scenes, characters, plot order."""

from __future__ import annotations

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

EXT. BRICK'S PATIO - DAY

A gorgeous day. Brick is fighting with a grill.

STEEL
(loudly)
Beer's ready!

BRICK
Are they cold?

Steel arrived with two beers.

INT. GARAGE - NIGHT

Brick opened the door. Steel followed.
"""


def by_type(events: list, kind: str) -> list:
    return [e for e in events if e.type == f"creative.narrative.{kind}"]


async def test_hansel_and_gretel(hub: Hub, stored, fixtures_dir: Path) -> None:
    s = await ingest(hub, StorySource([fixtures_dir / "stories"], owner="grimm"))
    assert not s.skipped
    events = await stored("creative.narrative")
    scenes, points, arcs = (by_type(events, k) for k in ("fragment", "plot_point", "character_arc"))
    assert len(scenes) == 21 and s.ingested == len(events)
    first = scenes[0]
    assert (
        first.data["story"] == "grimm_hansel-and-gretel" and first.subject == "story:grimm_hansel-and-gretel"
    )
    assert first.data["extra"]["story_title"] == "Hansel And Gretel"
    assert first.data["text"].startswith("Hard by a great forest dwelt a poor wood-cutter")
    assert first.data["characters"][:2] == ["Hansel", "Gretel"] and first.creator == "grimm"
    assert [sc.data["order"] for sc in scenes] == list(range(21))
    # Plot points in story order, who did what, chained one after another.
    summaries = [p.data["summary"] for p in points]
    assert summaries[:3] == [
        "Gretel wept bitter tears, and said to Hansel",
        "Hansel stooped and stuffed the little pocket of his coat with as many as he could get in",
        "the woman came and awoke the two children, saying",
    ]
    assert (points[1].data["actor"], points[1].data["action"]) == ("Hansel", "stooped")
    pebbles = summaries.index(
        "Hansel stooped and stuffed the little pocket of his coat with as many as he could get in"
    )
    oven = next(i for i, t in enumerate(summaries) if t.startswith("Gretel gave her a push"))
    assert pebbles < oven
    assert points[oven].data["scene"] == "17" and points[oven].data["actor"] == "Gretel"
    assert [p.data["order"] for p in points] == list(range(len(points)))
    for before, after in zip(points, points[1:], strict=False):
        assert {"rel": "after", "id": before.id, "ref": f"plot point {before.data['order']}"} in after.data[
            "extra"
        ]["links"]
    assert points[0].data["extra"]["links"][0]["id"] == scenes[1].id  # in-scene
    # Characters and their arcs across scenes.
    arc = {a.data["character"]: a.data for a in arcs}
    assert {"Hansel", "Gretel", "the witch", "the old woman"} <= set(arc)
    assert arc["Gretel"]["steps"][-1]["scene"] == "21"
    oven_step = next(st for st in arc["Gretel"]["steps"] if st["scene"] == "17")
    assert oven_step["state"].startswith("Gretel had to go out and hang up the cauldron")
    assert arc["the witch"]["steps"][0]["scene"] == "17"
    again = await ingest(hub, StorySource([fixtures_dir / "stories"], owner="grimm"))
    assert (again.ingested, again.already) == (0, len(events))


async def test_markdown_chapters_and_scenes(hub: Hub, stored, tmp_path: Path) -> None:
    (tmp_path / "lighthouse.md").write_text(LIGHTHOUSE)
    await ingest(hub, StorySource([tmp_path / "lighthouse.md"]))
    events = await stored("creative.narrative")
    scenes = by_type(events, "fragment")
    assert [(e.data["chapter"], e.data["title"]) for e in scenes] == [
        ("Chapter One", "Arrival"),
        ("Chapter One", "Night"),
        ("Chapter Two", "Storm"),
    ]
    assert scenes[0].data["extra"]["story_title"] == "The Lighthouse" and scenes[0].creator == "ada-lovelace"
    assert [(p.data["actor"], p.data["action"]) for p in by_type(events, "plot_point")] == [
        ("Mara", "climbed"),
        ("Mara", "found"),
        ("the keeper", "watched"),
        ("the keeper", "lit"),
        ("Mara", "waited"),
        ("Mara", "repaired"),
        ("the keeper", "thanked"),
    ]
    arcs = {a.data["character"]: a.data for a in by_type(events, "character_arc")}
    assert [st["state"] for st in arcs["Mara"]["steps"]] == [
        "Mara climbed the stairs",
        "Mara waited by the window, and the keeper slept",
        "Mara repaired the lamp",
    ]


async def test_fountain_screenplay(hub: Hub, stored, tmp_path: Path) -> None:
    (tmp_path / "brick.fountain").write_text(BRICK)
    await ingest(hub, StorySource([tmp_path / "brick.fountain"]))
    events = await stored("creative.narrative")
    scenes = by_type(events, "fragment")
    assert [e.data["title"] for e in scenes] == ["EXT. BRICK'S PATIO - DAY", "INT. GARAGE - NIGHT"]
    assert scenes[0].data["characters"] == ["Steel", "Brick"] and scenes[0].creator == "stu-maschwitz"
    assert scenes[0].data["extra"]["story_title"] == "Brick & Steel"
    assert [p.data["summary"] for p in by_type(events, "plot_point")] == [
        "Steel arrived with two beers",
        "Brick opened the door",
        "Steel followed",
    ]


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
    assert len(by_type(await stored("creative.narrative"), "fragment")) == 21


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
