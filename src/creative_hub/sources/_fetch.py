"""Fetching a URL someone else chose: public addresses only, a size cap, one deadline.

``ingest page/feed URL`` takes URLs from feeds, bookmarks and people, so a
URL is attacker-supplied.  What keeps a fetch from reaching inside or running away:

- **Where**: the host is resolved first and every address must be public
  (not loopback, private, link-local -- the 169.254.169.254 metadata service
  --, shared, multicast, reserved or unspecified; an IPv6 address carrying
  an IPv4 one -- mapped, NAT64, 6to4 -- checked as that IPv4).  The
  connection then goes to the address that was checked (the name is not
  resolved a second time, so DNS cannot change its answer in between), with
  the name kept for Host, SNI and the certificate.  This
  runs in the connection layer (an httpcore network backend), so every
  redirect hop is checked too; proxies from the environment are not used
  (a proxy would resolve the name itself).  ``allow_private`` opts out.
- **What**: only ``http`` and ``https``, on the first URL and on every redirect
  (at most ``max_redirects``).
- **How much**: the body is streamed and the fetch stops once it passes
  ``max_bytes`` (after decompression; a ``Content-Length`` over it stops it
  before the body).
- **How long**: ``deadline`` bounds the whole request -- connect, redirects,
  every byte -- not only each read, so a server trickling a byte a second
  cannot keep it alive.

    limits = FetchLimits(max_bytes=5 * 2**20, deadline=30)
    async with guarded_client(limits) as client:
        got = await fetch(client, "https://example.org/feed", limits)   # (final URL, body) or FetchRefused
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

__all__ = [
    "API_LIMITS",
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_BYTES",
    "FetchLimits",
    "FetchRefused",
    "PrivateAddress",
    "api_get",
    "fetch",
    "guarded_client",
    "is_public",
]

DEFAULT_MAX_BYTES = 5 * 1024 * 1024  # bytes of body per URL (a large feed is ~1 MB)
DEFAULT_DEADLINE = 30.0  # seconds for one URL, redirects and body included
DEFAULT_MAX_REDIRECTS = 5
_READ_TIMEOUT = 10.0  # seconds without a byte (the deadline bounds the total)


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Bounds on one fetch.

    FetchLimits()                          # public addresses, 5 MiB, 30 s
    FetchLimits(allow_private=True)        # a person who means to fetch from their LAN
    FetchLimits(trusted=("127.0.0.2",))    # tests: this one loopback address stands for "outside"
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    deadline: float = DEFAULT_DEADLINE
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    allow_private: bool = False
    trusted: tuple[str, ...] = ()  #: addresses let through although not public


class FetchRefused(Exception):
    """A fetch stopped by a limit; the message says which and how to lift it."""


class PrivateAddress(httpcore.ConnectError):
    """The host resolves to an address that is not public."""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the last 32 bits
_LOCAL_V6 = (
    ipaddress.ip_network("64:ff9b:1::/48"),  # RFC 8215: NAT64 for local use only
    ipaddress.ip_network("fec0::/10"),  # site-local: deprecated (RFC 3879), still routed inside some sites
)


def is_public(address: str) -> bool:
    """True for a globally routable unicast address (``8.8.8.8``), False for
    ``127.0.0.1``, ``10.0.0.1``, ``169.254.169.254``, ``::1``, ``::ffff:127.0.0.1`` ...

    An IPv6 address that carries an IPv4 one a gateway would reach on our behalf
    (IPv4-mapped, NAT64 as DNS64 answers in IPv6-only clouds, 6to4, IPv4-compatible)
    is judged by that IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in n for n in _LOCAL_V6):
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and (ip in _NAT64 or int(ip) >> 32 == 0 < int(ip)):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)  # the last 32 bits
        if embedded is not None:
            ip = embedded
    return ip.is_global and not ip.is_multicast


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, and connects to a checked one (pinned)."""

    def __init__(self, allow_private: bool, trusted: tuple[str, ...] = ()) -> None:
        self.allow_private = allow_private
        self.trusted = frozenset(trusted)
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not self.allow_private:
            for a in addresses:
                if a not in self.trusted and not is_public(a):
                    raise PrivateAddress(
                        f"{host} is {a}, not a public address (loopback, private, link-local or "
                        "metadata); --allow-private fetches it anyway"
                    )
        last: Exception = httpcore.ConnectError(f"{host}: no address")
        for a in addresses:
            try:
                return await self.inner.connect_tcp(a, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, allow_private: bool, trusted: tuple[str, ...]) -> None:
        super().__init__(trust_env=False)
        # httpx has no public knob for the network backend: its pool is replaced by an
        # identical one (the defaults of AsyncHTTPTransport) that connects through the guard.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(allow_private, trusted),
        )


def guarded_client(limits: FetchLimits) -> httpx.AsyncClient:
    """A client whose every connection goes through the address check (redirects not followed:
    ``fetch`` follows them itself, checking each)."""
    return httpx.AsyncClient(
        transport=_GuardedTransport(limits.allow_private, limits.trusted),
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(_READ_TIMEOUT),
    )


async def fetch(
    client: httpx.AsyncClient, url: str, limits: FetchLimits, headers: dict[str, str] | None = None
) -> tuple[str, bytes]:
    """(final URL, body) of a 200 answer; FetchRefused for a limit, an HTTP error or a failed request."""
    async with _within(limits, "; --timeout"):
        return await _follow(client, url, limits, headers or {})


async def _follow(
    client: httpx.AsyncClient, url: str, limits: FetchLimits, headers: dict[str, str]
) -> tuple[str, bytes]:
    current = httpx.URL(url)
    for _ in range(limits.max_redirects + 1):
        if current.scheme not in ("http", "https"):
            raise FetchRefused(f"{current}: only http and https URLs are fetched")
        async with client.stream("GET", current, headers=headers) as r:
            if r.is_redirect and "location" in r.headers:
                current = current.join(r.headers["location"])
                continue
            if r.status_code != 200:
                raise FetchRefused(f"HTTP {r.status_code}")
            return str(r.url), await _body(r, limits, "; --max-bytes raises it")
    raise FetchRefused(f"more than {limits.max_redirects} redirects")


API_LIMITS = FetchLimits(max_bytes=32 * 1024 * 1024, deadline=120.0, allow_private=True)
"""Bounds on a call to an API the ingest is configured with (arXiv, CrossRef, GitHub): its
address is the person's choice (``--api-url``), its answer is still capped in size and time."""


async def api_get(
    client: httpx.AsyncClient,
    url: str,
    limits: FetchLimits = API_LIMITS,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One GET, redirects followed by the client; the body streamed and capped, the whole
    request within one deadline; FetchRefused past a limit or on failure.  The answer comes
    back read (``.content``, ``.json()``, ``.links``, ``.headers`` for ETags and rate limits)."""
    async with _within(limits, ""), client.stream("GET", url, params=params, headers=headers) as r:
        body = await _body(r, limits, "")
    # The body was decoded while it was counted: the copy carries it without the encoding.
    kept = [(k, v) for k, v in r.headers.multi_items() if k not in ("content-encoding", "content-length")]
    return httpx.Response(r.status_code, headers=kept, content=body, request=r.request)


@contextlib.asynccontextmanager
async def _within(limits: FetchLimits, hint: str) -> AsyncIterator[None]:
    """The request inside: within ``limits.deadline`` in all; a timeout or an httpx error is
    FetchRefused (``hint``: the option that raises the deadline, if any)."""
    try:
        async with asyncio.timeout(limits.deadline):
            yield
    except TimeoutError:
        raise FetchRefused(
            f"took longer than {limits.deadline:g} s in all (a slow or trickling server{hint})"
        ) from None
    except httpx.HTTPError as e:
        raise FetchRefused(f"request failed: {e}") from None


async def _body(r: httpx.Response, limits: FetchLimits, hint: str) -> bytes:
    """``r``'s body, refused (FetchRefused) once it is known to be over ``limits.max_bytes``."""
    declared = r.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise FetchRefused(_too_big(f"Content-Length {int(declared)}", limits, hint))
    body = bytearray()
    # aiter_bytes decompresses: the cap counts what would be kept, so a gzip bomb stops too.
    async for chunk in r.aiter_bytes():
        body += chunk
        if len(body) > limits.max_bytes:
            raise FetchRefused(_too_big(f"stopped reading at {len(body)} bytes", limits, hint))
    return bytes(body)


def _too_big(detail: str, limits: FetchLimits, hint: str) -> str:
    return f"the response is over the {limits.max_bytes}-byte limit ({detail}{hint})"
