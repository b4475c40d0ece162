""" "Why did this change?": an event's lineage told as a story, oldest first.

    why = await why_changed(hub.acting("alice", authenticated=True), event_id)
    why.summary        # a few lines for people and LLMs
    why.steps          # each step: when, who (person / agent, model, inputs), what, about which event

Built from ``creative_hub.lineage`` only -- revisions (``supersedes``),
forks, proposals and the decisions on them, feedback, and agent outputs with
the provenance they carry (``model``, ``confighash``, ``inputs``) -- so it
sees what the caller may see and nothing more.  Provenance is shown when the
lineage has it and left out when it does not.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..hub import Hub
from ..lineage import lineage as lineage_of

__all__ = ["WhyOut", "WhyStepOut", "why_changed"]

MAX_SUMMARY_STEPS = 12  # lines of the text summary (the structured steps hold all)


class WhyStepOut(BaseModel):
    """One thing that happened on the way to the event."""

    time: str
    id: str
    what: str = Field(
        description="drafted, revised, published, forked, proposed, accepted, rejected, feedback, "
        "folded (a revision compacted away) or event"
    )
    who: str
    kind: str = Field(default="", description="person or agent (from the registry), '' if unknown")
    title: str = ""
    topic: str = ""
    relation: str = Field(
        description="How it is linked: self, supersedes, causation, decision, feedback, ..."
    )
    text: str = Field(description="The step as a sentence")
    proposal: str | None = Field(default=None, description="accepted / rejected: the proposal decided")
    proposer: str | None = None
    model: str | None = Field(default=None, description="The model that made it (agent work)")
    confighash: str | None = None
    inputs: list[str] = Field(default_factory=list, description="Events it was made from (agent work)")
    before: str | None = Field(default=None, description="feedback: the revision that came after it")


class WhyOut(BaseModel):
    id: str
    title: str
    summary: str = Field(description="The chain in a few lines, oldest first")
    steps: list[WhyStepOut] = Field(description="Oldest first; the event itself is the last revision")
    people: list[str]
    agents: list[str]
    models: list[str]
    verified: bool | None = Field(default=None, description="Every event in the chain has a valid signature")


def _flatten(node: dict[str, Any], out: dict[str, dict[str, Any]]) -> None:
    if node["id"] not in out:
        out[node["id"]] = node
    for p in node.get("parents", []):
        _flatten(p, out)


def _what(n: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> str:
    t: str = n.get("type", "")
    topic: str = n.get("topic", "")
    links: dict[str, str] = n.get("links", {})
    if n.get("relation") == "folded":
        return "folded"
    if t.startswith("creative.contributions."):
        return t.rsplit(".", 1)[1]
    if t.startswith("creative.feedback."):
        return "feedback"
    if links.get("forkedfrom"):
        return "forked"
    if topic.endswith(".drafts"):
        return "revised" if links.get("supersedes") else "drafted"
    if topic.endswith(".published"):
        prev = nodes.get(links.get("supersedes", ""), {})
        return "published" if prev.get("topic", "").endswith(".drafts") or not prev else "revised"
    return "revised" if links.get("supersedes") else "event"


def _quote(title: str) -> str:
    return f"'{title}'" if title else "(untitled)"


def _sentence(s: WhyStepOut, nodes: dict[str, dict[str, Any]]) -> str:
    who = s.who or "someone"
    if s.kind == "agent" or s.model:
        who = f"{who} (agent" + (f", {s.model}" if s.model else "") + ")"
    title = _quote(s.title)
    match s.what:
        case "proposed":
            owner = s.topic.split(".")[1] if s.topic.startswith("peer.") else "the hub"
            text = f"{who} proposed a change to {owner}: {title}"
        case "accepted" | "rejected":
            prop = nodes.get(s.proposal or "", {})
            text = f"{who} {s.what} {s.proposer or 'a'}'s proposal {_quote(prop.get('title', ''))}"
            if s.title:
                text += f" ({s.title})"
        case "feedback":
            text = f"{who} gave feedback: {title}"
        case "forked":
            src = nodes.get(nodes.get(s.id, {}).get("links", {}).get("forkedfrom", ""), {})
            text = f"{who} forked {_quote(src.get('title', ''))} into {title}"
        case "folded":
            text = f"a revision by {who} (folded by compaction)"
        case "published" | "revised" | "drafted":
            text = f"{who} {s.what} {title}"
            cause = nodes.get(nodes.get(s.id, {}).get("links", {}).get("causation", ""), {})
            if cause.get("type") == "creative.contributions.accepted":
                prop = nodes.get(cause.get("links", {}).get("causation", ""), {})
                text += (
                    f", from {prop.get('creator', 'a')}'s accepted contribution "
                    f"{_quote(prop.get('title', ''))}"
                )
        case _:
            kind = nodes.get(s.id, {}).get("type", "").rsplit(".", 1)[-1] or "event"
            text = f"{who}'s {kind} {_quote(s.title)}" + (" (an input)" if s.relation == "input" else "")
    if s.inputs:
        text += f"; made from {', '.join(s.inputs[:5])}" + (" ..." if len(s.inputs) > 5 else "")
    return text


async def why_changed(hub: Hub, event_id: str) -> WhyOut:
    """Why ``event_id`` is what it is, as ``hub``'s principal may see it (NotFound otherwise)."""
    lin = (await lineage_of(hub, event_id)).to_dict()
    nodes: dict[str, dict[str, Any]] = {}
    _flatten(lin["root"], nodes)
    for n in (*lin.get("decisions", []), *lin.get("feedback", [])):
        _flatten(n, nodes)
    # Oldest first; the walk lists an event before what it came from, so reverse it for ties.
    ordered = sorted(reversed(list(nodes.values())), key=lambda n: n.get("time", ""))
    steps: list[WhyStepOut] = []
    for n in ordered:
        step = WhyStepOut(
            time=n.get("time", ""),
            id=n["id"],
            what=_what(n, nodes),
            who=n.get("creator", ""),
            kind=n.get("kind", ""),
            title=n.get("title", ""),
            topic=n.get("topic", ""),
            relation=n.get("relation", ""),
            text="",
            model=n.get("made_with") or n.get("model") or None,
            confighash=n.get("confighash") or None,
            inputs=list(n.get("inputs") or []),
        )
        if step.what in ("accepted", "rejected"):
            step.proposal = n.get("links", {}).get("causation")
            step.proposer = nodes.get(step.proposal or "", {}).get("creator")
        steps.append(step)
    revisions = [s for s in steps if s.what in ("drafted", "revised", "published", "forked")]
    for s in steps:
        if s.what == "feedback":
            s.before = next((r.id for r in revisions if r.time > s.time), None)
        s.text = _sentence(s, nodes)
    root = nodes[lin["root"]["id"]]
    shaped: dict[str, Any] = lin.get("shaped_by") or {}
    agents = sorted(
        {s.who for s in steps if s.kind == "agent" or s.model}
        | {a["agent"] for a in shaped.get("agents", []) if isinstance(a, dict) and "agent" in a}
    )
    people = sorted({s.who for s in steps if s.who and s.who not in agents})
    models = sorted({s.model for s in steps if s.model} | set(shaped.get("models", [])))
    lines = [f"Why {_quote(root.get('title', ''))} ({root['id']}) is what it is, oldest first:"]
    shown = steps[-MAX_SUMMARY_STEPS:]
    if len(steps) > len(shown):
        lines.append(f"  ... {len(steps) - len(shown)} earlier steps")
    lines += [f"  {s.time[:16].replace('T', ' ')}  {s.text}" for s in shown]
    lines.append(
        "Shaped by: "
        + ", ".join([*people, *(f"{a} (agent)" for a in agents)] or ["nobody the caller may see"])
        + (f"; models: {', '.join(models)}" if models else "")
    )
    return WhyOut(
        id=root["id"],
        title=root.get("title", ""),
        summary="\n".join(lines),
        steps=steps,
        people=people,
        agents=agents,
        models=models,
        verified=lin.get("verified"),
    )
