"""Peer hubs end to end, on every engine: drafts, publish, fork, contribute,
accept / reject, feedback, compaction, lineage, signatures, access rules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from creative_hub.errors import AccessDenied, NotFound
from creative_hub.event import decode_event
from creative_hub.hub import Hub
from creative_hub.lineage import body_digest, compact, lineage
from creative_hub.log import Log
from creative_hub.peers import PeerHub
from creative_hub.principals import Keystore, Registry, verify_signature

FRAGMENT = "creative.narrative.fragment"

# Lineage reads every peer and shared topic; on a broker shared by a whole test
# session that is a lot of topics by the time these run.
pytestmark = pytest.mark.timeout(900)


@dataclass
class Cast:
    hub: Hub
    alice: str
    bob: str
    carol: str
    tokens: dict[str, str]

    async def peer(self, name: str) -> PeerHub:
        principal = await self.hub.registry.authenticate(self.tokens[name])
        return PeerHub(self.hub.acting(principal, authenticated=True))


@pytest.fixture
async def cast(log: Log, tmp_path: Path) -> Cast:
    hub = Hub(log, keystore=Keystore(tmp_path / "keys"))
    sfx = uuid.uuid4().hex[:6]  # brokers are shared by the session: names of our own
    names = [f"alice{sfx}", f"bob{sfx}", f"carol{sfx}"]
    for n in names:
        await hub.registry.add(n)
    tokens = {n: await hub.registry.issue_token(n) for n in names}
    return Cast(hub, *names, tokens=tokens)


async def bodies(hub: Hub, topic: str) -> dict[str, bytes]:
    return {r.id: r.body async for r in hub.log.read(topic)}


async def test_a_story_worked_end_to_end(cast: Cast) -> None:
    alice, bob, carol = [await cast.peer(n) for n in (cast.alice, cast.bob, cast.carol)]
    subject = f"story:{cast.alice}"
    data = {"story": cast.alice, "title": "Into the wood", "text": "v1"}

    # alice drafts five revisions and publishes the last.
    d = await alice.draft(FRAGMENT, subject, data)
    drafts = [d.id]
    for i in range(2, 6):
        d = await alice.revise(d.id, {"text": f"v{i}"})
        drafts.append(d.id)
    p1 = await alice.publish(d.id)
    shared = [s.event.id async for s in cast.hub.replay("creative.narrative")]
    assert p1.id in shared, "a published revision is mirrored to the shared topic"

    # bob forks, revises and contributes back; carol proposes too.
    f1 = await bob.fork(p1.id)
    f2 = await bob.revise(f1.id, {"text": "a darker ending"})
    c1 = await bob.contribute(
        cast.alice, p1.id, "Darker ending", changes={"text": "a darker ending"}, causation=f2.id
    )
    c2 = await carol.contribute(cast.alice, p1.id, "Happy ending", changes={"text": "all is well"})

    # alice accepts one, rejects the other; carol gives feedback.
    accepted, p2 = await alice.accept(c1.id, "darker is better")
    rejected = await alice.reject(c2.id, "too sweet")
    fb = await carol.feedback(p2.id, "The new ending lands.", rating=5)
    final = await cast.hub.get(p2.id, f"peer.{cast.alice}.published")
    assert final.event.data["text"] == "a darker ending"
    assert final.event.creator == cast.alice

    # Compaction folds alice's four superseded drafts; bob's fork is a decision and stays.
    before = await bodies(cast.hub, f"peer.{cast.alice}.drafts")
    folded = await compact(cast.hub, f"peer.{cast.alice}.drafts")
    assert [f.id for c in folded for f in c.folded] == drafts[:4]
    assert await compact(cast.hub, f"peer.{cast.bob}.drafts") == []

    # The lineage of alice's final revision names every decision (publish,
    # fork, accept, reject), both contributors and the folded revisions with
    # their content hashes.  The hub itself sees all of it ...
    lin = await lineage(cast.hub, p2.id)
    by_id = {n.id: n for n in lin.nodes}
    for eid in (p2.id, p1.id, drafts[4], accepted.id, c1.id, f2.id, f1.id, c2.id, rejected.id, fb.id):
        assert eid in by_id, f"{eid} missing from the lineage"
    assert {cast.alice, cast.bob, cast.carol} <= lin.creators
    kinds = {n.type for n in lin.decisions} | {by_id[accepted.id].type}
    assert {
        "creative.contributions.proposed",
        "creative.contributions.accepted",
        "creative.contributions.rejected",
    } <= kinds
    assert by_id[f1.id].links == {"forkedfrom": p1.id}
    assert by_id[c1.id].links == {"causation": f2.id}
    assert by_id[p2.id].links == {"supersedes": p1.id, "causation": accepted.id}
    assert by_id[accepted.id].links == {"causation": c1.id}
    for eid in drafts[:4]:
        assert by_id[eid].relation == "folded"
        assert by_id[eid].digest == body_digest(before[eid])
        assert by_id[eid].creator == cast.alice
    assert lin.verified, [(n.id, n.signature) for n in lin.nodes if n.signature != "valid"]
    assert all(n.signature == "valid" for n in lin.nodes if n.relation != "folded")

    # ... alice sees it without bob's private drafts (his fork stays his until he shares it) ...
    seen_by_alice = await lineage(cast.hub.acting(cast.alice, authenticated=True), p2.id)
    ids = {n.id for n in seen_by_alice.nodes}
    assert {p2.id, p1.id, drafts[4], *drafts[:4], accepted.id, c1.id, c2.id, rejected.id, fb.id} <= ids
    assert f1.id not in ids and f2.id not in ids
    assert {cast.bob, cast.carol} <= seen_by_alice.creators

    # ... and bob sees it without a trace of alice's drafts.
    seen_by_bob = await lineage(cast.hub.acting(cast.bob, authenticated=True), p2.id)
    assert not [n for n in seen_by_bob.nodes if "drafts" in n.topic and cast.alice in n.topic]
    assert not [n for n in seen_by_bob.nodes if n.relation == "folded"]
    assert {c1.id, f1.id, f2.id} <= {n.id for n in seen_by_bob.nodes}


async def test_a_published_fork_names_what_it_was_forked_from(cast: Cast) -> None:
    """bob forks alice's scene, revises his draft twice and publishes: his published work says
    ``forkedfrom`` alice's (the fork is public once he shares it), and anyone's lineage of it
    reaches her scene -- without a trace of his drafts."""
    alice, bob = await cast.peer(cast.alice), await cast.peer(cast.bob)
    data = {"story": cast.alice, "title": "The wood", "text": "v1"}
    p1 = await alice.publish((await alice.draft(FRAGMENT, f"story:{cast.alice}", data)).id)
    f1 = await bob.fork(p1.id)
    f2 = await bob.revise(f1.id, {"text": "darker"})
    f3 = await bob.revise(f2.id, {"text": "darker still"})
    b1 = await bob.publish(f3.id)
    out = (await cast.hub.get(b1.id, f"peer.{cast.bob}.published")).event
    assert (out.forkedfrom, out.supersedes, out.data["text"]) == (p1.id, f3.id, "darker still")
    own = await bob.publish((await bob.draft(FRAGMENT, f"story:{cast.bob}", data)).id)
    assert (await cast.hub.get(own.id)).event.forkedfrom is None, "his own work is no fork"
    seen = await lineage(cast.hub.acting(cast.carol, authenticated=True), b1.id)
    ids = {n.id for n in seen.nodes}
    assert p1.id in ids and not ids & {f1.id, f2.id, f3.id}


async def test_drafts_stay_private_on_every_read_path(cast: Cast) -> None:
    alice, bob = await cast.peer(cast.alice), await cast.peer(cast.bob)
    secret = await alice.draft(FRAGMENT, "story:secret", {"story": "s", "title": "Secret title", "text": "x"})
    drafts = f"peer.{cast.alice}.drafts"
    as_bob = bob.hub
    with pytest.raises(AccessDenied):
        [s async for s in as_bob.replay(drafts)]
    with pytest.raises(AccessDenied):  # at subscribe, or on entering it when the grant view was stale
        async with as_bob.subscribe(drafts, "snoop"):
            pass
    with pytest.raises(NotFound):
        await as_bob.get(secret.id)
    with pytest.raises(NotFound):
        await lineage(as_bob, secret.id)
    assert drafts not in {t.name for t in await as_bob.topics()}
    assert drafts not in {info.name for info, _ in await as_bob.stats()}
    anonymous = cast.hub.acting(cast.alice, authenticated=False)  # a claim without a token
    with pytest.raises(AccessDenied):
        [s async for s in anonymous.replay(drafts)]
    # The owner reads them.
    assert [s.event.data["title"] async for s in alice.hub.replay(drafts)] == ["Secret title"]


async def test_writes_are_attributed_and_checked(cast: Cast) -> None:
    alice, bob = await cast.peer(cast.alice), await cast.peer(cast.bob)
    # A creator named in the payload is ignored: the token decides.
    (r,) = await bob.hub.publish(
        {"type": "creative.feedback.comment", "creator": cast.alice, "data": {"on": "x", "text": "forged?"}}
    )
    stored = await cast.hub.get(r.id, "creative.feedback")
    assert stored.event.creator == cast.bob
    assert verify_signature(stored.event, cast.hub.registry.public_key(cast.bob) or "")
    with pytest.raises(AccessDenied):
        await bob.hub.publish(
            {
                "type": FRAGMENT,
                "hub": cast.alice,
                "visibility": "private",
                "data": {"story": "s", "title": "t", "text": "x"},
            }
        )
    p = await alice.publish(
        (await alice.draft(FRAGMENT, "story:w", {"story": "s", "title": "t", "text": "x"})).id
    )
    c = await bob.contribute(cast.alice, p.id, "Idea")
    bob_as_owner = PeerHub(bob.hub)
    bob_as_owner.me = cast.alice  # bob pretending to own alice's hub
    with pytest.raises(AccessDenied):
        await bob_as_owner.reject(c.id, "no")
    with pytest.raises(AccessDenied):
        await cast.hub.acting(cast.bob).publish(
            {
                "type": "creative.contributions.proposed",
                "hub": cast.alice,
                "data": {"to": cast.alice, "title": "anon"},
            }
        )


async def test_a_revoked_token_stops_working_at_once(cast: Cast, log: Log, tmp_path: Path) -> None:
    token = cast.tokens[cast.bob]
    assert await cast.hub.registry.authenticate(token) == cast.bob
    # Another hub on the same log: its own keystore, the log's token key (Hub.connect finds it from the URL).
    other_process = Registry(log, Keystore(tmp_path / "other"), token_key=cast.hub.registry.token_key)
    assert await other_process.authenticate(token) == cast.bob
    assert await cast.hub.registry.revoke(cast.bob, token) == 1
    with pytest.raises(AccessDenied):
        await cast.hub.registry.authenticate(token)
    with pytest.raises(AccessDenied):
        await other_process.authenticate(token)
    with pytest.raises(AccessDenied):
        await cast.hub.registry.authenticate("chub_0000000000000000_" + "x" * 40)


async def test_a_tampered_event_fails_verification(cast: Cast) -> None:
    alice = await cast.peer(cast.alice)
    (r,) = await alice.hub.publish(
        {"type": "creative.feedback.comment", "data": {"on": "x", "text": "original"}}
    )
    body = (await bodies(cast.hub, "creative.feedback"))[r.id]
    event = decode_event(body)
    key = cast.hub.registry.public_key(cast.alice) or ""
    assert verify_signature(event, key)
    tampered = msgspec.structs.replace(event, data={"on": "x", "text": "changed"})
    assert not verify_signature(tampered, key)
    assert not verify_signature(msgspec.structs.replace(event, creator=cast.bob), key)
