"""The ``creative-hub`` command: a thin face over Hub (parse, call, print).

One module per command group; ``common`` holds what they share (consoles,
options, error handling, the caller's hub).  This module only assembles
them, in the order ``creative-hub --help`` lists them:

    serve    up, follow                  events   publish, tail, replay, topics, stats, ...
    peers    principal, peer, lineage... grants   grant, audit
    sources  ingest ...                  search   search, reindex, activity, ...
    mcp      mcp hub|github|story        hooks    hooks ..., mcp config
    agents   agent run|list              story    story outline|show
    model    model serve|info
"""

from __future__ import annotations

import os

import typer

from . import agents, events, grants, hooks, mcp, model, peers, search, serve, sources, story

__all__ = ["app", "main"]

app = typer.Typer(
    name="creative-hub",
    help="An event hub for creative work: publish, tail, replay and move events between engines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
serve.register(app)
events.register(app)
peers.register(app)
grants.register(app)
app.add_typer(sources.ingest_app, name="ingest")
search.register(app)
app.add_typer(mcp.mcp_app, name="mcp")
hooks.register(app, mcp.mcp_app)
app.add_typer(agents.agent_app, name="agent")
app.add_typer(story.story_app, name="story")
app.add_typer(model.model_app, name="model")


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
