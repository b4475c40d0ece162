"""The story server's narrative tools, through the MCP SDK's own client, on ingested tales.

Hansel and Gretel (plain text) and a two-part Markdown story go through
``ingest story`` into a real SQLite hub; the client asks for the outline,
one character's journey by another of their names, what happened around a
plot point, and a scene's text with its characters.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from creative_hub.hub import Hub
from creative_hub.index import HubIndex
from creative_hub.mcp.common import HubState
from creative_hub.mcp.story import build_story_server
from creative_hub.sources.ingest import ingest
from creative_hub.sources.stories import StorySource

pytestmark = pytest.mark.sqlite

KORBES = """# Chanticleer and Partlet

## 1. How they went to the mountains

Chanticleer said to his wife Partlet, "Let us go to the mountains." Partlet agreed, and they went.

## 2. How they visited Mr Korbes

A duck met them on the road. "Where are you going?" asked the duck. Chanticleer answered that they were
going to visit Mr Korbes. The duck laughed and went away.
"""


@pytest.fixture
async def state(tmp_path: Path, fixtures_dir: Path) -> AsyncIterator[HubState]:
    folder = tmp_path / "stories"
    folder.mkdir()
    shutil.copy(fixtures_dir / "stories" / "grimm_hansel-and-gretel.txt", folder)
    (folder / "korbes.md").write_text(KORBES)
    async with Hub.connect(f"sqlite:///{tmp_path / 'hub.db'}") as hub:
        summary = await ingest(hub, StorySource([folder], owner="grimm"))
        assert not summary.skipped and summary.ingested > 100
        ix = HubIndex(str(tmp_path / "index.db"), semantic=False)  # full text is enough here
        try:
            yield HubState(hub, ix)
        finally:
            ix.close()


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    r = await client.call_tool(tool, args)
    assert not r.is_error, (tool, r.content)
    assert isinstance(r.structured_content, dict)
    return r.structured_content


async def test_outline_journey_around_and_scene(state: HubState) -> None:
    async with Client(build_story_server(state)) as story:
        await _walk(story)


async def _walk(story: Client) -> None:
    out = await call(story, "story_outline", {"story": "hansel-and-gretel"})
    assert out["title"] == "Hansel And Gretel" and len(out["parts"]) == 1
    assert len(out["parts"][0]["scenes"]) == 17
    names = {c["name"]: c["aliases"] for c in out["characters"]}
    assert {"Hansel", "Gretel"} <= set(names) and "little sister" in names["Gretel"]
    points = out["plot_points"]
    assert [p["order"] for p in points] == list(range(len(points)))
    assert all(p["evidence"] and p["generated"] is False for p in points)

    # One character's journey, asked for by another of her names.
    journey = await call(
        story, "character_journey", {"story": "hansel-and-gretel", "character": "little sister"}
    )
    assert journey["character"]["name"] == "Gretel"
    steps = journey["plot_points"]
    assert steps and all("Gretel" in p["actor"] for p in steps)
    assert [p["order"] for p in steps] == sorted(p["order"] for p in steps)
    oven = next(p for p in steps if "oven" in p["evidence"])

    # Before and after a plot point, in story order.
    around = await call(story, "around_plot_point", {"id": oven["id"], "before": 2, "after": 2})
    assert around["plot_point"]["id"] == oven["id"]
    assert [p["order"] for p in around["before"]] == [oven["order"] - 2, oven["order"] - 1]
    assert [p["order"] for p in around["after"]] == [oven["order"] + 1, oven["order"] + 2]

    # A scene's text with who is in it.
    scene = await call(story, "scene_text", {"story": "hansel-and-gretel", "scene": oven["scene"]})
    assert oven["evidence"].split()[0] in scene["text"]
    assert "Gretel" in {c["name"] for c in scene["characters"]}

    # Markdown parts come through as parts; an unknown name is a clear error.
    md = await call(story, "story_outline", {"story": "chanticleer-and-partlet"})
    assert [p["title"] for p in md["parts"]] == [
        "1. How they went to the mountains",
        "2. How they visited Mr Korbes",
    ]
    r = await story.call_tool("character_journey", {"story": "hansel-and-gretel", "character": "nobody"})
    assert r.is_error and "no character 'nobody'" in r.content[0].text  # type: ignore[union-attr]
    r = await story.call_tool("scene_text", {"story": "hansel-and-gretel", "scene": "99"})
    assert r.is_error and "no scene '99'" in r.content[0].text  # type: ignore[union-attr]
