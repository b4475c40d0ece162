"""Live resources over MCP, with the SDK's own client over streamable HTTP.

The hub's HTTP server runs in this process (uvicorn on a free port), so a
test can see that no live task outlives its subscriber.  Events are
published through the REST API, as any other client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import ResourceUpdatedNotification

from _world import SECRET, World
from creative_hub.mcp.live import TASK_PREFIX
from creative_hub.peers import PeerHub
from creative_hub.server import create_app
from creative_hub.testing.servers import free_port

pytestmark = pytest.mark.sqlite

WAIT = 30.0  # seconds: a generous upper bound for anything to arrive
LIVE_TEMPLATES = {
    "hub://topics/{topic}{?after,limit}",
    "hub://peers/{peer}/{stream}{?after,limit}",
    "hub://subjects/{subject}{?after,limit}",
}


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
async def mcp_client(base: str, token: str | None, **kwargs: Any) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=WAIT) as http:
        async with Client(streamable_http_client(f"{base}/mcp/hub/", http_client=http), **kwargs) as client:
            yield client


async def read(client: Client, uri: str) -> dict[str, Any]:
    result = await client.read_resource(uri)
    page: dict[str, Any] = json.loads(result.contents[0].text)  # type: ignore[union-attr]
    return page


async def read_all(client: Client, uri: str) -> tuple[list[dict[str, Any]], str]:
    """Follow 'next' to the end: every event, and the URI to read after an update."""
    events: list[dict[str, Any]] = []
    while True:
        page = await read(client, uri)
        events += page["events"]
        uri = page["next"]
        if not page["more"]:
            return events, uri


async def publish(base: str, token: str, item: dict[str, Any]) -> str:
    async with httpx2.AsyncClient() as http:
        r = await http.post(f"{base}/v1/events", json=item, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text
        event_id: str = r.json()[0]["id"]
        return event_id


def comment(text: str) -> dict[str, Any]:
    return {"type": "creative.feedback.comment", "data": {"on": "story:hansel", "text": text}}


def live_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(TASK_PREFIX) and not t.done()]


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():
            await asyncio.sleep(0.05)


async def test_templates_and_cursor_pages_have_no_gaps_or_duplicates(world: World) -> None:
    expected = [s.event.id async for s in world.hub.replay("creative.narrative")]
    about_wood = [
        s.event.id
        for stream in ("drafts", "published", "contributions", "feedback")
        async for s in world.hub.replay(f"peer.alice.{stream}")
        if s.event.subject == "story:wood"
    ]
    async with http_server(world) as base, mcp_client(base, world.alice_token) as alice:
        templates = {t.uri_template for t in (await alice.list_resource_templates()).resource_templates}
        assert LIVE_TEMPLATES <= templates and "hub://events/{id}" in templates

        for limit in (1, 2, 3, 50):
            events, end = await read_all(alice, f"hub://topics/creative.narrative?limit={limit}")
            assert [e["id"] for e in events] == expected, limit
            assert (await read(alice, end))["events"] == []  # the end: read again after an update
        # A subject spans topics (her drafts too, for her); the shared copies are left out.
        events, _ = await read_all(alice, "hub://subjects/story:wood?limit=1")
        assert sorted(e["id"] for e in events) == sorted(about_wood)
        assert len({e["id"] for e in events}) == len(events)
        assert any(SECRET in e["title"] for e in events)

        page = await read(alice, "hub://peers/alice/published?limit=1")
        assert page["topic"] == "peer.alice.published" and page["events"][0]["id"] == world.published_id
        with pytest.raises(MCPError, match="limit"):
            await read(alice, "hub://topics/creative.narrative?limit=0")

    async with http_server(world) as base, mcp_client(base, world.bob_token) as bob:
        events, _ = await read_all(bob, "hub://subjects/story:wood")
        assert events and all(SECRET not in e["title"] for e in events)


async def test_subscribe_publish_notified_read_next_page(world: World) -> None:
    uri = "hub://topics/creative.feedback"
    async with http_server(world) as base:
        async with mcp_client(base, world.bob_token) as bob:
            _, after = await read_all(bob, uri)
            async with bob.listen(resource_subscriptions=[uri]) as updates:
                assert updates.honored.resource_subscriptions == [uri]
                assert live_tasks()  # a tail of creative.feedback, and the flusher
                sent = await publish(base, world.alice_token, comment("Live from the oven."))
                async with asyncio.timeout(WAIT):
                    update = await anext(updates)
                assert getattr(update, "uri", None) == uri
                page = await read(bob, after)
                assert [e["id"] for e in page["events"]] == [sent]
                assert page["events"][0]["creator"] == "alice"
                assert (await read(bob, page["next"]))["events"] == []

                # A burst becomes few notifications, and the pages hold all of it.
                burst = [await publish(base, world.alice_token, comment(f"Burst {i}")) for i in range(20)]
                async with asyncio.timeout(WAIT):
                    await anext(updates)
                events, _ = await read_all(bob, page["next"])
                seen = [e["id"] for e in events]
                while seen != burst:  # the burst may still be arriving: wait for the next update
                    async with asyncio.timeout(WAIT):
                        await anext(updates)
                    events, _ = await read_all(bob, page["next"])
                    seen = [e["id"] for e in events]
        # The client went away: nothing keeps tailing for it.
        await until(lambda: not live_tasks())


async def test_subject_subscription_spans_topics_and_keeps_drafts_private(world: World) -> None:
    uri = "hub://subjects/story:wood"
    async with http_server(world) as base, mcp_client(base, world.bob_token) as bob:
        _, after = await read_all(bob, uri)
        async with bob.listen(resource_subscriptions=[uri]) as updates:
            alice = PeerHub(world.hub.acting("alice", authenticated=True))
            await alice.draft(
                "creative.narrative.fragment",
                "story:wood",
                {"story": "wood", "title": f"Another {SECRET}", "text": "Hidden."},
            )
            sent = await publish(
                base, world.bob_token, {**comment("About the wood."), "subject": "story:wood"}
            )
            events: list[dict[str, Any]] = []
            while sent not in {e["id"] for e in events}:
                async with asyncio.timeout(WAIT):
                    assert getattr(await anext(updates), "uri", None) == uri
                events, _ = await read_all(bob, after)
            assert [e["id"] for e in events] == [sent]  # her new draft is hers alone
    await until(lambda: not live_tasks())


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_resources_subscribe_on_a_2025_session_and_unsubscribe(world: World) -> None:
    updates: asyncio.Queue[str] = asyncio.Queue()

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            await updates.put(str(message.params.uri))

    feedback, paged = "hub://topics/creative.feedback", "hub://topics/creative.feedback?limit=5"
    async with http_server(world) as base:
        async with mcp_client(base, world.bob_token, mode="legacy", message_handler=on_message) as bob:
            caps = bob.server_capabilities.resources
            assert caps is not None and caps.subscribe
            await bob.subscribe_resource(feedback)
            await bob.subscribe_resource(paged)
            _, after = await read_all(bob, feedback)
            sent = await publish(base, world.alice_token, comment("Old-style."))
            async with asyncio.timeout(WAIT):
                got = {await updates.get(), await updates.get()}
            assert got == {feedback, paged}
            assert [e["id"] for e in (await read(bob, after))["events"]] == [sent]

            # Unsubscribed: the same event's notifications (sent in URI order) skip it.
            await bob.unsubscribe_resource(feedback)
            await publish(base, world.alice_token, comment("Only the paged one hears this."))
            async with asyncio.timeout(WAIT):
                assert await updates.get() == paged
            assert updates.empty()

            with pytest.raises(MCPError, match="may not read"):
                await bob.subscribe_resource("hub://peers/alice/drafts")
            with pytest.raises(MCPError, match="not a live resource"):
                await bob.subscribe_resource(f"hub://events/{sent}")
        await until(lambda: not live_tasks())  # the session ended: its subscriptions with it


async def test_drafts_resource_is_the_owners_only(world: World) -> None:
    drafts = "hub://peers/alice/drafts"
    async with http_server(world) as base:
        async with mcp_client(base, world.alice_token) as alice:
            events, _ = await read_all(alice, drafts)
            assert any(SECRET in e["title"] for e in events)
        for token in (world.bob_token, None):
            async with mcp_client(base, token) as other:
                with pytest.raises(MCPError, match="may not read"):
                    await read(other, drafts)
                with pytest.raises(MCPError, match="may not read"):
                    async with other.listen(resource_subscriptions=[drafts]):
                        pass
                topics = json.loads((await other.read_resource("hub://topics")).contents[0].text)  # type: ignore[union-attr]
                assert "peer.alice.drafts" not in {t["name"] for t in topics}
        await until(lambda: not live_tasks())


async def test_why_changed_names_the_contributor_and_the_decision(world: World) -> None:
    alice = PeerHub(world.hub.acting("alice", authenticated=True))
    decided, revision = await alice.accept(world.proposal_id, "Darker is better")
    async with http_server(world) as base, mcp_client(base, world.bob_token) as bob:
        tools = {t.name: t for t in (await bob.list_tools()).tools}
        assert tools["why_changed"].output_schema
        r = await bob.call_tool("why_changed", {"id": revision.id})
        assert not r.is_error, r.content
        why = r.structured_content
        assert isinstance(why, dict) and why["id"] == revision.id
        steps = {s["id"]: s for s in why["steps"]}
        assert steps[world.proposal_id]["what"] == "proposed" and steps[world.proposal_id]["who"] == "bob"
        decision = steps[decided.id]
        assert decision["what"] == "accepted" and decision["who"] == "alice"
        assert decision["proposal"] == world.proposal_id and decision["proposer"] == "bob"
        last = why["steps"][-1]
        assert last["id"] == revision.id and "bob's accepted contribution 'A darker trail'" in last["text"]
        order = [s["id"] for s in why["steps"]]
        assert order.index(world.published_id) < order.index(world.proposal_id) < order.index(decided.id)
        feedback = [s for s in why["steps"] if s["what"] == "feedback"]
        assert feedback and feedback[0]["before"] == revision.id  # it came before the new revision
        assert {"alice", "bob"} <= set(why["people"])
        text = r.content[0].text  # type: ignore[union-attr]
        assert "alice accepted bob's proposal 'A darker trail' (Darker is better)" in text
        assert SECRET not in json.dumps(why)  # alice's private draft is not bob's to see

        assert "no event 'nope'" in (await bob.call_tool("why_changed", {"id": "nope"})).content[0].text  # type: ignore[union-attr]
