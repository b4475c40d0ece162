"""The built-in agents on the shared fixtures, ingested into a hub with the
source connectors, plus a few works written here with known relations:

* erin retells a passage of alice's Hansel and Gretel  -> erin is offered alice's fragment to fork;
* frank writes about helium in nanopores                -> frank is offered the arXiv paper on it;
* gina fixes spelling and CI config: no story or paper  -> gina is offered no fork;
* the GitHub fixture issue (README spelling), labelled "help wanted" -> gina is asked to help;
* hana marks an open story call about the witch's oven   -> alice (and erin) are asked.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from _agents import until
from creative_hub.agents import AgentRunner, AgentSettings
from creative_hub.agents.builtin import (
    analyse_offline,
    analyst,
    contribution_matcher,
    fork_suggester,
    is_open_call,
)
from creative_hub.agents.builtin.text import Corpus, key_terms, summarise, terms
from creative_hub.event import Event
from creative_hub.hub import Hub
from creative_hub.ledger import EffectLedger
from creative_hub.peers import PeerHub
from creative_hub.sources._github_map import issue_event
from creative_hub.sources.arxiv import parse_feed
from creative_hub.sources.base import Principals
from creative_hub.sources.stories import story_events

SETTINGS = AgentSettings(ack_timeout=10.0, max_attempts=2)


def fragments(fixtures: Path) -> list[Event]:
    path = fixtures / "stories" / "grimm_hansel-and-gretel.txt"
    items = story_events(path, path.read_bytes(), "alice", Principals())
    frags = [i for i in items if isinstance(i, Event) and i.type == "creative.narrative.fragment"]
    for f in frags:
        f.creator = "alice"  # alice ingested her own story, with her token (ingest's writer=)
    return frags


def papers(fixtures: Path) -> list[Event]:
    data = (fixtures / "arxiv" / "query_au_del_maestro.xml").read_bytes()
    return [i for i in parse_feed(data, "arxiv") if isinstance(i, Event)]


def text_of(e: Event) -> str:
    d = e.data if isinstance(e.data, dict) else e.data.__dict__ if hasattr(e.data, "__dict__") else {}
    return str(getattr(e.data, "text", None) or getattr(e.data, "abstract", None) or d.get("text") or "")


async def publish_as(hub: Hub, who: str, type_: str, subject: str, data: dict[str, Any]) -> str:
    peer = PeerHub(hub.acting(who, authenticated=True))
    draft = await peer.draft(type_, subject, data)
    return (await peer.publish(draft.id)).id


async def ingest(hub: Hub, fixtures: Path) -> dict[str, Any]:
    """The fixture set; returns what each test needs to know about it."""
    frags, docs = fragments(fixtures), papers(fixtures)
    await hub.publish(frags)
    await hub.publish(docs)
    oven = next(f for f in frags if "oven" in text_of(f) and "witch" in text_of(f))
    retold = " ".join(text_of(oven).split(". ")[1:4])
    erin = await publish_as(
        hub,
        "erin",
        "creative.narrative.fragment",
        "story:erin-retelling",
        {"story": "erin-retelling", "title": "The oven, retold", "text": retold},
    )
    paper = docs[0]  # "A Luttinger Liquid Core Inside Helium-4 Filled Nanopores"
    abstract = str(getattr(paper.data, "abstract", ""))
    frank = await publish_as(
        hub,
        "frank",
        "creative.metadata.paper",
        "paper:frank-notes",
        {"title": "Notes on helium-4 in nanopores", "abstract": " ".join(abstract.split(". ")[:3])},
    )
    gina = await publish_as(
        hub,
        "gina",
        "creative.engineering.commit",
        "repo:gina/ci",
        {
            "repo": "gina/ci",
            "sha": "a1b2c3d4",
            "message": "Fix spelling mistakes in the README file and the docs",
        },
    )
    await publish_as(
        hub,
        "gina",
        "creative.engineering.commit",
        "repo:gina/ci",
        {
            "repo": "gina/ci",
            "sha": "b2c3d4e5",
            "message": "Pin the runner image in the pipeline configuration",
        },
    )
    payload = json.loads((fixtures / "github" / "issues" / "opened.payload.json").read_text())
    issue = copy.deepcopy(payload["issue"])
    issue["labels"] = [*issue["labels"], {"name": "help wanted"}]
    call = issue_event(payload["repository"]["full_name"], issue, "opened", Principals())
    assert isinstance(call, Event)
    await hub.publish(call)
    story_call = await publish_as(
        hub,
        "hana",
        "creative.narrative.fragment",
        "story:hana-open",
        {
            "story": "hana-open",
            "title": "Open call: the witch and the oven",
            "text": "Who will write what Gretel did when the wicked witch told her to creep into the oven?",
            "extra": {"open": True},
        },
    )
    return {"oven": oven.id, "paper": paper.id, "erin": erin, "frank": frank, "gina": gina,
            "issue": call.id, "story_call": story_call, "count": len(frags) + len(docs) + 6}  # fmt: skip


async def suggestions(hub: Hub, peer: str, kind: str) -> list[dict[str, Any]]:
    out = []
    async for s in hub.replay(f"peer.{peer}.feedback"):
        data = s.event.data
        if s.event.type == "creative.feedback.suggestion" and data["extra"]["kind"] == kind:
            out.append({"id": s.event.id, "creator": s.event.creator, **data})
    return out


@pytest.mark.sqlite
async def test_fork_suggester_proposes_the_known_related_work(
    sqlite_hub: Hub, ledger: EffectLedger, fixtures_dir: Path
) -> None:
    known = await ingest(sqlite_hub, fixtures_dir)
    agent = fork_suggester(settings=SETTINGS)
    async with AgentRunner(sqlite_hub, [agent], ledger=ledger) as runner:
        await until(lambda: runner.stats[agent.id].handled >= known["count"], "every work seen")
    erin = await suggestions(sqlite_hub, "erin", "fork")
    assert erin and erin[0]["on"] == known["oven"], erin  # the best match comes first
    assert erin[0]["extra"]["owner"] == "alice" and erin[0]["extra"]["related"] == known["erin"]
    assert erin[0]["creator"] == "fork-suggester"
    frank = await suggestions(sqlite_hub, "frank", "fork")
    assert frank and frank[0]["on"] == known["paper"], frank
    assert frank[0]["extra"]["owner"] == "arxiv"  # written by the arXiv source, authors are claims
    assert await suggestions(sqlite_hub, "gina", "fork") == []
    # Forks go across peers only: alice is never offered her own fragments.
    assert all(s["extra"]["owner"] != "alice" for s in await suggestions(sqlite_hub, "alice", "fork"))


@pytest.mark.sqlite
async def test_contribution_matcher_asks_the_practitioners_who_fit(
    sqlite_hub: Hub, ledger: EffectLedger, fixtures_dir: Path
) -> None:
    known = await ingest(sqlite_hub, fixtures_dir)
    agent = contribution_matcher(settings=SETTINGS)
    async with AgentRunner(sqlite_hub, [agent], ledger=ledger) as runner:
        await until(lambda: runner.stats[agent.id].handled >= known["count"], "every work seen")
    gina = await suggestions(sqlite_hub, "gina", "contribution-request")
    assert [s["extra"]["call"] for s in gina] == [known["issue"]]
    assert "https://github.com/" in gina[0]["text"]
    alice = await suggestions(sqlite_hub, "alice", "contribution-request")
    assert [s["extra"]["call"] for s in alice] == [known["story_call"]]
    assert not await suggestions(sqlite_hub, "hana", "contribution-request")  # not the caller
    assert not await suggestions(sqlite_hub, "frank", "contribution-request")  # physics fits neither


@pytest.mark.sqlite
async def test_analyst_publishes_offline_feedback_on_new_work(
    sqlite_hub: Hub, ledger: EffectLedger, fixtures_dir: Path
) -> None:
    known = await ingest(sqlite_hub, fixtures_dir)
    agent = analyst(settings=SETTINGS)
    async with AgentRunner(sqlite_hub, [agent], ledger=ledger) as runner:
        await until(lambda: runner.stats[agent.id].handled >= known["count"], "every work analysed")
    shared = {s.event.causationid: s.event async for s in sqlite_hub.replay("creative.feedback")}
    on_oven = shared[known["oven"]]
    analysis = on_oven.data["extra"]["analysis"]
    assert analysis["mode"] == "offline" and analysis["size"]["words"] > 50
    assert "witch" in analysis["key_terms"] or "gretel" in analysis["key_terms"]
    assert on_oven.data["on"] == known["oven"] and on_oven.creator == "analyst"
    in_erins_hub = [s.event async for s in sqlite_hub.replay("peer.erin.feedback")]
    assert [e.data["on"] for e in in_erins_hub] == [known["erin"]]  # feedback goes to the owner's hub


@pytest.mark.sqlite
def test_offline_text_tools_are_deterministic() -> None:
    text = (
        "The witch lit the oven. Gretel saw what she had in mind. "
        "The witch crept up and thrust her head into the oven. Then Gretel pushed her in."
    )
    assert summarise(text, 2) == summarise(text, 2)
    assert summarise(text, 2).count(".") == 2
    assert key_terms(text)[:2] == ["witch", "oven"]
    c = Corpus()
    c.add("a", "witch oven gretel hansel forest")
    c.add("b", "helium superfluid quantum lattice")
    assert c.similar(terms("the witch and the oven"))[0][0] == "a"
    e = Event(
        type="creative.engineering.commit",
        data={"repo": "r", "sha": "abcd", "message": "Fix it", "files": ["a"]},
    )
    assert analyse_offline(e)["size"]["files"] == 1
    issue = Event(
        type="creative.engineering.issue",
        data={"repo": "r", "number": 1, "title": "t", "state": "open", "labels": ["Help Wanted"]},
    )
    assert is_open_call(issue)
