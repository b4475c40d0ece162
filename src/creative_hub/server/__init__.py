"""The hub's HTTP server: REST, Server-Sent Events, metrics, AsyncAPI and the dashboard."""

from __future__ import annotations

import asyncio

import uvicorn

from ..hub import Hub
from .app import ServerSettings, create_app

__all__ = ["ServerSettings", "create_app", "serve"]

GRACEFUL_SHUTDOWN = 2  # seconds open streams get to end before they are cancelled


async def serve(
    hub: Hub,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    settings: ServerSettings | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Serve ``hub`` over HTTP until cancelled.  ``started`` is set once it listens."""
    config = uvicorn.Config(
        create_app(hub, settings),
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        # SSE streams never end by themselves: without this, a stop would wait for every client.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task  # raises what stopped it (port in use ...)
                raise OSError(f"the HTTP server on {host}:{port} stopped before it started")
            await asyncio.sleep(0.02)
        if started is not None:
            started.set()
        await asyncio.shield(task)  # a cancel stops it gracefully below, sockets closed
    finally:
        server.should_exit = True
        if not task.done():
            await asyncio.wait_for(task, 10)
