"""``python -m creative_hub.server``: the HTTP server alone, with every server setting.

    python -m creative_hub.server --log sqlite:///hub.db --port 8080 \\
        --cors-origin https://app.example --rate-limit 20 --max-body 1000000

``creative-hub up`` serves the same app next to its live view; this entry
point exposes the settings ``up`` does not (yet) and is what the tests and
bench/bench_http.py start.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from ..errors import HubError
from ..hub import Hub
from . import listen, serve, stop_signals
from .app import DEFAULT_BURST, DEFAULT_MAX_BODY, DEFAULT_RATE, DEFAULT_STREAM_QUEUE, ServerSettings


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m creative_hub.server", description=__doc__.split("\n")[0])
    p.add_argument("--log", default=os.environ.get("CREATIVE_HUB_LOG", "sqlite:///hub.db"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--no-anonymous", action="store_true", help="every /v1 request needs a token")
    p.add_argument("--cors-origin", action="append", default=[], help="an origin CORS allows (repeatable)")
    p.add_argument("--rate-limit", type=float, default=DEFAULT_RATE, help="requests/s per token (0: none)")
    p.add_argument("--rate-burst", type=int, default=DEFAULT_BURST)
    p.add_argument("--auth-failures", type=int, default=10, help="bad tokens per address before 429s")
    p.add_argument("--header-timeout", type=float, default=10.0, help="seconds for a request head")
    p.add_argument("--body-timeout", type=float, default=20.0, help="seconds for a body (+1 per 16 KiB)")
    p.add_argument("--idle-timeout", type=float, default=5.0, help="seconds a connection may stay silent")
    p.add_argument("--max-connections", type=int, default=64, help="open connections per client address")
    p.add_argument("--verbose", "-v", action="store_true", help="INFO log lines too")
    p.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, help="bytes per request body")
    p.add_argument("--stream-queue", type=int, default=DEFAULT_STREAM_QUEUE, help="SSE lag before a drop")
    p.add_argument("--github-secret", default=os.environ.get("CREATIVE_HUB_GITHUB_SECRET"))
    a = p.parse_args(argv)
    settings = ServerSettings(
        allow_anonymous=not a.no_anonymous,
        cors_origins=tuple(a.cors_origin),
        rate_limit=a.rate_limit,
        rate_burst=a.rate_burst,
        auth_failures=a.auth_failures,
        header_timeout=a.header_timeout,
        body_timeout=a.body_timeout,
        idle_timeout=a.idle_timeout,
        max_connections_per_client=a.max_connections,
        max_body=a.max_body,
        stream_queue=a.stream_queue,
        github_secret=a.github_secret,
    )

    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING)

    async def run() -> None:
        sock = listen(a.host, a.port)  # before the log: a taken port creates nothing
        async with Hub.connect(a.log) as hub:
            with stop_signals() as stop:
                print(f"creative-hub HTTP API on http://{a.host}:{a.port} (log {a.log})", flush=True)
                server = asyncio.create_task(
                    serve(hub, host=a.host, port=a.port, settings=settings, sock=sock)
                )
                waiter = asyncio.create_task(stop.wait())
                await asyncio.wait([server, waiter], return_when="FIRST_COMPLETED")
                waiter.cancel()
                if server.done():
                    await server  # it stopped by itself: say why (an error), not "stopped"
                server.cancel()
                await asyncio.gather(server, return_exceptions=True)
        print("stopped", flush=True)

    try:
        asyncio.run(run())
    except HubError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
