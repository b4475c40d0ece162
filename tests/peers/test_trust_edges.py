"""Issue 16: the holes at the edges of the trust model, one test each.

A grant is read access only (an agent's work derived from granted drafts stays
private to their owner; fork and publish through a grant are refused); agent
work queues (``agents.*``) are not for everyone; private visibility is
honoured or refused on every face; ``/metrics`` names no private topic; the
HTTP gate refuses tokens in query strings and doubled ``Authorization``
headers; tokens can expire; the log and index files are the user's alone; an
agent cannot claim ``inputs`` it could not read.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from typer.testing import CliRunner

import creative_hub.agents  # noqa: F401 -- registers creative.agents.* types
from _agents import until
from creative_hub.access import ANONYMOUS
from creative_hub.agents import AgentRunner, AgentSettings
from creative_hub.agents.builtin import analyst
from creative_hub.cli import app as cli_app
from creative_hub.errors import AccessDenied, ValidationError
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger
from creative_hub.peers import PeerHub
from creative_hub.server import create_app

SECRET = "quokka"
FRAGMENT = "creative.narrative.fragment"


class Scene:
    """alice with two wood drafts and a sea draft; bob; an analyst agent with tokens."""

    def __init__(self, hub: Hub, url: str, tokens: dict[str, str]) -> None:
        self.hub, self.url, self.tokens = hub, url, tokens
        self.wood: list[str] = []
        self.sea = ""

    def as_(self, who: str) -> Hub:
        return self.hub.acting(who, authenticated=True)

    async def visible_to(self, who: Hub) -> list[Any]:
        """Every event ``who`` can read in every topic it may list."""
        out = []
        for t in await who.topics():
            out += [s.event async for s in who.replay(t.name)]
        return out


async def make_scene(url: str, keys: Path) -> AsyncIterator[Scene]:
    async with Hub.connect(url, keys=str(keys)) as hub:
        await hub.registry.add("alice")
        await hub.registry.add("bob")
        await hub.registry.add("analyst", kind="agent")
        tokens = {p: await hub.registry.issue_token(p) for p in ("alice", "bob", "analyst")}
        scene = Scene(hub, url, tokens)
        mine = PeerHub(scene.as_("alice"))
        d1 = await mine.draft(
            FRAGMENT, "story:wood", {"story": "wood", "title": "Wood", "text": f"a {SECRET}"}
        )
        d2 = await mine.revise(d1.id, {"text": f"the {SECRET} hides in the wood"})
        sea = await mine.draft(FRAGMENT, "story:sea", {"story": "sea", "title": "Sea", "text": "waves"})
        scene.wood, scene.sea = [d1.id, d2.id], sea.id
        yield scene


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    async for s in make_scene(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / "keys"):
        yield s


def _mentions(events: list[Any], ids: list[str]) -> list[Any]:
    """Events that carry a draft's text or point at one of ``ids``."""
    out = []
    for e in events:
        links = {e.causationid, e.supersedes, e.forkedfrom, *e.input_ids}
        if SECRET in json.dumps(e.to_dict()) or links & set(ids):
            out.append(e)
    return out


# -- item 2: a grant is read access only ------------------------------------------------------
async def test_analyst_with_a_subject_grant_publishes_nothing_others_can_read(
    scene: Scene, tmp_path: Path
) -> None:
    owner = scene.as_("alice")
    await scene.hub.grants.give(owner.identity, "analyst", subject="story:wood", expires="1h")
    agent = analyst(topics=["peer.alice.drafts"], settings=AgentSettings(ack_timeout=10, max_attempts=2))
    ledger = EffectLedger(tmp_path / "ledger.db")
    async with AgentRunner(scene.hub, [agent], ledger=ledger) as runner:
        await until(lambda: runner.stats["analyst"].handled + runner.stats["analyst"].dead_lettered >= 2, "2")
    assert runner.stats["analyst"].dead_lettered == 0
    for who in (scene.as_("bob"), scene.hub.acting(ANONYMOUS)):
        leaked = _mentions(await scene.visible_to(who), scene.wood)
        assert leaked == [], f"{who.principal} reads the analyst's work on alice's drafts: {leaked}"
    # The owner gets the analysis, privately, in her drafts.
    mine = [s.event async for s in owner.replay("peer.alice.drafts") if s.event.creator == "analyst"]
    assert {e.causationid for e in mine} == set(scene.wood)
    assert all(e.visibility == "private" and e.hub == "alice" for e in mine)


async def test_derived_work_is_confined_whatever_the_writer_asks(scene: Scene) -> None:
    owner, agent = scene.as_("alice"), scene.as_("analyst")
    await scene.hub.grants.give(owner.identity, "analyst", subject="story:wood", expires="1h")
    read = await agent.get(scene.wood[1])  # through the grant
    comment = {
        "type": "creative.feedback.comment",
        "subject": "story:wood",
        "inputs": read.event.id,
        "data": {"on": read.event.id, "text": "a summary"},
    }
    (r,) = await agent.publish(comment)  # asked for the shared feedback topic
    assert r.topic == "peer.alice.drafts"
    (r,) = await agent.publish({**comment, "hub": "alice", "id": "c2"})  # alice's public feedback
    assert r.topic == "peer.alice.drafts"
    # Work derived from two owners' drafts cannot be private to both: refused.
    carol = PeerHub(scene.as_("bob"))
    bd = await carol.draft(FRAGMENT, "story:b", {"story": "b", "title": "B", "text": "bee"})
    await scene.hub.grants.give(scene.as_("bob").identity, "analyst", subject="story:b", expires="1h")
    await agent.get(bd.id)
    with pytest.raises(AccessDenied, match="drafts of more than one"):
        await agent.publish({**comment, "id": "c3", "inputs": f"{read.event.id} {bd.id}"})


async def test_fork_and_publish_through_a_grant_are_refused(scene: Scene) -> None:
    owner = scene.as_("alice")
    await scene.hub.grants.give(owner.identity, "bob", subject="story:wood", expires="1h")
    bob = PeerHub(scene.as_("bob"))
    with pytest.raises(AccessDenied, match="read access only"):
        await bob.fork(scene.wood[1])
    assert [s async for s in scene.as_("bob").replay("peer.bob.drafts")] == []
    for attrs in ({"supersedes": scene.wood[1]}, {"forkedfrom": scene.wood[1]}):
        with pytest.raises(AccessDenied, match="read access only"):
            await scene.as_("bob").publish(
                {
                    "type": FRAGMENT,
                    "hub": "bob",
                    "subject": "story:wood",
                    **attrs,
                    "data": {"story": "wood", "title": "mine now", "text": "x"},
                }
            )
    # A published event stays forkable by anyone.
    p = await PeerHub(owner).publish(scene.wood[1])
    assert (await bob.fork(p.id)).topic == "peer.bob.drafts"


async def test_agent_topics_are_not_for_everyone(scene: Scene) -> None:
    from creative_hub.event import Event

    topic = "agents.j1.tasks"
    data = {"job": "j1", "task": "t1", "input": {"text": f"summarise: {SECRET}"}}
    ev = Event(type="creative.agents.task", id="t1", source="/hub", data=data, creator="alice")
    _, ev, entry = scene.hub.prepare(ev)
    await scene.hub.log.append(topic, [entry])
    for who in (scene.as_("bob"), scene.as_("alice"), scene.hub.acting(ANONYMOUS)):
        with pytest.raises(AccessDenied):
            _ = [s async for s in who.replay(topic)]
        assert topic not in {t.name for t in await who.topics()}
        assert "t1" not in {e.id for e in await scene.visible_to(who)}
    # Agents (the workers) and the hub read it; a person gets a task's result from the
    # face that submitted it (the A2A gateway), never by reading the queue.
    assert [s.event.id async for s in scene.as_("analyst").replay(topic)] == ["t1"]
    assert [s.event.id async for s in scene.hub.replay(topic)] == ["t1"]


# -- item 5: visibility honoured or refused, on every face ----------------------------------------
HIDDEN = "wombat"  # only the private events written below hold it
PRIVATE_ON_SHARED = {
    "type": FRAGMENT,
    "subject": "story:wood",
    "visibility": "private",
    "data": {"story": "wood", "title": "secret", "text": HIDDEN},
}


async def test_private_visibility_to_a_shared_topic_is_refused_python_and_http(scene: Scene) -> None:
    bob = scene.as_("bob")
    with pytest.raises(ValidationError) as e:
        await bob.publish(PRIVATE_ON_SHARED)
    assert e.value.field == "visibility"
    with pytest.raises(ValidationError):
        await scene.hub.publish(PRIVATE_ON_SHARED)  # the hub itself too: never stored public
    with pytest.raises(ValidationError):
        await bob.publish(
            {
                **PRIVATE_ON_SHARED,
                "type": "creative.feedback.comment",
                "hub": "alice",
                "data": {"on": "x", "text": HIDDEN},
            }
        )
    transport = httpx.ASGITransport(app=create_app(scene.hub))
    headers = {"Authorization": f"Bearer {scene.tokens['bob']}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://hub", headers=headers) as c:
        r = await c.post("/v1/events", json=PRIVATE_ON_SHARED)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["field"] == "visibility"
        # Private to your own hub: your drafts.
        r = await c.post("/v1/events", json={**PRIVATE_ON_SHARED, "hub": "bob"})
        assert r.status_code == 201 and r.json()[0]["topic"] == "peer.bob.drafts"
    assert HIDDEN not in json.dumps([e.to_dict() for e in await scene.visible_to(scene.as_("alice"))])


def test_private_visibility_refused_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    monkeypatch.delenv("CREATIVE_HUB_TOKEN", raising=False)
    f = tmp_path / "e.json"
    f.write_text(json.dumps(PRIVATE_ON_SHARED))
    r = CliRunner().invoke(cli_app, ["publish", str(f), "--log", url])
    assert r.exit_code != 0 and "visibility" in r.output, r.output


async def test_private_visibility_refused_mcp(scene: Scene) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREATIVE_HUB_")}
    env |= {"CREATIVE_HUB_LOG": scene.url, "CREATIVE_HUB_TOKEN": scene.tokens["bob"]}
    params = StdioServerParameters(command=sys.executable, args=["-m", "creative_hub", "mcp", "hub"], env=env)
    async with Client(params) as client:
        r = await client.call_tool(
            "publish_event",
            {
                "type": FRAGMENT,
                "data": PRIVATE_ON_SHARED["data"],
                "subject": "story:wood",
                "visibility": "private",
            },
        )
        assert r.is_error and "visibility" in str(r.content)


# -- item 4: /metrics ------------------------------------------------------------------------------
async def test_metrics_without_a_token_name_no_private_topic(scene: Scene) -> None:
    async with scene.as_("alice").subscribe("peer.alice.drafts", "alice-reader") as sub:
        await sub.next(timeout=5)  # a group with lag and a pending event on the drafts
        transport = httpx.ASGITransport(app=create_app(scene.hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            headers = {"Authorization": f"Bearer {scene.tokens['alice']}"}
            r = await c.post(
                "/v1/peers/alice/drafts",
                headers=headers,
                json={
                    "type": FRAGMENT,
                    "subject": "story:x",
                    "data": {"story": "x", "title": "t", "text": "y"},
                },
            )
            assert r.status_code == 201, r.text
            text = (await c.get("/metrics")).text
    assert "creative_hub_consumer_lag" in text
    assert "peer.alice.drafts" not in text and "alice-reader" not in text


# -- item 7: the smaller ones ------------------------------------------------------------------------
async def test_tokens_in_query_strings_and_two_authorization_headers_are_refused(scene: Scene) -> None:
    transport = httpx.ASGITransport(app=create_app(scene.hub))
    token = scene.tokens["alice"]
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
        for query in (f"TOKEN={token}", f"x={token}", f"after=1&q=Bearer%20{token}", f"Access_Token={token}"):
            r = await c.get(f"/v1/topics?{query}")
            assert r.status_code == 400, query
            assert token not in r.text
        assert (await c.get("/v1/topics?after=5&limit=2")).status_code == 200
        r = await c.get(
            "/v1/me",
            headers=[
                ("Authorization", f"Bearer {scene.tokens['bob']}"),
                ("Authorization", f"Bearer {token}"),
            ],
        )
        assert r.status_code == 400 and "Authorization" in r.json()["detail"]


async def test_tokens_expire(scene: Scene) -> None:
    registry = scene.hub.registry
    token = await registry.issue_token("bob", expires="1s")
    assert await registry.authenticate(token) == "bob"
    await asyncio.sleep(1.2)
    with pytest.raises(AccessDenied, match="expired"):
        await registry.authenticate(token)
    cli = ["principal", "token", "bob", "--log", scene.url, "--expires"]
    r = await asyncio.to_thread(CliRunner().invoke, cli_app, [*cli, "30d"])
    assert r.exit_code == 0, r.output
    assert await registry.authenticate(r.output.strip().splitlines()[-1].strip()) == "bob"
    r = await asyncio.to_thread(CliRunner().invoke, cli_app, [*cli, "soon"])
    assert r.exit_code != 0 and "expires" in r.output


async def test_log_and_index_files_are_the_users_alone(tmp_path: Path) -> None:
    from creative_hub.index import HubIndex

    async with Hub.connect(f"sqlite:///{tmp_path / 'hub.db'}", keys=str(tmp_path / "keys")) as hub:
        (r,) = await hub.publish({"type": FRAGMENT, "data": {"story": "s", "title": "t", "text": "x"}})
        await hub.get(r.id)  # the id index beside the log
        ix = HubIndex(str(tmp_path / "ix.db"), semantic=False)
        await ix.refresh(hub, force=True)
        EffectLedger(tmp_path / "ledger.db").done("g", "x")
        files = [p for p in tmp_path.iterdir() if p.is_file()]
        assert {p.name for p in files} >= {"hub.db", "hub.db.ids", "ix.db", "ledger.db"}
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, f"{p.name}: {oct(p.stat().st_mode)}"
        ix.close()


async def test_an_agent_cannot_claim_inputs_it_could_not_read(scene: Scene) -> None:
    agent = scene.as_("analyst")
    item = {"type": "creative.feedback.comment", "data": {"on": "x", "text": "from thin air"}}
    with pytest.raises(AccessDenied, match="inputs"):
        await agent.publish({**item, "inputs": scene.wood[0]})  # alice's draft, no grant
    with pytest.raises(AccessDenied, match="inputs"):
        await agent.publish({**item, "inputs": "no-such-event"})
    p = await PeerHub(scene.as_("alice")).publish(scene.wood[1])
    (r,) = await agent.publish({**item, "inputs": p.id})  # a published event: fine
    assert r.topic == "creative.feedback"


async def test_a_draft_id_named_by_a_publication_tells_nothing(scene: Scene) -> None:
    """A publication names its draft (supersedes, causationid: the owner's lineage walks back
    through them).  To anyone else that id answers exactly like one never used."""
    p = await PeerHub(scene.as_("alice")).publish(scene.wood[1])
    transport = httpx.ASGITransport(app=create_app(scene.hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
        published = (await c.get(f"/v1/events/{p.id}")).json()["event"]
        assert published["supersedes"] == scene.wood[1]
        for headers in ({}, {"Authorization": f"Bearer {scene.tokens['bob']}"}):
            draft = await c.get(f"/v1/events/{scene.wood[1]}", headers=headers)
            never = await c.get("/v1/events/00000000-0000-4000-8000-000000000000", headers=headers)
            assert draft.status_code == never.status_code == 404
            assert draft.json()["title"] == never.json()["title"]
            assert SECRET not in draft.text
            r = await c.get(f"/v1/lineage/{p.id}", headers=headers)
            assert r.status_code == 200 and SECRET not in r.text and "peer.alice.drafts" not in r.text


async def test_agent_queues_need_a_signed_in_writer(scene: Scene) -> None:
    task = {"type": "creative.agents.task", "data": {"job": "j", "task": "t"}}
    with pytest.raises(AccessDenied, match="needs a token"):
        await scene.hub.acting(ANONYMOUS).publish(task, topic="agents.j.tasks")
    (r,) = await scene.as_("bob").publish(task, topic="agents.j.tasks")  # bob submits a task ...
    assert r.topic == "agents.j.tasks"
    with pytest.raises(AccessDenied):  # ... and cannot read the queue back
        _ = [s async for s in scene.as_("bob").replay("agents.j.tasks")]
