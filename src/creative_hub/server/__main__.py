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
import os

from ..hub import Hub
from . import serve
from .app import DEFAULT_MAX_BODY, DEFAULT_STREAM_QUEUE, ServerSettings


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m creative_hub.server", description=__doc__.split("\n")[0])
    p.add_argument("--log", default=os.environ.get("CREATIVE_HUB_LOG", "sqlite:///hub.db"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--no-anonymous", action="store_true", help="every /v1 request needs a token")
    p.add_argument("--cors-origin", action="append", default=[], help="an origin CORS allows (repeatable)")
    p.add_argument("--rate-limit", type=float, default=0.0, help="requests/s per token (0: none)")
    p.add_argument("--rate-burst", type=int, default=50)
    p.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, help="bytes per request body")
    p.add_argument("--stream-queue", type=int, default=DEFAULT_STREAM_QUEUE, help="SSE lag before a drop")
    p.add_argument("--github-secret", default=os.environ.get("CREATIVE_HUB_GITHUB_SECRET"))
    a = p.parse_args(argv)
    settings = ServerSettings(
        allow_anonymous=not a.no_anonymous,
        cors_origins=tuple(a.cors_origin),
        rate_limit=a.rate_limit,
        rate_burst=a.rate_burst,
        max_body=a.max_body,
        stream_queue=a.stream_queue,
        github_secret=a.github_secret,
    )

    async def run() -> None:
        async with Hub.connect(a.log) as hub:
            print(f"creative-hub HTTP API on http://{a.host}:{a.port} (log {a.log})", flush=True)
            await serve(hub, host=a.host, port=a.port, settings=settings)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
