"""``creative-hub mcp config`` and ``creative-hub hooks install|uninstall|flush|status``.

``register(app, mcp_app)`` adds them to the CLI.  Both are thin: the work is
in ``mcp_config`` and ``hooks``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ValidationError
from ..ide import hooks as hooks_mod
from ..ide.mcp_config import CLIENTS, PLACEHOLDER, default_path, entry, load_jsonc, merge
from .common import DEFAULT_LOG, JsonOpt, LogOpt, err, out

__all__ = ["hooks_app", "register"]

hooks_app: typer.Typer = typer.Typer(
    help="Git hooks that publish each new commit to the hub (never blocking a commit).",
    no_args_is_help=True,
)

RepoOpt = Annotated[Path, typer.Option("--repo", help="The git repository (default: here).")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def mcp_config_cmd(
    client: Annotated[str, typer.Option("--client", help=f"One of: {', '.join(CLIENTS)}.")],
    write: Annotated[
        bool, typer.Option("--write", help="Merge it into the client's config file instead of printing it.")
    ] = False,
    file: Annotated[
        Path | None, typer.Option("--file", help="The config file to write (default: the client's own).")
    ] = None,
    project: Annotated[Path, typer.Option(help="Project folder, for the per-project clients.")] = Path("."),
    server: Annotated[str, typer.Option(help="Which MCP server: hub, github, story.")] = "hub",
    token: Annotated[
        str | None,
        typer.Option(
            help="Token to write into clients that cannot read the environment (claude-desktop, zed)."
        ),
    ] = None,
    log: LogOpt = DEFAULT_LOG,
) -> None:
    """Print (or --write, merging) the MCP server entry for an editor's assistant."""
    if client not in CLIENTS:
        raise _fail(f"--client: {client!r} is not one of {', '.join(CLIENTS)}")
    if server not in ("hub", "github", "story"):
        raise _fail(f"--server: {server!r} is not one of hub, github, story")
    if not write:
        fragment = entry(client, log=log, server=server)  # never a real token on screen
        out.print_json(json.dumps(fragment))
        if client in ("claude-desktop", "zed"):
            err.print(f"[dim]{client} expands no variables: replace {PLACEHOLDER!r} with your token[/]")
        return
    path = file or default_path(client, project.resolve())
    try:
        existing = load_jsonc(path.read_text(), str(path)) if path.exists() else {}
        merged = merge(existing, entry(client, log=log, server=server, token=token))
    except ValidationError as e:
        raise _fail(str(e)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    secret = client in ("claude-desktop", "zed") and token is not None
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(merged, indent=2) + "\n")
    if path.exists() and not secret:
        tmp.chmod(path.stat().st_mode & 0o777)
    tmp.replace(path)
    out.print(f"wrote the {client} MCP entry to {path}", highlight=False)
    if client in ("claude-desktop", "zed") and token is None:
        err.print(f"[yellow]note:[/] put your token in place of {PLACEHOLDER!r} in {path}")


@hooks_app.command("install")
def hooks_install(
    repo: RepoOpt = Path("."),
    url: Annotated[
        str, typer.Option(envvar="CREATIVE_HUB_URL", help="The hub's HTTP API.")
    ] = "http://127.0.0.1:8080",
    token: Annotated[
        str | None,
        typer.Option(
            help="Your token, kept in .git/creative-hub/token (else $CREATIVE_HUB_TOKEN at commit time)."
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Install post-commit, post-merge and post-rewrite hooks (an existing hook keeps running)."""
    try:
        done = hooks_mod.install(repo, url=url, token=token)
    except (ValidationError, FileExistsError) as e:
        raise _fail(str(e)) from None
    if json_:
        out.print_json(
            json.dumps([{"hook": d.hook, "path": str(d.path), "kept": str(d.kept or "")} for d in done])
        )
        return
    for d in done:
        kept = f" (the one that was there runs after it: {d.kept.name})" if d.kept else ""
        out.print(f"installed {d.path}{kept}", highlight=False)
    out.print(f"commits go to {url}; offline they wait in .git/creative-hub/spool.jsonl", highlight=False)


@hooks_app.command("uninstall")
def hooks_uninstall(repo: RepoOpt = Path(".")) -> None:
    """Remove the hooks and restore the ones that were there before."""
    try:
        done = hooks_mod.uninstall(repo)
    except ValidationError as e:
        raise _fail(str(e)) from None
    for d in done:
        out.print(f"removed {d.path}" + (" (the previous hook is back)" if d.kept else ""), highlight=False)
    if not done:
        out.print("no creative-hub hooks here", highlight=False)


@hooks_app.command("flush")
def hooks_flush(
    repo: RepoOpt = Path("."),
    url: Annotated[str | None, typer.Option(help="The hub's HTTP API (default: as installed).")] = None,
    token: Annotated[str | None, typer.Option(envvar="CREATIVE_HUB_TOKEN", help="API token.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Send the events waiting in the spool now."""
    try:
        r = hooks_mod.flush(repo, url=url, token=token)
    except ValidationError as e:
        raise _fail(str(e)) from None
    if json_:
        out.print_json(json.dumps(r.__dict__))
    else:
        out.print(f"{r.delivered} delivered, {r.waiting} waiting, {r.rejected} refused", highlight=False)
    if r.error:
        err.print(f"[yellow]{r.error}[/]", highlight=False)
        raise typer.Exit(6)


@hooks_app.command("status")
def hooks_status(repo: RepoOpt = Path("."), json_: JsonOpt = False) -> None:
    """Which hooks are installed and how many events wait in the spool."""
    try:
        here = hooks_mod.hooks_dir(repo)
        spool = hooks_mod.Spool(repo)
        waiting, commits = len(spool.read()), spool.commits()
    except ValidationError as e:
        raise _fail(str(e)) from None
    installed = [h for h in hooks_mod.HOOKS if hooks_mod._ours(here / h)]
    if json_:
        out.print_json(json.dumps({"installed": installed, "commits": commits, "events": waiting}))
    else:
        line = f"installed: {', '.join(installed) or 'none'}; {commits} commits waiting ({waiting} events)"
        out.print(line, highlight=False)


def register(app: typer.Typer, mcp_app: typer.Typer) -> None:
    """``creative-hub hooks ...`` and ``creative-hub mcp config``."""
    app.add_typer(hooks_app, name="hooks")
    mcp_app.command("config")(mcp_config_cmd)
