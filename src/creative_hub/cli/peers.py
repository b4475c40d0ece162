"""CLI commands for principals, peer hubs, lineage, compaction and verification.

creative-hub principal add alice            # prints her first token, once
creative-hub peer draft --type creative.narrative.fragment --subject story:1 --data '{...}'
creative-hub peer publish DRAFT_ID
creative-hub lineage EVENT_ID [--json]
creative-hub verify EVENT_ID
creative-hub compact peer.alice.drafts
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from ..errors import NotFound, ValidationError
from ..hub import Hub, Receipt
from ..lineage import Lineage, Node, compact, lineage
from ..peers import PeerHub
from ..principals import verify_signature
from .common import DEFAULT_LOG, JsonOpt, LogOpt, TokenOpt, out, run_async, with_hub, with_options

__all__ = ["register"]

principal_app = typer.Typer(help="People and agents: add them, list them, issue and revoke their tokens.")
peer_app = typer.Typer(
    help="Your peer hub: draft, revise, publish, fork, contribute, accept, reject, feedback. "
    "Acts as the principal of --token / CREATIVE_HUB_TOKEN."
)

DataOpt = Annotated[str, typer.Option("--data", "-d", help="JSON object.")]


def _json(text: str, name: str = "data") -> dict[str, Any]:
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as e:
        raise ValidationError(name, f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValidationError(name, "must be a JSON object")
    return value


QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the ids made, one a line.")]


def _receipts(title: str, receipts: list[Receipt], as_json: bool = False, quiet: bool = False) -> None:
    """The receipts as a table; with ``--json`` a JSON array; with ``-q`` the ids alone (for scripts)."""
    if as_json:
        rows = [
            {"id": r.id, "topic": r.topic, "position": r.position, "duplicate": r.duplicate} for r in receipts
        ]
        out.print_json(json.dumps(rows))
        return
    if quiet:
        for r in receipts:
            print(r.id)
        return
    t = Table(title=title, title_justify="left")
    for col in ("id", "topic", "position"):
        t.add_column(col)
    for r in receipts:
        t.add_row(r.id, r.topic, r.position)
    out.print(t)


# -- principals -----------------------------------------------------------------
@principal_app.command("add")
def principal_add(
    name: Annotated[str, typer.Argument(help="Principal id: a-z, 0-9, _ and -.")],
    agent: Annotated[bool, typer.Option("--agent", help="An AI agent rather than a person.")] = False,
    display: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    log: LogOpt = DEFAULT_LOG,
) -> None:
    """Register a principal, make its signing key, and print its first token (shown once)."""

    async def main(hub: Hub) -> None:
        p = await hub.registry.add(name, kind="agent" if agent else "person", name=display)
        token = await hub.registry.issue_token(name)
        out.print(f"added {p.kind} [bold]{p.id}[/] (public key {p.public_key})")
        out.print("token (shown once; store it now):")
        print(token)

    run_async(with_hub(log, None, main, trusted=True))


@principal_app.command("list")
def principal_list(log: LogOpt = DEFAULT_LOG, as_json: JsonOpt = False) -> None:
    """List principals with their kind, key and live token count."""

    async def main(hub: Hub) -> None:
        await hub.registry.refresh()
        rows = sorted(hub.registry.principals.values(), key=lambda p: p.id)
        if as_json:
            out.print_json(
                json.dumps(
                    [
                        {
                            "id": p.id,
                            "kind": p.kind,
                            "name": p.name,
                            "public_key": p.public_key,
                            "tokens": p.tokens,
                            "revoked": p.revoked,
                        }
                        for p in rows
                    ]
                )
            )
            return
        t = Table(title="principals", title_justify="left")
        for col in ("id", "kind", "name", "tokens", "public key"):
            t.add_column(col)
        for p in rows:
            t.add_row(p.id, p.kind, p.name, str(p.tokens), p.public_key)
        out.print(t)

    run_async(with_hub(log, None, main, trusted=True))


@principal_app.command("token")
def principal_token(
    name: Annotated[str, typer.Argument()],
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="When it stops working: 12h, 30d, 1w or an ISO time; default never."),
    ] = None,
    log: LogOpt = DEFAULT_LOG,
) -> None:
    """Issue another token for a principal (shown once)."""

    async def main(hub: Hub) -> None:
        print(await hub.registry.issue_token(name, expires=expires))

    run_async(with_hub(log, None, main, trusted=True))


@principal_app.command("revoke")
def principal_revoke(
    name: Annotated[str, typer.Argument()],
    token: Annotated[
        str | None, typer.Option("--token", help="Only this token (or its id); default all.")
    ] = None,
    log: LogOpt = DEFAULT_LOG,
) -> None:
    """Revoke a principal's tokens (all, or one); they stop working at once."""

    async def main(hub: Hub) -> None:
        n = await hub.registry.revoke(name, token)
        out.print(f"revoked {n} token(s) of {name}")

    run_async(with_hub(log, None, main, trusted=True))


# -- peer operations --------------------------------------------------------------
PeerAction = Callable[..., Awaitable[list[Receipt]]]


def _peer_options(
    log: LogOpt = DEFAULT_LOG, token: TokenOpt = None, as_json: JsonOpt = False, quiet: QuietOpt = False
) -> None:
    """The options every ``peer`` command ends with (only its signature is used)."""


def _peer_command(name: str, title: str) -> Callable[[PeerAction], PeerAction]:
    """Register ``action`` as ``peer NAME``: its own parameters, then ``_peer_options``'.

    ``action`` gets the caller's PeerHub (a token is required) and the command's own
    arguments, and returns the receipts it made, printed under ``title``.
    """

    def register(action: PeerAction) -> PeerAction:
        def command(*, log: str, token: str | None, as_json: bool, quiet: bool, **own: Any) -> None:
            async def main(hub: Hub) -> None:
                if not hub.authenticated:
                    raise ValidationError(
                        "token", "peer-hub commands need a principal's token (--token or CREATIVE_HUB_TOKEN)"
                    )
                _receipts(title, await action(PeerHub(hub), **own), as_json, quiet)

            run_async(with_hub(log, None, main, token=token))

        peer_app.command(name)(with_options(command, action, _peer_options, skip=1))  # skip the PeerHub
        return action

    return register


@_peer_command("draft", "draft")
async def peer_draft(
    p: PeerHub,
    type: Annotated[str, typer.Option("--type", "-t", help="Event type.")],
    subject: Annotated[str, typer.Option(help="The work it belongs to.")],
    data: DataOpt,
) -> list[Receipt]:
    """A private draft in your hub."""
    return [await p.draft(type, subject, _json(data))]


@_peer_command("revise", "revision")
async def peer_revise(
    p: PeerHub, draft: Annotated[str, typer.Argument(help="The draft to supersede.")], data: DataOpt
) -> list[Receipt]:
    """A new revision of one of your drafts (fields in --data replace the old ones)."""
    return [await p.revise(draft, _json(data))]


@_peer_command("publish", "published")
async def peer_publish(p: PeerHub, draft: Annotated[str, typer.Argument()]) -> list[Receipt]:
    """Publish a draft: public in your hub and mirrored to the shared topic."""
    return [await p.publish(draft)]


@_peer_command("fork", "fork")
async def peer_fork(
    p: PeerHub,
    event: Annotated[str, typer.Argument(help="Any event you may read.")],
    subject: Annotated[
        str | None, typer.Option(help="Subject of the fork (default: the original's).")
    ] = None,
) -> list[Receipt]:
    """Fork an event into a draft of your own."""
    return [await p.fork(event, subject=subject)]


@_peer_command("contribute", "proposed")
async def peer_contribute(
    p: PeerHub,
    to: Annotated[str, typer.Argument(help="The peer whose hub it goes to.")],
    on: Annotated[str, typer.Argument(help="Their published event it changes.")],
    title: Annotated[str, typer.Option(help="What the contribution does.")],
    changes: Annotated[str, typer.Option(help="JSON object: fields of the data to replace.")] = "{}",
    description: Annotated[str | None, typer.Option()] = None,
) -> list[Receipt]:
    """Propose a change to someone's published work."""
    return [await p.contribute(to, on, title, changes=_json(changes, "changes"), description=description)]


ReasonOpt = Annotated[str | None, typer.Option()]


@_peer_command("accept", "accepted")
async def peer_accept(
    p: PeerHub, contribution: Annotated[str, typer.Argument()], reason: ReasonOpt = None
) -> list[Receipt]:
    """Accept a contribution to your hub: a decision and a new published revision."""
    return list(await p.accept(contribution, reason))


@_peer_command("reject", "rejected")
async def peer_reject(
    p: PeerHub, contribution: Annotated[str, typer.Argument()], reason: ReasonOpt = None
) -> list[Receipt]:
    """Reject a contribution to your hub."""
    return [await p.reject(contribution, reason)]


@_peer_command("feedback", "feedback")
async def peer_feedback(
    p: PeerHub,
    on: Annotated[str, typer.Argument(help="The event it is about.")],
    text: Annotated[str, typer.Argument()],
    rating: Annotated[int | None, typer.Option(min=1, max=5)] = None,
) -> list[Receipt]:
    """Comment on any event you may read."""
    return [await p.feedback(on, text, rating=rating)]


# -- lineage, verification, compaction -----------------------------------------------
def _tree(lin: Lineage) -> Tree:
    def label(n: Node) -> str:
        mark = {"valid": "[green]signed[/]", "folded": "[yellow]folded[/]"}.get(
            n.signature, f"[red]{n.signature}[/]"
        )
        kind = n.type.removeprefix("creative.") or "revision"
        text = f"[dim]{n.relation}[/] [magenta]{kind}[/] [cyan]{n.creator}[/] {n.title} [dim]{n.id}[/] {mark}"
        if n.relation == "folded":
            text += f" [dim]hash {n.digest}[/]"
        if n.kind == "agent":
            text += f" [blue](agent, {escape(n.made_with or 'model not declared')})[/]"
        elif n.made_with:
            text += f" [blue](with {escape(n.made_with)})[/]"
        return text

    def add(parent: Tree, n: Node) -> None:
        branch = parent.add(label(n))
        for p in n.parents:
            add(branch, p)

    root = Tree(label(lin.root))
    for p in lin.root.parents:
        add(root, p)
    if lin.decisions:
        d = root.add("[bold]decisions on this work[/]")
        for n in lin.decisions:
            add(d, n)
    if lin.feedback:
        f = root.add("[bold]feedback[/]")
        for n in lin.feedback:
            add(f, n)
    return root


def lineage_cmd(
    event: Annotated[str, typer.Argument(help="Event id.")],
    log: LogOpt = DEFAULT_LOG,
    as_json: JsonOpt = False,
) -> None:
    """Where an event came from and who decided: revisions, forks, contributions, decisions, feedback."""

    async def main(hub: Hub) -> None:
        lin = await lineage(hub, event)
        if as_json:
            out.print_json(json.dumps(lin.to_dict()))
            return
        out.print(_tree(lin))
        out.print(f"people and agents: {', '.join(sorted(lin.creators))}")
        out.print(_shaped_by(lin))

    run_async(with_hub(log, None, main))


def _shaped_by(lin: Lineage) -> Table:
    """Who shaped the work: each person, each agent with its models, config and inputs."""
    shaped = lin.shaped_by
    t = Table(title="shaped by", title_justify="left")
    for col in ("who", "kind", "model", "config hash", "inputs used"):
        t.add_column(col, overflow="fold")
    for person in shaped["people"]:
        models = sorted({n.made_with for n in lin.nodes if n.creator == person and n.made_with})
        t.add_row(escape(person), "person", escape(", ".join(models)), "", "")
    for a in shaped["agents"]:
        t.add_row(
            escape(a["agent"]),
            "agent",
            escape(", ".join(a["models"]) or "not declared"),
            ", ".join(h[:12] for h in a["confighashes"]),
            "\n".join(a["inputs"]),
        )
    kinds = {n.creator: n.kind for n in lin.nodes}
    for other in shaped["others"]:  # a source (github, arxiv, ...: it wrote outside material), or unknown
        t.add_row(escape(other), kinds.get(other) or "not registered", "", "", "")
    return t


def verify_cmd(
    event: Annotated[str, typer.Argument(help="Event id.")],
    log: LogOpt = DEFAULT_LOG,
    as_json: JsonOpt = False,
) -> None:
    """Check an event's signature and every signature in its lineage; exit 1 if any fails."""

    async def main(hub: Hub) -> bool:
        await hub.registry.refresh()
        stored = await hub.get(event)
        key = hub.registry.public_key(stored.event.creator or "")
        if key is None:
            raise NotFound(f"no public key for creator {stored.event.creator!r}")
        ok = verify_signature(stored.event, key)
        lin = await lineage(hub, event)
        bad = [n for n in lin.nodes if n.relation != "folded" and n.signature != "valid"]
        if as_json:
            doc = {
                "id": event,
                "creator": stored.event.creator,
                "valid": ok,
                "lineage": len(lin.nodes),
                "not_verified": [
                    {"id": n.id, "creator": n.creator, "relation": n.relation, "signature": n.signature}
                    for n in bad
                ],
            }
            print(json.dumps(doc, ensure_ascii=False), flush=True)
            return ok and not bad
        out.print(
            f"{event}: {'[green]valid signature[/]' if ok else '[red]INVALID signature[/]'} "
            f"by {stored.event.creator}"
        )
        for n in bad:
            out.print(f"  [red]{n.signature}[/] {n.id} ({n.creator}, {n.relation})")
        out.print(f"lineage: {len(lin.nodes)} events, {len(bad)} not verified")
        return ok and not bad

    if not run_async(with_hub(log, None, main)):
        raise typer.Exit(1)


def compact_cmd(
    topic: Annotated[str, typer.Argument(help="Topic to compact, e.g. peer.alice.drafts.")],
    log: LogOpt = DEFAULT_LOG,
) -> None:
    """Fold superseded revisions into their survivors, keeping their ids, creators, times and hashes."""

    async def main(hub: Hub) -> None:
        records = await compact(hub, topic)
        n = sum(len(r.folded) for r in records)
        out.print(
            f"{topic}: folded {n} revision(s) into {len(records)} survivor(s); record in archive.{topic}"
        )

    run_async(with_hub(log, None, main, trusted=True))


def register(app: typer.Typer) -> None:
    """Mount these commands on the main app."""
    app.add_typer(principal_app, name="principal")
    app.add_typer(peer_app, name="peer")
    app.command("lineage")(lineage_cmd)
    app.command("verify")(verify_cmd)
    app.command("compact")(compact_cmd)
