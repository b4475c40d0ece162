"""``creative-hub model``: serve the local model (SmolLM2-135M-Instruct via llama.cpp), or say where it is.

creative-hub model serve                    # a free loopback port; prints the settings to use
creative-hub model serve --port 8081
creative-hub model info --json
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated

import typer

from ..localmodel import DEFAULT_ALIAS, LOCAL_OPTIONS, PROVIDER, LocalModel, LocalModelMissing, gguf_path
from .common import err, out

__all__ = ["model_app"]

model_app: typer.Typer = typer.Typer(
    name="model",
    help="The local model the story insight agents use offline (SmolLM2-135M-Instruct on llama.cpp).",
    no_args_is_help=True,
    add_completion=False,
)


@model_app.command("serve")
def serve(
    port: Annotated[int | None, typer.Option(help="Port on the host (default: a free one).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: up to 2).")] = None,
) -> None:
    """Serve the local model behind an OpenAI-compatible API until Ctrl-C (or SIGTERM)."""
    try:
        err.print("starting the local model server…")
        model = LocalModel.start(port=port, host=host, threads=threads)
    except LocalModelMissing as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(1) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    out.print(f"serving {model.alias} ({model.model.name}) at {model.base_url}")
    out.print("agents use it with:")
    out.print(f"  export CREATIVE_HUB_LLM_BASE_URL={model.base_url}")
    out.print(f"  export CREATIVE_HUB_LLM_MODEL={model.alias}")
    out.print(f"  export CREATIVE_HUB_LLM_PROVIDER={PROVIDER}")
    out.print(f"  export CREATIVE_HUB_LLM_OPTIONS='{json.dumps(LOCAL_OPTIONS)}'")
    try:
        while not stop.wait(0.5):
            if model.proc is None or model.proc.poll() is not None:
                err.print("[red]the model server exited[/]")
                raise typer.Exit(1)
    finally:
        model.stop()


@model_app.command("info")
def info(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Where the local model is, and whether its server is installed."""
    import importlib.util

    try:
        path: str | None = str(gguf_path())
        problem = None
    except LocalModelMissing as e:
        path, problem = None, str(e)
    server = importlib.util.find_spec("llama_cpp") is not None
    doc = {"model": DEFAULT_ALIAS, "provider": PROVIDER, "gguf": path, "server_installed": server}
    if problem:
        doc["problem"] = problem
    if as_json:
        out.print_json(json.dumps(doc))
    else:
        for k, v in doc.items():
            out.print(f"{k}: {v}")
    if path is None or not server:
        raise typer.Exit(1)
