"""The A2A gateway, driven by a2a-sdk's own client against a real server on a
free loopback port: agent cards, tasks that become hub events, results that
come back as task updates (on every engine)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from _agents import until
from creative_hub.agents import AgentContext, AgentRunner, AgentSettings, Task
from creative_hub.agents.a2a import A2AAgent, A2AGateway, BoundedTaskStore, HubUser, a2a_job, a2a_worker
from creative_hub.agents.patterns import job_topics
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger
from creative_hub.peers import PeerHub
from creative_hub.testing.servers import free_port

a2a_client = pytest.importorskip("a2a.client")
from a2a.helpers import get_artifact_text, get_data_parts  # noqa: E402
from a2a.types import Message, Part, Role, SendMessageRequest, TaskState  # noqa: E402

TOKENS: dict[str, str] = {}  # principal -> token, for the callers the fixture registers


@pytest.fixture
async def gateway(hub: Hub, ledger: EffectLedger, uid: str) -> AsyncIterator[tuple[str, str, Hub]]:
    """A gateway for agent ``words-<uid>`` (counts words; fails on "boom"; "get:ID" reads
    an event and answers its title), served on a free port; callers ``alice-<uid>`` and
    ``bob-<uid>`` have tokens in TOKENS."""
    agent_id = f"words-{uid}"
    for who in (f"alice-{uid}", f"bob-{uid}"):
        await hub.registry.add(who)
        TOKENS[who] = await hub.registry.issue_token(who)

    async def count(ctx: AgentContext, task: Task) -> Mapping[str, Any]:
        text = str(task.input["text"])
        if "boom" in text:
            raise ValueError("cannot count an explosion")
        if text.startswith("get:"):
            stored = await ctx.get(text[4:])
            return {"text": str(stored.event.data["title"])}
        return {"text": f"{len(text.split())} words", "words": len(text.split())}

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gw = A2AGateway(hub, [A2AAgent(agent_id, "Counts the words of a text")], base_url=base, timeout=60)
    server = asyncio.create_task(gw.serve(port=port))
    settings = AgentSettings(ack_timeout=5, max_attempts=2)
    try:
        async with AgentRunner(hub, [a2a_worker(agent_id, count, settings=settings)], ledger=ledger):
            await until(lambda: gw.started or server.done(), "the gateway listens")
            yield gw.url(agent_id), agent_id, hub
    finally:
        gw.stop()
        await asyncio.wait_for(server, 30)


def message(text: str, context_id: str | None = None) -> SendMessageRequest:
    msg = Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text=text)])
    if context_id:
        msg.context_id = context_id
    return SendMessageRequest(message=msg)


def caller(url: str) -> str:
    """The fixture's alice for this gateway's url (its uid is in the agent's name)."""
    return "alice-" + url.rstrip("/").rsplit("words-", 1)[1]


async def send(
    url: str, text: str, *, streaming: bool, context_id: str | None = None, who: str | None = None
) -> list[Any]:
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKENS[who or caller(url)]}"}, timeout=60)
    config = a2a_client.ClientConfig(streaming=streaming, httpx_client=http)
    client = await a2a_client.create_client(url, client_config=config)
    try:
        return [r async for r in client.send_message(message(text, context_id))]
    finally:
        await client.close()
        await http.aclose()


async def test_card_and_streamed_task_become_events_and_come_back(gateway: tuple[str, str, Hub]) -> None:
    url, agent_id, hub = gateway
    resolver = a2a_client.A2ACardResolver(httpx.AsyncClient(), url)
    try:
        card = await resolver.get_agent_card()
    finally:
        await resolver.httpx_client.aclose()
    assert card.name == agent_id and card.capabilities.streaming
    assert card.supported_interfaces[0].url == url + "/"
    # The card says how to authenticate: a hub token, as a bearer token.
    (scheme,) = card.security_schemes.values()
    assert scheme.http_auth_security_scheme.scheme == "Bearer"
    assert list(card.security_requirements[0].schemes) == list(card.security_schemes)

    responses = await send(url, "Hansel and Gretel went into the wood", streaming=True, context_id="ctx-1")
    states = [r.status_update.status.state for r in responses if r.HasField("status_update")]
    assert TaskState.TASK_STATE_WORKING in states and states[-1] == TaskState.TASK_STATE_COMPLETED
    (artifact,) = [r.artifact_update.artifact for r in responses if r.HasField("artifact_update")]
    assert get_artifact_text(artifact).startswith("7 words")
    assert get_data_parts(list(artifact.parts))[0]["words"] == 7
    task_id = next(r.status_update.task_id for r in responses if r.HasField("status_update"))
    # The A2A task is a hub event, and its result one too, linked by ids.
    topics = job_topics(a2a_job(agent_id))
    (task_event,) = [s.event async for s in hub.replay(topics.tasks)]
    assert task_event.data["task"] == task_id and task_event.correlationid == "ctx-1"
    assert task_event.creator == caller(url)  # the gateway acts as the caller
    assert task_event.data["input"]["text"] == "Hansel and Gretel went into the wood"
    (result_event,) = [s.event async for s in hub.replay(topics.results)]
    assert result_event.causationid == task_event.id and result_event.creator == agent_id


async def test_non_streaming_client_and_a_failing_task(gateway: tuple[str, str, Hub]) -> None:
    url, _, _ = gateway
    (done,) = await send(url, "one two three", streaming=False)
    assert done.task.status.state == TaskState.TASK_STATE_COMPLETED
    assert get_artifact_text(done.task.artifacts[0]) == "3 words"
    responses = await send(url, "boom", streaming=True)
    final = [r.status_update.status for r in responses if r.HasField("status_update")][-1]
    assert final.state == TaskState.TASK_STATE_FAILED
    assert "cannot count an explosion" in final.message.parts[0].text


async def test_every_call_needs_a_hub_token(gateway: tuple[str, str, Hub]) -> None:
    url, _, hub = gateway
    rpc = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"role": "ROLE_USER", "messageId": "m1", "parts": [{"text": "one two"}]}},
    }
    topics = job_topics(a2a_job(url.rsplit("/", 1)[1]))
    async with httpx.AsyncClient(timeout=30) as http:
        for headers in (
            {},
            {"Authorization": "Bearer chub_0000000000000000_not-a-real-token-at-all"},
            {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        ):
            r = await http.post(url + "/", json=rpc, headers=headers)
            assert r.status_code == 401, (headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
        two = [("Authorization", f"Bearer {TOKENS[caller(url)]}")] * 2
        assert (await http.post(url + "/", json=rpc, headers=two)).status_code == 401
        # The card stays open: it is how a client learns to authenticate.
        assert (await http.get(url + "/.well-known/agent-card.json")).status_code == 200
    # Nothing reached the hub: no task was run with the agent's rights for nobody.
    assert [s async for s in hub.replay(topics.tasks)] == []


async def test_the_callers_rights_bound_what_the_agent_reads(gateway: tuple[str, str, Hub]) -> None:
    url, agent_id, hub = gateway
    alice, bob = caller(url), caller(url).replace("alice-", "bob-")
    mine = PeerHub(hub.acting(alice, authenticated=True))
    draft = await mine.draft(
        "creative.narrative.fragment", "story:w", {"story": "w", "title": "Private title", "text": "t"}
    )
    await hub.grants.give(hub.acting(alice, authenticated=True).identity, agent_id, subject="story:w")
    # For bob the agent may not read alice's draft, though its grant would let it.
    responses = await send(url, f"get:{draft.id}", streaming=True, who=bob)
    final = [r.status_update.status for r in responses if r.HasField("status_update")][-1]
    assert final.state == TaskState.TASK_STATE_FAILED
    assert "Private title" not in str(responses)
    # For alice it may: her own draft.
    (done,) = await send(url, f"get:{draft.id}", streaming=False, who=alice)
    assert get_artifact_text(done.task.artifacts[0]) == "Private title"
    # bob cannot see alice's task.
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKENS[bob]}"}, timeout=30)
    client = await a2a_client.create_client(url, client_config=a2a_client.ClientConfig(httpx_client=http))
    try:
        from a2a.types import GetTaskRequest

        with pytest.raises(Exception, match="(?i)not found"):
            await client.get_task(GetTaskRequest(id=done.task.id))
    finally:
        await client.close()
        await http.aclose()


async def test_the_task_store_is_bounded() -> None:
    from a2a.server.context import ServerCallContext
    from a2a.types import Task as A2ATask

    store = BoundedTaskStore(limit=2)
    ctx = ServerCallContext(user=HubUser("alice"))
    for n in range(3):
        await store.save(A2ATask(id=f"t{n}", context_id="c"), ctx)
    assert len(store) == 2
    assert await store.get("t0", ctx) is None and await store.get("t2", ctx) is not None
    assert await store.get("t2", ServerCallContext(user=HubUser("bob"))) is None  # per caller
