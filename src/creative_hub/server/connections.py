"""Connection-level limits under uvicorn: timeouts for slow clients, a cap per client address.

ASGI sees requests, not connections: a client that opens a socket and sends
nothing, or sends its request line a byte every two seconds, never reaches the
app, so no middleware can close it.  uvicorn's own protection stops short of
that: its keep-alive timer starts only after a first response, and any byte
cancels it.  So the server runs its HTTP/1.1 protocol (uvicorn's h11 one)
through this subclass, which adds, per connection:

* **idle**: a connection that sends nothing for ``idle_timeout`` seconds --
  before its first request or between two -- is closed;
* **header**: a request head (request line and headers) must be complete
  ``header_timeout`` seconds after its first byte, or the client gets a 408
  and the connection is closed;
* **body**: a request body must arrive within ``body_timeout`` seconds plus
  one second per ``body_min_rate`` bytes received (Apache's mod_reqtimeout
  rule: a slow but steady upload passes, a trickle does not);
* **per client**: at most ``max_per_client`` open connections from one
  address; the next gets a 503 and is closed at once.

Responses are not timed: a Server-Sent Events stream is long by design, and
a client that stops reading it is dropped by the stream's own queue limit
(``stream.py``).  Header size is h11's limit (``MAX_HEAD_BYTES``), enforced
by uvicorn with a 400.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["MAX_HEAD_BYTES", "ConnectionLimits", "protocol_for"]

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024  # request line + headers; larger heads get uvicorn's 400
REJECT_LINGER = 1.0  # seconds a refused connection stays half-open so its 503 is read


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimits:
    """ConnectionLimits(header_timeout=10, idle_timeout=5)   # seconds; 0 turns a timeout off"""

    header_timeout: float = 10.0  #: seconds from a request's first byte to its last header
    body_timeout: float = 20.0  #: seconds for a body, plus one per ``body_min_rate`` bytes received
    body_min_rate: int = 16 * 1024  #: bytes a second a long upload must keep up
    idle_timeout: float = 5.0  #: seconds a connection may send nothing between requests
    max_per_client: int = 64  #: open connections per client address (0: no cap)


_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
_TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
)


def _raw(template: bytes, status: int, title: str, detail: str) -> bytes:
    body = json.dumps({"type": "about:blank", "status": status, "title": title, "detail": detail}).encode()
    return template % (len(body), body)


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the limits of the module docstring (see ``protocol_for``)."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    open_per_client: ClassVar[dict[str, int]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._host: str | None = None  # set once this connection counts against its address
        self._timer: asyncio.TimerHandle | None = None
        self._phase = ""  # "idle", "head" or "body": what the running timer is for
        self._body_started = 0.0
        self._body_bytes = 0
        self._rejected = False

    # -- connection ------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else "?"
        cap = self.limits.max_per_client
        if cap and self.open_per_client.get(host, 0) >= cap:
            detail = f"at most {cap} open connections per client address"
            transport.write(_raw(_TOO_MANY, 503, "Too many connections", detail))
            # Half-close and linger a moment: closing with the client's request unread would
            # reset the connection, and the client would see an error instead of the 503.
            self._rejected = True
            try:
                if transport.can_write_eof():
                    transport.write_eof()
            except OSError:  # the client is gone already (ENOTCONN): nothing to linger for
                transport.close()
                return
            self._timer = self.loop.call_later(REJECT_LINGER, transport.close)
            return
        self.open_per_client[host] = self.open_per_client.get(host, 0) + 1
        self._host = host
        self._arm("idle", self.limits.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._host is not None:
            left = self.open_per_client.get(self._host, 1) - 1
            if left > 0:
                self.open_per_client[self._host] = left
            else:
                self.open_per_client.pop(self._host, None)
            self._host = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return  # answered already: the request is read and dropped
        if self.conn.their_state is h11.IDLE and self._phase != "head":
            # The first byte of a request head: from now on it has header_timeout to finish.
            self._arm("head", self.limits.header_timeout)
        super().data_received(data)
        self._follow(len(data))

    def on_response_complete(self) -> None:
        self._disarm()  # uvicorn arms its keep-alive timer (timeout_keep_alive = idle_timeout)
        super().on_response_complete()

    # -- timers ----------------------------------------------------------------
    def _follow(self, received: int) -> None:
        """Set the timer for the phase the request is in after ``received`` more bytes."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            limits = self.limits
            if self._phase != "body":
                self._body_started = self.loop.time()
                self._body_bytes = 0
            else:
                self._body_bytes += received
            allowed = limits.body_timeout + self._body_bytes / max(1, limits.body_min_rate)
            self._arm("body", self._body_started + allowed - self.loop.time(), on=limits.body_timeout > 0)
        elif state is not h11.IDLE and self._phase in ("head", "body"):
            self._disarm()  # the request is in; the response is not timed

    def _arm(self, phase: str, seconds: float, *, on: bool | None = None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = phase
        if on if on is not None else seconds > 0:
            self._timer = self.loop.call_later(max(0.0, seconds), self._expired, phase)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = ""

    def _expired(self, phase: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if phase == "head" and self.conn.our_state is h11.IDLE:
            detail = f"the request head took over {self.limits.header_timeout:g} s"
            self.transport.write(_raw(_REQUEST_TIMEOUT, 408, "Request timeout", detail))
        elif phase == "body":
            logger.info("closing %s: request body too slow", self._host)
        self.transport.close()


def protocol_for(limits: ConnectionLimits) -> type[LimitedH11Protocol]:
    """A protocol class for one server: its own limits and its own count of connections per address."""
    return type(
        "LimitedH11Protocol",
        (LimitedH11Protocol,),
        {"limits": limits, "open_per_client": {}},
    )
