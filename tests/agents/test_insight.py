"""The story insight agents against the real local model server (llama.cpp + SmolLM2-135M).

What is asserted is the pipeline, not the model's wisdom: the prompt is
built from the right plot points (all of them for a story-wide insight;
only the earlier scenes' for a continuity check), the constrained answer
parses and maps back to plot point events, the insight is published where
it belongs with its provenance (model, provider ``local``, inputs), and
drafts stay private: an agent without a grant reads and publishes nothing
about them; with a grant it reads them (audited) and what it makes of them
is stored in the owner's drafts by the hub, where nobody else reads it.

The model server is started once per session by the harness on a free
loopback port, like the brokers.  On two busy cores a call takes 10-70 s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from _agents import until
from creative_hub.agents import AgentRunner, AgentSettings
from creative_hub.agents.builtin import causal_check, continuity, morals
from creative_hub.agents.llm import LLMClient
from creative_hub.errors import AccessDenied
from creative_hub.event import Event
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger
from creative_hub.lineage import lineage
from creative_hub.localmodel import DEFAULT_ALIAS
from creative_hub.peers import PeerHub
from creative_hub.testing.servers.llm import LLMServer

pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.timeout(1500)]

SETTINGS = AgentSettings(ack_timeout=900.0, max_attempts=2, concurrency=1)
WAIT = 1200.0  # seconds: a few model calls on two shared cores
SECRET = "quokka"  # only alice's drafts hold it


def engine_params(engines: list[str]) -> list[Any]:
    return [pytest.param(e, marks=getattr(pytest.mark, e), id=e) for e in engines]


@pytest.fixture(params=engine_params(["sqlite", "redis"]))
def engine(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def llm_server(servers: Any) -> LLMServer:
    return cast(LLMServer, servers.get("llm"))


@pytest.fixture
async def llm(llm_server: LLMServer) -> AsyncIterator[LLMClient]:
    async with LLMClient(llm_server.config()) as client:
        yield client


# A short tale told as events: three scenes, each with its fragment and plot points.
SCENES = [
    (
        "The cottage",
        ["Tom", "Mother"],
        [("Mother", "Mother gave Tom a basket of bread for his grandmother.")],
    ),
    (
        "The wood",
        ["Tom", "Fox"],
        [("Fox", "The fox asked Tom where he was going."), ("Tom", "Tom told the fox about the basket.")],
    ),
    (
        "Grandmother's door",
        ["Tom", "Fox", "Grandmother"],
        [("Fox", "The fox ran ahead and hid behind the door."), ("Tom", "Tom shouted and the fox fled.")],
    ),
]


def tale(story: str, creator: str, **extra: Any) -> list[Event]:
    """Fragments then plot points of the tale, as an ingest publishes them."""
    out: list[Event] = []
    n = 0
    for i, (title, chars, points) in enumerate(SCENES):
        text = " ".join(s for _, s in points)
        out.append(
            Event(
                type="creative.narrative.fragment",
                subject=f"story:{story}",
                creator=creator,
                data={"story": story, "title": title, "text": text, "order": i, "scene": str(i + 1),
                      "characters": chars},
                **extra,
            )
        )  # fmt: skip
    for i, (_, _, points) in enumerate(SCENES):
        for actor, sentence in points:
            out.append(
                Event(
                    type="creative.narrative.plot_point",
                    subject=f"story:{story}",
                    creator=creator,
                    data={"story": story, "summary": sentence, "order": n, "actor": actor,
                          "characters": [actor], "scene": str(i + 1)},
                    **extra,
                )
            )  # fmt: skip
            n += 1
    return out


async def insights(hub: Hub, topic: str, story: str) -> list[Event]:
    """The insights about ``story`` in ``topic``; fails at once if an agent dead-lettered an
    event of this story (the broker is shared: other tests' dead letters are theirs)."""
    names = {t.name for t in await hub.topics()}
    for dead in (n for n in names if n.startswith("deadletter.")):
        async for s in hub.replay(dead):
            if story in (s.event.data.get("body") or ""):
                raise AssertionError(f"dead-lettered: {s.event.data.get('reason')}")
    if topic not in names:
        return []
    out = []
    async for s in hub.replay(topic):
        e = s.event
        if e.type == "creative.narrative.insight" and e.data.get("story") == story:
            out.append(e)
    return out


async def test_three_agents_publish_insights_with_provenance(
    hub: Hub, llm: LLMClient, ledger: EffectLedger
) -> None:
    story = f"tom-{uuid.uuid4().hex[:6]}"
    events = tale(story, "alice")
    receipts = await hub.publish(events)
    ids = [r.id for r in receipts]
    fragments, points = ids[:3], ids[3:]
    agents = [
        morals(max_points=8, settings=SETTINGS),
        causal_check(max_points=8, settings=SETTINGS),
        continuity(max_points=8, settings=SETTINGS),
    ]
    async with AgentRunner(hub, agents, ledger=ledger, llm=llm):

        async def done() -> bool:
            shared = await insights(hub, "creative.narrative", story)
            feedback = await insights(hub, "peer.alice.feedback", story)
            return {e.data["kind"] for e in shared} == {"morals", "causal"} and len(feedback) == 2

        await until(done, "morals and causal insights, and two continuity checks", WAIT)

    shared = await insights(hub, "creative.narrative", story)
    by_kind = {e.data["kind"]: e for e in shared}
    assert len(shared) == 2, "one insight per state of the story, not one per event"
    last = ids[-1]  # the story's last event in the topic ran the story-wide agents
    for kind, agent in (("morals", "story-morals"), ("causal", "story-causal")):
        e = by_kind[kind]
        assert e.creator == agent and e.causationid == last
        assert (e.modelprovider, e.model) == ("local", DEFAULT_ALIAS)
        assert e.confighash
        assert e.input_ids == [last, *[p for p in points if p != last]] or e.input_ids == points
        prompt = e.data["extra"]["prompt"]
        for _, _, pts in SCENES:  # the prompt shows every plot point, numbered, in order
            for actor, sentence in pts:
                assert f"({actor}): {sentence}" in prompt
        assert e.data["extra"]["llm"]["calls"] >= 1 and e.data["extra"]["llm"]["prompt_tokens"] > 0
        for f in e.data.get("findings", []):
            assert set(f.get("plot_points", [])) <= set(points), (
                "findings name plot point events of the story"
            )
    # Continuity: fragment 2 against scene 1's plot point; fragment 3 against scenes 1 and 2.
    feedback = sorted(
        await insights(hub, "peer.alice.feedback", story), key=lambda e: fragments.index(e.data["on"])
    )
    assert [e.data["on"] for e in feedback] == fragments[1:]
    assert feedback[0].input_ids == [fragments[1], points[0]]
    assert feedback[1].input_ids == [fragments[2], *points[:3]]
    assert "Tom shouted" not in feedback[1].data["extra"]["prompt"].split("New passage:")[0]
    for e in feedback:
        assert e.creator == "story-continuity" and e.hub == "alice"
        assert (e.modelprovider, e.model) == ("local", DEFAULT_ALIAS)
    # Lineage shows the agent, its model and the plot points it used.
    lin = await lineage(hub, by_kind["morals"].id)
    (shaped,) = lin.shaped_by["agents"]
    assert shaped["agent"] == "story-morals" and shaped["models"] == [f"local/{DEFAULT_ALIAS}"]
    assert set(points) <= set(shaped["inputs"])


@pytest.mark.parametrize("engine", engine_params(["sqlite"]), indirect=True)
async def test_without_a_grant_nothing_about_drafts(hub: Hub, llm: LLMClient, ledger: EffectLedger) -> None:
    """alice drafts a story; bob publishes one.  Agents told to watch alice's drafts but
    holding no grant read none of them and publish only about bob's story."""
    await hub.registry.add("alice")
    await hub.registry.add("bob")
    secret_story, public_story = f"wood-{uuid.uuid4().hex[:6]}", f"meadow-{uuid.uuid4().hex[:6]}"
    alice = PeerHub(hub.acting("alice", authenticated=True))
    drafts = []
    for e in tale(secret_story, "alice"):
        data = dict(e.data)
        for k in ("text", "summary"):
            if k in data:
                data[k] = f"{data[k]} The {SECRET} knew."
        drafts.append((await alice.draft(e.type, e.subject or "", data)).id)
    await hub.acting("bob", authenticated=True).publish(tale(public_story, "bob"))
    agents = [
        morals(max_points=8, settings=SETTINGS, drafts_of=["alice"]),
        continuity(max_points=8, settings=SETTINGS, drafts_of=["alice"]),
    ]
    async with AgentRunner(hub, agents, ledger=ledger, llm=llm):

        async def done() -> bool:
            shared = await insights(hub, "creative.narrative", public_story)
            return bool(shared) and bool(await insights(hub, "peer.bob.feedback", public_story))

        await until(done, "insights about bob's public story", WAIT)
    everything: list[Event] = []
    for t in await hub.topics():
        if t.name.startswith(("creative.", "peer.")) and not t.name.endswith((".drafts", ".audit")):
            everything.extend([s.event async for s in hub.replay(t.name)])
    made = [e for e in everything if e.type == "creative.narrative.insight"]
    assert made and all(e.data["story"] == public_story for e in made)
    for e in made:
        assert not set(e.input_ids) & set(drafts)
        assert SECRET not in str(e.data)
    audit = [s.event async for s in hub.acting("alice", authenticated=True).replay("peer.alice.audit")]
    assert not [a for a in audit if a.data["reader"].startswith("story-")], "no draft was read"
    # Nor did anything land in alice's own drafts (where the hub keeps work made from drafts).
    hers = [s.event async for s in hub.acting("alice", authenticated=True).replay("peer.alice.drafts")]
    assert [e.id for e in hers] == drafts, "the agents added nothing to alice's drafts"


@pytest.mark.parametrize("engine", engine_params(["sqlite"]), indirect=True)
async def test_with_a_grant_insights_stay_in_the_owners_drafts(
    hub: Hub, llm: LLMClient, ledger: EffectLedger
) -> None:
    """The continuity agent holds a grant on alice's draft story: it reads the drafts (audited),
    and what it makes of them lands in alice's drafts, private -- not in her public feedback."""
    await hub.registry.add("alice")
    await hub.registry.add("bob")
    story = f"wood-{uuid.uuid4().hex[:6]}"
    alice_hub = hub.acting("alice", authenticated=True)
    alice = PeerHub(alice_hub)
    drafts = [(await alice.draft(e.type, e.subject or "", dict(e.data))).id for e in tale(story, "alice")]
    agent = continuity(max_points=8, settings=SETTINGS, drafts_of=["alice"])
    await hub.registry.add(agent.id, kind="agent")
    await hub.grants.give(alice_hub.identity, agent.id, subject=f"story:{story}", expires="1h")
    async with AgentRunner(hub, [agent], ledger=ledger, llm=llm) as runner:
        await until(lambda: runner.stats[agent.id].published >= 2, "two continuity checks", WAIT)
    audit = [s.event async for s in alice_hub.replay("peer.alice.audit")]
    read = {i for a in audit if a.data["reader"] == agent.id for i in a.data["ids"]}
    assert set(drafts[:3]) <= read, "the agent read the fragments through its grant (audited)"
    mine = [
        s.event
        async for s in alice_hub.replay("peer.alice.drafts")
        if s.event.type == "creative.narrative.insight"
    ]
    assert sorted(e.data["on"] for e in mine) == sorted(drafts[1:3])
    assert all(e.visibility == "private" and e.hub == "alice" and e.creator == agent.id for e in mine)
    assert all(e.modelprovider == "local" for e in mine)
    with pytest.raises(AccessDenied):
        [s async for s in hub.acting("bob", authenticated=True).replay("peer.alice.drafts")]
    for topic in ("creative.narrative", "peer.alice.feedback", "peer.alice.published"):
        assert await insights(hub, topic, story) == [], f"an insight made from drafts reached {topic}"


def test_model_cli_serves_the_local_model(tmp_path: Path) -> None:
    """``model info`` finds the model; ``model serve`` answers on the port it prints, stops on Ctrl-C."""
    info = subprocess.run(
        [sys.executable, "-m", "creative_hub", "model", "info", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["server_installed"] and Path(doc["gguf"]).is_file() and doc["provider"] == "local"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "creative_hub", "model", "serve"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", first)
        assert url, first
        models = httpx.get(url.group(1) + "/models", timeout=30).json()
        assert models["data"][0]["id"] == DEFAULT_ALIAS
        rest = [proc.stdout.readline() for _ in range(3)]
        assert f"export CREATIVE_HUB_LLM_BASE_URL={url.group(1)}" in "".join(rest)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)  # waits, and closes the pipes
    assert proc.returncode == 0


async def test_agent_run_starts_the_local_model_and_stops_it(tmp_path: Path) -> None:
    """``creative-hub agent run creative_hub.agents.builtin:morals`` with no endpoint configured
    starts the local model itself, publishes a provenanced insight, and on Ctrl-C stops the model."""
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    story = f"tom-{uuid.uuid4().hex[:6]}"
    async with Hub.connect(db) as hub:  # keys beside the file: the CLI finds them there too
        await hub.publish(tale(story, "alice"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREATIVE_HUB_LLM_")}
    env["COLUMNS"] = "300"
    cmd = [
        sys.executable,
        "-m",
        "creative_hub",
        "agent",
        "run",
        "creative_hub.agents.builtin:morals",
        "--log",
        db,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        head = "".join(proc.stdout.readline() for _ in range(2))
        url = re.search(r"(http://127\.0\.0\.1:\d+/v1)", head)
        assert "starting the local model" in head and url, head
        async with Hub.connect(db) as hub:

            async def published() -> bool:
                return bool(await insights(hub, "creative.narrative", story))

            await until(published, "a morals insight from agent run", WAIT)
            (made,) = await insights(hub, "creative.narrative", story)
        assert (made.creator, made.modelprovider, made.model) == ("story-morals", "local", DEFAULT_ALIAS)
        assert made.data["kind"] == "morals" and len(made.input_ids) == sum(len(p) for _, _, p in SCENES)
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, rest
    assert re.search(r"story-morals: .* 1 published", rest), rest
    with pytest.raises(httpx.TransportError):  # the model went with it
        httpx.get(url.group(1) + "/models", timeout=5)
