"""Provenance of AI work, end to end: two agents and two people shape one story.

alice publishes a story; the critic agent (one offline model) comments on
it; bob proposes a change prompted by that comment and alice accepts it; the
editor agent (another offline model, another configuration) reads the new
revision, the one before it and the critic's comment, and proposes a tighter
text, which alice accepts; bob comments on the final revision.  The lineage
of that final revision names each agent's model and the input events each
used, every signature in it verifies, a model changed after signing does
not, and search finds each agent's work by agent and by model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from _agents import until
from creative_hub.access import Identity
from creative_hub.agents import Agent, AgentContext, AgentRunner, AgentSettings
from creative_hub.agents.provenance import config_hash
from creative_hub.event import Event, decode_event, encode_event
from creative_hub.hub import Hub
from creative_hub.index import HubIndex, SearchQuery
from creative_hub.ledger import EffectLedger
from creative_hub.lineage import lineage
from creative_hub.log import Entry, Log, open_log
from creative_hub.peers import PeerHub
from creative_hub.principals import Keystore, verify_signature
from creative_hub.schemas import Proposed
from creative_hub.server import create_app

FRAGMENT = "creative.narrative.fragment"
FAST = AgentSettings(ack_timeout=5.0, max_attempts=2)

pytestmark = pytest.mark.timeout(900)  # lineage reads every topic of a session-shared broker


@dataclass
class Story:
    """Who took part and what each step published."""

    hub: Hub
    sfx: str
    alice: str
    bob: str
    critic: Agent
    editor: Agent
    ids: dict[str, str]  #: step -> event id


def critic_agent(sfx: str, alice: str) -> Agent:
    async def critique(ctx: AgentContext, event: Event) -> dict[str, Any] | None:
        if event.creator != alice:
            return None
        return {
            "type": "creative.feedback.comment",
            "subject": event.subject,
            "hub": alice,
            "data": {"on": event.id, "text": f"The ending of “{event.data['title']}” comes too fast."},
        }

    return Agent(
        id=f"critic-{sfx}",
        handler=critique,
        follows=[alice],
        types=[FRAGMENT],
        model=f"offline/critic-{sfx}",
        config={"prompt": "Name the one weakness that matters most.", "temperature": 0},
        settings=FAST,
    )


def editor_agent(sfx: str, alice: str) -> Agent:
    async def edit(ctx: AgentContext, event: Event) -> Event | None:
        if event.creator != alice or not event.correlationid or not event.supersedes:
            return None  # only revisions built on an accepted contribution
        # Reads the revision before this one (an input) and the notes on it (inputs too).
        previous = (await ctx.get(event.supersedes, f"peer.{alice}.published")).event
        notes = [
            s.event.id
            async for s in ctx.hub.replay(f"peer.{alice}.feedback")
            if isinstance(s.event.data, dict) and s.event.data.get("on") == previous.id
        ]
        ctx.used(*notes)
        tightened = event.data["text"].replace(" slowly, very slowly,", "")
        return Event(
            type="creative.contributions.proposed",
            subject=event.subject,
            hub=alice,
            visibility="public",
            data=Proposed(to=alice, title="Tighter prose", on=event.id, changes={"text": tightened}),
        )

    return Agent(
        id=f"editor-{sfx}",
        handler=edit,
        follows=[alice],
        types=[FRAGMENT],
        model=f"offline/editor-{sfx}",
        config={"prompt": "Cut what the story does not need.", "max_words": 60},
        settings=FAST,
    )


async def run_until(hub: Hub, spec: Agent, ledger: EffectLedger, topic: str) -> Event:
    """Run one agent until it has published to ``topic``; its event."""
    found: list[Event] = []

    async def published() -> bool:
        found[:] = [s.event async for s in hub.replay(topic) if s.event.creator == spec.id]
        return bool(found)

    async with AgentRunner(hub, [spec], ledger=ledger):
        await until(published, f"{spec.id} published to {topic}")
    (event,) = found
    return event


async def shape_story(log: Log, tmp_path: Path) -> Story:
    hub = Hub(log, keystore=Keystore(tmp_path / "keys"))
    sfx = uuid.uuid4().hex[:6]  # brokers are shared by the session: names of our own
    alice, bob = f"alice{sfx}", f"bob{sfx}"
    for name in (alice, bob):
        await hub.registry.add(name)
    a = PeerHub(hub.acting(alice, authenticated=True))
    b = PeerHub(hub.acting(bob, authenticated=True))
    ledger = EffectLedger(tmp_path / "ledger.db")
    critic, editor = critic_agent(sfx, alice), editor_agent(sfx, alice)
    ids: dict[str, str] = {}

    d1 = await a.draft(
        FRAGMENT,
        f"story:{sfx}",
        {
            "story": sfx,
            "title": "The lighthouse",
            "text": "The keeper climbed slowly, very slowly, and lit it.",
        },
    )
    ids["p1"] = (await a.publish(d1.id)).id
    ids["critique"] = (await run_until(hub, critic, ledger, f"peer.{alice}.feedback")).id
    ids["bob_proposal"] = (
        await b.contribute(
            alice,
            ids["p1"],
            "A slower ending",
            changes={"text": "The keeper climbed slowly, very slowly, and lit it. The sea went quiet."},
            causation=ids["critique"],  # bob answers the critic
        )
    ).id
    accepted, p2 = await a.accept(ids["bob_proposal"])
    ids["accepted_bob"], ids["p2"] = accepted.id, p2.id
    ids["edit"] = (await run_until(hub, editor, ledger, f"peer.{alice}.contributions")).id
    accepted, p3 = await a.accept(ids["edit"])
    ids["accepted_edit"], ids["p3"] = accepted.id, p3.id
    ids["bob_feedback"] = (await b.feedback(p3.id, "Tighter, and the quiet sea stays.")).id
    return Story(hub, sfx, alice, bob, critic, editor, ids)


async def copy_with_tampered_model(source: Log, story: Story, target_url: str) -> None:
    """The story's streams and the registry in a fresh log, with the editor's
    model changed in its stored event (its signature left as it was)."""
    target = open_log(target_url)
    await target.open()
    try:
        streams = ("drafts", "published", "contributions", "feedback")
        topics = ["system.registry"] + [f"peer.{p}.{s}" for p in (story.alice, story.bob) for s in streams]
        for topic in topics:
            entries = []
            async for r in source.read(topic):
                body = r.body
                if r.id == story.ids["edit"]:
                    event = decode_event(body)
                    body = encode_event(msgspec.structs.replace(event, model="gpt-5"))
                entries.append(Entry(r.id, r.key, body, r.id, ""))
            if entries:
                await target.append(topic, entries)
    finally:
        await target.close()


async def test_two_agents_and_two_people_shape_one_story(log: Log, tmp_path: Path) -> None:
    story = await shape_story(log, tmp_path)
    hub, ids = story.hub, story.ids
    critic, editor = story.critic, story.editor

    # What each agent published carries who made it and how.
    edit = (await hub.get(ids["edit"], f"peer.{story.alice}.contributions")).event
    assert edit.creator == editor.id
    assert (edit.modelprovider, edit.model) == ("offline", f"editor-{story.sfx}")
    assert edit.confighash == config_hash(editor, None)
    assert edit.causationid == ids["p2"]  # the one event that triggered it
    assert edit.input_ids == [ids["p2"], ids["p1"], ids["critique"]]  # everything it read
    critique = (await hub.get(ids["critique"], f"peer.{story.alice}.feedback")).event
    assert (critique.modelprovider, critique.model) == ("offline", f"critic-{story.sfx}")
    assert critique.input_ids == [ids["p1"]]
    assert critique.confighash == config_hash(critic, None) != edit.confighash

    # The lineage of the final revision names both people, each agent's model
    # and the inputs each used.
    lin = await lineage(hub, ids["p3"])
    by_id = {n.id: n for n in lin.nodes}
    for step, eid in ids.items():
        assert eid in by_id, f"{step} ({eid}) missing from the lineage"
    shaped = lin.shaped_by
    assert shaped["people"] == sorted([story.alice, story.bob])
    agents = {a["agent"]: a for a in shaped["agents"]}
    assert set(agents) == {critic.id, editor.id}
    assert agents[critic.id]["models"] == [f"offline/critic-{story.sfx}"]
    assert agents[critic.id]["inputs"] == [ids["p1"]]
    assert agents[editor.id]["models"] == [f"offline/editor-{story.sfx}"]
    assert agents[editor.id]["inputs"] == [ids["p2"], ids["p1"], ids["critique"]]
    assert agents[editor.id]["confighashes"] == [edit.confighash]
    assert {f"offline/critic-{story.sfx}", f"offline/editor-{story.sfx}"} <= set(shaped["models"])
    assert (
        by_id[ids["edit"]].kind == "agent" and by_id[ids["edit"]].made_with == f"offline/editor-{story.sfx}"
    )
    assert by_id[ids["bob_proposal"]].kind == "person" and by_id[ids["bob_proposal"]].made_with == ""
    assert by_id[ids["critique"]].relation == "causation"  # bob's proposal answered it
    assert lin.to_dict()["shaped_by"] == shaped

    # Every signature verifies: in the lineage, and event by event against the registry.
    assert lin.verified, [(n.id, n.signature) for n in lin.nodes if n.signature != "valid"]
    for n in lin.nodes:
        if n.relation == "folded":
            continue
        stored = await hub.get(n.id)
        key = hub.registry.public_key(stored.event.creator or "")
        assert key is not None and verify_signature(stored.event, key), n.id

    # A model changed after signing fails verification.
    assert not verify_signature(
        msgspec.structs.replace(edit, model="gpt-5"), hub.registry.public_key(editor.id) or ""
    )
    tampered_url = f"sqlite:///{tmp_path / 'tampered.db'}"
    await copy_with_tampered_model(log, story, tampered_url)
    async with Hub.connect(tampered_url, keys=str(tmp_path / "no-keys")) as tampered:
        bad = await lineage(tampered, ids["p3"])
    marks = {n.id: n.signature for n in bad.nodes if n.relation != "folded"}
    assert marks.pop(ids["edit"]) == "invalid"
    assert set(marks.values()) == {"valid"} and not bad.verified

    # Search: by agent, by model (name, provider/name, provider), by kind of maker.
    ix = HubIndex(str(tmp_path / "index.db"), semantic=False)
    try:
        await ix.refresh(hub, force=True)
        who = Identity(story.bob, authenticated=True)
        subject = f"story:{story.sfx}"

        async def found(**filters: Any) -> set[str]:
            result = await ix.search(who, SearchQuery(limit=100, **filters))
            return {h.id for h in result.hits}

        assert await found(agent=editor.id) == {ids["edit"]}
        assert await found(agent=critic.id, text="ending") == {ids["critique"]}
        assert await found(model=f"offline/critic-{story.sfx}") == {ids["critique"]}
        assert await found(model=f"editor-{story.sfx}") == {ids["edit"]}
        assert await found(model="offline", subject=subject) == {ids["critique"], ids["edit"]}
        assert await found(made_by="agent", subject=subject) == {ids["critique"], ids["edit"]}
        people = await found(made_by="person", subject=subject)
        assert ids["p3"] in people and not people & {ids["critique"], ids["edit"]}
        assert await found(agent=story.alice) == set()  # a person is not an agent
    finally:
        ix.close()


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CREATIVE_HUB_LOG": url, "COLUMNS": "250"}
    env.pop("CREATIVE_HUB_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "creative_hub", *args], capture_output=True, text=True, env=env, timeout=180
    )


@pytest.mark.sqlite
async def test_lineage_verify_and_search_from_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    lg = open_log(url)
    await lg.open()
    try:
        story = await shape_story(lg, tmp_path)
        await copy_with_tampered_model(lg, story, f"sqlite:///{tmp_path / 'tampered.db'}")
        ids, sfx = story.ids, story.sfx
        # GET /v1/search with the same filters.
        app = create_app(story.hub)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as http:

            async def hits(**params: str) -> list[str]:
                resp = await http.get("/v1/search", params=params)
                assert resp.status_code == 200, resp.text
                return [h["id"] for h in resp.json()["hits"]]

            assert await hits(agent=story.editor.id) == [ids["edit"]]
            assert await hits(model=f"critic-{sfx}", made_by="agent") == [ids["critique"]]
            assert await hits(model=f"offline/critic-{sfx}", made_by="person") == []
            refused = await http.get("/v1/search", params={"made_by": "robot"})
            assert refused.status_code == 422
    finally:
        await lg.close()

    r = cli(url, "lineage", ids["p3"], "--json")
    assert r.returncode == 0, r.stderr
    shaped = json.loads(r.stdout)["shaped_by"]
    agents = {a["agent"]: a for a in shaped["agents"]}
    assert agents[story.editor.id]["models"] == [f"offline/editor-{sfx}"]
    assert agents[story.editor.id]["inputs"] == [ids["p2"], ids["p1"], ids["critique"]]
    assert shaped["people"] == sorted([story.alice, story.bob])

    r = cli(url, "lineage", ids["p3"])
    assert r.returncode == 0, r.stderr
    assert "shaped by" in r.stdout
    assert f"(agent, offline/editor-{sfx})" in r.stdout and f"offline/critic-{sfx}" in r.stdout

    r = cli(url, "verify", ids["p3"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 not verified" in r.stdout
    r = cli(f"sqlite:///{tmp_path / 'tampered.db'}", "verify", ids["p3"])
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"invalid {ids['edit']}" in " ".join(r.stdout.split())

    r = cli(url, "search", "--agent", story.critic.id, "--json")
    assert r.returncode == 0, r.stderr
    assert [h["id"] for h in json.loads(r.stdout)["hits"]] == [ids["critique"]]
    r = cli(url, "search", "--model", f"offline/editor-{sfx}", "--made-by", "agent", "--json")
    assert r.returncode == 0, r.stderr
    assert [h["id"] for h in json.loads(r.stdout)["hits"]] == [ids["edit"]]
