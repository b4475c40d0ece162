"""The gate every request passes: body limit, bearer token, rate limit, counts.

A plain ASGI middleware rather than ``@app.middleware("http")``: Starlette's
``BaseHTTPMiddleware`` pipes every response chunk through an extra memory
stream, which costs a Server-Sent Events stream a hop per event.

In order, for each HTTP request:

1. a token in the query string is refused (400): query strings end up in logs --
   any parameter named like one (``token``, ``access_token``, ``api_key``, any
   case) and any value that looks like one (``chub_...``, ``Bearer ...``), percent-
   encoded or not; so are two ``Authorization`` headers (which one would count?);
2. a body over ``max_body`` is refused (413) before any route runs -- at once
   when ``Content-Length`` says so, or as soon as a chunked body passes the
   limit (it is buffered up to the limit, never further);
3. ``Authorization: Bearer <token>`` names the principal (401 if unknown or
   revoked); without one the request is anonymous: read-only (a write to
   /v1/ is a 401), and only if the settings allow it.  Every bad token costs
   the client address one of its ``auth_failures``; an address that has
   spent them gets 429 for any token until it earns one back, so guessing
   tokens is as slow as ``auth_failure_rate`` (the check comes before the
   token is looked at: a right guess would pass otherwise);
4. the token's bucket (or, anonymous, the client address's) pays one request
   (429 with ``Retry-After`` when empty); the response says what is left in
   ``RateLimit-Policy`` / ``RateLimit`` headers (draft-ietf-httpapi-ratelimit-headers);
5. the route runs with ``request.state.hub = hub.acting(principal)``.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ..access import ANONYMOUS
from ..errors import AccessDenied
from ..hub import Hub
from .problems import problem

if TYPE_CHECKING:
    from .app import ServerSettings
    from .metrics import Metrics

__all__ = ["Guard", "TokenBuckets"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TOKEN_NAMES = frozenset({"token", "access_token", "api_key", "apikey", "auth", "authorization", "bearer"})
_TOKEN_LIKE = re.compile(r"chub_[0-9a-f]|\bbearer\s+[\w.~+/=-]{16,}", re.IGNORECASE)
OPEN_PATHS = ("/healthz", "/readyz", "/metrics")  # answer without a token and without a bucket
MAX_BUCKETS = 10_000  # keys remembered before full (idle) buckets are forgotten


class TokenBuckets:
    """A token bucket per key: ``rate`` requests a second, bursts of up to ``burst``.

    TokenBuckets(rate=10, burst=20).take("alice")   # 0.0 if allowed, else seconds to wait
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def tokens(self, key: str) -> float:
        """What ``key``'s bucket holds now (``burst`` for a key never seen)."""
        if key not in self._buckets:
            return float(self.burst)
        tokens, when = self._buckets[key]
        return min(float(self.burst), tokens + (self.clock() - when) * self.rate)

    def policy(self) -> str:
        """The bucket as an IETF ``RateLimit-Policy`` item: ``burst`` requests per refill window."""
        return f'"default";q={self.burst};w={max(1, math.ceil(self.burst / self.rate))}'

    def wait(self, key: str) -> float:
        """Seconds until ``key``'s bucket holds a token (0.0: now), spending nothing."""
        if key not in self._buckets:
            return 0.0
        tokens, when = self._buckets[key]
        tokens = min(float(self.burst), tokens + (self.clock() - when) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s bucket: 0.0 if there was one, else the seconds until one."""
        now = self.clock()
        tokens, when = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - when) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._forget_full(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: dropping it keeps memory bounded.
        for key, (tokens, when) in list(self._buckets.items()):
            if tokens + (now - when) * self.rate >= self.burst:
                del self._buckets[key]


def token_in_query(query: bytes) -> bool:
    """True if a query string carries something that looks like a credential."""
    if not query:
        return False
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name.strip().lower() in _TOKEN_NAMES or _TOKEN_LIKE.search(value) or _TOKEN_LIKE.search(name):
            return True
    return False


class _TooLarge(Exception):
    pass


class Guard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, *, hub: Hub, settings: ServerSettings, metrics: Metrics) -> None:
        self.app = app
        self.hub = hub
        self.settings = settings
        self.metrics = metrics
        self.buckets = TokenBuckets(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
        self.failures = (
            TokenBuckets(max(settings.auth_failure_rate, 1e-3), settings.auth_failures)
            if settings.auth_failures
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, counting_send)
        finally:
            self.metrics.requests.labels(scope["method"], str(status)).inc()

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.settings
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        query: bytes = scope.get("query_string", b"")
        if token_in_query(query):
            detail = "send it as 'Authorization: Bearer <token>', never in the URL"
            await problem(400, "Token in the query string", detail)(scope, receive, send)
            return
        if sum(k.lower() == b"authorization" for k, _ in scope["headers"]) > 1:
            detail = "send one Authorization header"
            await problem(400, "Two Authorization headers", detail)(scope, receive, send)
            return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body:
            await self._too_large(scope, receive, send)
            return
        if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
            try:
                receive = await self._buffer(receive, settings.max_body)
            except _TooLarge:
                await self._too_large(scope, receive, send)
                return
        auth = headers.get("authorization", "")
        open_path = path in OPEN_PATHS
        if auth:
            client = scope.get("client")
            address = client[0] if client else "?"
            if self.failures is not None and (wait := self.failures.wait(address)) > 0:
                await self._throttled(scope, receive, send, wait, "failed authentications from this address")
                return
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                self._failed(address)
                await problem(401, "Unauthorized", "use 'Authorization: Bearer <token>'")(
                    scope, receive, send
                )
                return
            try:
                principal = await self.hub.registry.authenticate(token.strip())
            except AccessDenied as e:  # invalid, revoked or expired (told only to the holder)
                self._failed(address)
                await problem(401, "Unauthorized", str(e))(scope, receive, send)
                return
            acting = self.hub.acting(principal, authenticated=True, via="http")
            bucket_key = "t:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
        elif scope["method"] not in ("GET", "HEAD") and path.startswith("/v1/"):
            # Anonymous access is read-only: every write is attributed to a principal.
            detail = "writing needs a token: 'Authorization: Bearer <token>'"
            resp = problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})
            await resp(scope, receive, send)
            return
        elif settings.allow_anonymous or open_path or not path.startswith("/v1/"):
            # The dashboard's files, the schemas and the ops endpoints are public;
            # the API's data (everything under /v1/) follows allow_anonymous.
            acting = self.hub.acting(ANONYMOUS)
            client = scope.get("client")
            bucket_key = "a:" + (client[0] if client else "?")
        else:
            resp = problem(
                401, "Unauthorized", "this hub needs a token", headers={"WWW-Authenticate": "Bearer"}
            )
            await resp(scope, receive, send)
            return
        if self.buckets is not None and not open_path:
            wait = self.buckets.take(bucket_key)
            send = self._announcing(send, bucket_key)
            if wait > 0:
                who = "this token" if auth else "this address"
                await self._throttled(
                    scope, receive, send, wait, f"over {settings.rate_limit:g} requests/s for {who}"
                )
                return
        scope.setdefault("state", {})["hub"] = acting
        await self.app(scope, receive, send)

    def _announcing(self, send: Send, key: str) -> Send:
        """``send`` that adds the IETF draft's ``RateLimit-Policy`` and ``RateLimit`` headers, so a
        client (and a test) can see the limit and what is left of it before it meets a 429."""
        assert self.buckets is not None
        buckets = self.buckets
        left = buckets.tokens(key)
        full_in = math.ceil((buckets.burst - left) / buckets.rate)
        extra = [
            (b"ratelimit-policy", buckets.policy().encode()),
            (b"ratelimit", f'"default";r={int(left)};t={full_in}'.encode()),
        ]

        async def announce(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        return announce

    def _failed(self, address: str) -> None:
        if self.failures is not None:
            self.failures.take(address)

    async def _throttled(self, scope: Scope, receive: Receive, send: Send, wait: float, why: str) -> None:
        self.metrics.rate_limited.inc()
        retry = str(max(1, math.ceil(wait)))
        resp = problem(429, "Too many requests", f"{why}; retry in {retry} s", headers={"Retry-After": retry})
        await resp(scope, receive, send)

    @staticmethod
    async def _buffer(receive: Receive, limit: int) -> Receive:
        """Read a body of unknown length, at most ``limit`` bytes, then replay it."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # A disconnect: the app will see it on its first receive.
                pending: Message | None = message
                break
            size += len(message.get("body", b""))
            if size > limit:
                raise _TooLarge
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                pending = None
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if pending is not None:
                    return pending
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.settings.max_body
        # Connection: close -- the rest of the body is not read, so the connection cannot be reused.
        resp = problem(
            413, "Payload too large", f"the body limit is {limit} bytes", headers={"Connection": "close"}
        )
        await resp(scope, receive, send)
