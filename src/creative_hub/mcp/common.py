"""What the three MCP servers share: the caller's identity, the index, errors, event views.

Identity.  Over stdio the caller is fixed when the server starts (a token
from ``CREATIVE_HUB_TOKEN``, else anonymous: public topics only).  Over
HTTP every request carries its own bearer token: the ASGI wrapper in
``http.py`` checks it and records the principal in the request's scope; a
middleware on each server reads it back into a context variable for the one
message being handled.  Tools, resources and prompts all ask ``caller()``,
so the hub's access rules apply to every one of them -- nothing reads the
log or the index except as the caller.

Errors.  Tools raise ``ToolError`` with the hub's own message (``data.title:
required``, ``no event 'x'``), which MCP returns as a tool error
(``is_error``), never a crash; arguments that fail their schema are refused
by the SDK the same way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

import msgspec
from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import BaseModel, Field

from ..access import ANONYMOUS
from ..errors import HubError
from ..event import Event
from ..hub import Hub
from ..index import HubIndex

__all__ = [
    "PRINCIPAL_SCOPE_KEY",
    "EventOut",
    "HubState",
    "event_out",
    "resource_errors",
    "tool_errors",
]

PRINCIPAL_SCOPE_KEY = "creative_hub.principal"  #: (principal, authenticated), set by http.py's auth wrapper
MAX_TEXT = 4000  # characters of an event's main text returned by summary views

P = ParamSpec("P")
R = TypeVar("R")

_caller: ContextVar[Hub | None] = ContextVar("creative_hub_mcp_caller", default=None)


class HubState:
    """The hub, its index, and who is asking.

    ``hub`` is the trusted hub (it feeds the index); ``default`` is the
    caller when the transport has no per-request identity (stdio).
    """

    def __init__(
        self, hub: Hub, index: HubIndex | Callable[[], HubIndex], default: Hub | None = None
    ) -> None:
        if not hub.trusted:
            raise ValueError("HubState needs the hub itself; callers act through hub.acting(...)")
        self.hub = hub
        self._index = index  # or a factory: the HTTP app opens its index file on first use
        self.default = default if default is not None else hub.acting(ANONYMOUS)

    @property
    def index(self) -> HubIndex:
        if not isinstance(self._index, HubIndex):
            self._index = self._index()
        return self._index

    def caller(self) -> Hub:
        """The hub as the principal of the message being handled may use it."""
        return _caller.get() or self.default

    async def fresh(self) -> HubIndex:
        """The index, caught up with the log (at most once a second)."""
        await self.index.refresh(self.hub)
        return self.index

    def server(self, name: str, instructions: str, **options: Any) -> MCPServer:
        """An MCP server over this state, with ``middleware()``: every message it
        handles is handled as its caller (``options``: MCPServer's others)."""
        return MCPServer(name, instructions=instructions, middleware=[self.middleware()], **options)

    def middleware(self) -> ServerMiddleware[Any]:
        """A server middleware that sets ``caller()`` from the HTTP request, if any."""

        async def identify(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
            request = ctx.request
            scope = getattr(request, "scope", None)
            caller: Hub | None = None
            if isinstance(scope, dict):
                who = scope.get(PRINCIPAL_SCOPE_KEY)
                # An HTTP request that did not pass the auth wrapper is anonymous: fail closed.
                caller = (
                    self.hub.acting(who[0], authenticated=who[1], via="mcp")
                    if who
                    else self.hub.acting(ANONYMOUS)
                )
            token = _caller.set(caller)
            try:
                return await call_next(ctx)
            finally:
                _caller.reset(token)

        return identify


def _translating(error: type[Exception]) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """A decorator that re-raises the hub's errors as ``error`` with the hub's message."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except HubError as e:
                raise error(str(e)) from e

        return wrapper

    return decorate


tool_errors = _translating(ToolError)
"""Turn the hub's errors into MCP tool errors with the hub's message."""
resource_errors = _translating(ResourceError)
"""Turn the hub's errors into MCP resource errors with the hub's message."""


class EventOut(BaseModel):
    """One event, as the MCP tools return it."""

    id: str
    type: str
    topic: str = Field(description="Where it is stored (the shared topic or a peer's stream)")
    creator: str
    source: str
    subject: str | None = None
    time: str | None = Field(default=None, description="RFC 3339")
    title: str = Field(description="The payload's title / summary / message, first line")
    data: dict[str, Any] = Field(default_factory=dict, description="The payload")
    supersedes: str | None = None
    forkedfrom: str | None = None
    causationid: str | None = None
    correlationid: str | None = None
    model: str | None = Field(default=None, description="Provenance: the model that made it (AI work)")
    modelprovider: str | None = Field(default=None, description="Who served the model, or 'offline'")
    confighash: str | None = Field(default=None, description="sha256 of the agent's prompt and configuration")
    inputs: list[str] = Field(default_factory=list, description="Ids of the events it was made from")


def _data(event: Event) -> dict[str, Any]:
    data = event.data
    if data is None:
        return {}
    if not isinstance(data, dict):
        data = msgspec.to_builtins(data)
    return data if isinstance(data, dict) else {"value": data}


def title_of(event: Event) -> str:
    data = _data(event)
    for key in ("title", "summary", "message", "subject", "name", "text", "path", "url", "character"):
        v = data.get(key)
        if isinstance(v, str) and v.strip():
            return v.strip().splitlines()[0][:200]
    return event.subject or event.type


def event_out(topic: str, event: Event, *, full: bool = True) -> EventOut:
    """``full=False`` trims long text fields (lists of many events stay small)."""
    data = _data(event)
    if not full:
        data = {
            k: (v[:MAX_TEXT] + "…" if isinstance(v, str) and len(v) > MAX_TEXT else v)
            for k, v in data.items()
        }
    return EventOut(
        id=event.id,
        type=event.type,
        topic=topic,
        creator=event.creator or "",
        source=event.source,
        subject=event.subject,
        time=event.time.isoformat().replace("+00:00", "Z") if event.time else None,
        title=title_of(event),
        data=data,
        supersedes=event.supersedes,
        forkedfrom=event.forkedfrom,
        causationid=event.causationid,
        correlationid=event.correlationid,
        model=event.model,
        modelprovider=event.modelprovider,
        confighash=event.confighash,
        inputs=event.input_ids,
    )


def to_json(value: Any) -> str:
    """JSON text for resources (models, lists of models, plain values)."""
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=2)
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return json.dumps([v.model_dump(mode="json") for v in value], indent=2)
    return json.dumps(value, indent=2, default=str)
