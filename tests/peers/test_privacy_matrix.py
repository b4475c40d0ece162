"""The drafts-privacy matrix: alice's drafts appear nowhere bob or an anonymous reader looks.

On every engine, alice keeps drafts holding a secret word, publishes other
work, and grants an agent her ``story:wood`` drafts; the agent reads one and
writes a summary of it (which the hub keeps private to alice).  Then bob
(with a token) and an anonymous reader look through every face -- the
Python API, HTTP, Server-Sent Events, the CLI, MCP over stdio and over
HTTP, A2A, search, lineage, metrics and activity -- and must find neither
the secret, nor the drafts topic, nor a draft by its id.  alice, on the same
faces, does find them (so the probes can fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from mcp import Client, StdioServerParameters
from typer.testing import CliRunner

import creative_hub.agents  # noqa: F401 -- registers creative.agents.* types
from _agents import until
from creative_hub.access import ANONYMOUS
from creative_hub.agents import AgentContext, AgentRunner, AgentSettings, Task
from creative_hub.cli import app as cli_app
from creative_hub.errors import AccessDenied, NotFound
from creative_hub.hub import Hub
from creative_hub.index import HubIndex, SearchQuery
from creative_hub.ledger import EffectLedger
from creative_hub.lineage import lineage
from creative_hub.peers import PeerHub
from creative_hub.server import create_app
from creative_hub.testing.servers import free_port

a2a_client = pytest.importorskip("a2a.client")
httpx2 = pytest.importorskip("httpx2")
from a2a.types import Message, Part, Role, SendMessageRequest, TaskState  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from creative_hub.agents.a2a import A2AAgent, A2AGateway, a2a_worker  # noqa: E402

SECRET = "xylophone"  # only alice's drafts (and what is made from them) hold it
FRAGMENT = "creative.narrative.fragment"


@dataclass
class Matrix:
    hub: Hub
    url: str
    tmp: Path
    tag: str
    tokens: dict[str, str] = field(default_factory=dict)
    drafts: list[str] = field(default_factory=list)  # ids of alice's secret drafts
    published: str = ""

    def name(self, who: str) -> str:
        return f"{who}{self.tag}"

    @property
    def topic(self) -> str:
        return f"peer.{self.name('alice')}.drafts"

    def as_(self, who: str) -> Hub:
        return self.hub.acting(self.name(who), authenticated=True) if who != "anonymous" else self.anonymous

    @property
    def anonymous(self) -> Hub:
        return self.hub.acting(ANONYMOUS)

    def leaks(self, text: str) -> list[str]:
        """What of alice's drafts ``text`` shows: the secret, the topic, a draft's id."""
        found = [w for w in (SECRET, self.topic) if w in text]
        return found


@pytest.fixture
async def matrix(log_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Matrix]:
    monkeypatch.chdir(tmp_path)  # a server's default index (.creative-hub/) lands in the test's dir
    tag = uuid.uuid4().hex[:8]  # brokers are shared between tests: names unique per test
    async with Hub.connect(log_url, keys=str(tmp_path / "keys")) as hub:
        m = Matrix(hub, log_url, tmp_path, tag)
        for who, kind in (("alice", "person"), ("bob", "person"), ("agent", "agent")):
            await hub.registry.add(m.name(who), kind=kind)  # type: ignore[arg-type]
            m.tokens[who] = await hub.registry.issue_token(m.name(who))
        alice = PeerHub(m.as_("alice"))
        d1 = await alice.draft(
            FRAGMENT, "story:wood", {"story": "wood", "title": "Wood", "text": f"a {SECRET}"}
        )
        d2 = await alice.revise(d1.id, {"title": f"The {SECRET}", "text": f"the {SECRET} sings"})
        plain = await alice.draft(FRAGMENT, "story:sea", {"story": "sea", "title": "Sea", "text": "waves"})
        m.published = (await alice.publish(plain.id)).id
        m.drafts = [d1.id, d2.id]
        # A grant, and an agent's work made from a granted draft (kept private to alice).
        owner = m.as_("alice").identity
        await hub.grants.give(owner, m.name("agent"), subject="story:wood", expires="1h")
        agent = m.as_("agent")
        read = await agent.get(d2.id)
        await agent.publish(
            {
                "type": "creative.feedback.comment",
                "subject": "story:wood",
                "inputs": read.event.id,
                "data": {"on": read.event.id, "text": f"summary: {SECRET}"},
            }
        )
        # A consumer group on the drafts with lag (what /metrics would show).
        async with m.as_("alice").subscribe(m.topic, f"readers{tag}") as sub:
            await sub.next(timeout=30)
        yield m


async def _everything(hub: Hub) -> str:
    """Every event ``hub``'s principal can read in every topic it may list, as text."""
    out = []
    for t in await hub.topics():
        out.append(t.name)
        out += [json.dumps(s.event.to_dict()) async for s in hub.replay(t.name)]
    return "\n".join(out)


# -- the Python API, search, lineage --------------------------------------------------------------
async def _python(m: Matrix, who: str) -> str:
    hub = m.as_(who)
    seen = [await _everything(hub)]
    for d in m.drafts:
        try:
            seen.append(json.dumps((await hub.get(d)).event.to_dict()))
        except NotFound:
            pass
    try:
        seen += [json.dumps(s.event.to_dict()) async for s in hub.replay(m.topic)]
    except AccessDenied:
        pass
    seen.append(json.dumps([[t.name, t.count] for t, _ in await hub.stats()]))
    ix = HubIndex(str(m.tmp / "py-index.db"), semantic=False)
    try:
        await ix.refresh(m.hub, force=True)
        hits = (await ix.search(hub.identity, SearchQuery(text=SECRET))).hits
        seen.append(json.dumps([[h.id, h.topic, h.title] for h in hits]))
    finally:
        ix.close()
    graph = await lineage(hub, m.published)
    seen.append(json.dumps(graph.to_dict() if hasattr(graph, "to_dict") else repr(graph), default=str))
    return "\n".join(seen)


# -- HTTP, SSE, MCP over HTTP, metrics, activity ------------------------------------------------------
@contextlib.asynccontextmanager
async def _server(m: Matrix) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(m.hub), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started or task.done(), "the HTTP server listens")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _sse(http: httpx.AsyncClient, path: str) -> str:
    """What an SSE stream sends until it has been quiet for a while (history, then nothing)."""
    lines: list[str] = []
    async with http.stream("GET", path) as r:
        if r.status_code != 200:
            return f"{r.status_code}"
        it = r.aiter_lines()
        while True:
            try:
                lines.append(await asyncio.wait_for(anext(it), 1.5))
            except (TimeoutError, StopAsyncIteration):
                break
    return "\n".join(lines)


async def _http(m: Matrix, base: str, who: str) -> str:
    headers = {"Authorization": f"Bearer {m.tokens[who]}"} if who in m.tokens else {}
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        paths = [
            "/v1/topics",
            "/v1/stats",
            f"/v1/topics/{m.topic}/events",
            "/v1/activity?hours=24",
            f"/v1/lineage/{m.published}",
            f"/v1/search?q={SECRET}",
            "/metrics",
            *(f"/v1/events/{d}" for d in m.drafts),
        ]
        for t in (await http.get("/v1/topics")).json():
            paths.append(f"/v1/topics/{t['name']}/events?limit=1000")
        for path in paths:
            r = await http.get(path)
            # A refusal repeats what was asked (the topic, the query): only its status counts.
            seen.append(r.text if r.status_code == 200 else str(r.status_code))
        for topic in (m.topic, "creative.feedback", f"peer.{m.name('alice')}.feedback"):
            seen.append(await _sse(http, f"/v1/topics/{topic}/stream"))
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http2:
        async with Client(streamable_http_client(f"{base}/mcp/hub/", http_client=http2)) as client:
            seen.append(await _mcp(client, m))
    return "\n".join(seen)


async def _mcp(client: Client, m: Matrix) -> str:
    seen = []
    calls: list[tuple[str, dict[str, Any]]] = [
        ("search_events", {"query": SECRET}),
        ("replay", {"topic": m.topic}),
        ("peer_hub", {"peer": m.name("alice"), "stream": "drafts"}),
        *(("get_event", {"id": d}) for d in m.drafts),
    ]
    for tool, args in calls:
        r = await client.call_tool(tool, args)
        seen.append(json.dumps(r.structured_content) if not r.is_error else "error")
    seen.append(str((await client.read_resource("hub://topics")).contents))
    return "\n".join(seen)


# -- MCP over stdio, the CLI ------------------------------------------------------------------------------
def _env(m: Matrix, who: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREATIVE_HUB_")}
    env |= {"CREATIVE_HUB_LOG": m.url, "CREATIVE_HUB_INDEX": str(m.tmp / f"mcp-{who}.db")}
    if who in m.tokens:
        env["CREATIVE_HUB_TOKEN"] = m.tokens[who]
    return env


async def _stdio(m: Matrix, who: str) -> str:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "creative_hub", "mcp", "hub"], env=_env(m, who)
    )
    async with Client(params) as client:
        return await _mcp(client, m)


def _cli(m: Matrix, who: str) -> str:
    env = {"CREATIVE_HUB_TOKEN": m.tokens.get(who), "CREATIVE_HUB_LOG": None, "CREATIVE_HUB_INDEX": None}
    seen = []
    out = m.tmp / f"cli-{who}.jsonl"
    for args in (
        ["topics", "--json"],
        ["stats", "--json"],
        ["replay", m.topic, "--to", str(out)],
        ["replay", "creative.feedback"],
    ):
        r = CliRunner().invoke(cli_app, [*args, "--log", m.url], env=env)
        seen.append(r.output if r.exit_code == 0 else f"exit {r.exit_code}")  # an error repeats the topic
    if out.exists():
        seen.append(out.read_text())
    return "\n".join(seen)


# -- A2A: an agent with a grant, asked by someone without one -----------------------------------------
def _message(text: str) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text=text)])
    )


async def _a2a(m: Matrix, who: str) -> str:
    agent_id = m.name("agent")

    async def fetch(ctx: AgentContext, task: Task) -> Mapping[str, Any]:
        stored = await ctx.get(str(task.input["text"]))
        return {"text": json.dumps(stored.event.to_dict())}

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gw = A2AGateway(m.hub, [A2AAgent(agent_id, "fetches an event")], base_url=base, timeout=60)
    server = asyncio.create_task(gw.serve(port=port))
    seen: list[str] = []
    settings = AgentSettings(ack_timeout=10, max_attempts=1)
    ledger = EffectLedger(m.tmp / f"a2a-{who}.db")
    try:
        async with AgentRunner(m.hub, [a2a_worker(agent_id, fetch, settings=settings)], ledger=ledger):
            await until(lambda: gw.started or server.done(), "the gateway listens")
            headers = {"Authorization": f"Bearer {m.tokens[who]}"} if who in m.tokens else {}
            async with httpx.AsyncClient(headers=headers, timeout=90) as http:
                if who not in m.tokens:
                    r = await http.post(
                        gw.url(agent_id) + "/", json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage"}
                    )
                    seen.append(f"{r.status_code} {r.text}")
                else:
                    config = a2a_client.ClientConfig(streaming=False, httpx_client=http)
                    client = await a2a_client.create_client(gw.url(agent_id), client_config=config)
                    try:
                        (done,) = [r async for r in client.send_message(_message(m.drafts[1]))]
                        seen.append(str(done))
                        seen.append(
                            "completed" if done.task.status.state == TaskState.TASK_STATE_COMPLETED else ""
                        )
                    finally:
                        await client.close()
    finally:
        gw.stop()
        await asyncio.wait_for(server, 30)
    return "\n".join(seen)


# -- the matrix ----------------------------------------------------------------------------------------
async def test_drafts_appear_on_no_face_for_anyone_else(matrix: Matrix) -> None:
    m = matrix
    async with _server(m) as base:
        for who in ("bob", "anonymous", "alice"):
            faces = {
                "python, search, lineage": await _python(m, who),
                "http, sse, mcp-http, metrics, activity": await _http(m, base, who),
                "mcp-stdio": await _stdio(m, who),
                "cli": await asyncio.to_thread(_cli, m, who),
            }
            if who != "alice":
                for face, text in faces.items():
                    where = [line[:300] for line in text.splitlines() if m.leaks(line)]
                    assert m.leaks(text) == [], f"{who} sees alice's drafts through {face}: {where}"
            else:  # the probes can fail: the owner finds her drafts on every face
                for face, text in faces.items():
                    assert SECRET in text, f"alice's own drafts missing from {face}"
    # A2A: the agent holds a grant, bob does not -- asked by bob it reads nothing for him.
    seen = await _a2a(m, "bob")
    assert SECRET not in seen and "completed" not in seen
    seen = await _a2a(m, "anonymous")
    assert seen.startswith("401") and SECRET not in seen
    seen = await _a2a(m, "alice")
    assert SECRET in seen and "completed" in seen
