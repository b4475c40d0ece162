"""``creative-hub up`` (serve the HTTP API, keep retention running, show live counts) and ``follow``."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live

from ..errors import HubError
from ..hub import Hub
from ..log import redact
from .common import DEFAULT_LOG, LogOpt, err, out, parse_size, run_async, stats_table, with_hub


def _command_name() -> str:
    """``creative-hub`` if that is on PATH, else the path that runs it (e.g. .venv/bin/creative-hub)."""
    import shutil

    if shutil.which("creative-hub"):
        return "creative-hub"
    script = Path(sys.executable).parent / "creative-hub"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _quiet_logs(verbose: bool) -> None:
    """Warnings only (INFO with ``--verbose``), one line each: set before the MCP servers, whose
    library would otherwise turn the root logger to INFO with a wrapping handler."""
    import logging

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _browser_host(host: str) -> str:
    """Where a browser on this machine reaches a server listening on ``host``."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)


def up(
    log: LogOpt = DEFAULT_LOG,
    host: Annotated[
        str, typer.Option(envvar="CREATIVE_HUB_HOST", help="Address the HTTP API listens on.")
    ] = ("127.0.0.1"),
    port: Annotated[
        int, typer.Option(envvar="CREATIVE_HUB_PORT", help="Port of the HTTP API (0: none).")
    ] = 8080,
    anonymous: Annotated[
        bool,
        typer.Option("--anonymous/--no-anonymous", help="Let requests without a token read public streams."),
    ] = True,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Origin browsers may call the API from (repeatable)."),
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(help="Requests per second per token or anonymous address [default: 50; 0: no limit]."),
    ] = None,
    rate_burst: Annotated[
        int | None, typer.Option(help="Requests a token may make at once [default: 200].")
    ] = None,
    max_body: Annotated[str, typer.Option(help="Largest request body (e.g. 8M).")] = "8M",
    github_secret: Annotated[
        str | None,
        typer.Option(
            envvar="CREATIVE_HUB_GITHUB_SECRET", help="Enables POST /webhooks/github with this secret."
        ),
    ] = None,
    refresh: Annotated[float, typer.Option(help="Seconds between refreshes of the live view.")] = 2.0,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the server's INFO log lines too.")
    ] = False,
    exit_after: Annotated[float | None, typer.Option(hidden=True)] = None,
) -> None:
    """Start the hub: open the log, serve the HTTP API, keep retention running, show live counts.

    SIGINT (Ctrl-C) and SIGTERM stop it the same way: the server closes, "stopped" is printed.
    """
    from ..server import ServerSettings, listen, serve, stop_signals

    _quiet_logs(verbose)
    limits = {"rate_limit": rate_limit, "rate_burst": rate_burst}
    settings = ServerSettings(
        allow_anonymous=anonymous,
        cors_origins=tuple(cors_origin or ()),
        max_body=parse_size(max_body, "max_body"),
        github_secret=github_secret,
        **{k: v for k, v in limits.items() if v is not None},  # type: ignore[arg-type]
    )

    async def main() -> None:
        # The port first: if it is taken, say so before any file is created.
        sock = listen(host, port) if port else None
        try:
            async with Hub.connect(log) as hub:
                with stop_signals() as stop:
                    await _serve_and_watch(hub, sock, stop)
        finally:
            if sock is not None:
                sock.close()
        if not out.is_terminal:
            out.line()  # the live view ends without one when not on a terminal
        out.print("stopped")

    async def _serve_and_watch(hub: Hub, sock: Any, stop: asyncio.Event) -> None:
        health = await hub.health()
        server: asyncio.Task[None] | None = None
        if sock is not None:
            started = asyncio.Event()
            server = asyncio.create_task(
                serve(hub, host=host, port=port, settings=settings, started=started, sock=sock)
            )
            waiter = asyncio.create_task(started.wait())
            await asyncio.wait([server, waiter], return_when=asyncio.FIRST_COMPLETED)
            if server.done():
                waiter.cancel()
                e = server.exception()
                raise HubError(f"the HTTP API could not listen on {host}:{port}: {e}")
        try:
            url = f"http://{_browser_host(host)}:{port}"
            if sock is not None:
                out.print(f"[bold green]creative-hub is up:[/] open [cyan]{url}/dashboard/[/]")
            else:
                out.print("[bold green]creative-hub is up[/] (no HTTP API: --port 0)")
            out.print(f"  log:      [cyan]{redact(log)}[/] ({health.detail})")
            if log.startswith("sqlite:///"):
                out.print(f"  log file: [cyan]{Path(log[len('sqlite:///') :].split('?')[0]).resolve()}[/]")
            if sock is not None:
                out.print(f"  HTTP API: [cyan]{url}[/]  (OpenAPI: {url}/docs, health: /readyz)")
            exe = _command_name()
            out.print(
                f"  publish:  {exe} publish --type creative.narrative.fragment "
                '--data \'{"story": "s1", "title": "Hello", "text": "..."}\''
            )
            out.print(f"  watch:    {exe} tail -f creative.narrative")
            out.print("  Ctrl-C stops.")
            started_at = time.monotonic()
            with Live(await stats_table(hub), console=out, refresh_per_second=1, transient=False) as live:
                while exit_after is None or time.monotonic() - started_at < exit_after:
                    wait = refresh if exit_after is None else min(refresh, exit_after)
                    try:
                        await asyncio.wait_for(stop.wait(), wait)
                        break
                    except TimeoutError:
                        pass
                    await hub.apply_retention()  # every topic with limits
                    live.update(await stats_table(hub))
        finally:
            if server is not None:
                server.cancel()
                await asyncio.gather(server, return_exceptions=True)

    run_async(main())


def follow(
    remote: Annotated[str, typer.Argument(help="Base URL of the other hub, e.g. http://10.0.0.2:8080.")],
    peer: Annotated[str, typer.Argument(help="The principal whose public streams to follow.")],
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="Fetch what is new, then stop.")] = False,
    log: LogOpt = DEFAULT_LOG,
) -> None:
    """Follow a peer's public streams on another hub: verified events are copied here, others refused."""
    from ..federation import Follower

    async def main(hub: Hub) -> None:
        follower = Follower(hub, remote, peer)
        while True:
            r = await follower.run_once()
            out.print(
                f"{remote} {peer}: fetched {r.fetched}, stored {r.stored}, already here {r.already}, "
                f"refused {len(r.refused)}"
            )
            for eid, reason in r.refused:
                err.print(f"  [red]refused[/] {eid}: {reason}", highlight=False)
            if once:
                return
            await asyncio.sleep(interval)

    run_async(with_hub(log, None, main, trusted=True))


def register(app: typer.Typer) -> None:
    """Add ``up`` and ``follow`` to the root command."""
    app.command()(up)
    app.command()(follow)
