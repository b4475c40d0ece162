"""The MCP servers over streamable HTTP, mounted on the hub's HTTP app.

    app = create_app(hub)
    mount(app, hub)           # /mcp/hub/, /mcp/github/, /mcp/story/

Each request's ``Authorization: Bearer <token>`` is checked against the
hub's registry (a bad or revoked token: 401); the principal rides in the
ASGI scope to the server's identity middleware (common.py), so every tool
call runs as that principal.  No token: anonymous (public topics, no
publishing), unless ``allow_anonymous=False``.

The SDK's session managers need a running task group: ``mount`` wraps the
app's lifespan so they start and stop with it (nothing else to call).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from mcp.server import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from ..access import ANONYMOUS
from ..errors import AccessDenied
from ..hub import Hub
from ..index import HubIndex
from ..server.deps import close_index, index_for
from ..server.problems import problem
from .common import PRINCIPAL_SCOPE_KEY, HubState

__all__ = ["MCP_PREFIX", "mount"]

MCP_PREFIX = "/mcp"


class _BearerAuth:
    """ASGI wrapper: checks the bearer token, records the principal in the scope."""

    def __init__(self, app: ASGIApp, hub: Hub, allow_anonymous: bool) -> None:
        self.app = app
        self.hub = hub
        self.allow_anonymous = allow_anonymous

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        auth = headers.get("authorization", "")
        if auth:
            kind, _, token = auth.partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                await _unauthorized(scope, receive, send, "use 'Authorization: Bearer <token>'")
                return
            try:
                principal = await self.hub.registry.authenticate(token.strip())
            except AccessDenied:
                await _unauthorized(scope, receive, send, "invalid or revoked token")
                return
            scope[PRINCIPAL_SCOPE_KEY] = (principal, True)
        elif self.allow_anonymous:
            scope[PRINCIPAL_SCOPE_KEY] = (ANONYMOUS, False)
        else:
            await _unauthorized(scope, receive, send, "this hub needs a token")
            return
        await self.app(scope, receive, send)


async def _unauthorized(scope: Scope, receive: Receive, send: Send, detail: str) -> None:
    """A 401 in the problem-details shape the REST API answers with."""
    headers = {"WWW-Authenticate": 'Bearer realm="creative-hub"'}
    await problem(401, "Unauthorized", detail, headers=headers)(scope, receive, send)


def _builders() -> dict[str, Callable[[HubState], MCPServer]]:
    from .github import build_github_server
    from .hub import build_hub_server
    from .story import build_story_server

    return {"hub": build_hub_server, "github": build_github_server, "story": build_story_server}


def mount(
    app: Any,
    hub: Hub,
    *,
    index: HubIndex | None = None,
    allow_anonymous: bool = True,
    transport_security: TransportSecuritySettings | None = None,
) -> dict[str, MCPServer]:
    """Mount the hub, github and story servers at ``/mcp/<name>/`` on a Starlette / FastAPI ``app``.

    ``hub`` is the trusted hub the app serves; ``index`` defaults to the
    app's shared index (``creative_hub.server.deps.index_for``).  DNS
    rebinding protection is off by default, as on the REST API beside it:
    identity comes from bearer tokens, never from cookies.  Returns the
    servers by name.
    """
    state = HubState(hub, index or (lambda: index_for(app, hub)))  # opened on first use
    security = transport_security or TransportSecuritySettings(enable_dns_rebinding_protection=False)
    servers: dict[str, MCPServer] = {}
    managers: list[StreamableHTTPSessionManager] = []
    for name, build in _builders().items():
        server = build(state)
        # JSON responses; 2026-07-28 clients are stateless whatever we say here
        # (each POST is self-contained, subscriptions/listen is its own stream),
        # so any process behind a load balancer can answer them.  The hub server
        # keeps sessions for 2025-era clients, whose resources/subscribe needs a
        # session (and its GET stream) to be notified on; the others need none.
        # (The Starlette app returned is not used: its session manager is.)
        server.streamable_http_app(
            stateless_http=name != "hub", json_response=True, transport_security=security
        )
        manager = server.session_manager
        managers.append(manager)
        servers[name] = server
        app.mount(f"{MCP_PREFIX}/{name}", _BearerAuth(StreamableHTTPASGIApp(manager), hub, allow_anonymous))
    _run_with_app(app, managers)
    return servers


def _run_with_app(app: Any, managers: list[StreamableHTTPSessionManager]) -> None:
    """Start the session managers inside the app's own lifespan."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with contextlib.AsyncExitStack() as stack:
            for m in managers:
                await stack.enter_async_context(m.run())
            async with inner(a) as value:
                yield value
        close_index(app)

    app.router.lifespan_context = lifespan
