"""Lineage ("where did this come from, and who decided?") and compaction that keeps it.

``lineage(hub, id)`` walks an event's links -- ``supersedes`` (an earlier
revision), ``forkedfrom`` (the work it was forked from), ``causationid`` (what
caused it: a decision, a proposal, a draft) -- back to the beginning, then
adds every decision taken on the same subject in the owner's hub (proposals,
acceptances, rejections) and the feedback it got.  Revisions folded by
compaction appear with their ids, creators, times and content hashes.

``compact(hub, topic)``: per subject, superseded revisions fold into the
surviving one.  What they were is recorded in ``archive.<topic>`` (a
``creative.system.compaction`` event: ids, creators, times, content hashes)
before they leave the hot log.  Decisions are never folded: published
revisions, proposals, acceptances, rejections, forks (events with
``forkedfrom``).  Engines that can delete single records (SQLite) remove
folded revisions at once; on the others they leave with retention, and the
archive still answers for them.

Agent work carries its provenance (``model``, ``modelprovider``,
``confighash``, ``inputs``: see ``creative_hub.agents.provenance``): each node
says whether its creator is a person or an agent (from the principal
registry, never from the event), the model and configuration hash, and the
input events it was made from -- which the walk follows too (relation
``input``).  ``Lineage.shaped_by`` sums it up: the people, the agents with
their models and the inputs each used.

Lineage respects access: an event in a topic the asking principal may not
read (someone else's drafts) is left out entirely -- no title, no count; an
input id the principal may not read is left out of ``inputs`` too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import msgspec

from . import topics
from .access import can_read, can_read_event
from .errors import AccessDenied
from .event import Event, derive_id
from .grants import fresh, record_reads
from .hub import Hub, StoredEvent
from .principals import verify_signature
from .schemas import Compaction, Folded

__all__ = ["Lineage", "Node", "compact", "lineage"]

LINEAGE_PREFIXES = (
    topics.PEER_PREFIX,
    topics.CREATIVE_PREFIX,
    topics.archive(topics.PEER_PREFIX),
    topics.archive(topics.CREATIVE_PREFIX),
)

DECISIONS = {
    "creative.contributions.proposed",
    "creative.contributions.accepted",
    "creative.contributions.rejected",
}


@dataclass(slots=True)
class Node:
    """One event in a lineage."""

    id: str
    relation: str  #: self, supersedes, forkedfrom, causation, input, folded, decision, feedback
    type: str = ""
    topic: str = ""
    creator: str = ""
    time: str = ""
    subject: str = ""
    title: str = ""
    digest: str = ""  #: content hash (blake2b-128 of the stored body)
    signature: str = "unsigned"  #: valid, invalid, unsigned, unknown-key
    links: dict[str, str] = field(default_factory=dict)  #: supersedes / forkedfrom / causation -> id
    parents: list[Node] = field(default_factory=list)  #: linked events shown here (each once per lineage)
    kind: str = ""  #: the creator's kind in the registry: person, agent ("" if not registered)
    model: str = ""  #: provenance: the model that made it ("" if none declared)
    modelprovider: str = ""  #: who served the model, or "offline"
    confighash: str = ""  #: sha256 of the agent's prompt and configuration
    inputs: list[str] = field(default_factory=list)  #: ids of the input events (those readable here)

    @property
    def made_with(self) -> str:
        """``provider/model`` (``offline/echo-1``), the provider alone, or ""."""
        if self.model:
            return f"{self.modelprovider}/{self.model}" if self.modelprovider else self.model
        return self.modelprovider

    def to_dict(self) -> dict[str, Any]:
        d = {
            k: getattr(self, k)
            for k in (
                "id",
                "relation",
                "type",
                "topic",
                "creator",
                "time",
                "subject",
                "title",
                "digest",
                "signature",
                "links",
                "kind",
                "model",
                "modelprovider",
                "confighash",
                "inputs",
            )
        }
        d["made_with"] = self.made_with
        d["parents"] = [p.to_dict() for p in self.parents]
        return d

    def walk(self) -> list[Node]:
        out = [self]
        for p in self.parents:
            out.extend(p.walk())
        return out


@dataclass(slots=True)
class Lineage:
    root: Node
    decisions: list[Node]
    feedback: list[Node]

    @property
    def nodes(self) -> list[Node]:
        return [*self.root.walk(), *self.decisions, *self.feedback]

    @property
    def creators(self) -> set[str]:
        return {n.creator for n in self.nodes if n.creator}

    @property
    def verified(self) -> bool:
        """Every event in the lineage that is in the log carries a valid signature."""
        return all(n.signature == "valid" for n in self.nodes if n.relation != "folded")

    @property
    def shaped_by(self) -> dict[str, Any]:
        """Who shaped this work and how: the people, the agents (each with its
        models, configuration hashes, events and the inputs it used), every
        model named, and creators that are neither (sources, unregistered)."""
        people: set[str] = set()
        others: set[str] = set()
        agents: dict[str, dict[str, Any]] = {}
        for n in self.nodes:
            if not n.creator:
                continue
            if n.kind == "agent":
                a = agents.setdefault(
                    n.creator,
                    {"agent": n.creator, "models": [], "confighashes": [], "inputs": [], "events": []},
                )
                for key, value in (("models", n.made_with), ("confighashes", n.confighash)):
                    if value and value not in a[key]:
                        a[key].append(value)
                a["inputs"].extend(i for i in n.inputs if i not in a["inputs"])
                a["events"].append(
                    {
                        "id": n.id,
                        "type": n.type,
                        "relation": n.relation,
                        "model": n.made_with,
                        "confighash": n.confighash,
                        "inputs": list(n.inputs),
                    }
                )
            elif n.kind == "person":
                people.add(n.creator)
            else:
                others.add(n.creator)
        return {
            "people": sorted(people),
            "agents": [agents[k] for k in sorted(agents)],
            "models": sorted({n.made_with for n in self.nodes if n.made_with}),
            "others": sorted(others),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root.to_dict(),
            "decisions": [n.to_dict() for n in self.decisions],
            "feedback": [n.to_dict() for n in self.feedback],
            "creators": sorted(self.creators),
            "verified": self.verified,
            "shaped_by": self.shaped_by,
        }


def body_digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def _title(e: Event) -> str:
    data = e.data if isinstance(e.data, dict) else {}
    for k in ("title", "summary", "text", "reason"):
        if isinstance(data.get(k), str):
            return str(data[k]).splitlines()[0][:80] if data[k] else ""
    return ""


class _Index:
    """Every event the principal may read, by id, with archive records of folded revisions."""

    def __init__(self) -> None:
        self.events: dict[str, tuple[StoredEvent, bytes]] = {}
        self.folded: dict[str, tuple[Folded, str]] = {}  # id -> (record, topic it was in)
        self.by_subject: dict[str, list[StoredEvent]] = {}

    @classmethod
    async def load(cls, hub: Hub) -> _Index:
        idx = cls()
        await fresh(hub.identity)  # grants: decide with a view at most REFRESH_AGE old
        who = hub.identity
        for info in await hub.topics(through_grants=True):
            # Lineage lives in the peer hubs, their archives and the shared topics;
            # other topics (agents' work queues, tests, dead letters) are not read.
            if not info.name.startswith(LINEAGE_PREFIXES) or not can_read(who, info.name):
                continue
            async for r in hub.records(info.name):
                try:
                    stored = StoredEvent(info.name, r.position, r.time_ms, _decode(r.body))
                except ValueError:
                    continue
                e = stored.event
                if not can_read_event(who, info.name, e.subject):
                    continue  # someone else's draft no live grant covers
                if info.name.startswith(topics.ARCHIVE_PREFIX) and e.type == "creative.system.compaction":
                    for f in e.data.get("folded", []):
                        idx.folded[f["id"]] = (msgspec.convert(f, Folded), e.data["topic"])
                    continue
                # The first topic an id is found in wins (a mirrored copy is the same event).
                if e.id not in idx.events or not info.name.startswith(topics.CREATIVE_PREFIX):
                    idx.events[e.id] = (stored, r.body)
                if e.subject:
                    idx.by_subject.setdefault(e.subject, []).append(stored)
        return idx


def _decode(body: bytes) -> Event:
    from .event import decode_event

    try:
        return decode_event(body)
    except Exception as e:  # junk in a topic is not lineage
        raise ValueError(str(e)) from e


def _kind(hub: Hub, creator: str) -> str:
    p = hub.registry.principals.get(creator)
    return p.kind if p is not None else ""


def _signature(hub: Hub, e: Event) -> str:
    if not e.signature:
        return "unsigned"
    key = hub.registry.public_key(e.creator or "")
    if key is None:
        return "unknown-key"
    return "valid" if verify_signature(e, key) else "invalid"


async def lineage(hub: Hub, event_id: str) -> Lineage:
    """The lineage of ``event_id`` as ``hub.principal`` may see it (NotFound otherwise)."""
    await hub.registry.refresh()
    idx = await _Index.load(hub)
    if event_id not in idx.events:
        await hub.get(event_id)  # raises NotFound (or finds it: then it is not lineage material)
    seen: set[str] = set()

    def node(eid: str, relation: str) -> Node | None:
        if eid in seen:
            return None
        seen.add(eid)
        # Folded first: an engine that cannot delete single records still holds the
        # revision until retention, but the compacted view shows it folded.
        if eid in idx.folded:
            f, topic = idx.folded[eid]
            n = Node(
                eid,
                "folded",
                topic=topic,
                creator=f.creator,
                time=f.time.isoformat() if f.time else "",
                digest=f.digest,
                signature="folded",
                kind=_kind(hub, f.creator),
            )
            if f.supersedes:
                n.links["supersedes"] = f.supersedes
                parent = node(f.supersedes, "supersedes")
                if parent is not None:
                    n.parents.append(parent)
            return n
        if eid in idx.events:
            stored, body = idx.events[eid]
            e = stored.event
            n = Node(
                eid,
                relation,
                e.type,
                stored.topic,
                e.creator or "",
                e.time.isoformat() if e.time else "",
                e.subject or "",
                _title(e),
                body_digest(body),
                _signature(hub, e),
                kind=_kind(hub, e.creator or ""),
                model=e.model or "",
                modelprovider=e.modelprovider or "",
                confighash=e.confighash or "",
                # Only inputs this principal may read: an unreadable id leaves no trace.
                inputs=[i for i in e.input_ids if i in idx.events or i in idx.folded],
            )
            for link, rel in (
                (e.supersedes, "supersedes"),
                (e.forkedfrom, "forkedfrom"),
                (e.causationid, "causation"),
                *((i, "input") for i in n.inputs),
            ):
                if link and rel != "input" and (link in idx.events or link in idx.folded):
                    n.links[rel] = link  # inputs (several) are in n.inputs
                if link:
                    parent = node(link, rel)
                    if parent is not None:
                        n.parents.append(parent)
            return n
        return None  # not readable by this principal, or gone: leave no trace

    root = node(event_id, "self")
    assert root is not None
    chain = {n.id for n in root.walk()}
    decisions: list[Node] = []
    feedback: list[Node] = []
    owner_topics = {n.topic.rsplit(".", 1)[0] for n in root.walk() if n.topic.startswith(topics.PEER_PREFIX)}
    for stored in idx.by_subject.get(root.subject, []):
        e = stored.event
        if e.id in chain or e.id in seen:
            continue
        if e.type in DECISIONS and stored.topic.rsplit(".", 1)[0] in owner_topics:
            n = node(e.id, "decision")
            if n is not None:
                decisions.append(n)
    for eid, (stored, _) in idx.events.items():
        e = stored.event
        if e.type.startswith("creative.feedback.") and (
            e.causationid in chain or any(i in chain for i in e.input_ids)
        ):
            n = node(eid, "feedback")
            if n is not None:
                feedback.append(n)
    found = Lineage(root, decisions, feedback)
    # Drafts shown through grants are audited for their owners.
    shown = [(n.topic, idx.events[n.id][0].event) for n in found.nodes if n.id in idx.events]
    await record_reads(hub.identity, shown, "lineage")
    return found


async def compact(hub: Hub, topic: str) -> list[Compaction]:
    """Fold superseded revisions of ``topic`` into their survivors; returns what was folded."""
    if not hub.trusted:
        raise AccessDenied("compaction needs the hub's own rights")
    records: list[tuple[StoredEvent, bytes]] = []
    async for r in hub.records(topic):
        try:
            records.append((StoredEvent(topic, r.position, r.time_ms, _decode(r.body)), r.body))
        except ValueError:
            continue
    by_id = {s.event.id: (s, b) for s, b in records}
    superseded_by: dict[str, str] = {}
    for s, _ in records:
        if s.event.supersedes in by_id:
            superseded_by[s.event.supersedes] = s.event.id

    def foldable(e: Event) -> bool:
        return not (e.forkedfrom or e.type in DECISIONS or topic.endswith((".published", ".contributions")))

    def survivor(eid: str) -> str:
        while eid in superseded_by:
            eid = superseded_by[eid]
        return eid

    groups: dict[str, list[tuple[StoredEvent, bytes]]] = {}
    for s, b in records:
        if s.event.id in superseded_by and foldable(s.event):
            groups.setdefault(survivor(s.event.id), []).append((s, b))
    done: list[Compaction] = []
    for surv, folded in groups.items():
        record = Compaction(
            topic=topic,
            subject=by_id[surv][0].event.subject,
            survivor=surv,
            folded=[
                Folded(
                    id=s.event.id,
                    creator=s.event.creator or "",
                    time=s.event.time,
                    digest=body_digest(b),
                    supersedes=s.event.supersedes,
                )
                for s, b in folded
            ],
        )
        event = Event(
            type="creative.system.compaction",
            id=derive_id("compaction", topic, surv, *[f.id for f in record.folded]),
            source="/hub/compaction",
            subject=record.subject,
            creator="hub",
            partitionkey=topic,
            data=record,
        )
        _, event, entry = hub.prepare(event)
        # The record goes to the archive first; only then do revisions leave.
        await hub.append(topics.archive(topic), [(event, entry)])
        done.append(record)
    if done:  # engines that cannot delete leave folded revisions to retention
        await hub.delete(topic, [f.id for c in done for f in c.folded])
    return done
