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

from creative_hub.agents import AgentContext, AgentRunner, AgentSettings, Task
from creative_hub.agents.a2a import A2AAgent, A2AGateway, a2a_job, a2a_worker
from creative_hub.agents.patterns import job_topics
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger
from creative_hub.testing.agents import until
from creative_hub.testing.servers import free_port

a2a_client = pytest.importorskip("a2a.client")
from a2a.helpers import get_artifact_text, get_data_parts  # noqa: E402
from a2a.types import Message, Part, Role, SendMessageRequest, TaskState  # noqa: E402


@pytest.fixture
async def gateway(hub: Hub, ledger: EffectLedger, uid: str) -> AsyncIterator[tuple[str, str, Hub]]:
    """A gateway for agent ``words-<uid>`` (counts words; fails on "boom"), served on a free port."""
    agent_id = f"words-{uid}"

    async def count(ctx: AgentContext, task: Task) -> Mapping[str, Any]:
        text = str(task.input["text"])
        if "boom" in text:
            raise ValueError("cannot count an explosion")
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


async def send(url: str, text: str, *, streaming: bool, context_id: str | None = None) -> list[Any]:
    config = a2a_client.ClientConfig(streaming=streaming)
    client = await a2a_client.create_client(url, client_config=config)
    try:
        return [r async for r in client.send_message(message(text, context_id))]
    finally:
        await client.close()


async def test_card_and_streamed_task_become_events_and_come_back(gateway: tuple[str, str, Hub]) -> None:
    url, agent_id, hub = gateway
    resolver = a2a_client.A2ACardResolver(httpx.AsyncClient(), url)
    try:
        card = await resolver.get_agent_card()
    finally:
        await resolver.httpx_client.aclose()
    assert card.name == agent_id and card.capabilities.streaming
    assert card.supported_interfaces[0].url == url + "/"

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
