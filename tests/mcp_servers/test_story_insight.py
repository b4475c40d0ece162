"""The story MCP server's insight tools and resource, through the official SDK client (in-process).

The insights here are published as the agents publish them (an agent principal, its model in the
provenance); tests/agents/test_insight.py makes real ones with the local model.
"""

from __future__ import annotations

import json

import pytest
from mcp import Client
from test_servers import error, ok, servers

from _world import World

pytestmark = pytest.mark.sqlite

INSIGHT_TOOLS = {"story_insights", "story_morals", "flagged_gaps"}


async def publish_insights(world: World) -> tuple[str, str]:
    await world.hub.registry.add("story-morals", kind="agent")
    await world.hub.registry.add("story-causal", kind="agent")
    prov = {"model": "SmolLM2-135M-Instruct", "modelprovider": "local", "inputs": world.plot_id}
    moral, causal = await world.hub.publish(
        [
            {
                "type": "creative.narrative.insight",
                "subject": "story:hansel",
                "creator": "story-morals",
                **prov,
                "data": {
                    "story": "hansel",
                    "kind": "morals",
                    "summary": "Wits beat cruelty (values: courage).",
                    "findings": [{"statement": "Wits beat cruelty", "values": ["courage"],
                                  "plot_points": [world.plot_id], "evidence": ["Gretel pushes the witch"]}],
                },
            },
            {
                "type": "creative.narrative.insight",
                "subject": "story:hansel",
                "creator": "story-causal",
                **prov,
                "data": {
                    "story": "hansel",
                    "kind": "causal",
                    "summary": "1 key plot point checked: 1 not established earlier.",
                    "findings": [
                        {"statement": "P1 needs: an oven", "plot_points": [world.plot_id],
                         "established": False, "flag": "unexplained_turn", "evidence": ["Gretel pushes"]},
                        {"statement": "P1 needs: a witch", "plot_points": [world.plot_id],
                         "established": True},
                    ],
                },
            },
        ]
    )  # fmt: skip
    return moral.id, causal.id


async def test_insight_tools_and_resource(world: World) -> None:
    moral, causal = await publish_insights(world)
    async with servers(world, "bob") as c:
        story: Client = c["story"]
        assert INSIGHT_TOOLS <= {t.name for t in (await story.list_tools()).tools}
        everything = await ok(story, "story_insights", {"story": "hansel"})
        assert {i["id"] for i in everything["insights"]} == {moral, causal}
        morals = (await ok(story, "story_morals", {"story": "hansel"}))["insights"]
        assert [m["id"] for m in morals] == [moral]
        (m,) = morals
        assert m["findings"][0]["plot_points"] == [world.plot_id] and m["findings"][0]["values"] == [
            "courage"
        ]
        assert (m["modelprovider"], m["model"], m["inputs"]) == (
            "local",
            "SmolLM2-135M-Instruct",
            [world.plot_id],
        )
        gaps = await ok(story, "flagged_gaps", {"story": "hansel"})
        assert [g["flag"] for g in gaps["gaps"]] == ["unexplained_turn"] and gaps["insights"] == [causal]
        assert "no morals" in await error(story, "story_morals", {"story": "nope"})
        templates = {t.uri_template for t in (await story.list_resource_templates()).resource_templates}
        assert "story://{story}/insights" in templates
        text = (await story.read_resource("story://hansel/insights")).contents[0].text  # type: ignore[union-attr]
        assert {i["kind"] for i in json.loads(text)["insights"]} == {"morals", "causal"}
