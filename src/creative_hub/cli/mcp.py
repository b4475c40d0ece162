"""``creative-hub mcp hub|github|story``: an MCP server over stdio.

The caller is the principal of ``CREATIVE_HUB_TOKEN`` (``--token``), or
anonymous -- public topics only -- without one.  The log comes from
``--log`` / ``CREATIVE_HUB_LOG``, the index file from ``--index`` /
``CREATIVE_HUB_INDEX`` (default: beside the log); the index catches up with
the log before each query, at most once a second.

Nothing but MCP messages may go to stdout: logs go to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Annotated

import anyio
import typer
from mcp.server import MCPServer

from ..access import ANONYMOUS
from ..errors import HubError
from ..hub import Hub
from ..index import HubIndex
from ..mcp.common import HubState
from .common import DEFAULT_LOG, LogOpt, TokenOpt

__all__ = ["SERVERS", "mcp_app", "serve_stdio"]

mcp_app: typer.Typer = typer.Typer(
    help="MCP servers over stdio for LLM clients: hub (search, analytics, publish), github, story.",
    no_args_is_help=True,
)


def _builders() -> dict[str, Callable[[HubState], MCPServer]]:
    from ..mcp.github import build_github_server
    from ..mcp.hub import build_hub_server
    from ..mcp.story import build_story_server

    return {"hub": build_hub_server, "github": build_github_server, "story": build_story_server}


SERVERS = ("hub", "github", "story")


async def serve_stdio(name: str, log: str, token: str | None, index: str | None) -> None:
    """Open the hub, identify the caller, and serve ``name`` over stdin/stdout until EOF."""
    async with Hub.connect(log) as hub:
        if token:
            principal = await hub.registry.authenticate(token)
            caller = hub.acting(principal, authenticated=True, via="mcp")
        else:
            caller = hub.acting(ANONYMOUS)
        ix = HubIndex.for_log(log, index)
        try:
            server = _builders()[name](HubState(hub, ix, caller))
            await server.run_stdio_async()
        finally:
            ix.close()


def _serve(name: str, log: str, token: str | None, index: str | None) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    try:
        anyio.run(serve_stdio, name, log, token or os.environ.get("CREATIVE_HUB_TOKEN") or None, index)
    except HubError as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


IndexOpt = Annotated[
    str | None,
    typer.Option("--index", envvar="CREATIVE_HUB_INDEX", help="Index file (default: beside the log)."),
]


@mcp_app.command("hub")
def hub_cmd(log: LogOpt = DEFAULT_LOG, token: TokenOpt = None, index: IndexOpt = None) -> None:
    """The hub server: search, events, replay, lineage, why_changed, activity, peers, publish, live pages."""
    _serve("hub", log, token, index)


@mcp_app.command("github")
def github_cmd(log: LogOpt = DEFAULT_LOG, token: TokenOpt = None, index: IndexOpt = None) -> None:
    """The GitHub server: repos, commits, pull requests, reviews, issues, and linked papers / stories."""
    _serve("github", log, token, index)


@mcp_app.command("story")
def story_cmd(log: LogOpt = DEFAULT_LOG, token: TokenOpt = None, index: IndexOpt = None) -> None:
    """The story server: stories, outline, scenes, timeline, character arcs, next / previous event."""
    _serve("story", log, token, index)
