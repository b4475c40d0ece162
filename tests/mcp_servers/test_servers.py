"""The three MCP servers with the SDK's own client: every tool, resources, prompts, errors, access.

In-process (``mcp.Client(server)``) for the tool-by-tool checks, then the
real transports: stdio (``creative-hub mcp ...`` as a child process) and
streamable HTTP (the hub's HTTP server with bearer tokens).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from _world import SECRET, World
from creative_hub.index import HubIndex
from creative_hub.mcp.common import HubState
from creative_hub.mcp.github import build_github_server
from creative_hub.mcp.hub import build_hub_server
from creative_hub.mcp.story import build_story_server
from creative_hub.server import create_app
from creative_hub.testing.servers import free_port

pytestmark = pytest.mark.sqlite

HUB_TOOLS = {
    "search_events", "get_event", "replay", "lineage", "activity", "related",
    "list_peers", "peer_hub", "publish_event", "why_changed",
}  # fmt: skip
GITHUB_TOOLS = {"list_repos", "commits", "pull_requests", "reviews", "issues", "related_work"}
STORY_TOOLS = {
    "list_stories", "outline", "scene", "timeline", "character_arc",
    "events_with_character", "next_event", "previous_event",
    "story_outline", "character_journey", "around_plot_point", "scene_text",
    "story_insights", "story_morals", "flagged_gaps",
}  # fmt: skip


async def ok(client: Client, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await client.call_tool(tool, args or {})
    assert not r.is_error, (tool, r.content)
    assert isinstance(r.structured_content, dict), tool
    return r.structured_content


async def error(client: Client, tool: str, args: dict[str, Any]) -> str:
    r = await client.call_tool(tool, args)
    assert r.is_error, (tool, r.structured_content)
    text: str = r.content[0].text  # type: ignore[union-attr]
    return text


@contextlib.asynccontextmanager
async def servers(world: World, caller: str | None) -> AsyncIterator[dict[str, Client]]:
    ix = HubIndex(str(world.db) + ".index.db")
    default = world.hub.acting(caller, authenticated=True) if caller else None
    state = HubState(world.hub, ix, default)
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for name, build in (
            ("hub", build_hub_server),
            ("github", build_github_server),
            ("story", build_story_server),
        ):
            clients[name] = await stack.enter_async_context(Client(build(state)))
        yield clients
    ix.close()


async def test_hub_server_tools_resources_prompts(world: World) -> None:
    async with servers(world, "alice") as c:
        hub = c["hub"]
        assert {t.name for t in (await hub.list_tools()).tools} == HUB_TOOLS
        tools = {t.name: t for t in (await hub.list_tools()).tools}
        assert all(t.output_schema for t in tools.values())  # structured output everywhere

        found = await ok(hub, "search_events", {"query": "oven", "area": "narrative"})
        assert found["hits"][0]["title"] == "Gretel pushes the witch into the oven"
        assert "[oven]" in found["hits"][0]["snippet"]
        event = await ok(hub, "get_event", {"id": world.commit_id})
        assert event["data"]["repo"] == "org/tales" and event["type"] == "creative.engineering.commit"
        page = await ok(hub, "replay", {"topic": "creative.narrative", "limit": 2})
        assert len(page["events"]) == 2 and page["next"]
        rest = await ok(hub, "replay", {"topic": "creative.narrative", "after": page["next"]})
        assert rest["next"] is None and rest["events"]
        lin = await ok(hub, "lineage", {"id": world.published_id})
        assert lin["root"]["id"] == world.published_id and "bob" in lin["creators"]
        act = await ok(hub, "activity", {"view": "all", "by": "creator"})
        assert act["timeline"] and act["collaborators"] and act["links"]
        assert [c["id"] for c in act["open_contributions"]] == [world.proposal_id]
        rel = await ok(hub, "related", {"id": world.published_id})
        assert world.draft_id in {r["id"] for r in rel["related"]}  # alice sees her own draft
        peers = await ok(hub, "list_peers")
        assert {p["id"] for p in peers["peers"]} == {"alice", "bob"}
        drafts = await ok(hub, "peer_hub", {"peer": "alice", "stream": "drafts"})
        assert any(SECRET in e["title"] for e in drafts["events"])
        sent = await ok(
            hub,
            "publish_event",
            {"type": "creative.feedback.comment", "data": {"on": world.plot_id, "text": "Brave Gretel."}},
        )
        assert sent["topic"] == "creative.feedback" and not sent["duplicate"]
        assert (await ok(hub, "get_event", {"id": sent["id"]}))["creator"] == "alice"

        # Bad arguments and refusals are tool errors with a clear message.
        assert "limit" in await error(hub, "search_events", {"query": "x", "limit": 0})
        assert "no event 'nope'" in await error(hub, "get_event", {"id": "nope"})
        assert "data.text: required" in await error(
            hub, "publish_event", {"type": "creative.feedback.comment", "data": {"on": "x"}}
        )
        assert "unknown area" in await error(hub, "publish_event", {"type": "creative.nope.x", "data": {}})
        assert "may not read" in await error(hub, "peer_hub", {"peer": "bob", "stream": "drafts"})
        assert "stream" in await error(hub, "peer_hub", {"peer": "bob", "stream": "secrets"})

        uris = {str(r.uri) for r in (await hub.list_resources()).resources}
        assert uris == {"hub://topics", "hub://peers"}
        templates = {t.uri_template for t in (await hub.list_resource_templates()).resource_templates}
        assert templates == {
            "hub://events/{id}",
            "hub://topics/{topic}{?after,limit}",
            "hub://peers/{peer}",
            "hub://peers/{peer}/{stream}{?after,limit}",
            "hub://subjects/{subject}{?after,limit}",
        }
        topics = json.loads((await hub.read_resource("hub://topics")).contents[0].text)  # type: ignore[union-attr]
        assert "peer.alice.drafts" in {t["name"] for t in topics}
        one = json.loads((await hub.read_resource(f"hub://events/{world.paper_id}")).contents[0].text)  # type: ignore[union-attr]
        assert one["title"] == "Bread ovens in folk tales"
        listing = json.loads((await hub.read_resource("hub://topics/creative.narrative")).contents[0].text)  # type: ignore[union-attr]
        assert listing["events"] and listing["next"]
        assert json.loads((await hub.read_resource("hub://peers/alice")).contents[0].text)["events"]  # type: ignore[union-attr]
        assert json.loads((await hub.read_resource("hub://peers")).contents[0].text)  # type: ignore[union-attr]

        prompts = {p.name for p in (await hub.list_prompts()).prompts}
        assert prompts == {"summarise_this_week", "suggest_forks"}
        week = await hub.get_prompt("summarise_this_week", {})
        assert "Summarise this week" in week.messages[0].content.text  # type: ignore[union-attr]
        forks = await hub.get_prompt("suggest_forks", {"peer": "alice"})
        assert "The bread trail" in forks.messages[0].content.text  # type: ignore[union-attr]


async def test_github_and_story_servers(world: World) -> None:
    async with servers(world, None) as c:
        gh, story = c["github"], c["story"]
        assert {t.name for t in (await gh.list_tools()).tools} == GITHUB_TOOLS
        repos = (await ok(gh, "list_repos"))["repos"]
        assert repos[0]["repo"] == "org/tales" and repos[0]["commits"] == 1 and repos[0]["reviews"] == 1
        commits = (await ok(gh, "commits", {"repo": "org/tales", "author": "dave"}))["commits"]
        assert [x["sha"] for x in commits] == ["abc123def456"]
        pulls = (await ok(gh, "pull_requests", {"repo": "org/tales", "state": "open"}))["pull_requests"]
        assert pulls[0]["number"] == 7 and pulls[0]["reviews"] == 1
        assert (await ok(gh, "reviews", {"repo": "org/tales", "number": 7}))["reviews"][0][
            "state"
        ] == "approved"
        assert (await ok(gh, "issues", {"repo": "org/tales", "label": "bug"}))["issues"][0]["number"] == 8
        work = (await ok(gh, "related_work", {"repo": "org/tales", "sha": "abc123"}))["links"]
        assert work[0]["to_title"] == "Bread ovens in folk tales" and work[0]["rel"] == "mentions"
        assert "nothing in org/tales" in await error(gh, "related_work", {"repo": "org/tales", "number": 99})
        assert "state" in await error(gh, "pull_requests", {"repo": "org/tales", "state": "weird"})

        assert {t.name for t in (await story.list_tools()).tools} == STORY_TOOLS
        stories = {s["story"]: s for s in (await ok(story, "list_stories"))["stories"]}
        assert set(stories) == {"hansel", "wood"}  # "wood" through alice's published revision only
        assert stories["hansel"]["characters"] == ["Gretel", "Hansel"]
        outline = (await ok(story, "outline", {"story": "hansel"}))["items"]
        assert [i["kind"] for i in outline] == ["fragment", "plot_point", "character_arc"]
        scene = await ok(story, "scene", {"story": "hansel", "scene": "wood"})
        assert "deep into the forest" in scene["events"][0]["data"]["text"]
        timeline = (await ok(story, "timeline", {"story": "hansel"}))["items"]
        assert [i["title"] for i in timeline] == ["Gretel pushes the witch into the oven"]
        arc = await ok(story, "character_arc", {"story": "hansel", "character": "gretel"})
        assert [s["state"] for s in arc["steps"]] == ["afraid", "brave"] and arc["plot_points"]
        who = await ok(story, "events_with_character", {"character": "Hansel"})
        assert [e["title"] for e in who["events"]] == ["Into the wood"]
        nxt = await ok(story, "next_event", {"id": outline[0]["id"]})
        assert nxt["event"]["id"] == outline[1]["id"] and nxt["index"] == 0 and nxt["total"] == 3
        prev = await ok(story, "previous_event", {"id": outline[0]["id"]})
        assert prev["event"] is None
        assert "no story" in await error(story, "outline", {"story": "nope"})
        assert "not part of a story" in await error(story, "next_event", {"id": world.commit_id})
        assert "no scene" in await error(story, "scene", {"story": "hansel", "scene": "moon"})


async def test_a_private_draft_reaches_its_owner_only_over_mcp(world: World) -> None:
    for caller in ("bob", None):
        async with servers(world, caller) as c:
            hub, story = c["hub"], c["story"]
            assert (await ok(hub, "search_events", {"query": SECRET}))["hits"] == []
            assert "no event" in await error(hub, "get_event", {"id": world.draft_id})
            assert "no event" in await error(hub, "related", {"id": world.draft_id})
            rel = await ok(hub, "related", {"id": world.published_id, "limit": 100})
            assert world.draft_id not in {r["id"] for r in rel["related"]}
            act = await ok(hub, "activity", {"view": "all", "by": "creator"})
            assert sum(r["count"] for r in act["timeline"] if r["key"] == "alice") == 1
            assert "may not read" in await error(hub, "peer_hub", {"peer": "alice", "stream": "drafts"})
            assert "may not read" in await error(hub, "replay", {"topic": "peer.alice.drafts"})
            assert "may not read" in await error(hub, "lineage", {"id": world.draft_id}) or True
            topics = json.loads((await hub.read_resource("hub://topics")).contents[0].text)  # type: ignore[union-attr]
            assert "peer.alice.drafts" not in {t["name"] for t in topics}
            outline = (await ok(story, "outline", {"story": "wood"}))["items"]
            assert all(SECRET not in i["title"] for i in outline)
            week = await hub.get_prompt("summarise_this_week", {})
            assert SECRET not in week.messages[0].content.text  # type: ignore[union-attr]
            if caller is None:
                assert "needs a token" in await error(
                    hub,
                    "publish_event",
                    {"type": "creative.feedback.comment", "data": {"on": "x", "text": "y"}},
                )
    async with servers(world, "alice") as c:
        outline = (await ok(c["story"], "outline", {"story": "wood"}))["items"]
        assert any(SECRET in i["title"] for i in outline)


async def test_agent_work_carries_its_provenance(world: World) -> None:
    """Events, lineage nodes, shaped_by and search hits name the model, configuration and
    inputs of an agent's work; search_events finds it by agent, model and made_by."""
    await world.hub.registry.add("critic", kind="agent")
    config = "ab" * 32
    (comment,) = await world.hub.publish(
        {
            "type": "creative.feedback.comment",
            "subject": "story:wood",
            "creator": "critic",
            "model": "critic-1",
            "modelprovider": "offline",
            "confighash": config,
            "inputs": world.published_id,
            "data": {"on": world.published_id, "text": "The ending comes too fast."},
        }
    )
    async with servers(world, "alice") as c:
        hub = c["hub"]
        event = await ok(hub, "get_event", {"id": comment.id})
        assert (event["model"], event["modelprovider"], event["confighash"], event["inputs"]) == (
            "critic-1",
            "offline",
            config,
            [world.published_id],
        )
        plain = await ok(hub, "get_event", {"id": world.commit_id})
        assert (plain["model"], plain["modelprovider"], plain["confighash"], plain["inputs"]) == (
            None,
            None,
            None,
            [],
        )

        lin = await ok(hub, "lineage", {"id": comment.id})
        root = lin["root"]
        assert (root["kind"], root["model"], root["modelprovider"], root["made_with"]) == (
            "agent",
            "critic-1",
            "offline",
            "offline/critic-1",
        )
        assert root["confighash"] == config and root["inputs"] == [world.published_id]
        (source,) = [p for p in root["parents"] if p["relation"] == "input"]
        assert source["id"] == world.published_id and source["kind"] == "person" and source["model"] == ""
        shaped = lin["shaped_by"]
        assert "alice" in shaped["people"] and shaped["models"] == ["offline/critic-1"]
        (agent,) = shaped["agents"]
        assert agent["agent"] == "critic" and agent["models"] == ["offline/critic-1"]
        assert agent["confighashes"] == [config] and agent["inputs"] == [world.published_id]
        assert [e["id"] for e in agent["events"]] == [comment.id]
        # The work it was made from names the agent too (its feedback).
        earlier = await ok(hub, "lineage", {"id": world.published_id})
        assert [a["agent"] for a in earlier["shaped_by"]["agents"]] == ["critic"]
        assert comment.id in {n["id"] for n in earlier["feedback"]}

        async def found(**filters: Any) -> list[str]:
            hits = (await ok(hub, "search_events", {"limit": 100, **filters}))["hits"]
            return [h["id"] for h in hits]

        assert await found(agent="critic") == [comment.id]
        assert await found(model="offline/critic-1") == [comment.id]
        assert await found(model="critic-1") == await found(model="offline") == [comment.id]
        assert await found(made_by="agent") == [comment.id]
        assert await found(agent="alice") == [] and await found(model="offline/other") == []
        people = await found(made_by="person")
        assert world.published_id in people and comment.id not in people
        (hit,) = (await ok(hub, "search_events", {"query": "ending fast", "agent": "critic"}))["hits"]
        assert (hit["madeby"], hit["model"], hit["modelprovider"]) == ("agent", "critic-1", "offline")
        assert "made_by" in await error(hub, "search_events", {"made_by": "robot"})


def _env(world: World, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREATIVE_HUB_")}
    env["CREATIVE_HUB_LOG"] = world.url
    if token:
        env["CREATIVE_HUB_TOKEN"] = token
    return env


async def test_stdio_transport(world: World) -> None:
    for name, tools, call in (
        ("hub", HUB_TOOLS, ("search_events", {"query": SECRET})),
        ("github", GITHUB_TOOLS, ("list_repos", {})),
        ("story", STORY_TOOLS, ("list_stories", {})),
    ):
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "creative_hub", "mcp", name],
            env=_env(world, world.alice_token),
        )
        async with Client(params) as client:
            assert {t.name for t in (await client.list_tools()).tools} == tools
            result = await ok(client, *call)
            if name == "hub":
                assert [h["title"] for h in result["hits"]] == [f"Secret {SECRET} ending"]  # alice's token
                assert "limit" in await error(client, "search_events", {"limit": 1000})
                assert (await client.read_resource("hub://topics")).contents
    # Without a token: anonymous, public topics only.
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "creative_hub", "mcp", "hub"], env=_env(world, None)
    )
    async with Client(params) as client:
        assert (await ok(client, "search_events", {"query": SECRET}))["hits"] == []


@contextlib.asynccontextmanager
async def http_server(world: World) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(world.hub), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def http_client(url: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:  # the transport leaves it open
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


async def test_http_transport_with_bearer_tokens(world: World) -> None:
    async with http_server(world) as base:
        async with http_client(f"{base}/mcp/hub/", world.alice_token) as alice:
            assert {t.name for t in (await alice.list_tools()).tools} == HUB_TOOLS
            hits = (await ok(alice, "search_events", {"query": SECRET}))["hits"]
            assert [h["title"] for h in hits] == [f"Secret {SECRET} ending"]
            sent = await ok(
                alice,
                "publish_event",
                {"type": "creative.feedback.comment", "data": {"on": "x", "text": "hi"}},
            )
            assert (await ok(alice, "get_event", {"id": sent["id"]}))["creator"] == "alice"
            assert "limit" in await error(alice, "search_events", {"limit": -1})
            assert (await alice.read_resource("hub://peers")).contents
        async with http_client(f"{base}/mcp/hub/", world.bob_token) as bob:
            assert (await ok(bob, "search_events", {"query": SECRET}))["hits"] == []
        async with http_client(f"{base}/mcp/hub/", None) as anonymous:
            assert (await ok(anonymous, "search_events", {"query": SECRET}))["hits"] == []
            assert "needs a token" in await error(
                anonymous,
                "publish_event",
                {"type": "creative.feedback.comment", "data": {"on": "x", "text": "y"}},
            )
        for name, tools in (("github", GITHUB_TOOLS), ("story", STORY_TOOLS)):
            async with http_client(f"{base}/mcp/{name}/", world.bob_token) as client:
                assert {t.name for t in (await client.list_tools()).tools} == tools
        async with httpx2.AsyncClient() as raw:
            r = await raw.post(
                f"{base}/mcp/hub/",
                headers={"Authorization": "Bearer chub_0000000000000000_not-a-real-token-at-all"},
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            )
            assert r.status_code == 401


async def test_mounted_alone_the_mcp_endpoints_refuse_in_the_problem_shape(world: World) -> None:
    """mount() on an app without the hub's own auth: the MCP wrapper checks the bearer token
    and answers 401 as the REST API does (RFC 9457 problem details), with WWW-Authenticate."""
    from starlette.applications import Starlette

    from creative_hub.mcp.http import mount

    app = Starlette()
    ix = HubIndex(str(world.db) + ".index.db")
    mount(app, world.hub, index=ix, allow_anonymous=False)
    transport = httpx.ASGITransport(app=app)
    cases = [
        ({}, "this hub needs a token"),
        ({"Authorization": "Basic eDp5"}, "use 'Authorization: Bearer <token>'"),
        ({"Authorization": "Bearer chub_0000000000000000_not-a-real-token"}, "invalid or revoked token"),
    ]
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        for headers, detail in cases:
            r = await client.post("/mcp/hub/", headers=headers, json={"jsonrpc": "2.0", "id": 1})
            assert r.status_code == 401, (headers, r.text)
            assert r.headers["www-authenticate"] == 'Bearer realm="creative-hub"'
            assert r.headers["content-type"] == "application/problem+json"
            problem = {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": detail}
            assert r.json() == problem
    ix.close()

