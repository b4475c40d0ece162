"""Shared by tests/index and tests/mcp: a small hub with something of everything.

``world`` is a SQLite hub file with two principals (alice, bob, with tokens)
and events of every kind the index looks at.  Alice's draft holds the word
"zanzibar" and nothing else does, so any leak of it is easy to see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from creative_hub.access import ANONYMOUS, Identity
from creative_hub.hub import Hub
from creative_hub.peers import PeerHub

SECRET = "zanzibar"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


@dataclass
class World:
    url: str
    db: Path
    hub: Hub
    alice_token: str
    bob_token: str
    draft_id: str
    published_id: str
    fork_id: str
    proposal_id: str
    commit_id: str
    paper_id: str
    plot_id: str

    alice = Identity("alice", authenticated=True)
    bob = Identity("bob", authenticated=True)
    anonymous = Identity(ANONYMOUS)


async def make_world(db: Path) -> tuple[World, Hub]:
    url = f"sqlite:///{db}"
    hub = await Hub.connect(url).__aenter__()
    await hub.registry.add("alice")
    await hub.registry.add("bob")
    alice_token = await hub.registry.issue_token("alice")
    bob_token = await hub.registry.issue_token("bob")

    def at(hours: float) -> str:
        return (T0 + timedelta(hours=hours)).isoformat()

    shared = await hub.publish(
        [
            {
                "type": "creative.narrative.fragment",
                "subject": "story:hansel",
                "creator": "carol",
                "time": at(0),
                "data": {
                    "story": "hansel",
                    "title": "Into the wood",
                    "order": 1,
                    "scene": "wood",
                    "text": "Their father led them deep into the forest.",
                    "characters": ["Hansel", "Gretel"],
                },
            },
            {
                "type": "creative.narrative.plot_point",
                "subject": "story:hansel",
                "creator": "carol",
                "time": at(1),
                "data": {
                    "story": "hansel",
                    "summary": "Gretel pushes the witch into the oven",
                    "actor": "Gretel",
                    "order": 2,
                    "scene": "house",
                    "characters": ["Gretel"],
                },
            },
            {
                "type": "creative.narrative.character_arc",
                "subject": "story:hansel",
                "creator": "dave",
                "time": at(2),
                "data": {
                    "story": "hansel",
                    "character": "Gretel",
                    "summary": "from fear to courage",
                    "steps": [{"scene": "wood", "state": "afraid"}, {"scene": "house", "state": "brave"}],
                },
            },
            {
                "type": "creative.metadata.paper",
                "id": "paper-ovens",
                "source": "arxiv",
                "creator": "arxiv",
                "time": at(3),
                "data": {
                    "title": "Bread ovens in folk tales",
                    "arxiv_id": "2101.00001",
                    "abstract": "A survey of ovens, witches and bread.",
                },
            },
            {
                "type": "creative.engineering.commit",
                "subject": "org/tales",
                "source": "github:org/tales",
                "creator": "dave",
                "time": at(4),
                "data": {
                    "repo": "org/tales",
                    "sha": "abc123def456",
                    "message": "Render the oven scene (arXiv:2101.00001)",
                    "author": {"login": "dave"},
                    "extra": {"links": [{"rel": "mentions", "id": "paper-ovens", "ref": "arXiv:2101.00001"}]},
                },
            },
            {
                "type": "creative.engineering.pull_request",
                "subject": "org/tales/pull/7",
                "source": "github:org/tales",
                "creator": "dave",
                "time": at(5),
                "data": {"repo": "org/tales", "number": 7, "title": "Oven scene renderer", "state": "open"},
            },
            {
                "type": "creative.engineering.review",
                "subject": "org/tales/pull/7",
                "source": "github:org/tales",
                "creator": "carol",
                "time": at(6),
                "data": {
                    "repo": "org/tales",
                    "pull_request": 7,
                    "state": "approved",
                    "reviewer": {"login": "carol"},
                },
            },
            {
                "type": "creative.engineering.issue",
                "subject": "org/tales/issues/8",
                "source": "github:org/tales",
                "creator": "carol",
                "time": at(7),
                "data": {
                    "repo": "org/tales",
                    "number": 8,
                    "title": "The oven is too bright",
                    "state": "open",
                    "labels": ["bug"],
                },
            },
        ]
    )
    alice = PeerHub(hub.acting("alice", authenticated=True))
    bob = PeerHub(hub.acting("bob", authenticated=True))
    d1 = await alice.draft(
        "creative.narrative.fragment",
        "story:wood",
        {"story": "wood", "title": "The bread trail", "text": "Crumbs of bread lead home.", "order": 1},
    )
    p1 = await alice.publish(d1.id)
    secret = await alice.draft(
        "creative.narrative.fragment",
        "story:wood",
        {
            "story": "wood",
            "title": f"Secret {SECRET} ending",
            "text": f"The {SECRET} oven waits.",
            "order": 2,
        },
    )
    f1 = await bob.fork(p1.id)
    c1 = await bob.contribute("alice", p1.id, "A darker trail", changes={"text": "Crumbs, eaten by birds."})
    await bob.feedback(p1.id, "The bread trail lands.")
    world = World(
        url=url,
        db=db,
        hub=hub,
        alice_token=alice_token,
        bob_token=bob_token,
        draft_id=secret.id,
        published_id=p1.id,
        fork_id=f1.id,
        proposal_id=c1.id,
        commit_id=shared[4].id,
        paper_id="paper-ovens",
        plot_id=shared[1].id,
    )
    return world, hub
