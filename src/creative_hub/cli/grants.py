"""CLI commands for grants on your drafts and the audit of reads through them.

creative-hub grant add analyst --subject story:wood --expires 2h   # prints the grant id
creative-hub grant add analyst --stream drafts --expires 2026-06-01T00:00:00Z
creative-hub grant list
creative-hub grant revoke g_0123456789abcdef                        # counts at once, everywhere
creative-hub audit                                                  # who read which drafts, how

All act as the principal of --token / CREATIVE_HUB_TOKEN (the owner).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..access import Grant
from ..errors import ValidationError
from ..grants import GrantBook, audit_topic, grant_dict
from ..hub import Hub
from .common import DEFAULT_LOG, JsonOpt, LogOpt, TokenOpt, out, run_async, with_hub

__all__ = ["register"]

grant_app = typer.Typer(
    help="Let another principal (an agent, usually) read your drafts: all of them or one subject's, "
    "until an expiry; revoke at once.  Acts as the principal of --token / CREATIVE_HUB_TOKEN."
)


def _owner(fn: Any, log: str, token: str | None) -> Any:
    async def main(hub: Hub) -> Any:
        if not hub.authenticated:
            raise ValidationError(
                "token", "grant and audit commands need the owner's token (--token or CREATIVE_HUB_TOKEN)"
            )
        return await fn(hub)

    return run_async(with_hub(log, None, main, token=token))


def _table(title: str, grants: list[Grant]) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("id", "owner", "grantee", "scope", "expires", "state", "reason"):
        t.add_column(col, overflow="fold")
    for g in grants:
        d = grant_dict(g)
        scope = escape(f"stream {g.stream}" if g.stream else f"subject {g.subject}")
        t.add_row(g.id, g.owner, g.grantee, scope, str(d["expires"]), str(d["state"]), escape(g.reason or ""))
    return t


@grant_app.command("add")
def grant_add(
    grantee: Annotated[str, typer.Argument(help="The principal (an agent, usually) that may read.")],
    subject: Annotated[
        str | None, typer.Option("--subject", "-s", help="Only your drafts about this subject.")
    ] = None,
    stream: Annotated[
        str | None, typer.Option("--stream", help="A whole stream: 'drafts' (every draft of yours).")
    ] = None,
    expires: Annotated[
        str,
        typer.Option(
            "--expires",
            "-e",
            help="When it ends: a duration (30m, 2h, 7d, 1w) or an ISO 8601 time with a timezone.",
        ),
    ] = "24h",
    reason: Annotated[str | None, typer.Option(help="Why (shown to you in grant list).")] = None,
    log: LogOpt = DEFAULT_LOG,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let GRANTEE read your drafts (one --subject, or the whole --stream drafts) until --expires."""

    async def fn(hub: Hub) -> None:
        await hub.registry.refresh()
        known = [p.id for p in hub.registry.principals.values() if not p.revoked]
        g = await hub.grants.give(
            hub.identity, grantee, stream=stream, subject=subject, expires=expires, reason=reason, known=known
        )
        if as_json:
            out.print_json(json.dumps(grant_dict(g)))
            return
        scope = f"your drafts about {g.subject!r}" if g.subject else "all your drafts"
        out.print(f"granted {g.grantee} read access to {escape(scope)} until {g.expires.isoformat()}")
        print(g.id)

    _owner(fn, log, token)


@grant_app.command("list")
def grant_list(
    all_: Annotated[bool, typer.Option("--all", help="Also revoked and expired grants.")] = False,
    log: LogOpt = DEFAULT_LOG,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The grants you gave, and those given to you (live ones; --all for every one)."""

    async def fn(hub: Hub) -> None:
        book: GrantBook = hub.grants
        await book.refresh(force=True)
        given = [g for g in book.given_by(hub.principal) if all_ or g.live()]
        received = [g for g in book.given_to(hub.principal) if all_ or g.live()]
        if as_json:
            listing = {"given": [grant_dict(g) for g in given], "received": [grant_dict(g) for g in received]}
            out.print_json(json.dumps(listing))
            return
        out.print(_table("grants you gave", given))
        if received:
            out.print(_table("grants given to you", received))

    _owner(fn, log, token)


@grant_app.command("revoke")
def grant_revoke(
    grant: Annotated[str, typer.Argument(help="The grant id (from grant add / grant list).")],
    reason: Annotated[str | None, typer.Option(help="Why (kept with the revocation).")] = None,
    log: LogOpt = DEFAULT_LOG,
    token: TokenOpt = None,
) -> None:
    """End one of your grants now: every hub process stops honouring it within a second."""

    async def fn(hub: Hub) -> None:
        g = await hub.grants.revoke(hub.identity, grant, reason)
        out.print(f"revoked {g.id} ({g.grantee} on {escape(g.subject or str(g.stream))})")

    _owner(fn, log, token)


def audit_cmd(
    limit: Annotated[int, typer.Option(min=1, help="Show the newest N records.")] = 50,
    log: LogOpt = DEFAULT_LOG,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Your audit stream: who read which of your drafts through a grant, when and how."""

    async def fn(hub: Hub) -> None:
        rows = [s async for s in hub.replay(audit_topic(hub.principal))][-limit:]
        if as_json:
            out.print_json(json.dumps([s.event.to_dict() for s in rows]))
            return
        t = Table(title=f"audit of {hub.principal}'s drafts", title_justify="left")
        for col in ("time", "reader", "how", "drafts read", "grants"):
            t.add_column(col, overflow="fold")
        for s in rows:
            data = s.event.data if isinstance(s.event.data, dict) else {}
            t.add_row(
                s.event.time.isoformat() if s.event.time else "",
                escape(str(data.get("reader", ""))),
                escape(str(data.get("how", ""))),
                "\n".join(data.get("ids", [])),
                ", ".join(data.get("grants", [])),
            )
        out.print(t)

    _owner(fn, log, token)


def register(app: typer.Typer) -> None:
    """Mount these commands on the main app."""
    app.add_typer(grant_app, name="grant")
    app.command("audit")(audit_cmd)
