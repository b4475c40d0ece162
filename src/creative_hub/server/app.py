"""The HTTP face: an ASGI app over a Hub (REST, Server-Sent Events, metrics, dashboard).

    app = create_app(hub)                       # hub: an opened, trusted Hub
    uvicorn.run(app, host="127.0.0.1", port=8080)

Identity: ``Authorization: Bearer <token>`` names the principal; every request
then goes through ``hub.acting(principal)``, so the access rules are the
hub's own.  Without a token a request is anonymous (public streams, read
only) unless ``allow_anonymous=False``.  A token in the query string is
refused: query strings end up in logs.  The gate is ``middleware.Guard``.

Errors are RFC 9457 problem details (``application/problem+json``) with
``field`` and ``rule`` for bad input (``problems.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..hub import Hub
from .deps import hub_for
from .metrics import Metrics
from .middleware import Guard
from .problems import PROBLEM_RESPONSES, error_response, problem
from .stream import Broadcaster

__all__ = [
    "DASHBOARD",
    "RAW_SEND",
    "HubApp",
    "ServerSettings",
    "create_app",
    "error_response",
    "hub_for",
    "problem",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 8 * 1024 * 1024  # bytes of one request body (a batch of events)
DEFAULT_STREAM_QUEUE = 1024  # events an SSE client may fall behind before it is dropped
DEFAULT_RATE = 50.0  # requests/s per token or anonymous address: a busy dashboard stays well under
DEFAULT_BURST = 200  # a page load, a batch script's first burst
DEFAULT_AUTH_FAILURES = 10  # bad tokens before an address is throttled (then one per 5 s)
DASHBOARD = Path(__file__).parent / "dashboard"
RAW_SEND = "creative_hub.raw_send"  # scope key of the server's own send callable


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """ServerSettings(allow_anonymous=False)                # every /v1 request needs a token
    ServerSettings(cors_origins=("https://app.example",))   # browsers on that origin may call the API
    ServerSettings(rate_limit=20, rate_burst=40)            # 20 requests/s per token, bursts of 40
    ServerSettings(rate_limit=0)                            # no rate limit (benchmarks, test rigs)
    ServerSettings(max_body=1_000_000)                      # 413 for bodies over 1 MB
    ServerSettings(header_timeout=5, idle_timeout=2)        # slow or silent connections closed sooner

    The timeouts and the per-address connection cap act on connections, so
    they hold when the app runs under ``serve()`` (``connections.py``).
    """

    allow_anonymous: bool = True
    max_body: int = DEFAULT_MAX_BODY  #: bytes; larger bodies get 413 before any route runs
    cors_origins: tuple[str, ...] = ()  #: origins allowed by CORS ("*" for any); none: no CORS headers
    rate_limit: float = DEFAULT_RATE  #: requests per second per token (anonymous: per address); 0: no limit
    rate_burst: int = DEFAULT_BURST  #: requests a token may make at once before the rate applies
    auth_failures: int = DEFAULT_AUTH_FAILURES  #: bad tokens an address may send before it gets 429s
    auth_failure_rate: float = 0.2  #: bad tokens per second an address earns back (one every 5 s)
    header_timeout: float = 10.0  #: seconds from a request's first byte to its last header (408 after)
    body_timeout: float = 20.0  #: seconds for a body, plus one per 16 KiB received
    idle_timeout: float = 5.0  #: seconds a connection may stay silent before/between requests
    max_connections_per_client: int = 64  #: open connections per client address (0: no cap)
    stream_queue: int = DEFAULT_STREAM_QUEUE  #: events an SSE client may lag before it is dropped
    ready_timeout: float = 2.0  #: seconds /readyz waits for the log before answering 503
    github_secret: str | None = None  #: enables POST /webhooks/github (when the source is installed)


class HubApp(FastAPI):
    """FastAPI, plus the server's own ``send`` kept in the scope (``RAW_SEND``).

    Middlewares wrap ``send`` in closures; the SSE route needs the server's
    own to close a slow client's connection while a write to it is blocked
    (see ``stream._close_connection``).
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope[RAW_SEND] = send
        await super().__call__(scope, receive, send)


def create_app(hub: Hub, settings: ServerSettings | None = None) -> FastAPI:
    """The app for an opened, trusted ``hub``; the hub stays open after the app stops."""
    settings = settings or ServerSettings()
    metrics = Metrics()
    broadcaster = Broadcaster(hub)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.registry.refresh()
        # The id index catches up (from scratch: the whole log, once) while the server already
        # answers; a GET /v1/events/{id} meanwhile waits for it instead of scanning.
        ids = asyncio.create_task(hub.ids.catch_up())
        try:
            yield
        finally:
            ids.cancel()
            await asyncio.gather(ids, return_exceptions=True)
            await broadcaster.close()

    app = HubApp(
        title="creative-hub",
        version=__version__,
        description=(
            "Share creative work as CloudEvents: publish, replay, follow live (Server-Sent Events), "
            "peer hubs, lineage.  Authenticate with `Authorization: Bearer <token>`; errors are "
            "RFC 9457 problem details.  The event schemas are in the AsyncAPI document at /asyncapi.json."
        ),
        lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
        docs_url=None,  # _mount_docs: the same pages, with their files served from here
        redoc_url=None,
    )
    app.state.hub = hub
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.broadcaster = broadcaster

    from .problems import install_handlers

    install_handlers(app)

    from .api import router as api_router
    from .asyncapi import router as asyncapi_router
    from .grants_api import router as grants_router
    from .ops import router as ops_router
    from .peers_api import router as peers_router

    app.include_router(ops_router)
    app.include_router(api_router)
    app.include_router(peers_router)
    app.include_router(grants_router)
    app.include_router(asyncapi_router)
    _mount_github(app, hub, settings)
    _mount_docs(app)

    # Search / analytics routes and the MCP servers (creative_hub.index, creative_hub.mcp).
    from ..mcp.http import mount as mount_mcp
    from .search import router as index_router

    app.include_router(index_router)
    from .story_api import router as story_router  # the storyline view's data

    app.include_router(story_router)
    mount_mcp(app, hub, allow_anonymous=settings.allow_anonymous)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    app.mount("/dashboard", StaticFiles(directory=DASHBOARD, html=True), name="dashboard")

    # Middlewares wrap in reverse order: CORS outermost, so even a 401 or 429
    # carries the CORS headers a browser needs to read it.
    app.add_middleware(Guard, hub=hub, settings=settings, metrics=metrics)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["Retry-After"],
            max_age=600,
        )
    return app


def _mount_github(app: FastAPI, hub: Hub, settings: ServerSettings) -> None:
    """POST /webhooks/github (signature-checked, into the trusted hub) when a secret is set."""
    if not settings.github_secret:
        return
    try:
        from ..sources.github import webhook_route
    except ImportError:
        logger.warning("github_secret is set but creative_hub.sources.github is not installed")
        return
    # Outside /v1: GitHub signs with the secret instead of sending a bearer token.
    app.router.routes.append(webhook_route(settings.github_secret, hub=hub, path="/webhooks/github"))


def _mount_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc with their scripts from the fastapi-offline package, not a CDN:
    the pages work on a machine with no internet, and load nothing from elsewhere."""
    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse

    static = "/docs-assets"
    app.mount(
        static, StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"), name="docs-assets"
    )

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{static}/redoc.standalone.js",
            redoc_favicon_url=f"{static}/favicon.png",
            with_google_fonts=False,
        )
