"""The HTTP face: an ASGI app over a Hub (REST, Server-Sent Events, metrics).

    app = create_app(hub)                       # hub: an opened, trusted Hub
    uvicorn.run(app, host="127.0.0.1", port=8080)

Identity: ``Authorization: Bearer <token>`` names the principal; every request
then goes through ``hub.acting(principal)``, so the access rules are the
hub's own.  Without a token a request is anonymous (public streams, read
only) unless ``allow_anonymous=False``.  A token in the query string is
refused: query strings end up in logs.

Errors are RFC 9457 problem details (``application/problem+json``) with
``field`` and ``rule`` for bad input.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ..access import ANONYMOUS
from ..errors import AccessDenied, HubError, NotFound, PayloadTooLarge, ValidationError
from ..hub import Hub
from .metrics import Metrics

__all__ = ["ServerSettings", "create_app", "hub_for"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 8 * 1024 * 1024  # bytes of one request body (a batch of events)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """ServerSettings(allow_anonymous=False)   # every request needs a token"""

    allow_anonymous: bool = True
    max_body: int = DEFAULT_MAX_BODY
    cors_origins: tuple[str, ...] = ()
    rate_limit: float = 0.0  #: requests per second per token (0: no limit)
    rate_burst: int = 50


def problem(status: int, title: str, detail: str = "", **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


_STATUS = (
    (PayloadTooLarge, 413, "Payload too large"),
    (ValidationError, 422, "Invalid input"),
    (AccessDenied, 403, "Forbidden"),
    (NotFound, 404, "Not found"),
)


def error_response(e: HubError) -> JSONResponse:
    for cls, status, title in _STATUS:
        if isinstance(e, cls):
            extra: dict[str, Any] = {}
            if isinstance(e, ValidationError):
                extra = {"field": e.field, "rule": e.rule}
                if e.index is not None:
                    extra["index"] = e.index
            return problem(status, title, str(e), **extra)
    return problem(503, "Log unavailable", str(e))


async def hub_for(request: Request) -> Hub:
    """The hub as the caller may use it (set by the auth middleware)."""
    hub: Hub = request.state.hub
    return hub


def create_app(hub: Hub, settings: ServerSettings | None = None) -> FastAPI:
    """The app for an opened, trusted ``hub``; the hub stays open after the app stops."""
    settings = settings or ServerSettings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.registry.refresh()
        yield

    app = FastAPI(
        title="creative-hub",
        version="0.1.0",
        description="Share creative work as CloudEvents: publish, replay, follow, peer hubs, lineage.",
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.settings = settings
    app.state.metrics = metrics

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if "token" in request.query_params or "access_token" in request.query_params:
            return problem(400, "Token in the query string", "send it as 'Authorization: Bearer <token>'")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body:
            return problem(413, "Payload too large", f"the body limit is {settings.max_body} bytes")
        auth = request.headers.get("authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token:
                return problem(401, "Unauthorized", "use 'Authorization: Bearer <token>'")
            try:
                principal = await hub.registry.authenticate(token.strip())
            except AccessDenied:
                return problem(401, "Unauthorized", "invalid or revoked token")
            request.state.hub = hub.acting(principal, authenticated=True)
        elif settings.allow_anonymous or request.url.path in ("/healthz", "/readyz", "/metrics"):
            request.state.hub = hub.acting(ANONYMOUS)
        else:
            return problem(401, "Unauthorized", "this hub needs a token")
        try:
            response = await call_next(request)
        except HubError as e:  # raised while streaming
            response = error_response(e)
        metrics.requests.labels(request.method, str(response.status_code)).inc()
        return response

    @app.exception_handler(HubError)
    async def hub_error(request: Request, e: HubError) -> JSONResponse:
        return error_response(e)

    from .api import router

    app.include_router(router)
    return app
